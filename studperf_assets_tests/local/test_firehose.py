"""The local stand-in for Kinesis Data Firehose: every prediction and error record archived
exactly once, across a crash at any point, against the moto server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from studperf_assets.lib.archive import FolderArchive, S3Archive, read_archive
from studperf_assets.local.firehose import FirehoseStandIn, run
from studperf_assets.local.moto import ensure_stream
from studperf_assets.local.poller import Checkpoints
from studperf_assets_tests.lib.test_archive import error, prediction

pytestmark = pytest.mark.integration


def archived(archive: Any) -> dict[str, list[str]]:
    """Idempotency keys per kind over every object (duplicates kept)."""
    import gzip

    found: dict[str, list[str]] = {"predictions": [], "errors": []}
    for kind, keys in found.items():
        for key in archive.list_keys(f"archive/{kind}/"):
            for line in gzip.decompress(archive.get_bytes(key)).splitlines():
                keys.append(json.loads(line)["idempotency_key"])
    return found


def streams(kinesis: Any, shards: int = 2) -> dict[str, str]:
    names = {kind: f"arch-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("predictions", "errors")}
    for name in names.values():
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
    return names


def send(kinesis: Any, names: dict[str, str], start: int, count: int) -> None:
    now = datetime.now(UTC)
    records = {
        "predictions": [prediction(f"p{i}", now) for i in range(start, start + count)],
        "errors": [error(f"e{i}", now) for i in range(start, start + count, 10)],
    }
    for kind, data in records.items():
        kinesis.put_records(
            StreamName=names[kind],
            Records=[{"Data": d, "PartitionKey": str(i)} for i, d in enumerate(data)],
        )


class Crash(BaseException):
    """The process dying (not an Exception: nothing catches it)."""


class CrashingArchive:
    """An archive that dies once, before or after its ``nth`` object reaches it."""

    def __init__(self, inner: Any, nth: int, after_write: bool) -> None:
        self.inner, self.nth, self.after_write, self.puts = inner, nth, after_write, 0

    def put_bytes(self, key: str, data: bytes) -> str:
        self.puts += 1
        if self.puts == self.nth and not self.after_write:
            raise Crash
        uri = self.inner.put_bytes(key, data)
        if self.puts == self.nth:
            raise Crash
        return uri

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def standins(client: Any, names: dict[str, str], archive: Any, state: Path) -> list[Any]:
    return [
        FirehoseStandIn(
            client,
            stream,
            kind,
            archive,
            Checkpoints(state / f"{stream}.json"),
            buffer_seconds=0.0,
            read_limit=7,  # an object per read: many objects
        )
        for kind, stream in names.items()
    ]


@pytest.mark.parametrize("after_write", [True, False], ids=["after-write", "before-write"])
def test_every_record_once_across_a_crash(
    moto_server: str, tmp_path: Path, after_write: bool
) -> None:
    import boto3

    kinesis = boto3.client("kinesis")
    names = streams(kinesis)
    send(kinesis, names, 0, 60)
    folder = FolderArchive(tmp_path / "monitoring")
    crashing = CrashingArchive(folder, nth=3, after_write=after_write)
    with pytest.raises(Crash):
        run(
            standins(kinesis, names, crashing, tmp_path / "state"),
            until_idle=2,
            sleep=lambda _: None,
        )
    send(kinesis, names, 60, 40)
    restarted = standins(kinesis, names, folder, tmp_path / "state")
    run(restarted, until_idle=2, sleep=lambda _: None)
    found = archived(folder)
    assert sorted(found["predictions"]) == sorted(f"p{i}" for i in range(100))
    assert sorted(found["errors"]) == sorted(f"e{i}" for i in range(0, 100, 10))
    assert sum(s.stats.recovered_objects for s in restarted) == 1  # the pending object
    for standin in restarted:
        checkpoints = json.loads((tmp_path / "state" / f"{standin.stream}.json").read_text())
        assert not any(v for k, v in checkpoints[standin.stream].items() if k.endswith("/pending"))


def test_studperf_archive_killed_mid_way_archives_every_record_once_to_s3(
    moto_server: str, s3_bucket: str, tmp_path: Path
) -> None:
    """The command ``studperf up`` supervises, killed (SIGKILL) mid-way and started again."""
    import boto3

    kinesis = boto3.client("kinesis")
    names = streams(kinesis, shards=1)
    store = f"s3://{s3_bucket}/monitoring"
    command = [
        sys.executable, "-m", "studperf_assets.cli", "archive", "--store", store,
        "--stream", f"{names['predictions']}=predictions", "--stream", f"{names['errors']}=errors",
        "--buffer-seconds", "0.3",
    ]  # fmt: skip
    env = {**os.environ, "STUDPERF_HOME": str(tmp_path / "home")}
    archive = S3Archive(boto3.client("s3"), s3_bucket, "monitoring")
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        send(kinesis, names, 0, 200)
        deadline = time.monotonic() + 60
        while not archive.list_keys("archive/predictions/") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert archive.list_keys("archive/predictions/"), "nothing archived in 60 s"
        send(kinesis, names, 200, 200)
        for start in range(400, 1000, 100):  # killed while records keep arriving
            send(kinesis, names, start, 100)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(timeout=30)
    second = subprocess.run(
        [*command, "--until-idle", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    found = archived(archive)
    assert sorted(found["predictions"]) == sorted(f"p{i}" for i in range(1000))
    assert sorted(found["errors"]) == sorted(f"e{i}" for i in range(0, 1000, 10))
    now = datetime.now(UTC)
    rows = read_archive(archive, now - timedelta(minutes=10), now + timedelta(minutes=1))
    assert len(rows.predictions) == 1000 and len(rows.errors) == 100


def test_moto_firehose_does_not_deliver_from_a_kinesis_stream(
    moto_server: str, s3_bucket: str
) -> None:
    """Why the stand-in exists: if moto's Firehose ever delivers, this fails; use it then."""
    import boto3

    kinesis, firehose, s3 = boto3.client("kinesis"), boto3.client("firehose"), boto3.client("s3")
    name = f"probe-{uuid.uuid4().hex[:6]}"
    ensure_stream(kinesis, name)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    role = "arn:aws:iam::123456789012:role/firehose"
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": arn, "RoleARN": role},
        ExtendedS3DestinationConfiguration={
            "RoleARN": role,
            "BucketARN": f"arn:aws:s3:::{s3_bucket}",
            "Prefix": "archive/predictions/!{timestamp:yyyy/MM/dd/HH}/",
            "CompressionFormat": "GZIP",
            "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 1},
        },
    )
    kinesis.put_record(StreamName=name, Data=b'{"k": 1}', PartitionKey="p")
    time.sleep(3)
    assert s3.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
