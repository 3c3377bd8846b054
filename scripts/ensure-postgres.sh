#!/usr/bin/env bash
# Start the machine's PostgreSQL cluster if nothing answers on 127.0.0.1:5432.
set -euo pipefail
host=${STUDPERF_PG_HOST:-127.0.0.1}
port=${STUDPERF_PG_PORT:-5432}
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }
if ready; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
echo "PostgreSQL is not reachable on $host:$port; start it or set STUDPERF_PG_URL" >&2
exit 1
