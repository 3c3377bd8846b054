"""The local Dagster instance and ``dagster dev``, as ``studperf train/demo/ui/up`` use them.

Everything comes from the installed package, never from a checkout, so that
``pip install 'studperf[local]'`` gets the same commands: the instance templates are in
``studperf_assets/instance/`` (the embedded one a copy of the repository's ``dagster.yaml``,
held equal by a test; the PostgreSQL one, which the code-location image uses too) and the
code location is loaded by module.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from studperf_assets.deployment import DeploymentError

if TYPE_CHECKING:
    from studperf_assets.local.supervisor import Child, Supervisor

INSTANCE_TEMPLATES = Path(__file__).resolve().parent.parent / "instance"
TEMPLATE_BY_STORAGE = {"sqlite": "dagster.yaml", "postgres": "dagster.postgres.yaml"}
DEFAULT_STORAGE = "sqlite"  # STUDPERF_DAGSTER_STORAGE, unless set
CODE_LOCATION_MODULE = "studperf_assets.definitions"
# `dagster dev` is still Dagster 1.13's supported local runner; `dg dev` would need
# dagster-dg-cli and a dg project layout. Its notice says only that, on every start.
SUPERSEDED_NOTICE = "ignore:Function `dev_command` is superseded"


def seed_instance(home: Path, storage: str = DEFAULT_STORAGE) -> Path:
    """``home``/dagster.yaml from the template for ``storage``, unless one is there already
    (an operator's edits are kept)."""
    if storage not in TEMPLATE_BY_STORAGE:
        raise DeploymentError(
            f"STUDPERF_DAGSTER_STORAGE must be one of {tuple(TEMPLATE_BY_STORAGE)}, not {storage!r}"
        )
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        shutil.copyfile(INSTANCE_TEMPLATES / TEMPLATE_BY_STORAGE[storage], target)
    if storage == "sqlite":
        create_instance(home)
    return target


CREATED_MARK = ".studperf-instance-created"


def create_instance(home: Path) -> None:
    """Create the instance's storage once, under a file lock beside it: Dagster creates and
    stamps its SQLite storage on first use without a lock, and two commands opening a fresh
    home at once crashed (``UNIQUE constraint failed: alembic_version.version_num``, ``table
    runs already exists``). The same kind as the monitoring schema's lock
    (``resources.monitoring_schema``). Only the SQLite storage, whose files are here."""
    if (home / CREATED_MARK).exists():
        return
    from dagster import DagsterInstance
    from filelock import FileLock

    with FileLock(home / ".instance.lock"):
        if (home / CREATED_MARK).exists():
            return
        with DagsterInstance.from_config(str(home)) as instance:
            instance.get_runs(limit=1)
        (home / CREATED_MARK).touch()


def start_dagster_dev(
    supervisor: Supervisor, port: int, environ: Mapping[str, str], restart: bool = True
) -> Child:
    """Webserver, daemon and code server on loopback, for the installed code location.

    It runs in the instance folder (DAGSTER_HOME): from a checkout it would warn that the
    repository's dagster.yaml is not the instance's (true, and no help to anyone)."""
    command = [
        sys.executable, "-m", "dagster", "dev", "-m", CODE_LOCATION_MODULE,
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    notices = [w for w in (environ.get("PYTHONWARNINGS"), SUPERSEDED_NOTICE) if w]
    env = {**environ, "PYTHONWARNINGS": ",".join(notices)}
    return supervisor.start("dagster", command, env, restart, cwd=Path(environ["DAGSTER_HOME"]))
