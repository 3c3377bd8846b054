"""The package's rooms and the directions they may import in.

Each module is imported alone (the project's modules purged from ``sys.modules`` first), so a
cycle that only bites when a given module is imported first fails here, not in a user's shell.
The module-level import graph (lazy imports inside functions and ``TYPE_CHECKING`` blocks are
not edges) must point only downward in the ranks below; an upward edge names its module.
Loading the code location imports none of the heavy libraries (its steps import them), and
the benchmarks and scripts import nothing of the tests.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("studperf_assets", "lambda_service")

# A room may import only rooms of a lower rank (and itself). Equal ranks do not import
# each other.
RANK = {
    "lambda_service": 0,
    "constants": 1,
    "partitions": 1,
    "deployment": 1,
    "lib": 1,
    "resources": 2,
    "assets": 3,
    "jobs": 3,
    "sensors": 4,
    "schedules": 4,
    "definitions": 5,
    "local": 6,
    "cli": 7,
}
# What each room may import from the third-party world is limited only for the pure rooms.
NO_DAGSTER = {"lambda_service", "lib"}
LAMBDA_FORBIDDEN = {"dagster", "mlflow", "pandas", "evidently", "sklearn"}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" in path.parts or path.name == "__main__.py":
                continue  # run by Alembic or ``python -m``, never imported
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def room(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "lambda_service":
        return "lambda_service"
    return parts[1] if len(parts) > 1 else "studperf_assets"


def module_level_imports(module: str, path: Path, lazy: bool = False) -> set[str]:
    """Absolute names imported when the module is executed (not inside functions), or,
    with ``lazy``, anywhere in it (inside functions too)."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".")[: None if is_package else -1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
            elif lazy and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(node.body)
            elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
                visit(node.body)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "orelse", []))
                visit(getattr(node, "finalbody", []))

    visit(ast.parse(path.read_text()).body)
    return names


def test_every_module_imports_alone() -> None:
    script = (
        "import importlib, sys, traceback\n"
        f"names = {sorted(modules())!r}\n"
        "failed = []\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in "
        f"{PACKAGES!r}]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        failed.append(name + ': ' + traceback.format_exc().splitlines()[-1])\n"
        "print('\\n'.join(failed))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_imports_point_down_the_ranks() -> None:
    """Lazy imports (inside functions) included: a step that imports the command line when
    it runs is an upward import all the same."""
    found = modules()
    upward = []
    for module, path in found.items():
        source = room(module)
        if source == "studperf_assets":
            continue  # the package's __init__ imports nothing of its own
        for imported in module_level_imports(module, path, lazy=True):
            if imported not in found:
                continue
            target = room(imported)
            if target in (source, "studperf_assets"):
                continue
            if RANK[target] >= RANK[source]:
                upward.append(f"{module} -> {imported}")
    assert upward == []


def test_the_pure_rooms_import_no_orchestration() -> None:
    offending = []
    for module, path in modules().items():
        source = room(module)
        imported = {name.split(".")[0] for name in module_level_imports(module, path)}
        if source in NO_DAGSTER and "dagster" in imported:
            offending.append(f"{module} imports dagster")
        if source == "lambda_service":
            offending += [f"{module} imports {n}" for n in sorted(imported & LAMBDA_FORBIDDEN)]
            if "studperf_assets" in imported:
                offending.append(f"{module} imports studperf_assets")
    assert offending == []


def test_the_ranks_name_every_room() -> None:
    rooms = {room(module) for module in modules()} - {"studperf_assets"}
    assert rooms == set(RANK)


def test_the_graph_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a relative import from lib into sensors is found and ranked up."""
    path = tmp_path / "labels.py"
    path.write_text("from ..sensors import runs\nimport dagster\n")
    names = module_level_imports("studperf_assets.lib.labels", path)
    assert "studperf_assets.sensors.runs" in names
    assert RANK[room("studperf_assets.sensors.runs")] > RANK[room("studperf_assets.lib.labels")]


def test_the_graph_checker_sees_a_lazy_import(tmp_path: Path) -> None:
    """An import inside a function is not a module-level edge, but it is an upward one."""
    path = tmp_path / "training.py"
    path.write_text("def step():\n    from studperf_assets.cli.terminal import progress\n")
    module = "studperf_assets.assets.training"
    assert "studperf_assets.cli.terminal" not in module_level_imports(module, path)
    assert "studperf_assets.cli.terminal" in module_level_imports(module, path, lazy=True)


def test_benchmarks_and_scripts_do_not_import_the_tests() -> None:
    """The tests may use the benchmarks' helpers (``benchmarks.shell``, ``benchmarks.streams``),
    never the other way round: a benchmark or script runs without the test package."""
    offending = []
    for folder in ("benchmarks", "scripts"):
        for path in sorted((REPO / folder).rglob("*.py")):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            imported = module_level_imports(module, path, lazy=True)
            offending += [
                f"{module} -> {n}"
                for n in sorted(imported)
                if n.split(".")[0] == "studperf_assets_tests"
            ]
    assert offending == []


HEAVY = ("sklearn", "evidently", "mlflow", "skl2onnx", "skops", "onnxruntime", "scipy")


def test_loading_the_code_location_imports_no_heavy_library() -> None:
    code = (
        "import sys, studperf_assets.definitions as d; d.defs().resolve_asset_graph();"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
