"""The whole streaming path on moto server over HTTP: S3 bundle, Kinesis in and out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from dagster_aws.s3 import S3Resource

from lambda_service.bundle import BundleError, Manifest
from lambda_service.model_provider import ModelProvider
from studperf_assets.resources.model_store import S3ModelStore
from studperf_assets_tests.kinesis_fakes import create_stream, read_stream, student_message

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_store(trained_bundle: tuple[Path, Manifest], s3_bucket: str) -> S3ModelStore:
    folder, manifest = trained_bundle
    store = S3ModelStore(bucket=s3_bucket, prefix="models", s3=S3Resource())
    store.publish(folder, manifest.version)
    store.promote(manifest.version, {})
    return store


def test_studperf_stream_accounts_for_every_record(
    s3_store: S3ModelStore, trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    kinesis = boto3.client("kinesis")
    suffix = tmp_path.name[-12:].replace("_", "-")
    names = {k: f"{k}-{suffix}" for k in ("in", "predictions", "errors")}
    create_stream(kinesis, names["in"], shards=2)
    create_stream(kinesis, names["predictions"])
    create_stream(kinesis, names["errors"])
    payloads = [student_message(3000 + i, Absences=i % 30) for i in range(230)]
    payloads += [b"not json"] * 5 + [student_message(9, Absences=99)] * 10 + [b"\x00\x01"] * 5
    sent: set[str] = set()
    for start in range(0, len(payloads), 100):
        chunk = payloads[start : start + 100]
        response = kinesis.put_records(
            StreamName=names["in"],
            Records=[{"Data": p, "PartitionKey": str(start + i)} for i, p in enumerate(chunk)],
        )
        assert response["FailedRecordCount"] == 0
        sent |= {f"{r['ShardId']}:{r['SequenceNumber']}" for r in response["Records"]}
    env = {**os.environ, "STUDPERF_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable, "-m", "studperf_assets.cli", "stream",
            "--input-stream", names["in"], "--predictions-stream", names["predictions"],
            "--errors-stream", names["errors"], "--model", s3_store.root_uri,
            "--batch-size", "100", "--until-idle", "2",
        ],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.perf_counter() - started < 60
    assert "250 records" in result.stdout
    predictions = read_stream(kinesis, names["predictions"])
    errors = read_stream(kinesis, names["errors"])
    assert len(predictions) == 230 and len(errors) == 20
    keys = [r["idempotency_key"] for r in predictions + errors]
    assert set(keys) == sent and len(keys) == len(sent)  # each record exactly once
    assert {p["model_version"] for p in predictions} == {trained_bundle[1].version}
    assert sorted(p["student_id"] for p in predictions) == list(range(3000, 3230))
    reasons = {e["reason"] for e in errors}
    assert any("not JSON" in r for r in reasons) and "99 outside [0, 29]" in reasons
    assert any("not UTF-8" in r or "not JSON" in r for r in reasons)
    checkpoints = json.loads(
        (tmp_path / "home" / "stream" / f"{names['in']}.checkpoints.json").read_text()
    )
    positions = checkpoints[names["in"]]
    assert {k for k in positions if k.startswith("shardId-")} == {
        "shardId-000000000000",
        "shardId-000000000001",
    }  # both shards checkpointed, for this stream (its identity is recorded beside them)
    assert positions["_stream"].startswith(
        kinesis.describe_stream_summary(StreamName=names["in"])["StreamDescriptionSummary"][
            "StreamARN"
        ]
    )


def test_bundle_fetched_from_s3_at_cold_start(s3_store: S3ModelStore, tmp_path: Path) -> None:
    provider = ModelProvider(
        f"{s3_store.root_uri}/production.json", tmp_path / "cache", s3=boto3.client("s3")
    )
    assert provider.follows_pointer
    assert (tmp_path / "cache" / provider.predictor.version / "model.onnx").is_file()


def test_s3_unreachable_names_the_uri(tmp_path: Path) -> None:
    dead = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    uri = "s3://studperf-nowhere/models"
    with pytest.raises(BundleError, match=uri):
        ModelProvider(uri, tmp_path / "cache", s3=dead)


def test_missing_bundle_in_s3_names_the_uri(s3_bucket: str, tmp_path: Path) -> None:
    uri = f"s3://{s3_bucket}/models/bundles/v-missing"
    with pytest.raises(BundleError, match=uri):
        ModelProvider(uri, tmp_path / "cache", s3=boto3.client("s3"))


def _poller_setup(
    s3_store: S3ModelStore, tmp_path: Path, failing_calls: int, max_attempts: int
) -> Any:
    from lambda_service.service import PredictionService
    from lambda_service.streams import KinesisSink
    from studperf_assets_tests.kinesis_fakes import FlakyKinesis

    kinesis = boto3.client("kinesis")
    suffix = tmp_path.name[-12:].replace("_", "-")
    names = {k: f"{k}-{suffix}" for k in ("in", "out", "err")}
    for name in names.values():
        create_stream(kinesis, name)
    response = kinesis.put_records(
        StreamName=names["in"],
        Records=[{"Data": student_message(i), "PartitionKey": str(i)} for i in range(40)],
    )
    sent = {f"{r['ShardId']}:{r['SequenceNumber']}" for r in response["Records"]}
    flaky = FlakyKinesis(kinesis, failing_calls=failing_calls, streams={names["out"]})
    provider = ModelProvider(s3_store.root_uri, tmp_path / "cache", s3=boto3.client("s3"))
    sink = KinesisSink(flaky, max_attempts=max_attempts, sleep=lambda _s: None)
    service = PredictionService(provider, sink, names["out"], names["err"])
    return kinesis, names, sent, service


def test_reported_failures_are_retried_by_the_poller(
    s3_store: S3ModelStore, tmp_path: Path
) -> None:
    from studperf_assets.serving.kinesis_poller import KinesisPoller

    kinesis, names, sent, service = _poller_setup(
        s3_store, tmp_path, failing_calls=3, max_attempts=2
    )
    poller = KinesisPoller(
        kinesis, names["in"], lambda event, _c: service.handle_kinesis(event["Records"]).response(),
        batch_size=40, max_retries=3, sleep=lambda _s: None,
    )  # fmt: skip
    stats = poller.run(until_idle=2, poll_interval=0)
    assert stats.retried_batches >= 1 and stats.discarded_records == 0
    keys = [p["idempotency_key"] for p in read_stream(kinesis, names["out"])]
    assert set(keys) == sent  # all delivered; retried ones may repeat (same idempotency key)


def test_batches_that_keep_failing_go_to_the_on_failure_file(
    s3_store: S3ModelStore, tmp_path: Path
) -> None:
    from studperf_assets.serving.kinesis_poller import KinesisPoller

    kinesis, names, sent, service = _poller_setup(
        s3_store, tmp_path, failing_calls=10**6, max_attempts=1
    )
    on_failure = tmp_path / "on-failure.jsonl"
    poller = KinesisPoller(
        kinesis, names["in"], lambda event, _c: service.handle_kinesis(event["Records"]).response(),
        batch_size=40, max_retries=2, on_failure=on_failure, sleep=lambda _s: None,
    )  # fmt: skip
    stats = poller.run(until_idle=2, poll_interval=0)
    (failed,) = [json.loads(line) for line in on_failure.read_text().splitlines()]
    delivered = {p["idempotency_key"] for p in read_stream(kinesis, names["out"])}
    undelivered = {f"shardId-000000000000:{s}" for s in failed["failed_sequences"]}
    assert delivered | undelivered == sent and not delivered & undelivered
    assert stats.discarded_records == failed["records"] > 0


def test_init_aws_creates_bucket_and_streams_idempotently(moto_server: str) -> None:
    from studperf_assets.cli import main

    streams = ["init-in", "init-out"]
    for _ in range(2):
        assert main(["init-aws", "--bucket", "init-bucket", "--streams", *streams]) == 0
    boto3.client("s3").head_bucket(Bucket="init-bucket")
    kinesis = boto3.client("kinesis")
    for name in streams:
        assert (
            kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                "StreamStatus"
            ]
            == "ACTIVE"
        )


def test_simulate_sends_the_count_asked_for_with_ids_no_run_reuses(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    from studperf_assets.cli import main

    monkeypatch.setenv("STUDPERF_HOME", str(tmp_path))
    kinesis = boto3.client("kinesis")
    create_stream(kinesis, "sim-in")
    for drift in ("absences=5", ""):  # the same seed twice: the IDs must still differ
        command = ["simulate", "--stream", "sim-in", "--count", "120", "--label-delay", "30"]
        assert main([*command, "--drift", drift]) == 0
    sent = read_stream(kinesis, "sim-in")
    assert len(sent) == 240 and {"student_id", "request_id", "student"} <= set(sent[0])
    ids = [s["student_id"] for s in sent]
    assert len(set(ids)) == 240 and min(ids) >= 1_000_000
    assert {s["request_id"] for s in sent} == {f"sim-{i}" for i in ids}
    label_files = sorted((tmp_path / "monitoring" / "labels").rglob("*.parquet"))
    assert len(label_files) == 2 and all(f.parent.name.count("T") == 1 for f in label_files)
    labels = pd.concat(pd.read_parquet(f) for f in label_files)
    assert set(labels["request_id"]) == {s["request_id"] for s in sent}
    assert main(["simulate", "--stream", "sim-in", "--count", "1", "--drift", "sleep=9"]) == 2
