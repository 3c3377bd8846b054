#!/usr/bin/env bash
# Install Debian's headless Chromium if it is missing: the live loop's browser test drives it
# (Playwright for Python with executable_path; Playwright's own browser builds are never
# downloaded), with the fonts it recommends and none of its desktop services. Idempotent and
# quiet: nothing is done when the browser is there.
set -euo pipefail
browser=${STUDPERF_CHROMIUM:-/usr/bin/chromium}
if [ -x "$browser" ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is not at $browser: install Debian's chromium package (apt-get install chromium)" \
    "or set STUDPERF_CHROMIUM to a Chromium binary" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# a machine fresh from its image may have no package lists yet
apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
}
if [ ! -x "$browser" ]; then
  echo "apt-get installed chromium, but $browser is not there" >&2
  exit 1
fi
