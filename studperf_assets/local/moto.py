"""A local AWS for development, tests and benchmarks: moto in server mode, over HTTP.

Code reaches it through the standard ``AWS_ENDPOINT_URL``; with that unset, the same code
talks to real AWS.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# moto's server with its Kinesis made to scale (see moto_server): what every local stack runs.
MOTO_SERVER = "studperf_assets.local.moto_server"
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server(set_environment: bool = True) -> Iterator[str]:
    """Start ``moto.server`` on a free loopback port; yield its URL; stop it afterwards.

    With ``set_environment`` the AWS variables point boto3 at it for the duration.
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in (*AWS_TEST_ENV, "AWS_ENDPOINT_URL")}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"moto server did not start on {url}") from None
                time.sleep(0.1)
        if set_environment:
            os.environ.update({**AWS_TEST_ENV, "AWS_ENDPOINT_URL": url})
        yield url
    finally:
        if set_environment:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def ensure_bucket(s3: Any, name: str) -> None:
    """Create a bucket unless it exists (idempotent set-up for local stacks)."""
    try:
        s3.head_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - absent (or not ours): try to create it
        s3.create_bucket(Bucket=name)


def ensure_stream(kinesis: Any, name: str, shards: int = 1) -> None:
    """Create a Kinesis stream unless it exists, and wait until it is active."""
    try:
        kinesis.describe_stream_summary(StreamName=name)
    except kinesis.exceptions.ResourceNotFoundException:
        kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})


def sent_emails(url: str) -> list[dict[str, Any]]:
    """E-mails moto's SES has accepted (source, destinations, subject, body)."""
    with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=10) as response:
        data = json.loads(response.read())
    return list(data.get("ses", {}).get("Message", []))
