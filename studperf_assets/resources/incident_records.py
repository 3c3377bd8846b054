"""The monitoring database's incidents and monitoring status, as methods of
``MetricsDatabase`` (a mixin, so that the resource stays one object with one URL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from studperf_assets.lib.incidents import Incident, Verdict
from studperf_assets.resources.monitoring_schema import (
    CHECK_VERDICTS,
    INCIDENTS,
    MONITORING_STATUS,
    PARTITION_LENGTH,
)


def _aware(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite drops the zone


Window = tuple[str, str, dict[str, dict[str, Any]]]  # partition, run id, failed checks


def _bytewise(db: sa.Connection, column: Any) -> Any:
    """A window key compared and sorted byte by byte, as ``lib.incidents.window_order`` does
    (PostgreSQL's default collation may ignore punctuation; SQLite's is bytewise)."""
    return sa.collate(column, "C") if db.dialect.name == "postgresql" else column


def _incident(row: Any) -> Incident:
    return Incident(
        id=row["id"],
        key=row["incident_key"],
        kind=row["kind"],
        status=row["status"],
        title=row["title"],
        opened_at=_aware(row["opened_at"]),  # type: ignore[arg-type]
        last_seen_at=_aware(row["last_seen_at"]),  # type: ignore[arg-type]
        occurrences=row["occurrences"],
        first_partition=row["first_partition"],
        last_partition=row["last_partition"],
        resolved_at=_aware(row["resolved_at"]),
        notified_at=_aware(row["notified_at"]),
        notifications=row["notifications"],
        resolution_notified_at=_aware(row["resolution_notified_at"]),
        details=json.loads(row["details"]),
    )


class IncidentRecords:
    """Incidents and every partition's monitoring status."""

    def connect(self) -> AbstractContextManager[sa.Connection]:  # MetricsDatabase's
        raise NotImplementedError

    # ---- monitoring status ----------------------------------------------------------------
    def record_status(
        self,
        partition: str,
        status: str,
        run_id: str,
        step: str | None = None,
        error: str | None = None,
    ) -> None:
        """A partition was ``monitored``, or ``failed`` (at ``step``, with ``error``)."""
        values = {
            "partition": partition[:PARTITION_LENGTH],
            "status": status,
            "run_id": run_id[:64],
            "step": (step or "")[:200] or None,
            "error": error,
            "updated_at": datetime.now(UTC),
        }
        with self.connect() as db:
            db.execute(
                sa.delete(MONITORING_STATUS).where(
                    MONITORING_STATUS.c.partition == values["partition"]
                )
            )
            db.execute(sa.insert(MONITORING_STATUS).values(**values))

    def statuses(self) -> dict[str, dict[str, Any]]:
        """partition -> its status row."""
        with self.connect() as db:
            rows = db.execute(sa.select(MONITORING_STATUS)).mappings()
            return {r["partition"]: dict(r) for r in rows}

    # ---- incidents ------------------------------------------------------------------------
    def record_occurrence(
        self,
        key: str,
        kind: str,
        title: str,
        partition: str | None,
        details: dict[str, Any],
        at: datetime | None = None,
    ) -> Incident:
        """Count one occurrence of the open incident ``key``, opening it if none is open.
        Two processes opening it at once meet on the unique index; the loser counts its
        occurrence in the winner's incident."""
        at = at or datetime.now(UTC)
        where = partition[:PARTITION_LENGTH] if partition else None
        for _attempt in range(3):
            try:
                with self.connect() as db:
                    found = self._open(db, key)
                    if found is None:
                        db.execute(
                            sa.insert(INCIDENTS).values(
                                incident_key=key, kind=kind, status="open", title=title,
                                opened_at=at, last_seen_at=at, occurrences=1,
                                first_partition=where, last_partition=where, notifications=0,
                                details=json.dumps(details, default=str),
                            )
                        )  # fmt: skip
                    else:
                        db.execute(
                            sa.update(INCIDENTS)
                            .where(INCIDENTS.c.id == found.id)
                            .values(
                                last_seen_at=at,
                                occurrences=INCIDENTS.c.occurrences + 1,
                                last_partition=where or found.last_partition,
                                details=json.dumps({**found.details, **details}, default=str),
                            )
                        )
                    incident = self._open(db, key)
                    assert incident is not None
                    return incident
            except sa.exc.IntegrityError:
                continue  # opened by another process meanwhile: count it there
        raise RuntimeError(f"incident {key}: could not record an occurrence")

    @staticmethod
    def _open(db: sa.Connection, key: str) -> Incident | None:
        query = sa.select(INCIDENTS).where(
            INCIDENTS.c.incident_key == key, INCIDENTS.c.status == "open"
        )
        row = db.execute(query).mappings().first()
        return None if row is None else _incident(row)

    def incidents(self, status: str | None = None, kind: str | None = None) -> list[Incident]:
        query = sa.select(INCIDENTS).order_by(INCIDENTS.c.id)
        if status is not None:
            query = query.where(INCIDENTS.c.status == status)
        if kind is not None:
            query = query.where(INCIDENTS.c.kind == kind)
        with self.connect() as db:
            return [_incident(r) for r in db.execute(query).mappings()]

    def unsettled_incidents(self) -> Iterator[Incident]:
        """Open incidents, and resolved ones whose resolution has not been told yet."""
        query = (
            sa.select(INCIDENTS)
            .where(
                (INCIDENTS.c.status == "open")
                | (
                    INCIDENTS.c.notified_at.is_not(None)
                    & INCIDENTS.c.resolution_notified_at.is_(None)
                )
            )
            .order_by(INCIDENTS.c.id)
        )
        with self.connect() as db:
            rows = [_incident(r) for r in db.execute(query).mappings()]
        yield from rows

    def resolve_incidents(self, keys_like: str, at: datetime | None = None) -> list[Incident]:
        """Resolve the open incidents whose key starts with ``keys_like``; returns them."""
        at = at or datetime.now(UTC)
        with self.connect() as db:
            query = sa.select(INCIDENTS).where(
                INCIDENTS.c.status == "open", INCIDENTS.c.incident_key.startswith(keys_like)
            )
            found = [_incident(r) for r in db.execute(query).mappings()]
            if found:
                db.execute(
                    sa.update(INCIDENTS)
                    .where(INCIDENTS.c.id.in_([i.id for i in found]))
                    .values(status="resolved", resolved_at=at)
                )
        return found

    def mark_notified(self, incident_id: int, notice: str, at: datetime | None = None) -> None:
        """An e-mail about the incident went out: ``opened``/``reminder`` or ``resolved``."""
        at = at or datetime.now(UTC)
        values: dict[str, Any] = (
            {"resolution_notified_at": at}
            if notice == "resolved"
            else {"notified_at": at, "notifications": INCIDENTS.c.notifications + 1}
        )
        with self.connect() as db:
            db.execute(sa.update(INCIDENTS).where(INCIDENTS.c.id == incident_id).values(**values))

    # ---- failed checks --------------------------------------------------------------------
    def record_verdicts(
        self, partition: str, run_id: str, finished_at: datetime, verdicts: list[Verdict]
    ) -> None:
        """A monitored window's verdict per group of checks. The newest run of a window
        decides it (a run read again, or an older run read after a newer, changes nothing);
        a window that already belongs to an incident keeps it."""
        where = partition[:PARTITION_LENGTH]
        for _attempt in range(3):
            try:
                with self.connect() as db:
                    for verdict in verdicts:
                        self._record_verdict(db, where, run_id[:64], finished_at, verdict)
                return
            except sa.exc.IntegrityError:
                continue  # recorded by another process meanwhile: compare with theirs
        raise RuntimeError(f"window {partition}: could not record its check verdicts")

    @staticmethod
    def _record_verdict(
        db: sa.Connection, partition: str, run_id: str, finished_at: datetime, verdict: Verdict
    ) -> None:
        key = (CHECK_VERDICTS.c.partition == partition) & (
            CHECK_VERDICTS.c.check_group == verdict.group
        )
        values = {
            "passed": verdict.passed,
            "failed": json.dumps(verdict.failed, default=str, sort_keys=True),
            "run_id": run_id,
            "run_finished_at": finished_at,
        }
        found = db.execute(sa.select(CHECK_VERDICTS.c.run_finished_at).where(key)).first()
        if found is None:
            db.execute(
                sa.insert(CHECK_VERDICTS).values(
                    partition=partition, check_group=verdict.group, **values
                )
            )
        elif _aware(found[0]) <= finished_at:  # type: ignore[operator]
            db.execute(sa.update(CHECK_VERDICTS).where(key).values(**values))

    def unassigned_failures(self, group: str) -> list[Window]:
        """Failing windows of ``group`` that belong to no incident yet."""
        query = sa.select(CHECK_VERDICTS).where(
            CHECK_VERDICTS.c.check_group == group,
            CHECK_VERDICTS.c.passed.is_(False),
            CHECK_VERDICTS.c.incident_id.is_(None),
        )
        with self.connect() as db:
            rows = db.execute(query).mappings().all()
        return [(r["partition"], r["run_id"], json.loads(r["failed"])) for r in rows]

    def incident_windows(self, incident_id: int) -> list[Window]:
        """The windows of an incident that still fail (a re-run that passed leaves it)."""
        query = sa.select(CHECK_VERDICTS).where(
            CHECK_VERDICTS.c.incident_id == incident_id, CHECK_VERDICTS.c.passed.is_(False)
        )
        with self.connect() as db:
            rows = db.execute(query).mappings().all()
        return [(r["partition"], r["run_id"], json.loads(r["failed"])) for r in rows]

    def assign_windows(self, incident_id: int, group: str, partitions: list[str]) -> None:
        with self.connect() as db:
            db.execute(
                sa.update(CHECK_VERDICTS)
                .where(
                    CHECK_VERDICTS.c.check_group == group,
                    CHECK_VERDICTS.c.partition.in_(partitions),
                    CHECK_VERDICTS.c.incident_id.is_(None),
                )
                .values(incident_id=incident_id)
            )

    def verdicts_after(self, group: str, partition: str, limit: int) -> list[tuple[str, bool]]:
        """The first ``limit`` verdicts of ``group`` on windows after ``partition``, in
        window order: (partition, passed)."""
        with self.connect() as db:
            column = _bytewise(db, CHECK_VERDICTS.c.partition)
            query = (
                sa.select(CHECK_VERDICTS.c.partition, CHECK_VERDICTS.c.passed)
                .where(CHECK_VERDICTS.c.check_group == group, column > partition)
                .order_by(column)
                .limit(limit)
            )
            return [(r[0], bool(r[1])) for r in db.execute(query)]

    def latest_failure(self, group: str) -> str | None:
        """The latest failing window of ``group`` (in window order), whatever its incident."""
        with self.connect() as db:
            column = _bytewise(db, CHECK_VERDICTS.c.partition)
            query = (
                sa.select(CHECK_VERDICTS.c.partition)
                .where(CHECK_VERDICTS.c.check_group == group, CHECK_VERDICTS.c.passed.is_(False))
                .order_by(column.desc())
                .limit(1)
            )
            return db.execute(query).scalar()

    def open_incident(
        self, key: str, kind: str, title: str, partition: str, at: datetime
    ) -> Incident:
        """The open incident ``key``, opened now if none is (two openers meet on the unique
        index; the loser gets the winner's)."""
        where = partition[:PARTITION_LENGTH]
        for _attempt in range(3):
            try:
                with self.connect() as db:
                    found = self._open(db, key)
                    if found is not None:
                        return found
                    db.execute(
                        sa.insert(INCIDENTS).values(
                            incident_key=key, kind=kind, status="open", title=title,
                            opened_at=at, last_seen_at=at, occurrences=0,
                            first_partition=where, last_partition=where, notifications=0,
                            details="{}",
                        )
                    )  # fmt: skip
                    opened = self._open(db, key)
                    assert opened is not None
                    return opened
            except sa.exc.IntegrityError:
                continue
        raise RuntimeError(f"incident {key}: could not be opened")

    def update_incident(
        self,
        incident_id: int,
        first_partition: str,
        last_partition: str,
        occurrences: int,
        details: dict[str, Any],
        last_seen_at: datetime | None = None,
    ) -> Incident:
        """Set what an incident spans (computed from its windows, so setting it twice is
        setting it once)."""
        values: dict[str, Any] = {
            "first_partition": first_partition[:PARTITION_LENGTH],
            "last_partition": last_partition[:PARTITION_LENGTH],
            "occurrences": occurrences,
            "details": json.dumps(details, default=str),
        }
        if last_seen_at is not None:
            values["last_seen_at"] = last_seen_at
        with self.connect() as db:
            db.execute(sa.update(INCIDENTS).where(INCIDENTS.c.id == incident_id).values(**values))
            row = db.execute(sa.select(INCIDENTS).where(INCIDENTS.c.id == incident_id))
            return _incident(row.mappings().one())

    def resolve_incident(self, incident_id: int, at: datetime, details: dict[str, Any]) -> None:
        """Resolve one open incident, adding ``details`` (what resolved it)."""
        with self.connect() as db:
            row = db.execute(
                sa.select(INCIDENTS.c.details).where(
                    INCIDENTS.c.id == incident_id, INCIDENTS.c.status == "open"
                )
            ).first()
            if row is None:
                return
            merged = {**json.loads(row[0]), **details}
            db.execute(
                sa.update(INCIDENTS)
                .where(INCIDENTS.c.id == incident_id)
                .values(status="resolved", resolved_at=at, details=json.dumps(merged, default=str))
            )
