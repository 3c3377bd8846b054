"""Real bundles, edited: a new version of the same files, or a hash-valid bundle whose ONNX
graph was changed after training (a constant added to its label, its probabilities scaled
or made NaN), with the manifest's hashes rewritten so that it verifies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from lambda_service.bundle import MANIFEST_FILE, ONNX_FILE, sha256_file

STUDY_TIME = 1  # column of StudyTimeWeekly: 0-20 in the schema, at most 19.98 in the data


def version(n: int) -> str:
    """A valid bundle version no training makes (year 2099), distinct for each ``n``."""
    return f"v20990101T{n // 3600 % 24:02d}{n // 60 % 60:02d}{n % 60:02d}Z-{n:08x}"


def renamed(good: Path, target: Path, new_version: str) -> Path:
    """The same files under another version (the hashes still hold)."""
    shutil.copytree(good, target)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["version"] = new_version
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    return target


def tampered(
    good: Path,
    target: Path,
    new_version: str,
    output: str,
    op: str,
    constant: float | int,
    above_study_time: float | None = None,
    below_study_time: float = float("inf"),
) -> Path:
    """A copy whose ONNX ``output`` ("label" or "probabilities") is ``op(output, constant)``
    (op: Add or Mul), on every row or only where ``above_study_time`` < StudyTimeWeekly <
    ``below_study_time``; the manifest hashes the new graph, so the bundle verifies."""
    renamed(good, target, new_version)
    model = onnx.load(str(target / ONNX_FILE))
    graph = model.graph
    original = f"{output}_untampered"
    for node in graph.node:  # the graph computes as before; only what it returns changes
        node.output[:] = [original if name == output else name for name in node.output]
        node.input[:] = [original if name == output else name for name in node.input]
    dtype = np.int64 if output == "label" else np.float32
    graph.initializer.append(numpy_helper.from_array(np.array(constant, dtype=dtype), "k"))
    if above_study_time is None:
        graph.node.append(helper.make_node(op, [original, "k"], [output]))
    else:
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array([STUDY_TIME], dtype=np.int64), "column"),
                numpy_helper.from_array(np.array(above_study_time, dtype=np.float32), "low"),
                numpy_helper.from_array(np.array(below_study_time, dtype=np.float32), "high"),
            ]
        )
        condition = "wide"  # (rows, 1): broadcasts over the probabilities' columns
        graph.node.extend(
            [
                helper.make_node("Gather", ["features", "column"], ["study"], axis=1),
                helper.make_node("Greater", ["study", "low"], ["above"]),
                helper.make_node("Less", ["study", "high"], ["below"]),
                helper.make_node("And", ["above", "below"], ["wide"]),
                helper.make_node(op, [original, "k"], ["changed"]),
            ]
        )
        if output == "label":  # (rows,)
            graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "axis"))
            graph.node.append(helper.make_node("Squeeze", ["wide", "axis"], ["narrow"]))
            condition = "narrow"
        graph.node.append(helper.make_node("Where", [condition, "changed", original], [output]))
    onnx.checker.check_model(model)
    onnx.save(model, str(target / ONNX_FILE))
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["files"][ONNX_FILE] = sha256_file(target / ONNX_FILE)
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    return target
