"""The handler's metrics (``lambda_service.observability.publish_batch``): one EMF record per
batch, its own, even when batches are published at once from several threads (the local
consumer runs one handler call per shard, in one process; Powertools keeps one metric set per
process)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from lambda_service.observability import publish_batch
from lambda_service.service import BatchOutcome

BATCHES = 50  # per thread: enough interleaving for a shared metric set to mix two batches


def test_batches_published_at_once_each_get_their_own_emf_record(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_service import observability

    add_metric = observability.metrics.add_metric

    def add_and_yield(*args: object, **kwargs: object) -> None:
        add_metric(*args, **kwargs)  # type: ignore[arg-type]
        time.sleep(0.0001)  # hand the GIL over mid-batch, as a busy consumer does

    monkeypatch.setattr(observability.metrics, "add_metric", add_and_yield)
    barrier = threading.Barrier(2)

    def publish(version: str, records: int) -> None:
        barrier.wait()
        for _ in range(BATCHES):
            publish_batch(BatchOutcome(records, records, 0, (), version, 1.0))

    capsys.readouterr()
    threads = [
        threading.Thread(target=publish, args=("v20261201T000000Z-aaaaaaaa", 1)),
        threading.Thread(target=publish, args=("v20261201T000000Z-bbbbbbbb", 2)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"_aws"' in x]
    assert len(lines) == 2 * BATCHES  # one record per batch, none lost or merged
    for emf in lines:
        expected = 1 if emf["ModelVersion"].endswith("aaaaaaaa") else 2
        assert emf["Records"] == [expected] and emf["Predictions"] == [expected], emf
