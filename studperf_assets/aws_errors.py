"""One line instead of a traceback when AWS is not set up: the commands a newcomer runs
first (``simulate``, ``stream``, ``init-aws``, ``predict`` from S3) meet these before
anything else, usually because the shell has not sourced the local stack's ``stack.env``.

botocore is not imported here: a class is recognised by its module and name, so that the
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


def aws_problem(
    error: BaseException, environ: Mapping[str, str] = os.environ
) -> tuple[int, str] | None:
    """(exit code, what to tell the user) for an AWS setup problem; None for anything else
    (which keeps its traceback). 2: a setting is missing or wrong; 1: AWS said no."""
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
