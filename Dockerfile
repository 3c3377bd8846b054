# The Dagster code location (also runs the webserver, the daemon, MLflow and `studperf serve`
# in docker-compose.yml, and every ECS task of terraform/modules/dagster). Build from the repository root:
#   docker build -t studperf:$(git rev-parse --short HEAD) .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STUDPERF_HOME=/opt/studperf/home \
    DAGSTER_HOME=/opt/dagster/home

WORKDIR /opt/studperf/app

# Dependencies first, from pyproject.toml alone and pinned by constraints.txt: this layer is
# rebuilt when they change, not when the code does.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
    && pip install --no-compile -c constraints.txt -r /tmp/requirements.txt

# Then the code, without touching the dependencies. Bytecode is compiled now, once, for every
# module a studperf process imports: PYTHONDONTWRITEBYTECODE stops runs, steps and sensors from
# caching it, so without this each would compile its libraries from source
# (scripts/compile_bytecode.py says why not all of them).
COPY README.md ./
COPY studperf_assets/ ./studperf_assets/
COPY lambda_service/ ./lambda_service/
COPY scripts/compile_bytecode.py ./scripts/
RUN pip install --no-compile --no-deps . \
    && python scripts/compile_bytecode.py \
    && useradd --create-home --uid 10001 studperf \
    && mkdir -p "$STUDPERF_HOME" "$DAGSTER_HOME" \
    && chown -R studperf "$STUDPERF_HOME" "$DAGSTER_HOME"

COPY workspace.yaml workspace.docker.yaml dagster.yaml dagster.aws.yaml ./
# In containers the instance lives in PostgreSQL (STUDPERF_DAGSTER_PG_URL). On ECS
# (terraform/modules/dagster) DAGSTER_HOME=/opt/dagster/aws: the same storage plus the
# EcsRunLauncher and S3 compute logs.
RUN cp studperf_assets/instance/dagster.postgres.yaml "$DAGSTER_HOME/dagster.yaml" \
    && mkdir -p /opt/dagster/aws && cp dagster.aws.yaml /opt/dagster/aws/dagster.yaml

USER studperf
EXPOSE 4000
HEALTHCHECK CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "studperf_assets.definitions"]
