"""The local Kinesis path is the AWS path: the consumer calls ``lambda_handler`` with the
event Lambda delivers and a stand-in context, and the partial batch response drives what the
poller re-delivers, as Lambda's event source mapping does."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from benchmarks.streams import read_stream
from lambda_service.bundle import Manifest
from studperf_assets_tests.kinesis_fakes import (
    FlakyKinesis,
    create_stream,
    student_message,
)


def test_the_local_context_says_what_it_is() -> None:
    from studperf_assets.local.lambda_runtime import LocalLambdaContext

    context = LocalLambdaContext(region="eu-west-1", timeout_seconds=30)
    assert context.function_name == "studperf-local"
    assert context.aws_request_id.startswith("local-")
    assert context.invoked_function_arn == (
        "arn:aws:lambda:eu-west-1:000000000000:function:studperf-local"
    )
    assert 0 < context.get_remaining_time_in_millis() <= 30_000  # counts down from the timeout
    assert context.memory_limit_in_mb > 0
    assert LocalLambdaContext().aws_request_id != context.aws_request_id


@pytest.mark.integration
def test_a_failed_record_is_redelivered_through_lambda_handler(
    moto_server: str,
    trained_bundle: tuple[Path, Manifest],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On moto over HTTP: the output stream throttles half of the first put; the handler
    reports those records in its partial batch response; the poller re-delivers the batch
    from the lowest of them, to the handler again, in a new invocation."""
    from lambda_service import handler as handler_module
    from lambda_service.model_provider import ModelProvider
    from lambda_service.service import PredictionService
    from lambda_service.streams import KinesisSink
    from studperf_assets.local.lambda_runtime import lambda_logs_here
    from studperf_assets.local.poller import KinesisPoller

    kinesis = boto3.client("kinesis")
    names = {k: f"rt-{k}-{tmp_path.name[-10:].replace('_', '-')}" for k in ("in", "out", "err")}
    for name in names.values():
        create_stream(kinesis, name)
    sent = kinesis.put_records(
        StreamName=names["in"],
        Records=[{"Data": student_message(i), "PartitionKey": str(i)} for i in range(6)],
    )["Records"]
    flaky = FlakyKinesis(kinesis, failing_calls=1, streams={names["out"]})
    provider = ModelProvider(str(trained_bundle[0]), tmp_path / "cache")
    sink = KinesisSink(flaky, max_attempts=1)
    service = PredictionService(provider, sink, names["out"], names["err"])
    monkeypatch.setattr(handler_module.COLD_START, "service", service)
    batches: list[list[str]] = []
    seen: list[Any] = []

    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        batches.append([r["kinesis"]["sequenceNumber"] for r in event["Records"]])
        seen.append(context)
        return handler_module.lambda_handler(event, context)  # the handler itself, unmocked

    poller = KinesisPoller(kinesis, names["in"], lambda_handler, sleep=lambda _s: None)
    undo = lambda_logs_here()  # here: pytest gives each phase of a test its own log handler
    try:
        with caplog.at_level(logging.INFO, logger="studperf"):
            stats = poller.run(until_idle=2, poll_interval=0)
    finally:
        undo()
    sequences = [r["SequenceNumber"] for r in sent]
    # FlakyKinesis throttles the even entries of the failing call: 0, 2 and 4
    assert batches == [sequences, sequences]  # re-delivered from the lowest failed: the first
    assert stats.retried_batches == 1 and stats.discarded_records == 0
    out = read_stream(kinesis, names["out"])
    keys = {f"{r['ShardId']}:{r['SequenceNumber']}" for r in sent}
    assert {p["idempotency_key"] for p in out} == keys
    scored = [r for r in caplog.records if r.name == "studperf" and r.msg == "batch scored"]
    assert [r.__dict__["BatchItemFailures"] for r in scored] == [3, 0]
    ids = [r.__dict__["function_request_id"] for r in scored]  # set by the handler's decorator
    assert ids == [c.aws_request_id for c in seen] and len(set(ids)) == 2


@pytest.mark.integration
def test_studperf_stream_logs_the_handlers_lines_with_its_lambda_context(
    moto_server: str, trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    """Each batch goes through handler.py: its own line per batch (observability) is in the
    consumer's JSON log, with the keys Powertools' inject_lambda_context adds: the request
    id of the stand-in context and the cold start, true for the first invocation only."""
    kinesis = boto3.client("kinesis")
    names = {k: f"ctx-{k}-{tmp_path.name[-10:].replace('_', '-')}" for k in ("in", "out", "err")}
    for name in names.values():
        create_stream(kinesis, name)
    kinesis.put_records(
        StreamName=names["in"],
        Records=[{"Data": student_message(i), "PartitionKey": str(i)} for i in range(25)],
    )
    env = {**os.environ, "STUDPERF_HOME": str(tmp_path / "home"), "STUDPERF_LOG_FORMAT": "json"}
    result = subprocess.run(
        [
            sys.executable, "-m", "studperf_assets.cli", "stream",
            "--input-stream", names["in"], "--predictions-stream", names["out"],
            "--errors-stream", names["err"], "--model", str(trained_bundle[0]),
            "--batch-size", "10", "--until-idle", "2",
        ],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    scored = [line for line in lines if line["message"] == "batch scored"]
    assert [line["Records"] for line in scored] == [10, 10, 5]
    assert [line["cold_start"] for line in scored] == [True, False, False]
    ids = [line["function_request_id"] for line in scored]
    assert all(i.startswith("local-") for i in ids) and len(set(ids)) == 3
    assert {line["function_name"] for line in scored} == {"studperf-local"}
    report = [line for line in lines if line["message"].startswith("batch: ")]
    assert [line["records"] for line in report] == [10, 10, 5]
    assert "_aws" not in result.stdout  # the EMF records are not the command's output
    assert len(read_stream(kinesis, names["out"])) == 25
