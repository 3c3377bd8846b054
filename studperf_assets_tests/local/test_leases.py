"""One reader per shard (``local.leases``): consumers of `studperf stream` on one home share
a stream's shards, a standby takes a shard over when its holder dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from benchmarks.streams import read_stream
from studperf_assets.resources.model_store import S3ModelStore
from studperf_assets_tests.kinesis_fakes import create_stream, student_message
from studperf_assets_tests.local.test_poller import _streams, _wait_for_checkpoint

pytestmark = pytest.mark.integration


def _consumer(
    url: str, s3_store: S3ModelStore, names: dict[str, str], home: Path, log: Path, *extra: str
) -> subprocess.Popen[str]:
    """`studperf stream` on ``home``, its stderr (one line per batch, lease news) to ``log``."""
    env = {**os.environ, "STUDPERF_HOME": str(home), "AWS_ENDPOINT_URL": url}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log, "w") as stderr:
        return subprocess.Popen(
            [
                sys.executable, "-m", "studperf_assets.cli", "stream",
                "--input-stream", names["in"], "--predictions-stream", names["out"],
                "--errors-stream", names["err"], "--model", s3_store.root_uri, *extra,
            ],
            env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip


def _put_many(kinesis: Any, stream: str, first: int, count: int) -> list[str]:
    """Put ``count`` students (500 a call); returns their `shard:sequence` keys, in order."""
    keys: list[str] = []
    for start in range(first, first + count, 500):
        ids = range(start, min(start + 500, first + count))
        response = kinesis.put_records(
            StreamName=stream,
            Records=[{"Data": student_message(i), "PartitionKey": str(i)} for i in ids],
        )
        assert response["FailedRecordCount"] == 0
        keys += [f"{r['ShardId']}:{r['SequenceNumber']}" for r in response["Records"]]
    return keys


def _wait_until(what: str, condition: Any, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _acknowledged(home: Path, stream: str) -> int:
    """The highest sequence number the consumers of ``home`` have checkpointed on ``stream``."""
    path = home / "stream" / f"{stream}.checkpoints.json"
    positions = json.loads(path.read_text()).get(stream, {}) if path.is_file() else {}
    return max((int(v) for k, v in positions.items() if k != "_stream"), default=0)


def test_two_consumers_on_one_home_score_each_record_once(
    moto_server: str, s3_store: S3ModelStore, tmp_path: Path
) -> None:
    """The field fault: two `studperf stream` on one stream and one home both consumed every
    shard (9,500 predictions for 5,000 inputs). Each shard now has one reader at a time."""
    kinesis = boto3.client("kinesis")
    names = {k: f"twice-{k}-{tmp_path.name[-10:].replace('_', '-')}" for k in ("in", "out", "err")}
    create_stream(kinesis, names["in"], shards=2)
    for name in (names["out"], names["err"]):
        create_stream(kinesis, name)
    sent = _put_many(kinesis, names["in"], 100_000, 5000)
    home = tmp_path / "home"
    consumers = [
        _consumer(moto_server, s3_store, names, home, tmp_path / f"c{n}.log", "--until-idle", "3")
        for n in (1, 2)
    ]
    outputs = [c.communicate(timeout=600)[0] for c in consumers]
    for consumer, n in zip(consumers, (1, 2), strict=True):
        assert consumer.returncode == 0, (tmp_path / f"c{n}.log").read_text()[-3000:]
    keys = [p["idempotency_key"] for p in read_stream(kinesis, names["out"])]
    assert len(keys) == len(set(keys)) == 5000, f"{len(keys)} predictions, {len(set(keys))} keys"
    assert set(keys) == set(sent)
    consumed = [int(out.split(" records")[0]) for out in outputs]
    assert sum(consumed) == 5000, outputs  # between them, each record read once


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_the_standby_takes_over_when_the_holder_dies(
    moto_server: str, s3_store: S3ModelStore, tmp_path: Path, stop: signal.Signals
) -> None:
    """A second consumer on the home stands by (saying who holds the shard) and takes over
    when the holder stops, from its checkpoint: nothing is lost. Stopped with SIGTERM, the
    holder finishes its batch: nothing twice. Killed, it may have put a batch's predictions
    without checkpointing them: that batch comes again (at least once, as with Lambda, whose
    retried batch carries the same records), and nothing beyond it."""
    kinesis = boto3.client("kinesis")
    names = _streams(kinesis, tmp_path.name[-10:].replace("_", "-"))
    home = tmp_path / "home"
    sent = _put_many(kinesis, names["in"], 1000, 300)
    holder = _consumer(moto_server, s3_store, names, home, tmp_path / "holder.log")
    _wait_for_checkpoint(home, names["in"], sent[-1].split(":")[1])
    standby_log = tmp_path / "standby.log"
    standby = _consumer(moto_server, s3_store, names, home, standby_log, "--until-idle", "3")
    _wait_until("the standby", lambda: "standing by" in standby_log.read_text())
    assert f"held by PID {holder.pid} (studperf stream" in standby_log.read_text()
    first_done = _acknowledged(home, names["in"])
    sent += _put_many(kinesis, names["in"], 5000, 2000)
    _wait_until("the holder's progress", lambda: _acknowledged(home, names["in"]) > first_done)
    holder.send_signal(stop)
    holder.wait(timeout=60)
    standby.communicate(timeout=300)
    assert standby.returncode == 0, standby_log.read_text()[-3000:]
    assert f"took the lease over (its holder, PID {holder.pid}" in standby_log.read_text()
    keys = [p["idempotency_key"] for p in read_stream(kinesis, names["out"])]
    assert set(keys) == set(sent)  # nothing lost
    twice = len(keys) - len(set(keys))
    if stop == signal.SIGTERM:
        assert holder.returncode == 0 and twice == 0
    else:
        assert twice <= 100, f"{twice} predictions twice: more than the batch in flight"
