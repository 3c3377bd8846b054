"""A bundle that verifies but cannot serve: refused at cold start, never swapped to, and a
batch the model fails to score goes to retry instead of taking the consumer down.

The bundles are real ones whose ONNX graph was edited after training (``bundle_edits``),
their hashes rewritten, so every hash verifies. The field case: a label shifted out of
range only where StudyTimeWeekly is above 19.99, which no row of the dataset reaches (its
maximum is 19.98), so comparing with the skops pipeline on the data cannot see it."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lambda_service import handler as handler_module
from lambda_service.bundle import BundleError, Manifest
from lambda_service.model_provider import ModelProvider
from lambda_service.service import PredictionService
from lambda_service.streams import KinesisSink
from studperf_assets.local.lambda_runtime import LocalLambdaContext
from studperf_assets.resources.model_store import LocalModelStore
from studperf_assets_tests.bundle_edits import tampered, version
from studperf_assets_tests.kinesis_fakes import (
    MemoryKinesis,
    kinesis_record,
    kpl_aggregate,
    student_message,
)

CONTEXT = LocalLambdaContext()  # Lambda always passes one; Powertools reads it

# (ONNX output, op, constant, only above this StudyTimeWeekly, what the refusal says)
UNSERVABLE = {
    "label out of range at the extremes": ("label", "Add", 5, 19.99, r"label \d outside 0\.\.4"),
    "negative label": ("label", "Add", -5, None, r"label -\d outside 0\.\.4"),
    "NaN probabilities at the extremes": (
        "probabilities", "Add", float("nan"), 19.99, "not finite",
    ),
    "probabilities summing to 0.5": ("probabilities", "Mul", 0.5, None, "summing to 0.5"),
    "probabilities above 1": ("probabilities", "Mul", 1.5, 19.99, r"outside \[0, 1\]"),
    "label not the most probable": ("label", "Mul", 0, None, "not the most probable"),
}  # fmt: skip


def unservable(trained: Path, where: Path, kind: str, n: int = 1) -> Path:
    output, op, constant, above, _ = UNSERVABLE[kind]
    return tampered(trained, where, version(n), output, op, constant, above)


@pytest.mark.parametrize("kind", UNSERVABLE)
def test_a_bundle_that_cannot_serve_is_refused_at_cold_start(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, kind: str
) -> None:
    bundle = unservable(trained_bundle[0], tmp_path / "bundle", kind)
    with pytest.raises(BundleError) as refused:
        ModelProvider(str(bundle), tmp_path / "cache")
    assert str(refused.value).startswith(f"{bundle}: bundle {version(1)} fails the smoke test")
    assert re.search(UNSERVABLE[kind][4], str(refused.value))
    # the Lambda: every invocation names the bundle and what failed
    cold = handler_module._ColdStart(
        {"MODEL_BUNDLE_URI": str(bundle), "MODEL_CACHE_DIR": str(tmp_path / "lambda")}
    )
    with pytest.raises(RuntimeError, match=f"model unavailable: {bundle}: .*smoke test"):
        cold.get()


@pytest.fixture
def store(trained_bundle: tuple[Path, Manifest], tmp_path: Path) -> LocalModelStore:
    folder, manifest = trained_bundle
    store = LocalModelStore(root=str(tmp_path / "store"))
    store.publish(folder, manifest.version)
    store.promote(manifest.version, {}, replacing=None)
    return store


def _service(store: LocalModelStore, tmp_path: Path) -> tuple[PredictionService, MemoryKinesis]:
    client = MemoryKinesis()
    provider = ModelProvider(store.root_uri, tmp_path / "cache", refresh_seconds=0)
    return PredictionService(provider, KinesisSink(client, sleep=lambda _s: None), "p", "e"), client


@pytest.mark.parametrize("kind", UNSERVABLE)
def test_a_consumer_never_swaps_to_it_and_keeps_serving(
    store: LocalModelStore,
    trained_bundle: tuple[Path, Manifest],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    good = trained_bundle[1].version
    service, client = _service(store, tmp_path)
    bad = unservable(trained_bundle[0], tmp_path / "bad", kind)
    store.publish(bad, version(1))
    store.promote(version(1), {}, replacing=good)  # as a hostile or careless writer could
    records = [
        kinesis_record(student_message(i, StudyTimeWeekly=20.0 * i / 9), i) for i in range(10)
    ]
    with caplog.at_level(logging.ERROR, logger="studperf.model"):
        outcome = service.handle_kinesis(records)  # refreshes first (refresh_seconds=0)
        again = service.handle_kinesis(records)  # and again: refused again, still serving
    assert outcome.predictions == again.predictions == 10 and not outcome.failures
    assert {b["model_version"] for b in client.bodies("p")} == {good}
    assert f"keeping {good}" in caplog.text and "fails the smoke test" in caplog.text
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [good]  # bad one deleted


def test_a_bundle_that_fails_only_on_some_inputs_sends_those_batches_to_retry(
    store: LocalModelStore, trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    """NaN probabilities only where 19 < StudyTimeWeekly < 19.99, where no smoke row is: the
    bundle loads and serves, such a student goes to retry, and the others are scored.
    Before, the NaN went out as a prediction (not even JSON)."""
    bad = tampered(
        trained_bundle[0], tmp_path / "bad", version(1), "probabilities", "Add",
        float("nan"), 19.0, 19.99,
    )  # fmt: skip
    store.publish(bad, version(1))
    store.promote(version(1), {}, replacing=trained_bundle[1].version)
    service, client = _service(store, tmp_path)
    assert service.provider.predictor.version == version(1)  # it passed the smoke test
    fine = service.handle_kinesis([kinesis_record(student_message(1, StudyTimeWeekly=12.0), 1)])
    poisoned = service.handle_kinesis(
        [
            kinesis_record(student_message(2, StudyTimeWeekly=t), 2 + i)
            for i, t in enumerate((3, 19.5))
        ]
    )
    assert fine.predictions == 1 and not fine.failures
    assert poisoned.failures == ("3",) and poisoned.scoring_failures == 1
    assert [b["student_id"] for b in client.bodies("p")] == [1, 2]


class Sabotaged:
    """An onnxruntime session that passed the smoke test, then misbehaves on a batch."""

    def __init__(self, session: Any, fault: str) -> None:
        self.session, self.fault = session, fault

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def run(self, outputs: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        labels, probabilities = self.session.run(outputs, feeds)
        if self.fault == "raises":
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : injected")
        if self.fault == "label out of range":
            return [labels + 5, probabilities]
        if self.fault == "negative label":  # letters[-1] was a silent "F"
            return [labels - 10, probabilities]
        if self.fault == "NaN probabilities":  # json.dumps wrote NaN, which is not JSON
            return [labels, probabilities * np.float32("nan")]
        if self.fault == "infinite probabilities":
            return [labels, np.full_like(probabilities, np.inf)]
        return [labels[:-1], probabilities[:-1]]  # one row short


FAULTS = [
    "raises",
    "label out of range",
    "negative label",
    "NaN probabilities",
    "infinite probabilities",
    "one row short",
]


@pytest.mark.parametrize("size", [1, 40])
@pytest.mark.parametrize("fault", FAULTS)
def test_a_batch_the_model_fails_to_score_goes_to_retry(
    store: LocalModelStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    size: int,
) -> None:
    service, client = _service(store, tmp_path)
    predictor = service.provider.predictor
    predictor._session = Sabotaged(predictor._session, fault)
    records = [kinesis_record(student_message(i), i) for i in range(size)]
    records.append(kinesis_record(b"{not json", size))
    with caplog.at_level(logging.ERROR, logger="studperf.service"):
        outcome = service.handle_kinesis(records)
    # not the records' fault: the valid ones go back to Lambda for a retry, the bad one
    # is an error record as always, and every record is accounted for
    assert outcome.failures == tuple(str(i) for i in range(size))
    assert outcome.scoring_failures == size and outcome.predictions == 0 and outcome.errors == 1
    assert outcome.records == outcome.predictions + outcome.errors + outcome.failed == size + 1
    assert client.bodies("p") == [] and len(client.bodies("e")) == 1
    message = f"model {predictor.version} failed to score {size} of {size} valid records"
    assert message in caplog.text
    assert outcome.response() == {
        "batchItemFailures": [{"itemIdentifier": str(i)} for i in range(size)]
    }


def test_the_lambda_reports_a_batch_it_failed_to_score_and_counts_it(
    store: LocalModelStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service, _ = _service(store, tmp_path)
    predictor = service.provider.predictor
    predictor._session = Sabotaged(predictor._session, "label out of range")
    monkeypatch.setattr(handler_module.COLD_START, "service", service)
    capsys.readouterr()
    response = handler_module.lambda_handler(
        {"Records": [kinesis_record(student_message(i), i) for i in range(3)]},
        CONTEXT,
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": str(i)} for i in range(3)]}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    (emf,) = [line for line in lines if "_aws" in line]
    assert emf["ScoringFailures"] == [3.0] and emf["BatchItemFailures"] == [3.0]


def test_a_model_that_recovers_scores_the_retried_batch(
    store: LocalModelStore, tmp_path: Path
) -> None:
    """The retry Lambda makes finds the model working again (say, after a swap)."""
    service, client = _service(store, tmp_path)
    predictor = service.provider.predictor
    healthy = predictor._session
    predictor._session = Sabotaged(healthy, "raises")
    records = [kinesis_record(student_message(i), i) for i in range(4)]
    assert len(service.handle_kinesis(records).failures) == 4
    predictor._session = healthy
    retried = service.handle_kinesis(records)
    assert retried.predictions == 4 and not retried.failures
    assert sorted(b["student_id"] for b in client.bodies("p")) == [0, 1, 2, 3]


def test_a_kpl_aggregate_the_model_fails_to_score_is_retried_whole(
    store: LocalModelStore, tmp_path: Path
) -> None:
    """User records go back to Lambda by the sequence number of the aggregate that carried
    them, and are counted one by one."""
    service, client = _service(store, tmp_path)
    predictor = service.provider.predictor
    predictor._session = Sabotaged(predictor._session, "NaN probabilities")
    aggregate = kpl_aggregate(
        [("a", student_message(10)), ("b", student_message(11)), ("c", b"{not json")]
    )
    records = [
        kinesis_record(student_message(1), 1),
        kinesis_record(aggregate, 2),
        kinesis_record(b"{not json", 3),
    ]
    outcome = service.handle_kinesis(records)
    assert outcome.failures == ("1", "2") and outcome.aggregated == 1
    assert outcome.scoring_failures == 3  # the plain record and two user records
    assert outcome.failed == 4 and outcome.errors == 1 and outcome.predictions == 0
    assert outcome.records == outcome.predictions + outcome.errors + outcome.failed == 5
    assert client.bodies("p") == []
