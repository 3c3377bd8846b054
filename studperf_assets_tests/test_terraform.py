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


# --- The predictions archive: Firehose from the output streams into the monitoring bucket ---


def test_archive_delivery_streams_copy_each_output_stream_into_the_monitoring_bucket() -> None:
    from studperf_assets.lib.archive import ARCHIVE_PREFIX, KINDS

    archive = root_modules()["archive"]
    assert archive["source_stream_arns"] == {
        kind: f'${{module.kinesis.arns["{kind}"]}}' for kind in KINDS
    }
    assert archive["bucket_arn"] == "${module.s3.bucket_arn}"
    assert archive["archive_prefix"] == "${local.archive_prefix}"
    main = locals_of([TERRAFORM / "main.tf"])
    # the monitoring store is s3://bucket/<reports_prefix>: the reader's archive/ is under it
    assert main["archive_prefix"] == f"${{var.reports_prefix}}/{ARCHIVE_PREFIX}"
    dagster = root_modules()["dagster"]["studperf_environment"]
    assert dagster["STUDPERF_MONITORING_STORE"].endswith("/${var.reports_prefix}")

    files = module_files("archive")
    ((_, _, stream),) = blocks("resource", "aws_kinesis_firehose_delivery_stream", files)
    assert stream["for_each"] == "${local.names}"
    assert stream["destination"] == "extended_s3"
    (source,) = stream["kinesis_source_configuration"]
    assert source["kinesis_stream_arn"] == "${var.source_stream_arns[each.key]}"
    (s3,) = stream["extended_s3_configuration"]
    assert s3["bucket_arn"] == "${var.bucket_arn}"
    assert s3["prefix"] == "${var.archive_prefix}/${each.key}/!{timestamp:yyyy/MM/dd/HH}/"
    assert "!{firehose:error-output-type}" in s3["error_output_prefix"]
    assert s3["error_output_prefix"].startswith("${var.archive_prefix}/failed/")  # not read
    assert s3["compression_format"] == "GZIP"
    assert s3["kms_key_arn"] == "${var.kms_key_arn}"
    assert s3["buffering_interval"] == "${var.buffer_seconds}"
    assert s3["buffering_size"] == "${var.buffer_mb}"
    (processing,) = s3["processing_configuration"]
    assert processing["enabled"] is True
    assert [p["type"] for p in processing["processors"]] == ["AppendDelimiterToRecord"]
    (logging_options,) = s3["cloudwatch_logging_options"]
    assert logging_options["enabled"] is True
    ((_, _, group),) = blocks("resource", "aws_cloudwatch_log_group", files)
    assert group["kms_key_id"] == "${var.kms_key_arn}"
    assert group["retention_in_days"] == "${var.log_retention_days}"


def test_archive_role_reads_only_the_source_streams_and_writes_only_the_archive() -> None:
    files = module_files("archive")
    documents = {name: body for _, name, body in blocks("data", "aws_iam_policy_document", files)}
    statements = {s["sid"]: s for s in documents["firehose"]["statement"]}
    assert statements["ReadTheSourceStreams"]["resources"] == "${values(var.source_stream_arns)}"
    assert all(a.startswith("kinesis:") for a in statements["ReadTheSourceStreams"]["actions"])
    assert statements["WriteTheArchive"]["resources"] == [
        "${var.bucket_arn}/${var.archive_prefix}/*"
    ]
    assert statements["FindTheBucket"]["resources"] == ["${var.bucket_arn}"]
    assert not {"s3:PutObject", "s3:GetObject"} & set(statements["FindTheBucket"]["actions"])
    for sid in ("DecryptTheStreams", "EncryptTheArchive"):
        conditions = {c["variable"] for c in statements[sid]["condition"]}
        assert "kms:ViaService" in conditions, sid
    for statement in statements.values():  # a list, or one expression naming the ARNs
        resources = statement["resources"]
        assert resources != "*" and (isinstance(resources, str) or "*" not in resources)
        assert "*" not in statement["actions"]
    (assume,) = documents["assume"]["statement"]
    assert assume["principals"][0]["identifiers"] == ["firehose.amazonaws.com"]


def test_archive_expires_after_a_configurable_number_of_days() -> None:
    s3 = root_modules()["s3"]
    assert s3["archive_prefix"] == "${local.archive_prefix}"
    assert s3["archive_retention_days"] == "${var.archive_retention_days}"
    root = {name: body for _, name, body in blocks("variable", files=[TERRAFORM / "variables.tf"])}
    for name in ("archive_retention_days", "archive_buffer_seconds", "archive_buffer_mb"):
        assert root[name].get("validation"), f"{name} must be bounded by a validation"
    ((_, _, lifecycle),) = blocks(
        "resource", "aws_s3_bucket_lifecycle_configuration", module_files("s3")
    )
    rules = {rule["id"]: rule for rule in lifecycle["rule"]}
    archive = rules["expire-archive"]
    assert archive["status"] == "Enabled"
    assert archive["filter"][0]["prefix"] == "${var.archive_prefix}/"
    assert archive["expiration"][0]["days"] == "${var.archive_retention_days}"
    (precondition,) = lifecycle["lifecycle"][0]["precondition"]
    assert "var.archive_retention_days <= var.report_retention_days" in precondition["condition"]
    # the same default as a folder store's archive (MonitoringSettings, local retention)
    from studperf_assets.resources.monitoring import MonitoringSettings

    local_default = MonitoringSettings.model_fields["archive_retention_days"].default
    assert root["archive_retention_days"]["default"] == local_default
