"""Alert e-mails, as a reader wants them: an incident's (``IncidentNotice``: opened,
reminder, resolved), and one monitored batch's failed checks (``BatchAlert``, sent directly
only when the monitoring database cannot record the incident).

An incident's e-mail leads with its severity, then what happened and since when, what the
platform is already doing about it, one "what to check" line per failed check, small tables
(what, score, threshold) at three significant digits, and links that open from a laptop
(http(s) only: ``lib.alert_links``). A plain-text part and an HTML part carry the same
content.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from studperf_assets.lib.alert_links import is_web

CHECK_TITLES = {
    "data_drift": "Input data drifted",
    "prediction_drift": "Predictions drifted",
    "performance": "Quality fell below the floor",
    "batch_records": "Records on the predictions stream that are not predictions",
    "batch_labels": "Ground truth could not be used",
    "batch_data_quality": "Inputs missing or out of range",
}


# What the on-call looks at first, per check that can open an incident: one line each.
CHECK_RUNBOOK = {
    "data_drift": "open the Evidently report: which features moved, and is it a new population "
    "(retraining follows) or an upstream change of units or forms (fix the producer)?",
    "prediction_drift": "compare the predicted grades with the reference in the Evidently "
    "report; without input drift, check which model version served (a recent promotion?)",
    "performance": "f1-macro on labelled rows fell below the floor: rule out bad labels "
    "(the labels incident) first, then read the confusion matrix in the quality report",
    "batch_records": "open the named archive objects at the named lines: something other "
    "than the Lambda writes to the predictions stream, or a Lambda release changed its records",
    "batch_labels": "fix and re-upload the named label files (a rewritten file is read "
    "again); a conflict needs the label source to say which grade is right",
    "batch_data_quality": "find the producer sending the named inputs missing or out of "
    "range, and why the Lambda's validation (lambda_service/schema.py) let them through",
}
# The same for incidents that are not failed checks: by kind, or by kind and job.
INCIDENT_RUNBOOK = {
    "run_failed:monitoring_job": "open the failed run's step and its error; once fixed, "
    "materialize the window's partitions again (the incident resolves when each is monitored)",
    "run_failed:training_job": "open the failed run; the champion keeps serving, and the next "
    "successful training run resolves this",
    "run_failed:monitoring_daily_job": "open the failed run and materialize the day's "
    "monitoring_daily partition again; the day's windows are kept until it is rolled up",
    "run_failed": "open the failed run's step and its error",
    "run_stuck": "a run holds a run slot: open it, terminate it if it is hung, and check the "
    "daemon's run monitoring and the run worker's process",
    "sensor_failing": "open the sensor's ticks (Automation) for the error; its work waits "
    "until a good tick, which resolves this",
    "database_down": "check that the monitoring database (STUDPERF_METRICS_DB_URL) answers; "
    "nothing is lost, the waiting runs are recorded once it does",
    "alerts_undelivered": "check SES: the sender identity is verified and the account is out "
    "of the sandbox",
}
SEVERITIES = ("WARN", "ERROR")  # AssetCheckSeverity's values, least severe first


def highest_severity(severities: list[str]) -> str:
    """The most severe of ``severities`` (an unknown value counts as ERROR)."""
    ranked = [SEVERITIES.index(s) if s in SEVERITIES else len(SEVERITIES) - 1 for s in severities]
    return SEVERITIES[max(ranked)] if ranked else SEVERITIES[-1]


def sig(value: Any, digits: int = 3) -> str:
    """A number at ``digits`` significant digits; anything else as text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if math.isnan(value):  # nothing was judged
        return "n/a"
    return f"{value:.{digits}g}"


Row = tuple[str, ...]


@dataclass
class Table:
    columns: Row
    rows: list[Row]


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


def _data_drift(m: dict[str, Any]) -> Table:
    scores: dict[str, float] = m.get("feature_scores", {})
    thresholds: dict[str, float] = m.get("feature_thresholds", {})
    drifted = set(m.get("drifted_features", []))
    rows: list[Row] = [
        (feature, sig(score), sig(thresholds.get(feature, "")), _yes(feature in drifted))
        for feature, score in sorted(scores.items(), key=lambda kv: -kv[1])
    ]
    share = sig(m.get("drift_share"))
    rows.append(("share of features drifted", share, sig(m.get("threshold")), ""))
    return Table(("feature", "score", "threshold", "drifted"), rows)


def _prediction_drift(m: dict[str, Any]) -> Table:
    what = "prediction distribution (Jensen-Shannon)"
    row = (what, sig(m.get("prediction_drift")), sig(m.get("threshold")))
    return Table(("measure", "score", "threshold"), [row])


def _performance(m: dict[str, Any]) -> Table:
    what = f"f1-macro over {m.get('labelled_rows')} labelled rows"
    row = (what, sig(m.get("f1_macro")), sig(m.get("floor")))
    return Table(("measure", "score", "threshold"), [row])


def _batch_records(m: dict[str, Any]) -> Table:
    listed = list(m.get("first_unreadable", []))
    rows: list[Row] = [
        (
            f"{str(e.get('object', '')).rsplit('/', 1)[-1]} line {e.get('line')}",
            str(e.get("reason")),
        )
        if "object" in e
        else (f"shard {e.get('shard')} sequence {e.get('sequence')}", str(e.get("reason")))
        for e in listed
    ]  # a window's records are named by archive object and line (a batch's, by stream)
    hidden = int(m.get("unreadable_records", len(listed))) - len(listed)
    if hidden > 0:
        rows.append((f"{hidden} more", "not listed"))
    return Table(("record", "problem"), rows)


def _batch_labels(m: dict[str, Any]) -> Table:
    rows: list[Row] = [
        (key, problem) for key, problem in dict(m.get("rejected_label_files", {})).items()
    ]
    if m.get("conflicting_labels"):
        count = f"{m['conflicting_labels']} predictions"
        rows.append((count, "labelled with two different grades"))
    if m.get("labels_unavailable", "no") != "no":
        rows.append(("monitoring database", str(m["labels_unavailable"])))
    return Table(("what", "problem"), rows)


def _batch_data_quality(m: dict[str, Any]) -> Table:
    bad = dict(m.get("bad_values", {}))
    return Table(("feature", "bad values"), [(k, str(v)) for k, v in sorted(bad.items())])


def _any_check(m: dict[str, Any]) -> Table:
    shown = {k: v for k, v in m.items() if not isinstance(v, dict | list)}
    return Table(("measure", "value"), [(k, sig(v)) for k, v in sorted(shown.items())])


def _text_table(table: Table) -> list[str]:
    widths = [
        max(len(str(r[i])) for r in [table.columns, *table.rows]) for i in range(len(table.columns))
    ]
    return [
        "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [table.columns, *table.rows]
    ]


def _html_table(table: Table) -> str:
    e = html.escape
    head = "".join(f'<th align="left">{e(c)}</th>' for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in table.rows
    )
    return f'<table border="1" cellpadding="4" cellspacing="0"><tr>{head}</tr>{body}</table>'


TABLES = {
    "data_drift": _data_drift,
    "prediction_drift": _prediction_drift,
    "performance": _performance,
    "batch_records": _batch_records,
    "batch_labels": _batch_labels,
    "batch_data_quality": _batch_data_quality,
}


@dataclass
class FailedCheck:
    name: str
    metadata: dict[str, Any]

    @property
    def title(self) -> str:
        return CHECK_TITLES.get(self.name, self.name)

    def table(self) -> Table:
        return TABLES.get(self.name, _any_check)(self.metadata)


@dataclass
class BatchAlert:
    partition: str
    checks: list[FailedCheck]
    rows: int | None = None
    model_version: str = ""
    run_url: str = ""
    report_url: str = ""
    extra_links: dict[str, str] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        names = ", ".join(c.name for c in self.checks)
        return f"[studperf] {self.partition}: {len(self.checks)} check(s) failed ({names})"

    def _facts(self) -> list[tuple[str, str]]:
        facts = [("batch", self.partition)]
        if self.rows is not None:
            facts.append(("predictions in the batch", str(self.rows)))
        if self.model_version:
            facts.append(("model version", self.model_version))
        return facts

    def _links(self) -> list[tuple[str, str]]:
        links = [("Dagster run", self.run_url), ("Drift report", self.report_url)]
        return [(name, url) for name, url in [*links, *self.extra_links.items()] if url]

    def text(self) -> str:
        lines = [f"Monitoring found {len(self.checks)} failed check(s) on {self.partition}.", ""]
        lines += [f"  {k}: {v}" for k, v in self._facts()]
        for check in self.checks:
            lines += ["", f"{check.title} ({check.name})", *_text_table(check.table())]
        lines.append("")
        lines += [f"{name}: {url}" for name, url in self._links()]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        e = html.escape
        parts = [
            '<html><body style="font-family: sans-serif">',
            f"<p>Monitoring found <b>{len(self.checks)}</b> failed check(s) "
            f"on <b>{e(self.partition)}</b>.</p>",
            "<p>" + "<br>".join(f"{e(k)}: {e(v)}" for k, v in self._facts()) + "</p>",
        ]
        for check in self.checks:
            parts.append(f"<h3>{e(check.title)} <small>({e(check.name)})</small></h3>")
            parts.append(_html_table(check.table()))
        links = " · ".join(
            f'<a href="{e(url, quote=True)}">{e(name)}</a>' for name, url in self._links()
        )
        parts += [f"<p>{links}</p>" if links else "", "</body></html>"]
        return "\n".join(p for p in parts if p)


NOTICE_WORDS = {"opened": "OPEN", "reminder": "STILL OPEN", "resolved": "RESOLVED"}


@dataclass
class IncidentNotice:
    """The e-mail owed for an incident (``lib.incidents``): when it opens, as a reminder
    while it stays open, and when it is resolved. Facts come from the incident's details:
    the job, step, error and run for a failed run; the sensor and error for a sensor; the
    checks, windows and drifted features (a table) for failed checks. ``doing`` says what
    the platform is already doing about it, ``runbook`` what to check first (by check or
    kind); links that are not http(s) are left out."""

    notice: str  # opened | reminder | resolved
    title: str
    facts: list[tuple[str, str]]
    links: dict[str, str] = field(default_factory=dict)
    tables: list[tuple[str, Table]] = field(default_factory=list)
    severity: str = "ERROR"
    doing: list[str] = field(default_factory=list)
    runbook: list[tuple[str, str]] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return f"[studperf] {NOTICE_WORDS[self.notice]}: {self.title}"

    def web_links(self) -> list[tuple[str, str]]:
        return [(name, url) for name, url in self.links.items() if is_web(url)]

    def _lead(self) -> str:
        if self.notice == "resolved":
            return f"Resolved: {self.title}."
        if self.notice == "reminder":
            return f"Still open: {self.title}."
        return f"New incident: {self.title}."

    def _severity(self) -> str:
        return f"Severity: {self.severity}"

    def text(self) -> str:
        lines = [self._lead(), self._severity(), ""]
        lines += [f"  {k}: {v}" for k, v in self.facts]
        if self.doing:
            lines += ["", "What the platform is doing", *[f"  {line}" for line in self.doing]]
        if self.runbook:
            lines += ["", "What to check", *[f"  {k}: {v}" for k, v in self.runbook]]
        for title, table in self.tables:
            lines += ["", title, *_text_table(table)]
        links = self.web_links()
        if links:
            lines += ["", "Links", *[f"  {name}: {url}" for name, url in links]]
        return "\n".join(lines).rstrip() + "\n"

    def html(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in self.facts
        )
        colour = "#b00020" if self.severity == "ERROR" else "#8a5a00"
        parts = [
            '<html><body style="font-family: sans-serif">',
            f"<p>{e(self._lead())}<br><b style='color: {colour}'>{e(self._severity())}</b></p>",
            f'<table border="1" cellpadding="4" cellspacing="0">{rows}</table>',
        ]
        if self.doing:
            items = "\n".join(f"<li>{e(line)}</li>" for line in self.doing)
            parts.append(f"<h3>What the platform is doing</h3>\n<ul>\n{items}\n</ul>")
        if self.runbook:
            items = "\n".join(f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in self.runbook)
            parts.append(f"<h3>What to check</h3>\n<ul>\n{items}\n</ul>")
        parts += [f"<h3>{e(title)}</h3>\n{_html_table(table)}" for title, table in self.tables]
        links = self.web_links()
        if links:
            items = "\n".join(
                f'<li><a href="{e(url, quote=True)}">{e(name)}</a></li>' for name, url in links
            )
            parts.append(f"<h3>Links</h3>\n<ul>\n{items}\n</ul>")
        parts.append("</body></html>")
        return "\n".join(parts)
