"""Lean serving side of studperf: input schema, model-bundle format and prediction core.

Owns the contracts that training must honour; imports numpy, boto3 and onnxruntime only
(never dagster, mlflow or pandas) so the Lambda starts fast.
"""
