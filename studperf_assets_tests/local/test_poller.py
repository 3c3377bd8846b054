"""The stand-in for Lambda's event source mapping (``local.poller``) and `studperf stream`
around it, on moto server over HTTP: partial batch responses, retries, the on-failure file,
function errors, checkpoints, outages ridden out; and its readers, one thread per shard, each
in order with its own retries and checkpoint, on an in-memory Kinesis. Concurrency is shown
with events a handler waits on, never with timing: the waits' timeouts only keep a broken
poller from hanging the run."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from benchmarks.streams import read_stream
from lambda_service.bundle import BundleError, Manifest
from lambda_service.model_provider import ModelProvider
from studperf_assets.lib.loop_events import parse
from studperf_assets.local.poller import Checkpoints, KinesisPoller
from studperf_assets.local.stream_report import StreamReport
from studperf_assets.resources.model_store import S3ModelStore
from studperf_assets_tests.kinesis_fakes import create_stream, student_message

pytestmark = pytest.mark.integration


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
    time.perf_counter()
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
    assert "250 records" in result.stdout
    batch_lines = [line for line in result.stderr.splitlines() if " batch: " in line]
    assert len(batch_lines) >= 3 and trained_bundle[1].version in batch_lines[0]
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
    from studperf_assets.local.poller import KinesisPoller

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
    from studperf_assets.local.poller import KinesisPoller

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


def test_kpl_aggregates_are_scored_and_retried_through_the_poller(
    s3_store: S3ModelStore, tmp_path: Path
) -> None:
    """KPL aggregates among plain records on a real stream: every user record is scored;
    a user record whose write is throttled makes the poller re-read from its aggregate, and
    the copies that causes share their idempotency keys."""
    from lambda_service.service import PredictionService
    from lambda_service.streams import KinesisSink
    from studperf_assets.local.poller import KinesisPoller
    from studperf_assets_tests.kinesis_fakes import FlakyKinesis, kpl_aggregate

    kinesis = boto3.client("kinesis")
    names = {k: f"kpl-{k}-{tmp_path.name[-10:].replace('_', '-')}" for k in ("in", "out", "err")}
    for name in names.values():
        create_stream(kinesis, name)
    sizes = [1, 10, 1, 3, 10, 1]  # 1: a plain record, else an aggregate of that many
    firsts = [7000 + sum(sizes[:i]) for i in range(len(sizes))]  # each record's first student
    data = [
        student_message(first)
        if size == 1
        else kpl_aggregate([(str(s), student_message(s)) for s in range(first, first + size)])
        for first, size in zip(firsts, sizes, strict=True)
    ]
    response = kinesis.put_records(
        StreamName=names["in"], Records=[{"Data": d, "PartitionKey": "k"} for d in data]
    )
    keys: dict[str, int] = {}  # idempotency key -> student_id
    for first, size, result in zip(firsts, sizes, response["Records"], strict=True):
        event_id = f"{result['ShardId']}:{result['SequenceNumber']}"
        if size == 1:
            keys[event_id] = first
        else:
            keys |= {f"{event_id}:{sub}": first + sub for sub in range(size)}
    flaky = FlakyKinesis(kinesis, failing_calls=2, streams={names["out"]})
    provider = ModelProvider(s3_store.root_uri, tmp_path / "cache", s3=boto3.client("s3"))
    service = PredictionService(
        provider, KinesisSink(flaky, max_attempts=1), names["out"], names["err"]
    )
    poller = KinesisPoller(
        kinesis, names["in"], lambda event, _c: service.handle_kinesis(event["Records"]).response(),
        batch_size=100, max_retries=3, sleep=lambda _s: None,
    )  # fmt: skip
    stats = poller.run(until_idle=2, poll_interval=0)
    assert stats.retried_batches >= 1 and stats.discarded_records == 0
    out = read_stream(kinesis, names["out"])
    assert {p["idempotency_key"]: p["student_id"] for p in out} == keys
    assert len(out) > len(keys)  # re-delivered user records, the same keys
    assert read_stream(kinesis, names["err"]) == []


@pytest.mark.parametrize("raises", [1, 10**6], ids=["once", "every time"])
def test_a_handler_that_raises_is_a_function_error_and_the_consumer_goes_on(
    s3_store: S3ModelStore, tmp_path: Path, raises: int, caplog: pytest.LogCaptureFixture
) -> None:
    """As Lambda does with a function error: the batch is retried, and after the retries
    it goes to the on-failure destination; the next batch is scored. Before, the poller
    raised with the handler: studperf stream died, and a restart met the same batch. The
    consumer's minute summaries count every function error and every diverted record."""
    from studperf_assets.local.poller import KinesisPoller

    kinesis, names, sent, service = _poller_setup(s3_store, tmp_path, 0, max_attempts=1)
    first = min((key.split(":")[1] for key in sent), key=int)
    calls: list[int] = []

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        records = event["Records"]
        if records[0]["kinesis"]["sequenceNumber"] == first and len(calls) < raises:
            calls.append(len(records))
            raise IndexError("tuple index out of range")  # what an out-of-range label did
        return service.handle_kinesis(records).response()

    on_failure = tmp_path / "on-failure.jsonl"
    poller = KinesisPoller(
        kinesis, names["in"], handler, batch_size=20, max_retries=2, on_failure=on_failure,
        sleep=lambda _s: None,
    )  # fmt: skip
    # the consumer's summary after every poll (a "minute" of 0 s), as `studperf stream` has it
    report = StreamReport(logging.getLogger("studperf.test-minutes"), every_seconds=0)
    with caplog.at_level(logging.INFO, logger="studperf.test-minutes"):
        stats = poller.run(until_idle=2, poll_interval=0, on_poll=report.poll)
    delivered = [p["idempotency_key"] for p in read_stream(kinesis, names["out"])]
    assert stats.function_errors == len(calls) == min(raises, 3) and set(calls) == {20}
    minutes = [e.fields for r in caplog.records if (e := parse(r.getMessage())) is not None]
    assert sum(m["function_errors"] for m in minutes) == stats.function_errors
    assert sum(m["on_failure_records"] for m in minutes) == stats.discarded_records
    if raises == 1:  # retried, then scored: nothing lost
        assert set(delivered) == sent and not on_failure.exists()
        return
    (failed,) = [json.loads(line) for line in on_failure.read_text().splitlines()]
    assert failed["records"] == 20 and failed["first_sequence"] == first
    assert failed["condition"] == "function error: IndexError: tuple index out of range"
    diverted = {f"shardId-000000000000:{s}" for s in failed["failed_sequences"]}
    assert len(diverted) == 20 and set(delivered) == sent - diverted  # the next batch scored
    assert stats.discarded_records == 20


@pytest.mark.parametrize(
    "student_id", ["x" * 300, "y" * 10_000, "", "\ud800"], ids=["300", "10KB", "empty", "surrogate"]
)
def test_one_poison_id_does_not_send_its_batch_to_the_failure_file(
    s3_store: S3ModelStore, tmp_path: Path, student_id: str
) -> None:
    """Kinesis rejects a whole PutRecords call for one invalid partition key: before ID
    rules, the 49 good records of this batch went to the on-failure file with the bad one."""
    from lambda_service.service import PredictionService
    from lambda_service.streams import KinesisSink
    from studperf_assets.local.poller import KinesisPoller

    kinesis = boto3.client("kinesis")
    names = {k: f"poison-{k}-{tmp_path.name[-10:].replace('_', '-')}" for k in ("in", "out", "err")}
    for name in names.values():
        create_stream(kinesis, name)
    bad = json.dumps({"student_id": student_id, "student": {}}).encode("utf-8", "surrogatepass")
    records = [student_message(5000 + i) for i in range(49)] + [bad]
    kinesis.put_records(
        StreamName=names["in"],
        Records=[{"Data": data, "PartitionKey": f"k{i}"} for i, data in enumerate(records)],
    )
    provider = ModelProvider(s3_store.root_uri, tmp_path / "cache", s3=boto3.client("s3"))
    service = PredictionService(provider, KinesisSink(kinesis), names["out"], names["err"])
    on_failure = tmp_path / "on-failure.jsonl"
    poller = KinesisPoller(
        kinesis,
        names["in"],
        lambda event, _c: service.handle_kinesis(event["Records"]).response(),
        batch_size=100,
        on_failure=on_failure,
        sleep=lambda _s: None,
    )
    stats = poller.run(until_idle=1, poll_interval=0)
    assert stats.records == 50 and stats.retried_batches == 0 and not on_failure.exists()
    assert len(read_stream(kinesis, names["out"])) == 49
    (error,) = read_stream(kinesis, names["err"])
    assert error["field"] == "student_id"


def _stream_through(
    proxy_url: str, s3_store: S3ModelStore, names: dict[str, str], home: Path, *extra: str
) -> subprocess.Popen[str]:
    env = {**os.environ, "STUDPERF_HOME": str(home), "AWS_ENDPOINT_URL": proxy_url}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [
            sys.executable, "-m", "studperf_assets.cli", "stream",
            "--input-stream", names["in"], "--predictions-stream", names["out"],
            "--errors-stream", names["err"], "--model", s3_store.root_uri, *extra,
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _streams(kinesis: Any, tag: str) -> dict[str, str]:
    names = {k: f"outage-{k}-{tag}" for k in ("in", "out", "err")}
    for name in names.values():
        create_stream(kinesis, name)
    return names


def _put(kinesis: Any, stream: str, first: int, count: int) -> str:
    """Put ``count`` students on the one-shard stream; returns the last sequence number."""
    records = [{"Data": student_message(first + i), "PartitionKey": str(i)} for i in range(count)]
    response = kinesis.put_records(StreamName=stream, Records=records)
    assert response["FailedRecordCount"] == 0
    return str(response["Records"][-1]["SequenceNumber"])


def _wait_for_checkpoint(home: Path, stream: str, sequence: str) -> None:
    """Wait until the consumer has acknowledged ``sequence`` (its checkpoint names it).

    Outputs appearing on the predictions stream is not enough: the handler's put may have
    landed while its response is still in flight, and an outage then makes the batch a
    legitimate at-least-once retry (duplicates carry the same idempotency key)."""
    path = home / "stream" / f"{stream}.checkpoints.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.is_file() and sequence in json.loads(path.read_text()).get(stream, {}).values():
            return
        time.sleep(0.2)
    raise AssertionError(f"the consumer never acknowledged {sequence} on {stream}")


def test_studperf_stream_rides_out_a_short_outage(
    moto_server: str, s3_store: S3ModelStore, tmp_path: Path
) -> None:
    from studperf_assets_tests.tcp_proxy import TcpProxy

    proxy = TcpProxy(int(moto_server.rsplit(":", 1)[1]))
    kinesis = boto3.client("kinesis")  # straight to moto, not through the proxy
    names = _streams(kinesis, tmp_path.name[-10:].replace("_", "-"))
    last = _put(kinesis, names["in"], 1000, 100)
    home = tmp_path / "home"
    process = _stream_through(
        proxy.url, s3_store, names, home, "--until-idle", "20", "--outage-budget", "60"
    )
    _wait_for_checkpoint(home, names["in"], last)
    proxy.down()  # the endpoint goes away for 6 seconds; traffic goes on meanwhile
    _put(kinesis, names["in"], 2000, 100)
    time.sleep(6)
    proxy.up()
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    assert "200 records" in out and "0 outage retries" not in out, err[-6000:]
    assert "retry 1" in err  # each retry is logged
    ids = sorted(p["student_id"] for p in read_stream(kinesis, names["out"]))
    assert ids == [*range(1000, 1100), *range(2000, 2100)]  # nothing lost, nothing twice


def test_studperf_stream_gives_up_past_its_outage_budget_and_resumes_later(
    moto_server: str, s3_store: S3ModelStore, tmp_path: Path
) -> None:
    from studperf_assets_tests.tcp_proxy import TcpProxy

    proxy = TcpProxy(int(moto_server.rsplit(":", 1)[1]))
    kinesis = boto3.client("kinesis")
    names = _streams(kinesis, tmp_path.name[-10:].replace("_", "-"))
    last = _put(kinesis, names["in"], 1000, 50)
    home = tmp_path / "home"
    process = _stream_through(
        proxy.url, s3_store, names, home, "--until-idle", "20", "--outage-budget", "3"
    )
    _wait_for_checkpoint(home, names["in"], last)
    proxy.down()
    _put(kinesis, names["in"], 2000, 50)
    _, err = process.communicate(timeout=180)
    assert process.returncode == 1
    assert "budget 3s" in err and "the checkpoint holds" in err
    proxy.up()  # a restart resumes after the checkpoint
    resumed = _stream_through(proxy.url, s3_store, names, home, "--until-idle", "2")
    _out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err[-3000:]
    ids = sorted(p["student_id"] for p in read_stream(kinesis, names["out"]))
    assert ids == [*range(1000, 1050), *range(2000, 2050)]


def test_an_outage_that_starts_at_the_output_put_is_ridden_out_not_diverted(
    moto_server: str, s3_store: S3ModelStore, tmp_path: Path
) -> None:
    """The endpoint goes away just as the predictions are put, for longer than the sink's
    retries last: the batch is reported failed, its re-read meets the outage and waits it
    out within the outage budget, and nothing goes to the on-failure file."""
    from studperf_assets_tests.tcp_proxy import TcpProxy

    proxy = TcpProxy(int(moto_server.rsplit(":", 1)[1]))
    kinesis = boto3.client("kinesis")
    names = _streams(kinesis, tmp_path.name[-10:].replace("_", "-"))
    _put(kinesis, names["in"], 1000, 100)
    proxy.down_at(b"Kinesis_20131202.PutRecords", seconds=10)
    home = tmp_path / "home"
    process = _stream_through(
        proxy.url, s3_store, names, home, "--until-idle", "5", "--outage-budget", "60"
    )
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    assert "0 sent to the on-failure file" in out and "0 outage retries" not in out, out
    ids = sorted(p["student_id"] for p in read_stream(kinesis, names["out"]))
    assert ids == list(range(1000, 1100))  # all delivered, each once


def test_a_lost_answer_to_a_put_gives_duplicates_that_share_an_idempotency_key(
    moto_server: str, s3_store: S3ModelStore, tmp_path: Path
) -> None:
    """At-least-once, as Lambda is: the predictions' PutRecords reaches Kinesis but its answer
    is cut, so the put is made again. Nothing is lost; each copy carries the same key."""
    from studperf_assets_tests.tcp_proxy import TcpProxy

    proxy = TcpProxy(int(moto_server.rsplit(":", 1)[1]))
    kinesis = boto3.client("kinesis")
    names = _streams(kinesis, tmp_path.name[-10:].replace("_", "-"))
    _put(kinesis, names["in"], 1000, 50)
    proxy.lose_response_to(b"Kinesis_20131202.PutRecords")
    process = _stream_through(proxy.url, s3_store, names, tmp_path / "home", "--until-idle", "3")
    _out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    assert proxy.lost_responses == 1
    copies: dict[str, list[dict[str, Any]]] = {}
    for prediction in read_stream(kinesis, names["out"]):
        copies.setdefault(prediction.pop("idempotency_key"), []).append(prediction)
    assert sorted(c[0]["student_id"] for c in copies.values()) == list(range(1000, 1050))
    assert {len(c) for c in copies.values()} == {2}  # the lost put landed, then its retry
    for first, second in copies.values():
        first.pop("predicted_at"), second.pop("predicted_at")
        assert first == second  # a duplicate, not a different answer


def test_a_consumer_started_during_an_outage_waits_for_the_endpoint(
    moto_server: str, s3_store: S3ModelStore, tmp_path: Path
) -> None:
    """Both start-up reads, the bundle from S3 and the stream's description, wait within the
    outage budget; nothing is lost and nothing read twice once the endpoint is back."""
    from studperf_assets_tests.tcp_proxy import TcpProxy

    proxy = TcpProxy(int(moto_server.rsplit(":", 1)[1]))
    kinesis = boto3.client("kinesis")
    names = _streams(kinesis, tmp_path.name[-10:].replace("_", "-"))
    _put(kinesis, names["in"], 3000, 40)
    proxy.down()
    process = _stream_through(
        proxy.url, s3_store, names, tmp_path / "home", "--until-idle", "5",
        "--outage-budget", "60",
    )  # fmt: skip
    time.sleep(4)
    proxy.up()
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    assert "loading the model: " in err and "retry 1 in" in err  # each wait is logged
    assert "40 records" in out
    ids = sorted(p["student_id"] for p in read_stream(kinesis, names["out"]))
    assert ids == list(range(3000, 3040))


def test_start_up_waits_only_for_an_endpoint_that_does_not_answer() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    from studperf_assets.local.poller import OutageTooLong, start_riding_outages

    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def away_for(tries: int, wrapped: bool = False) -> Any:
        calls = [0]

        def start() -> str:
            calls[0] += 1
            if calls[0] <= tries:
                try:
                    raise EndpointConnectionError(endpoint_url="http://aws")
                except EndpointConnectionError as exc:
                    if wrapped:  # as the bundle loader reports it
                        raise BundleError("s3://b/p: cannot fetch the bundle") from exc
                    raise
            return "started"

        return start

    assert start_riding_outages(away_for(3), "x", 60, sleep, lambda: now[0]) == "started"
    assert slept == [1.0, 2.0, 4.0]  # backoff
    assert start_riding_outages(away_for(2, wrapped=True), "x", 60, sleep, lambda: now[0])
    with pytest.raises(OutageTooLong, match="budget 60s"):
        start_riding_outages(away_for(100), "x", 60, sleep, lambda: now[0])

    def missing() -> str:
        raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "DescribeStream")

    slept.clear()
    with pytest.raises(ClientError):  # not an outage: raised at once
        start_riding_outages(missing, "x", 60, sleep, lambda: now[0])
    assert slept == []


def test_consumers_sharing_a_checkpoint_file_keep_each_others_shards(tmp_path: Path) -> None:
    """Each consumer of a home writes only the shards it holds, into one file: a write must
    not put back another consumer's shard as it was when this one started, and a shard taken
    over resumes after its last holder's checkpoint."""
    from studperf_assets.local.poller import Checkpoints

    path = tmp_path / "stream" / "in.checkpoints.json"
    first, second = Checkpoints(path), Checkpoints(path)
    for checkpoints in (first, second):
        assert checkpoints.bind("in", "arn:in@1")
    first.set("in", "shardId-0", "10")
    second.set("in", "shardId-1", "20")
    first.set("in", "shardId-0", "11")
    assert json.loads(path.read_text())["in"] == {
        "_stream": "arn:in@1", "shardId-0": "11", "shardId-1": "20"
    }  # fmt: skip
    assert second.get("in", "shardId-0") == "11"  # taken over: after the last holder's


def _records(*sequences: str) -> list[dict[str, Any]]:
    return [{"SequenceNumber": s} for s in sequences]


def _failures(*identifiers: Any) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": i} for i in identifiers]}


def test_the_partial_batch_response_is_read_as_lambda_reads_it() -> None:
    """ReportBatchItemFailures: success unless failures are named; re-delivery from the
    lowest sequence number named; a bad identifier fails the whole batch."""
    from studperf_assets.local.poller import first_to_redeliver

    batch = _records("100", "205", "1000", "1001")
    successes: list[Any] = [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}]
    for success in successes:
        assert first_to_redeliver(batch, success) is None, success
    assert first_to_redeliver(batch, _failures("1001", "205")) == 1
    assert first_to_redeliver(batch, _failures("1000")) == 2  # "1000" < "205" as numbers
    bad_ones: list[Any] = [
        _failures(""),
        _failures(None),
        _failures("999"),
        {"batchItemFailures": [{}]},
    ]
    for bad in bad_ones:
        assert first_to_redeliver(batch, bad) == 0, bad


WAIT = 30.0  # seconds: only a broken poller gets near it


class MemoryStream:
    """One stream's shards in memory, read as GetRecords reads them."""

    def __init__(self, records_per_shard: dict[str, int]) -> None:
        self.shards = {
            shard: [str(1000 * (n + 1) + i) for i in range(count)]
            for n, (shard, count) in enumerate(records_per_shard.items())
        }
        self.meta = SimpleNamespace(region_name="us-east-1")
        self.lock = threading.Lock()

    def describe_stream_summary(self, StreamName: str) -> dict[str, Any]:
        return {
            "StreamDescriptionSummary": {
                "StreamARN": f"arn:aws:kinesis:us-east-1:000000000000:stream/{StreamName}",
                "StreamCreationTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
            }
        }

    def list_shards(self, StreamName: str) -> dict[str, Any]:
        return {"Shards": [{"ShardId": shard} for shard in self.shards]}

    def get_shard_iterator(self, StreamName: str, ShardId: str, **kwargs: Any) -> dict[str, Any]:
        sequences = self.shards[ShardId]
        kind = kwargs["ShardIteratorType"]
        if kind == "TRIM_HORIZON":
            position = 0
        elif kind == "AT_SEQUENCE_NUMBER":
            position = sequences.index(kwargs["StartingSequenceNumber"])
        else:  # AFTER_SEQUENCE_NUMBER
            position = sequences.index(kwargs["StartingSequenceNumber"]) + 1
        return {"ShardIterator": f"{ShardId}|{position}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard, position = ShardIterator.split("|")
        start = int(position)
        chosen = self.shards[shard][start : start + Limit]
        records = [
            {
                "Data": b"{}",
                "PartitionKey": "k",
                "SequenceNumber": sequence,
                "ApproximateArrivalTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
            }
            for sequence in chosen
        ]
        return {"Records": records, "NextShardIterator": f"{shard}|{start + len(chosen)}"}


class Deliveries:
    """What a handler was given, per shard, in order (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: dict[str, list[list[str]]] = {}

    def add(self, event: dict[str, Any]) -> tuple[str, list[str]]:
        shard = event["Records"][0]["eventID"].split(":")[0]
        sequences = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        with self.lock:
            self.batches.setdefault(shard, []).append(sequences)
        return shard, sequences

    def flat(self, shard: str) -> list[str]:
        return [s for batch in self.batches.get(shard, []) for s in batch]


def poller(stream: MemoryStream, handler: Any, tmp_path: Path, **kwargs: Any) -> KinesisPoller:
    return KinesisPoller(
        stream, "in", handler, checkpoints=Checkpoints(tmp_path / "checkpoints.json"),
        sleep=lambda _s: None, **kwargs,
    )  # fmt: skip


def test_a_handler_blocked_on_one_shard_does_not_stop_the_other(tmp_path: Path) -> None:
    """Shard A's first batch waits until shard B has delivered every batch it has: with one
    loop over the shards, B would wait for A and the run would never finish."""
    stream = MemoryStream({"shard-a": 10, "shard-b": 30})
    seen = Deliveries()
    b_done = threading.Event()
    a_waited: list[bool] = []

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        shard, sequences = seen.add(event)
        if shard == "shard-a" and not a_waited:
            a_waited.append(b_done.wait(WAIT))
        if shard == "shard-b" and sequences[-1] == stream.shards["shard-b"][-1]:
            b_done.set()
        return {"batchItemFailures": []}

    stats = poller(stream, handler, tmp_path, batch_size=10).run(until_idle=1, poll_interval=0)
    assert a_waited == [True]  # B finished all three of its batches while A's first was held
    assert seen.batches["shard-b"] == [stream.shards["shard-b"][i : i + 10] for i in (0, 10, 20)]
    assert seen.flat("shard-a") == stream.shards["shard-a"]
    assert stats.records == 40 and stats.per_shard == {"shard-a": 10, "shard-b": 30}


def test_a_failure_on_one_shard_redelivers_only_that_shards_records(tmp_path: Path) -> None:
    """Shard A's first batch reports its 4th record failed once: A is re-read from it, and
    shard B's records, read meanwhile, are each delivered once."""
    stream = MemoryStream({"shard-a": 12, "shard-b": 12})
    seen = Deliveries()
    failed: list[str] = []

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        shard, sequences = seen.add(event)
        if shard == "shard-a" and not failed:
            failed.append(sequences[3])
            return {"batchItemFailures": [{"itemIdentifier": sequences[3]}]}
        return {"batchItemFailures": []}

    checkpoints = Checkpoints(tmp_path / "checkpoints.json")
    stats = KinesisPoller(
        stream, "in", handler, batch_size=5, checkpoints=checkpoints, sleep=lambda _s: None
    ).run(until_idle=1, poll_interval=0)
    a, b = stream.shards["shard-a"], stream.shards["shard-b"]
    assert seen.flat("shard-b") == b  # once each, in order
    assert seen.batches["shard-a"][:2] == [a[0:5], a[3:8]]  # re-read from the failed record
    assert seen.flat("shard-a")[5:] == a[3:]
    assert stats.retried_batches == 1 and stats.discarded_records == 0
    assert checkpoints.get("in", "shard-a") == a[-1] and checkpoints.get("in", "shard-b") == b[-1]


def test_each_shard_is_delivered_in_order_while_shards_interleave(tmp_path: Path) -> None:
    """Two shards' readers take turns (each batch waits for the other shard's batch of the
    same rank): both are in flight at once, and each shard's records arrive in order."""
    stream = MemoryStream({"shard-a": 40, "shard-b": 40})
    seen = Deliveries()
    barrier = threading.Barrier(2, timeout=WAIT)

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        seen.add(event)
        barrier.wait()  # raises BrokenBarrierError (a function error) if the other never comes
        return {"batchItemFailures": []}

    stats = poller(stream, handler, tmp_path, batch_size=4).run(until_idle=1, poll_interval=0)
    assert stats.function_errors == 0 and stats.batches == 20
    for shard, sequences in stream.shards.items():
        assert seen.flat(shard) == sequences


def test_stopping_lets_each_reader_finish_and_checkpoint_its_batch(tmp_path: Path) -> None:
    """As SIGTERM does (``studperf stream`` sets ``stopping``): the batch in hand on each shard
    is finished and checkpointed; nothing after it is read."""
    stream = MemoryStream({"shard-a": 20, "shard-b": 20})
    entered = threading.Barrier(3, timeout=WAIT)  # both readers' first batches and this test
    release = threading.Event()

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        entered.wait()
        release.wait(WAIT)
        return {"batchItemFailures": []}

    checkpoints = Checkpoints(tmp_path / "checkpoints.json")
    consumer = KinesisPoller(stream, "in", handler, batch_size=5, checkpoints=checkpoints)
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(stats=consumer.run()))
    runner.start()
    entered.wait()  # both shards are in the middle of a batch
    consumer.stopping = True
    release.set()
    runner.join(WAIT)
    assert not runner.is_alive()
    assert result["stats"].records == 10 and result["stats"].batches == 2
    for shard, sequences in stream.shards.items():
        assert checkpoints.get("in", shard) == sequences[4]
    assert not [t for t in threading.enumerate() if t.name.startswith("in/")]  # readers gone


def test_a_consumer_reads_at_most_max_readers_shards(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = MemoryStream({"shard-a": 3, "shard-b": 3, "shard-c": 3})
    seen = Deliveries()

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        seen.add(event)
        return {"batchItemFailures": []}

    with caplog.at_level(logging.WARNING, logger="studperf.stream"):
        stats = poller(stream, handler, tmp_path, max_readers=2).run(until_idle=1, poll_interval=0)
    assert set(seen.batches) == {"shard-a", "shard-b"} and stats.records == 6
    assert "shard-c: not read here: this consumer reads at most 2 shards" in caplog.text


def test_the_minute_report_counts_batches_from_every_reader() -> None:
    from lambda_service.service import BatchOutcome

    report = StreamReport(logging.getLogger("test.report"))
    outcome = BatchOutcome(records=3, predictions=2, errors=1, model_version="v1")
    start = threading.Barrier(4, timeout=WAIT)

    def reader() -> None:
        start.wait()
        for _ in range(500):
            report.batch(outcome)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    window = report.window
    assert (window.batches, window.records, window.errors) == (2000, 6000, 2000)


def test_studperf_stream_reads_with_the_pollers_defaults() -> None:
    from studperf_assets.cli.main import build_parser
    from studperf_assets.local import poller

    args = build_parser().parse_args(["stream", "--input-stream", "in"])
    assert args.batch_size == poller.DEFAULT_BATCH_SIZE == 10_000  # GetRecords' maximum
    assert args.max_readers == poller.DEFAULT_MAX_READERS
