"""The local stand-in for the Lambda runtime: how this process runs ``lambda_handler``.

In AWS, the runtime imports ``lambda_service.handler`` once per execution environment (its
init phase: the module builds the service from the environment and loads the bundle), then
calls ``lambda_handler(event, context)`` once per batch. Locally the consumer does the same in
its own long-lived process: ``init_handler`` is the init phase, the poller (the event source
mapping's stand-in) calls ``lambda_handler`` itself with a Kinesis event and a
``LocalLambdaContext``, inside ``invocation``. The handler's module-level service therefore
lives as long as the consumer, as it lives as long as a warm Lambda: the bundle cache and the
hot swap to each promoted bundle are the handler's own.

What differs is only where the output goes. In Lambda, stdout is CloudWatch: the handler's
Powertools JSON log lines and its EMF metric records. Here stdout keeps the command's results
and stderr its log (``cli.terminal``): ``lambda_logs_here`` hands the handler's logger to this
process's log handlers, which add the Lambda context keys Powertools appended (request id,
cold start, function name) to each record written during an invocation, and ``invocation``
turns the EMF records the handler prints into DEBUG lines of ``studperf.lambda.stdout``.

Invocations may run at once, one per shard reader thread (as Lambda runs one per shard, each
in an execution environment of its own). What is per invocation stays per thread here: what
it prints goes to its own lines (``sys.stdout`` is replaced once, by a router, not per
invocation), and its log records carry its own context's keys, not those Powertools last
appended (its keys are process-wide).
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

# The keys Powertools' inject_lambda_context appends to every log line of an invocation.
CONTEXT_KEYS = (
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
)
FUNCTION_NAME = "studperf-local"  # not a deployed function: this process, standing in for one
ACCOUNT = "000000000000"  # moto's default account
stdout_log = logging.getLogger("studperf.lambda.stdout")


@dataclass
class LocalLambdaContext:
    """What Lambda's context object carries, for one local invocation. It says what it is:
    the function is ``studperf-local``, the request id starts with ``local-``."""

    region: str = "us-east-1"
    timeout_seconds: float = 60.0  # terraform's lambda_timeout_seconds default
    memory_limit_in_mb: int = 1024  # terraform's lambda_memory_mb default
    function_name: str = FUNCTION_NAME
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: f"local-{uuid.uuid4()}")
    log_group_name: str = f"local/{FUNCTION_NAME}"
    log_stream_name: str = "this process's log"
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        left = self.timeout_seconds - (time.monotonic() - self.started)
        return max(0, int(left * 1000))


class _LambdaContextFields(logging.Filter):
    """On this process's log handlers: a record written during an invocation carries the
    Lambda context keys, as the same line in CloudWatch would."""

    def __init__(self, lambda_logger: Any) -> None:
        super().__init__("")
        self.lambda_logger = lambda_logger

    def filter(self, record: logging.LogRecord) -> bool:
        if _INVOKING.get() and record.name.split(".")[0] == self.lambda_logger.service:
            keys = {**self.lambda_logger.get_current_keys(), **_CONTEXT.get({})}
            for key in CONTEXT_KEYS:
                if key in keys and not hasattr(record, key):
                    setattr(record, key, keys[key])
        return True


_INVOKING: ContextVar[bool] = ContextVar("invoking", default=False)
# This invocation's context keys (each thread has its own context): Powertools appends them
# to one process-wide set, where a concurrent invocation's would overwrite them.
_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("lambda_context")


def lambda_logs_here() -> Callable[[], None]:
    """Hand the handler's Powertools logger (the ``studperf`` logger: every ``studperf.*``
    logger inherits it) to this process's root handlers, keeping this process's level.
    Returns what undoes it (for a process that goes on without the handler: a test).

    Powertools gave that logger a handler of its own on stdout and filtered it out of the
    handlers already on the root logger; both are undone here, and the root handlers add the
    Lambda context keys to the records of an invocation (``_LambdaContextFields``)."""
    from aws_lambda_powertools.logging.filters import SuppressFilter

    own = logging.getLogger("studperf")
    level = own.level
    from lambda_service.observability import logger

    powertools_level = own.level
    own.setLevel(level or powertools_level)
    removed = logger.logger_handler in own.handlers
    own.removeHandler(logger.logger_handler)
    changed: list[tuple[logging.Handler, list[Any], logging.Filter]] = []
    for handler in logging.getLogger().handlers:
        suppressing = [f for f in handler.filters if isinstance(f, SuppressFilter)]
        for suppress in suppressing:
            handler.removeFilter(suppress)
        fields = _LambdaContextFields(logger)
        handler.addFilter(fields)
        changed.append((handler, suppressing, fields))

    def undo() -> None:
        for handler, suppressing, fields in changed:
            handler.removeFilter(fields)
            for suppress in suppressing:
                handler.addFilter(suppress)
        if removed:
            own.addHandler(logger.logger_handler)
        own.setLevel(powertools_level)

    return undo


def init_handler(environ: Mapping[str, str] | None = None) -> ModuleType:
    """Lambda's init phase: import ``lambda_service.handler``, which builds its service from
    this process's environment (``lambda_service.config``). Given ``environ``, the process
    already imported it (the demo, a test): the init phase runs again with that environment,
    as a new execution environment would. Returns the module; its ``COLD_START`` says whether
    the service is up or why not. Route the handler's logs first (``lambda_logs_here``)."""
    from lambda_service import handler

    if environ is not None:
        handler.COLD_START.restart(dict(environ))
    return handler


class _StdoutLines(io.TextIOBase):
    """The handler's stdout during an invocation: each line a DEBUG record."""

    def __init__(self) -> None:
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line:
                stdout_log.debug("%s", line)
        return len(text)

    def flush(self) -> None:
        if self.pending:
            stdout_log.debug("%s", self.pending)
            self.pending = ""


class _StdoutRouter(io.TextIOBase):
    """``sys.stdout`` while invocations run: a thread's writes go to its invocation's lines,
    any other thread's to the stdout it replaced."""

    def __init__(self) -> None:
        self.replaced: Any = None
        self.active = 0
        self.lock = threading.Lock()

    def target(self) -> Any:
        lines = _LINES.get()
        return lines if lines is not None else self.replaced

    def write(self, text: str) -> int:
        return int(self.target().write(text))

    def flush(self) -> None:
        self.target().flush()

    def enter(self) -> None:
        with self.lock:
            if self.active == 0:
                self.replaced, sys.stdout = sys.stdout, self
            self.active += 1

    def leave(self) -> None:
        with self.lock:
            self.active -= 1
            if self.active == 0 and sys.stdout is self:
                sys.stdout = self.replaced


_LINES: ContextVar[_StdoutLines | None] = ContextVar("invocation_stdout", default=None)
_ROUTER = _StdoutRouter()


def context_keys(context: Any) -> dict[str, Any]:
    """The keys Powertools' inject_lambda_context takes from a context (not ``cold_start``)."""
    return {
        "function_name": context.function_name,
        "function_memory_size": context.memory_limit_in_mb,
        "function_arn": context.invoked_function_arn,
        "function_request_id": context.aws_request_id,
    }


@contextlib.contextmanager
def invocation(context: Any = None) -> Iterator[None]:
    """Around one call of the handler (in any thread, several at once): its log records
    carry the context keys (``context``'s own, given it), and what it prints (its EMF metric
    records) becomes DEBUG lines instead of this command's output."""
    lines = _StdoutLines()
    tokens = (
        _INVOKING.set(True),
        _LINES.set(lines),
        _CONTEXT.set(context_keys(context) if context is not None else {}),
    )
    _ROUTER.enter()
    try:
        yield
    finally:
        _ROUTER.leave()
        _CONTEXT.reset(tokens[2])
        _LINES.reset(tokens[1])
        _INVOKING.reset(tokens[0])
        lines.flush()
