"""Alert e-mails, as a reader wants them: an incident's (``IncidentNotice``: opened,
reminder, resolved), and one monitored batch's failed checks (``BatchAlert``, sent directly
only when the monitoring database cannot record the incident).

A small table per check or list (what, score, threshold) at three significant digits, and
links to the Dagster run and the report. A plain-text part and an HTML part carry the same
content.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

CHECK_TITLES = {
    "data_drift": "Input data drifted",
    "prediction_drift": "Predictions drifted",
    "performance": "Quality fell below the floor",
    "batch_records": "Records on the predictions stream that are not predictions",
    "batch_labels": "Ground truth could not be used",
    "batch_data_quality": "Inputs missing or out of range",
}


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
    checks, windows and drifted features (a table) for failed checks."""

    notice: str  # opened | reminder | resolved
    title: str
    facts: list[tuple[str, str]]
    links: dict[str, str] = field(default_factory=dict)
    tables: list[tuple[str, Table]] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return f"[studperf] {NOTICE_WORDS[self.notice]}: {self.title}"

    def _lead(self) -> str:
        if self.notice == "resolved":
            return f"Resolved: {self.title}."
        if self.notice == "reminder":
            return f"Still open: {self.title}."
        return f"New incident: {self.title}."

    def text(self) -> str:
        lines = [self._lead(), ""]
        lines += [f"  {k}: {v}" for k, v in self.facts]
        for title, table in self.tables:
            lines += ["", title, *_text_table(table)]
        lines += ["", *[f"{name}: {url}" for name, url in self.links.items() if url]]
        return "\n".join(lines).rstrip() + "\n"

    def html(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in self.facts
        )
        links = " · ".join(
            f'<a href="{e(url, quote=True)}">{e(name)}</a>'
            for name, url in self.links.items()
            if url
        )
        parts = [
            '<html><body style="font-family: sans-serif">',
            f"<p>{e(self._lead())}</p>",
            f'<table border="1" cellpadding="4" cellspacing="0">{rows}</table>',
            *[f"<h3>{e(title)}</h3>\n{_html_table(table)}" for title, table in self.tables],
            f"<p>{links}</p>" if links else "",
            "</body></html>",
        ]
        return "\n".join(p for p in parts if p)
