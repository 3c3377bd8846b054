"""The parts' logs are bounded: rotated by size at a line's end, through the supervisor."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from studperf_assets.local.rotating_log import (
    DEFAULT_BACKUPS,
    DEFAULT_MAX_BYTES,
    LogSettingError,
    RotatingLog,
    rotation_from_environment,
)
from studperf_assets.local.supervisor import Supervisor


def _lines(log: Path, backups: int) -> list[str]:
    """Every line kept, oldest first (``<log>.<backups>`` … ``<log>.1``, then ``<log>``)."""
    files = [log.with_name(f"{log.name}.{n}") for n in range(backups, 0, -1)] + [log]
    return [line for f in files if f.exists() for line in f.read_text().splitlines()]


def test_a_log_is_rotated_at_a_line_end_and_the_oldest_dropped(tmp_path: Path) -> None:
    path = tmp_path / "part.log"
    log = RotatingLog(path, max_bytes=100, backups=2)
    written = [f"line {n:03d} " + "x" * 20 for n in range(20)]  # 30 bytes a line
    for line in written:
        log.write(line[:10].encode())  # a line in two writes: never cut across files
        log.write(line[10:].encode() + b"\n")
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["part.log", "part.log.1", "part.log.2"]
    for name in files:
        text = (tmp_path / name).read_bytes()
        assert len(text) <= 100 and text.endswith(b"\n")
    kept = _lines(path, 2)
    assert kept == written[-len(kept) :] and len(kept) >= 7  # the newest, in order


def test_a_line_longer_than_the_limit_is_kept_whole(tmp_path: Path) -> None:
    path = tmp_path / "part.log"
    log = RotatingLog(path, max_bytes=50, backups=3)
    log.write(b"short\n")
    log.write(b"y" * 120 + b"\n")
    log.write(b"after\n")
    log.close()
    assert _lines(path, 3) == ["short", "y" * 120, "after"]


def test_the_settings_come_from_the_environment() -> None:
    assert rotation_from_environment({}) == (DEFAULT_MAX_BYTES, DEFAULT_BACKUPS)
    assert rotation_from_environment(
        {"STUDPERF_LOG_MAX_BYTES": "65536", "STUDPERF_LOG_BACKUPS": "2"}
    ) == (65536, 2)
    with pytest.raises(LogSettingError, match="STUDPERF_LOG_MAX_BYTES must be a whole number"):
        rotation_from_environment({"STUDPERF_LOG_MAX_BYTES": "10MB"})
    with pytest.raises(LogSettingError, match="STUDPERF_LOG_BACKUPS must be at least 1"):
        rotation_from_environment({"STUDPERF_LOG_BACKUPS": "0"})


CHATTY = """
import subprocess, sys
for n in range(300):
    print(f"part {n:04d} " + "z" * 80, flush=True)
# what it starts writes to the same log
subprocess.run([sys.executable, "-c", "print('grandchild', flush=True)"], check=True)
"""


def test_a_childs_output_goes_through_the_supervisor_into_a_rotated_log(tmp_path: Path) -> None:
    """The child writes to a pipe, never to the file: the supervisor rotates it (4 kB a
    file here) and every line arrives, in order, none cut."""
    supervisor = Supervisor(
        tmp_path / "logs", echo=lambda _line: None, log_max_bytes=4096, log_backups=20
    )
    try:
        code = supervisor.run_to_end("chatty", [sys.executable, "-c", CHATTY], dict(os.environ))
    finally:
        supervisor.stop(timeout=3)
    assert code == 0
    log = tmp_path / "logs" / "chatty.log"
    assert log.with_name("chatty.log.1").exists()
    assert all(p.stat().st_size <= 4096 for p in (tmp_path / "logs").iterdir())
    expected = [f"part {n:04d} " + "z" * 80 for n in range(300)] + ["grandchild"]
    assert _lines(log, 20) == expected
