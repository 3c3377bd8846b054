"""A shell's view of ``studperf up``'s environment file, for benchmarks and tests that follow
docs/operations.md literally (``source $STUDPERF_HOME/stack.env``).

Here, not in the test package, because benchmarks must not depend on the tests (the tests
import it from here); not in ``studperf_assets``, because no command needs it."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path


def sourced_environment(env_file: Path, base: Mapping[str, str]) -> dict[str, str]:
    """The environment a shell with ``base`` has after ``source env_file`` (for tools and
    tests that follow docs/operations.md's instructions literally)."""
    script = 'source "$1" && env -0'
    result = subprocess.run(
        ["bash", "-c", script, "bash", str(env_file)],
        env=dict(base), capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    pairs = (item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
    return {name: value for name, value in pairs if name not in ("_", "SHLVL", "PWD", "OLDPWD")}
