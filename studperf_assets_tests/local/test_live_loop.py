"""The running system, end to end: `studperf up` as a user starts it, the Dagster daemon
evaluating the sensors and launching every run in its own process, traffic from two
separate `studperf simulate` invocations. Nothing is ticked or executed in process here."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import boto3
import pytest
from dagster import (
    AssetCheckEvaluation,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)

from benchmarks.shell import sourced_environment
from studperf_assets.constants import (
    FAILED_CHECKS_TAG,
    VERDICT_TAG,
    WINDOW_ROWS_TAG,
    WINDOW_SMALL_TAG,
)
from studperf_assets.local.demo import as_text
from studperf_assets.local.moto import free_port, sent_emails
from studperf_assets.local.supervisor import processes_with
from studperf_assets.resources.evidently_workspace import panels
from studperf_assets_tests.browser import (
    at_least,
    attribute_is,
    chromium_page,
    screenshot,
    shows,
)

pytestmark = pytest.mark.integration

DRIFT = "absences=8,study=0.5"
NOT_A_PREDICTION = b'{"note": "written by hand, not by the Lambda"}'


def wait_for(what: str, condition: Callable[[], Any], timeout: float) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def clean_environment() -> dict[str, str]:
    """The environment of a user's fresh shell: no studperf, MLflow, Dagster or AWS settings,
    and no virtualenv activated (`make up` does not activate one)."""
    prefixes = ("STUDPERF_", "MLFLOW_", "DAGSTER_", "AWS_", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "").split(os.pathsep) if d != scripts)
    return env


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("live") / "home"
    ports = {name: str(free_port()) for name in ("AWS", "UI", "EVIDENTLY", "MLFLOW")}
    env = {
        **clean_environment(),
        "STUDPERF_HOME": str(home),
        **{f"STUDPERF_{name}_PORT": port for name, port in ports.items()},
        "STUDPERF_SENSOR_INTERVAL": "5",  # the default is 15 s; the test needs no patience
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "studperf_assets.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:  # whatever fails from here on, the stack is stopped
        yield start_reading(process, home)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for pid in processes_with("STUDPERF_HOME", str(home)):  # a stack killed mid-start
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def start_reading(process: subprocess.Popen[str], home: Path) -> dict[str, Any]:
    """Wait for `ready`; keep reading what the stack prints after it, as the terminal would
    show it (so that the pipe never fills); the environment of another shell, as
    docs/operations.md has it: `source stack.env`, then `studperf …` by name."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("ready "):
            break
    assert lines and lines[-1].startswith("ready "), "\n".join(lines)
    fields = dict(part.split("=", 1) for part in lines[-1].split()[1:])

    def read_on(stdout: IO[str]) -> None:
        for line in stdout:
            lines.append(line.rstrip())

    threading.Thread(target=read_on, args=(process.stdout,), daemon=True).start()
    env = sourced_environment(Path(fields["env"]), clean_environment())
    return {"home": home, "process": process, "lines": lines, "fields": fields, "env": env}


def studperf(live: dict[str, Any], *args: str) -> str:
    result = subprocess.run(
        ["studperf", *args],  # found on the PATH that stack.env sets
        env=live["env"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def runs(instance: DagsterInstance, job: str, status: DagsterRunStatus | None = None) -> list[Any]:
    statuses = [status] if status else []
    return list(instance.get_runs(filters=RunsFilter(job_name=job, statuses=statuses)))


def check_results(instance: DagsterInstance, run_id: str) -> dict[str, bool]:
    results = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if isinstance(evaluation, AssetCheckEvaluation):
            results[evaluation.check_name] = evaluation.passed
    return results


def in_process(instance: DagsterInstance, run_id: str) -> bool:
    engine = instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)
    return any("Executing steps in process" in (e.message or "") for e in engine)


def production_version(home: Path) -> str:
    return str(json.loads((home / "model_store" / "production.json").read_text())["version"])


def kinesis_of(env: dict[str, str]) -> Any:
    return boto3.client(
        "kinesis",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def window_runs(instance: DagsterInstance) -> dict[str, Any]:
    """The monitoring runs the window sensor launched, by window, once they all succeeded."""
    launched = [
        r
        for r in runs(instance, "monitoring_job")
        if r.tags.get("dagster/sensor_name") == "prediction_window_sensor"
    ]
    if any(r.status != DagsterRunStatus.SUCCESS for r in launched):
        return {}
    return {r.tags["dagster/partition"]: r for r in launched}


def rows_monitored(instance: DagsterInstance, at_least: int) -> dict[str, Any]:
    done = window_runs(instance)
    rows = sum(int(r.tags[WINDOW_ROWS_TAG]) for r in done.values())
    return done if rows >= at_least else {}


def send_calm_a_stray_record_and_drifted(
    live: dict[str, Any], kinesis: Any, instance: DagsterInstance
) -> list[str]:
    """400 calm students, monitored (so the drifted traffic starts a window of its own), then
    a record written on the predictions stream by hand (not by the Lambda: it opens the first
    drifted window), then 400 drifted students. Returns the calm windows."""
    studperf(live, "simulate", "--count", "400", "--seed", "1")
    calm = wait_for(
        "the calm traffic monitored (windows of 60 s, 15 s to settle)",
        lambda: rows_monitored(instance, 400),
        300,
    )
    kinesis.put_record(StreamName="studperf-predictions", Data=NOT_A_PREDICTION, PartitionKey="x")
    studperf(live, "simulate", "--count", "400", "--seed", "2", "--drift", DRIFT)
    return sorted(calm)


def assert_one_email_per_incident(
    live: dict[str, Any], calm: list[str], drifted: list[str], stray: str
) -> None:
    """Read back from moto's SES: one e-mail for the drift of the drifted windows (one
    incident) naming both checks, one for the stray record's batch_records, none about the
    calm windows."""
    ses = live["fields"]["aws"]

    def drift_emails() -> list[dict[str, Any]]:
        return [e for e in sent_emails(ses) if "OPEN: drift incident:" in e["subject"]]

    (drift,) = wait_for("the drift incident's e-mail", drift_emails, 120)
    time.sleep(10)  # a second e-mail for the same incident would come at the next tick
    emails = sent_emails(ses)
    subjects = sorted(e["subject"] for e in emails)
    assert len(drift_emails()) == 1, subjects  # one incident, not one e-mail per window
    assert "data_drift" in drift["subject"] and "prediction_drift" in drift["subject"], subjects
    assert drift["subject"].rsplit(" failed on ", 1)[1] in drifted, subjects
    records = [s for s in subjects if "OPEN: records incident: batch_records" in s]
    assert records == [f"[studperf] OPEN: records incident: batch_records failed on {stray}"]
    assert not [s for s in subjects if any(w in s for w in calm)], subjects
    assert f"{live['fields']['dagster']}/runs/" in drift["body"]  # a link to the run


def test_the_loop_runs_itself_under_the_daemon(live: dict[str, Any]) -> None:
    home: Path = live["home"]
    env = live["env"]
    assert env["AWS_ENDPOINT_URL"] == live["fields"]["aws"]
    first_bundle = production_version(home)  # `up` trained one: the store had none
    kinesis = kinesis_of(env)
    instance = DagsterInstance.from_config(str(home / "dagster"))
    calm = send_calm_a_stray_record_and_drifted(live, kinesis, instance)

    monitoring = wait_for(
        "every record monitored, in windows, by runs the daemon launched",
        lambda: rows_monitored(instance, 801),  # 800 predictions and the stray record
        300,
    )
    drifted = sorted(set(monitoring) - set(calm))
    assert drifted and min(drifted) > max(calm)
    checks = {window: check_results(instance, run.run_id) for window, run in monitoring.items()}
    for window in calm:
        assert checks[window] and all(checks[window].values()), (window, checks[window])
    stray = drifted[0]  # the stray record was written before the drifted traffic
    assert not checks[stray]["batch_records"]  # named, counted, and not fatal
    assert all(checks[w]["batch_records"] for w in drifted[1:])
    large = [w for w in drifted if monitoring[w].tags[WINDOW_SMALL_TAG] == "false"]
    assert large, {w: monitoring[w].tags for w in drifted}
    for window in large:
        assert not checks[window]["data_drift"] and not checks[window]["prediction_drift"]
    for run in monitoring.values():  # one process per run: the executor that fits the job
        assert in_process(instance, run.run_id)

    assert_one_email_per_incident(live, calm, drifted, stray)

    def retrained() -> list[Any]:
        done = runs(instance, "training_job", DagsterRunStatus.SUCCESS)
        return [r for r in done if r.tags.get("dagster/sensor_name") == "retraining_sensor"]

    (retraining,) = wait_for("the retraining run", retrained, 300)
    assert in_process(instance, retraining.run_id)
    trigger = retraining.tags["studperf/trigger"]
    assert trigger.split("@")[1] in drifted, trigger
    promoted = production_version(home)
    assert promoted != first_bundle

    def switched() -> list[str]:
        """More traffic, until the consumer's output names the promoted bundle."""
        from benchmarks.streams import read_stream

        studperf(live, "simulate", "--count", "20", "--no-labels")
        time.sleep(2)
        records = read_stream(kinesis, "studperf-predictions")
        versions = [r["model_version"] for r in records if "grade_class" in r]
        return versions if promoted in versions else []

    versions = wait_for("the consumer to serve the promoted bundle", switched, 180)
    switch = versions.index(promoted)
    assert switch >= 800 and set(versions[:switch]) == {first_bundle}
    assert set(versions[switch:]) == {promoted}  # hot-swapped once, without a restart

    told = {"monitoring": monitoring, "trigger": trigger}
    assert_the_terminal_told(live, told, promoted, first_bundle)
    assert_mlflow_told(live["fields"]["mlflow"], promoted, trigger)


def assert_mlflow_told(ui: str, promoted: str, trigger: str) -> None:
    """The MLflow UI `up` lists serves the registry: the champion is the promoted bundle,
    its run named for the retraining, and the champion check's verdict on it."""
    assert ui.endswith("?workflowType=machine_learning"), ui
    api = f"{ui.split('/#/', maxsplit=1)[0]}/api/2.0/mlflow"

    def get(path: str) -> Any:
        with urllib.request.urlopen(f"{api}/{path}", timeout=10) as response:
            return json.load(response)

    query = urllib.parse.urlencode({"name": "studperf-grade-class", "alias": "champion"})
    version = get(f"registered-models/alias?{query}")["model_version"]
    tags = {t["key"]: t["value"] for t in version["tags"]}
    assert tags["bundle_version"] == promoted
    assert tags["champion_check"] == "passed"
    assert version["description"].startswith("Promoted to champion, replacing ")
    run = get(f"runs/get?run_id={version['run_id']}")["run"]
    checks, window = trigger.split("@")
    assert run["info"]["run_name"] == f"retraining · {checks} · {window}"


def assert_the_terminal_told(
    live: dict[str, Any], told: dict[str, Any], promoted: str, first_bundle: str
) -> None:
    """The terminal `up` runs in told the same story, one line per event."""

    def printed(label: str) -> list[str]:
        return [line for line in live["lines"] if f" {label}: " in line]

    windows = [line.split(" monitored: ", 1)[1].split(": ")[0] for line in printed("monitored")]
    assert sorted(told["monitoring"]) == sorted(windows)
    alerted = [line.split(" alert sent: ")[1] for line in printed("alert sent")]
    (drift,) = [a for a in alerted if a.startswith("incident opened: drift incident: ")]
    assert "data_drift" in drift and "prediction_drift" in drift, alerted
    (retraining_line,) = printed("retraining")
    assert f"retraining: {told['trigger'].replace('@', ' failed on ')};" in retraining_line
    assert printed("promoted")[-1].endswith(f"production -> {promoted}")
    assert printed("consumer swapped")[-1].endswith(f"{first_bundle} -> {promoted}")
    assert not printed("run FAILED")


def test_the_operator_sees_the_loop_in_a_browser(live: dict[str, Any], tmp_path: Path) -> None:
    """Headless Chromium against the three UIs of the `ready` line, after the loop above: the
    Dagster UI loads the code location and shows the drifted window as failed (its run's
    verdict tags in the runs list; the failed drift checks in each check's partitions, while
    the partition itself stays green "Materialized": Dagster OSS does not turn checks into
    partition health), the Evidently dashboard plots every panel, and the MLflow registry
    shows the champion alias on the promoted bundle. Screenshots land in ``tmp_path``."""
    instance = DagsterInstance.from_config(str(live["home"] / "dagster"))
    drifted, calm = wait_for("a drifted and a calm window judged", lambda: judged(instance), 300)
    fields = live["fields"]
    with chromium_page() as page:
        dagster_shows_the_drifted_window(page, fields["dagster"], drifted, calm, tmp_path)
        evidently_plots_every_panel(page, fields["evidently"], tmp_path)
        mlflow_shows_the_champion(
            page, fields["mlflow"], production_version(live["home"]), tmp_path
        )
    print(f"screenshots: {tmp_path}")


def judged(instance: DagsterInstance) -> tuple[Any, Any] | None:
    """A window whose run says both drift checks failed, and one whose run says it passed."""
    done = [
        r
        for r in runs(instance, "monitoring_job", DagsterRunStatus.SUCCESS)
        if r.tags.get("dagster/sensor_name") == "prediction_window_sensor"
    ]
    drifted = [
        r
        for r in done
        if r.tags.get(VERDICT_TAG) == "failed"
        and {"data_drift", "prediction_drift"} <= set(r.tags.get(FAILED_CHECKS_TAG, "").split())
    ]
    calm = [r for r in done if r.tags.get(VERDICT_TAG) == "passed"]
    return (drifted[0], calm[0]) if drifted and calm else None


def dagster_shows_the_drifted_window(
    page: Any, ui: str, drifted: Any, calm: Any, folder: Path
) -> None:
    """The code location loaded; the runs list tags the drifted window's run failed (green
    itself: the window was monitored); data_drift and prediction_drift failed on its
    partition in the check's Partitions tab, passed on the calm one; the partition's own
    status is "Materialized"."""
    window, calm_window = drifted.tags["dagster/partition"], calm.tags["dagster/partition"]
    # what the UI's own "Skip" does in this browser: the community pop-up covers every page
    page.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")

    page.goto(f"{ui}/deployment/locations")
    body = page.locator("body")
    shows(page, "the code location loaded", lambda: (
        "studperf_assets.definitions" in body.inner_text() and "Loaded" in body.inner_text()
    ))  # fmt: skip
    screenshot(page, folder, "dagster-code-location.png")

    page.goto(f"{ui}/runs")
    failed_tags = (
        f"{VERDICT_TAG}: failed",
        f"{FAILED_CHECKS_TAG}: {drifted.tags[FAILED_CHECKS_TAG]}",
        f"partition: {window}",
    )
    shows(page, "the drifted window's verdict tags", lambda: all(
        t in body.inner_text() for t in (drifted.run_id[:8], *failed_tags)
    ))  # fmt: skip
    assert f"{VERDICT_TAG}: passed" in body.inner_text()  # the calm window's run
    screenshot(page, folder, "dagster-runs.png")
    query = urllib.parse.quote(f"tag:{VERDICT_TAG}=failed")
    page.goto(f"{ui}/runs?q%5B0%5D={query}")  # the runs list filtered by the verdict
    shows(page, "the failed verdicts alone", lambda: drifted.run_id[:8] in body.inner_text())
    assert calm.run_id[:8] not in body.inner_text()

    for check in ("data_drift", "prediction_drift"):
        page.goto(f"{ui}/assets/drift_report?view=checks&checkDetail={check}")
        history = page.get_by_role("tab", name="Execution history")  # the check's own tabs
        page.get_by_role("tablist").filter(has=history).get_by_role(
            "tab", name="Partitions"
        ).click()
        for key, verdict in ((calm_window, "Passed"), (window, "Failed")):
            page.get_by_text(key, exact=True).filter(visible=True).first.click()
            badge = page.locator(  # the badge beside the selected partition's title
                f"xpath=//span[div[@title='{key}']]/following-sibling::span[1]//*[@data-tooltip]"
            )
            shows(page, f"{check} {verdict} on {key}", attribute_is(badge, "data-tooltip", verdict))
        screenshot(page, folder, f"dagster-check-{check}.png")

    page.goto(f"{ui}/assets/drift_report?view=partitions&partition={urllib.parse.quote(window)}")
    status = page.locator(f"xpath=//span[div[@title='{window}']]/following-sibling::*[1]")
    shows(page, "the partition's status", lambda: status.count() and status.first.inner_text())
    assert status.first.inner_text().strip() == "Materialized"  # checks are not its health
    screenshot(page, folder, "dagster-partition.png")
    page.goto(f"{ui}/assets")
    shows(page, "the asset catalog", lambda: "drift_report" in body.inner_text())
    screenshot(page, folder, "dagster-catalog.png")


def evidently_plots_every_panel(page: Any, ui: str, folder: Path) -> None:
    """The studperf project's dashboard: every panel has a line with a point per window for
    each of its series (at least the calm and the drifted window)."""
    page.goto(ui)
    page.get_by_role("link", name="studperf", exact=True).first.click()
    for _tab, panel in panels():
        card = page.locator(".MuiCard-root").filter(
            has=page.get_by_role("heading", name=panel.title, exact=True)
        )
        points = card.locator("circle.MuiMarkElement-root")
        needed = 2 * len(panel.values)  # a point per series and window
        shows(page, f"the panel {panel.title!r} plotted", at_least(points, needed))
    screenshot(page, folder, "evidently-dashboard.png", full_page=True)


def mlflow_shows_the_champion(page: Any, ui: str, promoted: str, folder: Path) -> None:
    """The MLflow UI `up` lists, in the model-training view: the registered model's page
    shows the champion alias on the version of the promoted bundle, and on no other."""
    page.goto(ui)
    shows(page, "the experiments", lambda: "studperf" in page.inner_text("body"))
    registry = ui.replace("#/experiments", "#/models/studperf-grade-class")
    page.goto(registry)
    rows = page.get_by_role("row").filter(has=page.locator('[title="champion"]'))
    shows(page, "the champion alias", rows.count)
    assert rows.count() == 1
    assert promoted in rows.first.inner_text()  # its bundle_version tag
    close = page.get_by_role("button", name="Close")  # MLflow's assistant panel, when open
    if close.count() == 1:
        close.click()
    screenshot(page, folder, "mlflow-registry.png")


def test_a_window_that_cannot_be_monitored_reaches_the_on_call(live: dict[str, Any]) -> None:
    """Field fault: a monitoring run that failed alerted nobody. A whole window of records
    that are not predictions fails its run; through the daemon, the on-call gets one e-mail
    naming the job, the window, the step and the error, the terminal says the window was not
    monitored, and the monitoring database holds it as failed."""
    import sqlalchemy as sa

    kinesis = kinesis_of(live["env"])
    instance = DagsterInstance.from_config(str(live["home"] / "dagster"))
    # whatever is on the stream is monitored first (a small window closes after 90 s), so
    # that the garbage makes a window of its own
    total = len(_all_records(kinesis, "studperf-predictions"))
    wait_for("the traffic so far monitored", lambda: rows_monitored(instance, total), 300)
    entries = [{"Data": NOT_A_PREDICTION, "PartitionKey": str(i)} for i in range(200)]
    kinesis.put_records(StreamName="studperf-predictions", Records=entries)

    def failure_email() -> list[dict[str, Any]]:
        return [
            e
            for e in sent_emails(live["fields"]["aws"])
            if e["subject"].startswith(
                "[studperf] OPEN: monitoring_job failed at prediction_windows"
            )
        ]

    (email,) = wait_for("the failure e-mail", failure_email, 300)
    batch = email["subject"].split("(")[1].split(")")[0]
    assert "none of its 200 records is a prediction" in email["subject"]
    assert "window(s)  " + batch in as_text(email["body"])  # the HTML part, as a table
    told = f"not monitored: {batch}"
    wait_for("the terminal line", lambda: [t for t in live["lines"] if told in t], 60)
    engine = sa.create_engine(f"sqlite:///{live['home'] / 'monitoring.db'}")
    with engine.connect() as connection:
        status = connection.execute(
            sa.text("SELECT status, step FROM monitoring_status WHERE partition = :p"), {"p": batch}
        ).one()
    assert tuple(status) == ("failed", "prediction_windows")
    time.sleep(10)  # the next ticks send nothing more about it
    assert len(failure_email()) == 1


def test_a_killed_consumer_is_restarted_and_loses_nothing(live: dict[str, Any]) -> None:
    from benchmarks.streams import read_stream
    from studperf_assets.local.supervisor import processes_with

    home: Path = live["home"]
    consumers = [
        pid
        for pid in processes_with("STUDPERF_HOME", str(home))
        if b"\0stream\0" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(consumers) == 1
    os.kill(consumers[0], signal.SIGKILL)  # no goodbye: whatever it held in hand is redone
    studperf(live, "simulate", "--count", "30", "--seed", "4", "--no-labels")
    kinesis = kinesis_of(live["env"])
    sent = {json.loads(r["Data"])["request_id"] for r in _all_records(kinesis, "studperf-input")}

    def all_scored() -> bool:
        scored = {r.get("request_id") for r in read_stream(kinesis, "studperf-predictions")}
        return sent <= scored

    wait_for("every record scored after the restart", all_scored, 120)
    restarted = [
        pid
        for pid in processes_with("STUDPERF_HOME", str(home))
        if b"\0stream\0" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert restarted and restarted != consumers  # the supervisor started a new one


def _all_records(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    records = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            records += response["Records"]
            if not response["Records"]:
                break
            iterator = response.get("NextShardIterator")
    return records


def test_stop_leaves_nothing_behind(live: dict[str, Any]) -> None:
    process: subprocess.Popen[str] = live["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert processes_with("STUDPERF_HOME", str(live["home"])) == []
