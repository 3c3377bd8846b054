"""The model provider against S3 on moto server: a bundle fetched at cold start, and the
errors that name the URI it could not read."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from lambda_service.bundle import BundleError
from lambda_service.model_provider import ModelProvider
from studperf_assets.resources.model_store import S3ModelStore

pytestmark = pytest.mark.integration


def test_bundle_fetched_from_s3_at_cold_start(s3_store: S3ModelStore, tmp_path: Path) -> None:
    provider = ModelProvider(
        f"{s3_store.root_uri}/production.json", tmp_path / "cache", s3=boto3.client("s3")
    )
    assert provider.follows_pointer
    assert (tmp_path / "cache" / provider.predictor.version / "model.onnx").is_file()


def test_s3_unreachable_names_the_uri(tmp_path: Path) -> None:
    dead = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    uri = "s3://studperf-nowhere/models"
    with pytest.raises(BundleError, match=uri):
        ModelProvider(uri, tmp_path / "cache", s3=dead)


def test_missing_bundle_in_s3_names_the_uri(s3_bucket: str, tmp_path: Path) -> None:
    uri = f"s3://{s3_bucket}/models/bundles/v-missing"
    with pytest.raises(BundleError, match=uri):
        ModelProvider(uri, tmp_path / "cache", s3=boto3.client("s3"))
