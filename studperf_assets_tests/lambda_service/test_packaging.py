"""What the Lambda image packages is enough: its requirements, installed into a clean folder,
run the handler in a subprocess with a clean environment (no Docker needed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from lambda_service.bundle import Manifest
from studperf_assets_tests.kinesis_fakes import (
    create_stream,
    kinesis_record,
    kpl_aggregate,
    student_message,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "lambda_service" / "Dockerfile"

PROBE = """
import json, sys, time
started = time.perf_counter()
module_name, function_name = {handler!r}.rsplit(".", 1)
module = __import__(module_name, fromlist=[function_name])
handler = getattr(module, function_name)
cold_start = time.perf_counter() - started

class Context:  # what the Lambda runtime passes (the image's own code only: no stand-in here)
    function_name, memory_limit_in_mb, aws_request_id = "probe", 1024, "probe-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:probe"
    def get_remaining_time_in_millis(self):
        return 60000

result = handler(json.loads(sys.stdin.read()), Context())
heavy = ("dagster", "mlflow", "pandas", "sklearn", "skops", "scipy")
forbidden = sorted(m for m in heavy if m in sys.modules)
print(json.dumps({{"result": result, "forbidden": forbidden, "cold_start": cold_start}}))
"""


def _dockerfile() -> tuple[str, str]:
    text = DOCKERFILE.read_text()
    requirements = re.search(r"^COPY (\S+requirements\.txt) ", text, re.M)
    handler = re.search(r'^CMD \["([\w.]+)"\]', text, re.M)
    assert requirements and handler, "Dockerfile must COPY the requirements and name the handler"
    assert re.search(r"^COPY lambda_service/ \$\{LAMBDA_TASK_ROOT\}/lambda_service/", text, re.M)
    assert "public.ecr.aws/lambda/python:3.11" in text
    return requirements.group(1), handler.group(1)


@pytest.fixture(scope="module")
def task_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's ${LAMBDA_TASK_ROOT}: requirements installed with --target, code copied."""
    requirements, _ = _dockerfile()
    root = tmp_path_factory.mktemp("task-root")
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    command = (
        [uv, "pip", "install", "--quiet", "--python", sys.executable, "--target", str(root)]
        if uv
        else [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(root)]
    )
    subprocess.run([*command, "-r", str(REPO / requirements)], check=True, timeout=600)
    shutil.copytree(REPO / "lambda_service", root / "lambda_service")
    return root


def test_handler_runs_from_the_image_contents_alone(
    task_root: Path, trained_bundle: tuple[Path, Manifest], moto_server: str, tmp_path: Path
) -> None:
    _, handler = _dockerfile()
    kinesis = boto3.client("kinesis")
    for name in ("pkg-out", "pkg-err"):
        create_stream(kinesis, name)
    folder, manifest = trained_bundle
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(task_root),
        "MODEL_BUNDLE_URI": str(folder),
        "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "PREDICTIONS_STREAM_NAME": "pkg-out",
        "ERRORS_STREAM_NAME": "pkg-err",
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    aggregate = kpl_aggregate([("a", student_message(2)), ("b", student_message(3))])
    event = {
        "Records": [
            kinesis_record(student_message(1), 1),
            kinesis_record(b"bad", 2),
            kinesis_record(aggregate, 3),  # KPL: de-aggregated by the image's code alone
        ]
    }
    done = subprocess.run(
        # -S: none of the interpreter's site-packages; only the task root is importable
        [sys.executable, "-S", "-c", PROBE.format(handler=handler)],
        input=json.dumps(event), env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["forbidden"] == []
    assert report["result"] == {"batchItemFailures": []}
    shard = kinesis.list_shards(StreamName="pkg-out")["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName="pkg-out", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )
    predictions = [
        json.loads(r["Data"])
        for r in kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    ]
    assert [p["student_id"] for p in predictions] == [1, 2, 3]
    assert {p["model_version"] for p in predictions} == {manifest.version}
