"""The documentation stays true to the code and to itself.

- The variable tables of docs/configuration.md are the ones ``scripts/docs_configuration.py``
  renders from ``ENVIRONMENT_VARIABLES`` (the code location's and the Lambda's).
- Every reference to a README or docs section names a heading that exists, by GitHub's anchor
  rules: markdown links in README.md and docs/ (``[..](docs/x.md#y)``, ``[..](#y)``), and in
  code, tests, Terraform and CI files ``docs/x.md#y`` and ``README, "Section"`` / ``README §X``.
- Every repository path the docs name in backticks exists.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Where code, tests and configuration may point into the docs.
CODE_ROOTS = (
    "studperf_assets",
    "lambda_service",
    "studperf_assets_tests",
    "benchmarks",
    "scripts",
    "terraform",
    "deploy",
    ".github",
    ".ci",
)
CODE_SUFFIXES = {".py", ".tf", ".yml", ".yaml", ".toml", ".sh", ".cfg", ".ini", ".hcl", ""}
TOP_FILES = ("Makefile", "Dockerfile", "docker-compose.yml", "pyproject.toml", "dagster.yaml")
PATH_SUFFIXES = "py|md|yaml|yml|json|txt|sh|toml|tf|csv|sql|hcl|png|cfg|ini"


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: its text (code marks and link targets dropped),
    lower case, punctuation removed but hyphens and underscores, spaces turned to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    kept = "".join(
        c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN"
    )  # letters and numbers
    return kept.replace(" ", "-")


def headings(markdown: str) -> list[str]:
    """The ATX headings of a markdown text, outside code fences."""
    found, fence = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and (match := re.match(r"#{1,6} (.+?)\s*#*\s*$", line)):
            found.append(match.group(1))
    return found


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every anchor GitHub gives the headings of ``path`` (a repeated heading gets -1, -2…)."""
    seen: dict[str, int] = {}
    result = set()
    for heading in headings(path.read_text()):
        anchor = github_anchor(heading)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    return frozenset(result)


def without_code(markdown: str) -> str:
    """The text outside code fences and inline code (where links are not links)."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def link_problem(source: Path, target: str) -> str | None:
    """What is wrong with a link from ``source`` to ``target``, or None."""
    if re.match(r"[a-z]+:", target):
        return None  # http(s), mailto: another site's business
    file_part, _, anchor = target.partition("#")
    path = (source.parent / file_part).resolve() if file_part else source
    if not path.exists():
        return f"{target}: no file {path.relative_to(REPO) if REPO in path.parents else path}"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"{target}: no heading with the anchor #{anchor} in {path.name}"
    return None


def code_files() -> list[Path]:
    files = [REPO / name for name in TOP_FILES if (REPO / name).exists()]
    for root in CODE_ROOTS:
        files += [
            p
            for p in sorted((REPO / root).rglob("*"))
            if p.is_file()
            and p.suffix in CODE_SUFFIXES
            and not {"results", "__pycache__", ".terraform"} & set(p.parts)
            and p != Path(__file__).resolve()  # its examples are broken on purpose
        ]
    return files


def flattened(text: str) -> str:
    """Comments and docstrings wrap: join the lines, dropping comment marks, so that a
    reference split over two lines is read whole."""
    return re.sub(r"\s*\n\s*(?:#+|//)?\s*", " ", text)


def code_reference_problems(path: Path) -> list[str]:
    text = flattened(path.read_text(errors="replace"))
    where = path.relative_to(REPO) if REPO in path.parents else path
    problems = []
    for target in re.findall(r"\bdocs/[\w-]+\.md(?:#[\w-]+)?", text):
        if problem := link_problem(REPO / "README.md", target):
            problems.append(f"{where}: {problem}")
    readme = {*(h.replace("`", "").lower() for h in headings((REPO / "README.md").read_text()))}
    named = re.findall(r"README(?:'s)?(?:,| §|, section| section) ?[\"“]([^\"”]+)[\"”]", text)
    named += re.findall(r"README §\s*([\w` :-]+?)(?:[,.;)]|$)", text)
    for section in named:
        wanted = section.replace("`", "").strip().lower()
        if not any(h == wanted or h.split(":")[0] == wanted for h in readme):
            problems.append(f"{where}: README has no section {section!r}")
    return problems


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_configuration", REPO / "scripts" / "docs_configuration.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_tables_are_current() -> None:
    generator = load_generator()
    current = generator.DOC.read_text()
    assert generator.render(current) == current, (
        f"docs/configuration.md's variable tables are not current: run {generator.COMMAND}"
    )


def test_every_variable_the_code_reads_has_a_row() -> None:
    """The generator's own guard: a variable added to either list without a meaning fails."""
    generator = load_generator()
    generator.CODE_LOCATION.pop("STUDPERF_HOME")
    try:
        generator.tables()
    except SystemExit as refusal:
        assert "STUDPERF_HOME" in str(refusal)
    else:
        raise AssertionError("a variable without a meaning was rendered")


def test_the_defaults_in_the_tables_are_read_from_the_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A default changed in the code changes the table (none is copied into the script)."""
    from dataclasses import field, make_dataclass

    from lambda_service import config as lambda_config
    from studperf_assets import deployment
    from studperf_assets.cli import terminal
    from studperf_assets.local import instance, moto_server, stack

    monkeypatch.setattr(deployment, "DEFAULT_HOME", ".elsewhere")
    monkeypatch.setattr(
        deployment, "LOCAL_FILES", {**deployment.LOCAL_FILES, "mlflow_tracking_uri": "ml.db"}
    )
    monkeypatch.setattr(deployment, "DAGSTER_FOLDER", "orchestrator")
    monkeypatch.setattr(
        deployment, "Deployment",
        make_dataclass("Deployment", [("sensor_interval_seconds", int, field(default=7)),
                                      ("sensors_running", bool, field(default=False))],
                       bases=(deployment.Deployment,), frozen=True),
    )  # fmt: skip
    monkeypatch.setattr(instance, "DEFAULT_STORAGE", "postgres")
    monkeypatch.setattr(moto_server, "DEFAULT_RETENTION_SECONDS", 120.0)
    monkeypatch.setattr(terminal, "DEFAULT_LEVEL", "WARNING")
    monkeypatch.setattr(
        stack,
        "StackPorts",
        make_dataclass("StackPorts", [("ui", int, 3999)], bases=(stack.StackPorts,)),
    )
    monkeypatch.setattr(lambda_config, "DEFAULT_REFRESH_SECONDS", 33)
    monkeypatch.setattr(lambda_config, "DEFAULT_PUT_MAX_ATTEMPTS", 8)
    tables = load_generator().tables()
    rows = {
        line.split(" | ")[0].strip("| `"): line.split(" | ")[1]
        for table in tables.values()
        for line in table.splitlines()[2:]
    }
    assert rows["STUDPERF_HOME"] == "`./.elsewhere`"
    assert rows["MLFLOW_TRACKING_URI"] == "`sqlite:///$STUDPERF_HOME/ml.db`"
    assert rows["DAGSTER_HOME"] == "`$STUDPERF_HOME/orchestrator`"
    assert rows["STUDPERF_SENSOR_INTERVAL"] == "`7`" and rows["STUDPERF_SENSORS"] == "`stopped`"
    assert rows["STUDPERF_DAGSTER_STORAGE"] == "`postgres`"
    assert rows["STUDPERF_LOCAL_KINESIS_RETENTION"] == "`120`"
    assert rows["STUDPERF_LOG_LEVEL"] == "`WARNING`" and rows["STUDPERF_UI_PORT"] == "`3999`"
    assert rows["MODEL_REFRESH_SECONDS"] == "`33`" and rows["PUT_MAX_ATTEMPTS"] == "`8`"


def test_markdown_links_name_files_and_headings_that_exist() -> None:
    problems = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", without_code(doc.read_text())):
            if problem := link_problem(doc, target):
                problems.append(f"{doc.relative_to(REPO)}: {problem}")
    assert not problems, "\n".join(problems)


def test_references_from_code_name_headings_that_exist() -> None:
    problems = [p for path in code_files() for p in code_reference_problems(path)]
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The reference checks themselves, on references known to be broken and known good."""
    assert github_anchor("Running the platform: `make up`") == "running-the-platform-make-up"
    assert github_anchor("CI/CD (`.github/workflows/`)") == "cicd-githubworkflows"
    assert github_anchor("Training on 1,000,000 rows") == "training-on-1000000-rows"
    bad = tmp_path / "bad.py"
    bad.write_text(
        '# see README, "Known\n# limits" and docs/monitoring.md#nowhere and docs/nothing.md\n'
        "# docs/monitoring.md#checks-and-thresholds is fine\n"
    )
    problems = code_reference_problems(bad)
    assert any("Known limits" in p for p in problems), problems
    assert any("#nowhere" in p for p in problems), problems
    assert any("nothing.md" in p for p in problems), problems
    assert len(problems) == 3, problems


def test_paths_the_docs_name_exist() -> None:
    """A path in backticks with a folder and a file type is a path from the repository's
    root, and it exists (placeholders such as ``bundles/<key>/…`` are not paths)."""
    pattern = re.compile(rf"`([\w.-]+(?:/[\w.-]+)+\.(?:{PATH_SUFFIXES}))`")
    missing = [
        f"{doc.relative_to(REPO)}: {path}"
        for doc in DOCS
        for path in pattern.findall(doc.read_text())
        if not (REPO / path).exists()
    ]
    assert not missing, "\n".join(missing)
