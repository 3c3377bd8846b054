"""Processes racing on one store's production pointer, for the concurrency test: promoters
that each swap the pointer against the champion they just read, and a reader re-reading it
meanwhile. Lean on purpose (lambda_service only, the code ``ModelStore.promote`` runs), so
that spawning five processes costs a Python start each, not a Dagster import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lambda_service.bundle import read_pointer
from lambda_service.pointers import PointerMoved, swap_pointer


def promoter(root: str, versions: list[str], start: Any, results: Any) -> None:
    """One training process: promote each version against the champion it reads."""
    start.wait()
    for new in versions:
        try:
            current = read_pointer(root)
            champion = current.version if current else None
            swap_pointer(root, "production", {"version": new}, champion)
            results.put(("won", champion, new))
        except PointerMoved as lost:
            results.put(("lost", lost.expected, new))
        except Exception as exc:  # noqa: BLE001 - what the test must not see
            results.put(("error", f"{type(exc).__name__}: {exc}", new))


def reader(root: str, start: Any, stop: Any, results: Any) -> None:
    """A consumer re-reading the pointer as fast as it can while promotions go on."""
    path = Path(root) / "production.json"
    reads, problems = 0, []
    start.wait()
    while not stop.is_set():
        reads += 1
        try:
            json.loads(path.read_bytes())["version"]
            if read_pointer(root) is None:
                problems.append("no pointer")
        except Exception as exc:  # noqa: BLE001 - what the test must not see
            problems.append(f"{type(exc).__name__}: {exc}")
    results.put(("reader", reads, problems[:5], len(problems)))
