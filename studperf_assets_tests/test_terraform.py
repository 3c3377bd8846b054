"""What Terraform declares, read with python-hcl2 (no terraform binary here)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lambda_service.config import (
    ENV_ERRORS,
    ENV_MAX_MB,
    ENV_MODEL_URI,
    ENV_PREDICTIONS,
    ENVIRONMENT_VARIABLES,
)
from studperf_assets_tests.terraform_hcl import (
    TERRAFORM,
    blocks,
    locals_of,
    module_files,
    root_modules,
    tf_files,
    tfvars,
)


def test_every_variable_is_typed_and_described() -> None:
    variables = blocks("variable")
    assert len(variables) > 30
    for path, name, body in variables:
        assert body.get("type"), f"{path}: variable {name} has no type"
        assert body.get("description"), f"{path}: variable {name} has no description"


def test_stg_and_prod_set_the_same_variables_and_every_required_one() -> None:
    stg, prod = tfvars("stg"), tfvars("prod")
    assert set(stg) == set(prod)
    root = blocks("variable", files=[TERRAFORM / "variables.tf"])
    required = {name for _, name, body in root if "default" not in body}
    declared = {name for _, name, _ in root}
    assert required <= set(stg) <= declared
    assert stg["environment"] == "stg" and prod["environment"] == "prod"


def test_event_source_mapping_reports_partial_failures_with_bounded_retries() -> None:
    ((_, _, mapping),) = blocks("resource", "aws_lambda_event_source_mapping")
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["bisect_batch_on_function_error"] is True
    assert mapping["maximum_retry_attempts"] == "${var.max_retry_attempts}"
    assert mapping["maximum_record_age_in_seconds"] == "${var.max_record_age_seconds}"
    assert mapping["destination_config"][0]["on_failure"][0]["destination_arn"]
    root = {name: body for _, name, body in blocks("variable", files=[TERRAFORM / "variables.tf"])}
    for env in ("stg", "prod"):
        values = tfvars(env)
        assert 0 <= values["max_retry_attempts"] <= 10
        assert 60 <= values["max_record_age_seconds"] <= 86400
    for name in ("max_retry_attempts", "max_record_age_seconds"):
        assert root[name].get("validation"), f"{name} must be bounded by a validation"


def _statements() -> list[tuple[str, dict[str, Any]]]:
    documents = blocks(
        "data",
        "aws_iam_policy_document",
        files=sorted((TERRAFORM / "modules" / "iam").glob("*.tf")),
    )
    return [(name, statement) for _, name, body in documents for statement in body["statement"]]


# AWS actions that cannot be scoped to a resource: "*" is the only grant there is.
NO_RESOURCE_LEVEL_PERMISSIONS = {
    "ecr:GetAuthorizationToken",  # ECS pulling the code-location image
    "ecs:DescribeTaskDefinition",  # EcsRunLauncher reading the run task definition
    "ec2:DescribeNetworkInterfaces",  # EcsRunLauncher reading the daemon's own subnets
}


def test_iam_never_grants_star_actions_or_resources() -> None:
    statements = _statements()
    assert len(statements) >= 20
    for name, statement in statements:
        for action in statement.get("actions", []):
            assert action != "*" and not action.endswith(":*"), f"{name}: action {action}"
        for resource in statement.get("resources", []):
            if resource == "*":
                assert set(statement["actions"]) <= NO_RESOURCE_LEVEL_PERMISSIONS, (
                    f"{name}: {statement['actions']} granted on every resource"
                )
        if "principals" not in statement:  # trust policies name principals, not resources
            assert statement.get("resources"), f"{name}: statement without resources"


def test_lambda_role_reaches_only_the_named_streams_and_prefix() -> None:
    lambda_statements = {s["sid"]: s for name, s in _statements() if name == "lambda"}
    assert lambda_statements["ReadInputStream"]["resources"] == ["${var.input_stream_arn}"]
    assert lambda_statements["WriteOutputStreams"]["resources"] == [
        "${var.predictions_stream_arn}",
        "${var.errors_stream_arn}",
    ]
    for resource in lambda_statements["ReadModelStore"]["resources"]:
        assert resource.startswith("${var.bucket_arn}/${var.model_store_prefix}/")


def test_lambda_environment_is_what_the_handler_reads() -> None:
    modules = {name: body for _, name, body in blocks("module", files=[TERRAFORM / "main.tf"])}
    environment = modules["lambda"]["environment"]
    assert set(environment) <= set(ENVIRONMENT_VARIABLES)
    assert {ENV_MODEL_URI, ENV_PREDICTIONS, ENV_ERRORS} <= set(environment)
    assert environment[ENV_MODEL_URI] == "s3://${module.s3.bucket_name}/${var.model_store_prefix}"
    # the bundle limit is set, and bounded so that two bundles fit the Lambda's 512 MB /tmp
    assert environment[ENV_MAX_MB] == "${tostring(var.model_max_mb)}"
    root = {name: body for _, name, body in blocks("variable", files=[TERRAFORM / "variables.tf"])}
    (validation,) = root["model_max_mb"]["validation"]
    assert "var.model_max_mb <= 200" in validation["condition"]
    assert 2 * root["model_max_mb"]["default"] <= 512


def test_every_aws_resource_the_code_uses_is_declared() -> None:
    modules = {name: body for _, name, body in blocks("module", files=[TERRAFORM / "main.tf"])}
    assert set(modules["kinesis"]["streams"]) == {"input", "predictions", "errors"}
    declared = {type_ for _, type_, _ in blocks("resource")}
    for needed in (
        "aws_s3_bucket",  # model store, reports
        "aws_kinesis_stream",  # input, predictions, errors
        "aws_sesv2_email_identity",  # drift alerts
        "aws_ecr_repository",  # the Lambda image
        "aws_lambda_function",
        "aws_lambda_event_source_mapping",
        "aws_cloudwatch_metric_alarm",
    ):
        assert needed in declared


@pytest.mark.parametrize(
    ("resource", "attribute", "expected"),
    [
        ("aws_ecr_repository", "image_tag_mutability", "IMMUTABLE"),
        ("aws_kinesis_stream", "encryption_type", "KMS"),
        ("aws_kms_key", "enable_key_rotation", True),
    ],
)
def test_security_settings(resource: str, attribute: str, expected: Any) -> None:
    found = blocks("resource", resource)
    assert found and all(body[attribute] == expected for _, _, body in found)


def test_checkov_skips_are_inline_with_a_reason() -> None:
    for path in tf_files():
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.search(r"checkov:skip=CKV2?_AWS_\d+:\S.{10,}", line), (
                    f"{path}: {line.strip()}"
                )


def test_logs_are_json_and_the_error_rate_alarm_reads_the_handlers_metrics() -> None:
    from lambda_service.observability import METRIC_UNITS, NAMESPACE, SERVICE

    (_, _, function) = next(iter(blocks("resource", "aws_lambda_function")))
    (logging_config,) = function["logging_config"]
    assert logging_config["log_format"] == "JSON"
    (_, _, alarm) = next(
        b for b in blocks("resource", "aws_cloudwatch_metric_alarm") if b[1] == "error_record_rate"
    )
    queries = {q["id"]: q for q in alarm["metric_query"]}
    assert "errors / records" in queries["rate"]["expression"]
    alarms_vars = {name: body for _, name, body in blocks("variable") if "metrics_" in name}
    assert alarms_vars["metrics_namespace"]["default"] == NAMESPACE
    assert alarms_vars["metrics_service"]["default"] == SERVICE
    for query_id, metric in (("errors", "ErrorRecords"), ("records", "Records")):
        (inner,) = queries[query_id]["metric"]
        assert inner["metric_name"] == metric and metric in METRIC_UNITS
        assert inner["dimensions"] == {"service": "${var.metrics_service}"}


def test_writes_to_the_model_store_bucket_are_audited() -> None:
    """The model store is a trust boundary: a CloudTrail trail records every object write to
    the project bucket (who wrote which bundle or pointer), into a bucket of its own."""
    audit = root_modules()["audit"]
    assert audit["audited_bucket_arn"] == "${module.s3.bucket_arn}"
    assert audit["bucket_name"] != "${local.bucket_name}"  # never logs into what it audits
    files = module_files("audit")
    ((_, _, trail),) = blocks("resource", "aws_cloudtrail", files)
    assert trail["enable_log_file_validation"] is True
    assert trail["kms_key_id"] == "${var.kms_key_arn}"
    (selector,) = trail["advanced_event_selector"]
    fields = {f["field"]: f for f in selector["field_selector"]}
    assert fields["eventCategory"]["equals"] == ["Data"]
    assert fields["resources.type"]["equals"] == ["AWS::S3::Object"]
    assert fields["readOnly"]["equals"] == ["false"]  # writes and deletes, not reads
    assert fields["resources.ARN"]["starts_with"] == ["${var.audited_bucket_arn}/"]
    # only this trail may write into the log bucket, and the key lets CloudTrail encrypt
    trail_arn = locals_of(files)["trail_arn"]
    assert trail_arn.endswith("trail/${var.name}") and trail["name"] == "${var.name}"
    (_, _, policy) = next(b for b in blocks("data", "aws_iam_policy_document", files))
    writes = next(s for s in policy["statement"] if s["actions"] == ["s3:PutObject"])
    (condition,) = writes["condition"]
    assert condition["variable"] == "aws:SourceArn"
    assert condition["values"] == ["${local.trail_arn}"]
    kms = blocks("data", "aws_iam_policy_document", module_files("kms"))
    principals = [
        p["identifiers"] for _, _, doc in kms for s in doc["statement"] for p in s["principals"]
    ]
    assert ["cloudtrail.amazonaws.com"] in principals
