"""One line instead of a traceback for what is not set up, rather than broken: a setting
with a wrong value, AWS without region, credentials, endpoint, stream or bucket (usually a
shell that has not sourced the local stack's ``stack.env``), a model store with no bundle
to serve or one that fails its checks. Anything else keeps its traceback.

botocore is not imported here: its classes are recognised by module and name, so that the
CLI pays nothing for this on the way in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SETTINGS = {"NoRegionError", "NoCredentialsError", "PartialCredentialsError"}
UNREACHABLE = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"}
MISSING = {"ResourceNotFoundException", "NoSuchBucket"}
BAD_CREDENTIALS = {"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken"}


def one_line(
    error: BaseException, environ: Mapping[str, str] = os.environ
) -> tuple[int, str] | None:
    """(exit code, what to tell the user), or None for an error that keeps its traceback.
    2: a setting is missing or wrong; 1: AWS or the model store said no."""
    from lambda_service.bundle import BundleError
    from studperf_assets.deployment import DeploymentError

    if isinstance(error, DeploymentError):
        return 2, str(error)
    if isinstance(error, BundleError):
        return 1, f"model: {error} (a store gets its first bundle from `studperf train`)"
    return _aws_problem(error, environ)


def _aws_problem(error: BaseException, environ: Mapping[str, str]) -> tuple[int, str] | None:
    kind = type(error)
    if not kind.__module__.startswith("botocore"):
        return None
    endpoint = environ.get("AWS_ENDPOINT_URL")
    where = f"the AWS endpoint {endpoint} (AWS_ENDPOINT_URL)" if endpoint else "AWS"
    name = kind.__name__
    if name in SETTINGS:
        return 2, f"{error} ({_how_to_configure(environ)})"
    if name in UNREACHABLE:
        hint = "; is `studperf up` running?" if endpoint else ""
        return 1, f"cannot reach {where}: {error}{hint}"
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    if code in BAD_CREDENTIALS:
        return 2, f"{where} refused the credentials: {error} ({_how_to_configure(environ)})"
    if code in MISSING:
        return 1, f"{error} (`studperf init-aws` creates the bucket and the streams)"
    return None


def _how_to_configure(environ: Mapping[str, str]) -> str:
    stack_env = Path(environ.get("STUDPERF_HOME", ".studperf")) / "stack.env"
    local = (
        f"for the local stack: source {stack_env}"
        if stack_env.is_file()
        else "for a local stack: `studperf up`, then source the stack.env it writes"
    )
    return f"{local}; for AWS: AWS_DEFAULT_REGION and credentials, as for the AWS CLI"
