"""Whether a person is watching: progress bars on a terminal only (not in logs, CI or JSON
mode). Here, not in the CLI, because training steps ask too, and the code location must not
import the command line."""

from __future__ import annotations

import os
import sys


def progress_enabled() -> bool:
    """True when stderr is a terminal and the log format is not JSON."""
    return sys.stderr.isatty() and os.environ.get("STUDPERF_LOG_FORMAT", "human") != "json"
