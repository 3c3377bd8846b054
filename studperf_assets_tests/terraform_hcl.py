"""Terraform read with python-hcl2 (no terraform binary on these machines)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import hcl2

TERRAFORM = Path(__file__).resolve().parent.parent / "terraform"


def _clean(value: Any) -> Any:
    """hcl2 keeps the quotes of strings and block labels; drop them and its markers."""
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def parsed(path: Path) -> dict[str, Any]:
    with open(path) as fh:
        return dict(_clean(hcl2.load(fh)))


def tf_files() -> list[Path]:
    return sorted(TERRAFORM.rglob("*.tf"))


def blocks(
    kind: str, type_: str | None = None, files: list[Path] | None = None
) -> list[tuple[Path, str, dict[str, Any]]]:
    """(file, name, body) of every block of a kind (resource, data, variable, module…)."""
    found = []
    for path in files or tf_files():
        for entry in parsed(path).get(kind, []):
            for label, body in entry.items():
                if type_ is None:
                    found.append((path, label, body))
                elif label == type_:
                    found += [(path, name, inner) for name, inner in body.items()]
    return found


def tfvars(env: str) -> dict[str, Any]:
    return parsed(TERRAFORM / "envs" / env / "terraform.tfvars")


def module_files(name: str) -> list[Path]:
    return sorted((TERRAFORM / "modules" / name).glob("*.tf"))


def locals_of(files: list[Path]) -> dict[str, Any]:
    """Every ``locals`` entry of these files, merged."""
    merged: dict[str, Any] = {}
    for path in files:
        for entry in parsed(path).get("locals", []):
            merged.update({k: v for k, v in entry.items() if not k.startswith("__")})
    return merged


def root_modules() -> dict[str, dict[str, Any]]:
    return {name: body for _, name, body in blocks("module", files=[TERRAFORM / "main.tf"])}
