"""Export a fitted studperf pipeline to ONNX, the Lambda's lean serving form.

skl2onnx converts the scaler and the stock model families; ``GPAOrdinalClassifier`` gets
a converter here that writes its regression, Gaussian CDF (via Erf) and band differences
as ONNX operators, so every family serves through onnxruntime alone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.algebra.onnx_operator import OnnxSubEstimator
from skl2onnx.algebra.onnx_ops import (
    OnnxAdd,
    OnnxArgMax,
    OnnxConcat,
    OnnxDiv,
    OnnxErf,
    OnnxMul,
    OnnxReshape,
    OnnxSlice,
    OnnxSub,
)
from skl2onnx.common.data_types import FloatTensorType
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from sklearn.pipeline import Pipeline

from lambda_service.bundle import ONNX_INPUT_NAME
from lambda_service.schema import FEATURE_NAMES, GPA_CUTOFFS
from studperf_assets.lib.models import GPAOrdinalClassifier

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def _convert_gpa_ordinal(scope: Any, operator: Any, container: Any) -> None:
    model: GPAOrdinalClassifier = operator.raw_operator
    opv = container.target_opset
    f32 = np.float32
    mu = OnnxReshape(
        OnnxSubEstimator(model.regressor_, operator.inputs[0], op_version=opv),
        np.array([-1, 1], dtype=np.int64),
        op_version=opv,
    )
    cutoffs = np.asarray(GPA_CUTOFFS, dtype=f32).reshape(1, -1)
    z = OnnxDiv(
        OnnxSub(mu, cutoffs, op_version=opv),
        np.array([model.sigma_ * math.sqrt(2.0)], dtype=f32),
        op_version=opv,
    )
    at_least = OnnxMul(
        OnnxAdd(OnnxErf(z, op_version=opv), np.array([1.0], dtype=f32), op_version=opv),
        np.array([0.5], dtype=f32),
        op_version=opv,
    )
    zeros = OnnxMul(mu, np.array([0.0], dtype=f32), op_version=opv)
    ones = OnnxAdd(zeros, np.array([1.0], dtype=f32), op_version=opv)
    framed = OnnxConcat(zeros, at_least, ones, axis=1, op_version=opv)
    n = len(GPA_CUTOFFS) + 1
    upper = OnnxSlice(framed, np.array([1]), np.array([n + 1]), np.array([1]), op_version=opv)
    lower = OnnxSlice(framed, np.array([0]), np.array([n]), np.array([1]), op_version=opv)
    probabilities = OnnxSub(upper, lower, op_version=opv, output_names=[operator.outputs[1]])
    label = OnnxArgMax(
        probabilities, axis=1, keepdims=0, op_version=opv, output_names=[operator.outputs[0]]
    )
    label.add_to(scope, container)
    probabilities.add_to(scope, container)


update_registered_converter(
    GPAOrdinalClassifier,
    "StudperfGPAOrdinalClassifier",
    calculate_linear_classifier_output_shapes,
    _convert_gpa_ordinal,
    options={"zipmap": [True, False], "nocl": [True, False]},
)


def export_onnx(pipeline: Pipeline) -> bytes:
    """Serialized ONNX: float32 input ``features``; outputs label and probabilities."""
    model = pipeline.steps[-1][1]
    onx = convert_sklearn(
        pipeline,
        initial_types=[(ONNX_INPUT_NAME, FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={id(model): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    return bytes(onx.SerializeToString())
