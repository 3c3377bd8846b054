# The Dagster code location (also runs the webserver, the daemon, MLflow and `studperf serve`
# in docker-compose.yml). Build from the repository root:
#   docker build -t studperf:$(git rev-parse --short HEAD) .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STUDPERF_HOME=/opt/studperf/home \
    DAGSTER_HOME=/opt/dagster/home

WORKDIR /opt/studperf/app

# Dependencies first (cached while only code changes), pinned by constraints.txt.
COPY pyproject.toml constraints.txt README.md ./
COPY studperf_assets/ ./studperf_assets/
COPY lambda_service/ ./lambda_service/
# Bytecode compiled now, once: PYTHONDONTWRITEBYTECODE stops every run, step and sensor
# process from caching it, so without this each would compile its libraries from source.
RUN pip install --compile -c constraints.txt . \
    && python -m compileall -q "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && useradd --create-home --uid 10001 studperf \
    && mkdir -p "$STUDPERF_HOME" "$DAGSTER_HOME" \
    && chown -R studperf "$STUDPERF_HOME" "$DAGSTER_HOME"

COPY workspace.yaml workspace.docker.yaml dagster.yaml dagster.postgres.yaml ./
# In containers the instance lives in PostgreSQL (STUDPERF_DAGSTER_PG_URL).
RUN cp dagster.postgres.yaml "$DAGSTER_HOME/dagster.yaml"

USER studperf
EXPOSE 4000
HEALTHCHECK CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "studperf_assets.definitions"]
