"""The prediction core: a verified bundle's ONNX form run by onnxruntime.

Scores a whole batch in one call. A bundle is loaded only if its ONNX form passes the smoke
test (``smoke``), and every batch's output is checked before it is used, so a bundle that
verifies but cannot serve is refused, never served. Nothing here unpickles anything, and
importing it pulls in numpy and onnxruntime only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# onnxruntime keeps a telemetry store (a device id and an event database) under
# ~/.cache/Microsoft/DeveloperTools unless told not to. The serving runtime writes nothing
# outside its own folders; an operator who wants the telemetry sets the variable to 0.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime as ort

from lambda_service.bundle import (
    DEFAULT_MAX_BUNDLE_BYTES,
    ONNX_FILE,
    BundleError,
    Manifest,
    fetch_bundle,
    verify_bundle,
)
from lambda_service.schema import (
    FEATURES,
    Feature,
    InvalidRecord,
    parse_record,
    schema_differences,
)
from lambda_service.smoke import (
    InvalidModelOutput,
    UnusableSchema,
    check_shapes,
    output_problems,
    smoke_rows,
)


@dataclass(frozen=True)
class Prediction:
    grade_class: int
    grade: str
    probabilities: dict[str, float]


class Predictor:
    """Validates records against the serving schema (``schema.FEATURES``) and scores them
    in batches.

    Built only for a bundle whose manifest's feature schema is the serving schema (names,
    order, kinds, ranges: a BundleError naming the field otherwise) and whose ONNX form
    passes the smoke test (an InvalidModelOutput, a BundleError naming the bundle and what
    failed, otherwise)."""

    def __init__(self, folder: Path, manifest: Manifest, source: str | None = None) -> None:
        self.folder = folder
        self.manifest = manifest
        where = source or str(folder)
        differences = schema_differences(manifest.features, FEATURES)
        if differences:
            raise BundleError(
                f"{where}: bundle {manifest.version} was not trained on the serving schema: "
                + "; ".join(differences)
            )
        self.features: tuple[Feature, ...] = FEATURES
        self.labels: tuple[str, ...] = tuple(manifest.class_labels)
        # by index, as a dict: a label out of range is a KeyError, never letters[-1]
        self._letter_of: dict[int, str] = dict(enumerate(self.labels))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one core per Lambda / worker; no thread storms
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise BundleError(f"{where}: onnxruntime cannot load {ONNX_FILE} ({exc})") from exc
        self._input = self._session.get_inputs()[0].name
        self._smoke_test(where)

    @classmethod
    def from_folder(cls, folder: Path, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES) -> Predictor:
        return cls(folder, verify_bundle(folder, max_bytes=max_bytes))

    @classmethod
    def from_uri(
        cls, uri: str, cache_dir: Path, s3: Any = None, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
    ) -> Predictor:
        folder, manifest = fetch_bundle(uri, cache_dir, s3, max_bytes)
        return cls(folder, manifest, uri)

    def _smoke_test(self, where: str) -> None:
        """Score the smoke set of the serving schema; refuse the bundle on any fault."""
        failed = f"{where}: bundle {self.version} fails the smoke test"
        try:
            rows = smoke_rows(self.features)
        except UnusableSchema as exc:  # a sentence naming the field and its range
            raise InvalidModelOutput(f"{failed}: {exc}") from exc
        try:
            labels, probabilities = self._session.run(None, {self._input: rows})
            problems = output_problems(labels, probabilities, len(rows), len(self.labels))
        except Exception as exc:
            raise InvalidModelOutput(f"{failed}: {type(exc).__name__}: {exc}") from exc
        if problems:
            raise InvalidModelOutput(f"{failed} ({len(rows)} rows): {'; '.join(problems)}")

    @property
    def version(self) -> str:
        return self.manifest.version

    def parse(self, record: Mapping[str, Any]) -> list[float]:
        """Feature vector of one record, or InvalidRecord naming the field."""
        return parse_record(record, self.features)

    def predict_matrix(
        self, rows: np.ndarray | Sequence[Sequence[float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Class indices and probabilities for an (n, features) matrix, in one call;
        InvalidModelOutput when the model's output is not of those shapes."""
        matrix = np.asarray(rows, dtype=np.float32).reshape(-1, len(self.features))
        if matrix.shape[0] == 0:
            return np.empty(0, dtype=np.int64), np.empty((0, len(self.labels)), dtype=np.float32)
        labels, probabilities = self._session.run(None, {self._input: matrix})
        check_shapes(labels, probabilities, matrix.shape[0], len(self.labels))
        return np.asarray(labels, dtype=np.int64), np.asarray(probabilities)

    def predict_records(
        self, records: Iterable[Mapping[str, Any]]
    ) -> list[Prediction | InvalidRecord]:
        """Score valid records together; an invalid one yields its InvalidRecord in place."""
        results: list[Prediction | InvalidRecord] = []
        rows: list[list[float]] = []
        slots: list[int] = []
        for record in records:
            try:
                rows.append(self.parse(record))
                slots.append(len(results))
                results.append(InvalidRecord(None, "pending"))
            except InvalidRecord as exc:
                results.append(exc)
        labels, probabilities = self.predict_matrix(rows)
        fields = self.prediction_fields(labels, probabilities)
        for slot, prediction in zip(slots, fields, strict=True):
            results[slot] = Prediction(**prediction)
        return results

    def prediction_fields(
        self, labels: Sequence[int] | np.ndarray, probabilities: np.ndarray
    ) -> list[dict[str, Any]]:
        """grade_class, grade and probabilities (6 decimals) of a batch, as plain values:
        rounded in one vectorised call, not per record. A label outside the class labels is
        an InvalidModelOutput (a negative one is not read from the end)."""
        letters = self._letter_of
        rounded = np.round(np.asarray(probabilities, dtype=np.float64), 6).tolist()
        try:
            return [
                {
                    "grade_class": label,
                    "grade": letters[label],
                    "probabilities": dict(zip(self.labels, row, strict=True)),
                }
                for label, row in zip(np.asarray(labels).tolist(), rounded, strict=True)
            ]
        except KeyError as exc:
            raise InvalidModelOutput(
                f"label {exc.args[0]!r} outside 0..{len(self.labels) - 1}"
            ) from None
