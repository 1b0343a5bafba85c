"""A study database as one append-only table of optuna journal records, through SQLAlchemy Core.

optuna's RDB storage writes a finished trial as ~70 SQL statements (the trial, each parameter,
each attribute, the values) and has no batched write: measured 22 ms per evaluation on SQLite
on a quiet 2-core machine, three times the evaluation itself. optuna's :class:`JournalStorage`
instead keeps the study in memory and persists it as a log of operations, in which a finished
trial is one record; this module stores that log in a database table (``emsim_journal``:
``log_number``, ``record`` as JSON text) and writes a whole batch of finished trials as one
transaction of one multi-row ``INSERT``.

Every reader must see the records in one total order that never gets a record inserted before
records already read (a replayed study would otherwise differ between workers). Records are
therefore numbered densely (0, 1, 2, ...) by the writer, from the largest number in the table,
while it holds the table's write lock until its commit: SQLite's single writer (``BEGIN
IMMEDIATE``, so the lock is taken before the largest number is read), PostgreSQL's ``LOCK TABLE
... IN EXCLUSIVE MODE`` (plain reads are not blocked). A transaction that numbers a record
``k + 1`` can only start after the one holding ``k`` committed, so a reader never sees a hole
that is filled later; the primary key refuses a number used twice.

Only SQLite and PostgreSQL are supported here (their locking is what the order rests on);
other SQLAlchemy dialects keep optuna's RDB storage (:mod:`emsim.optimise._storage`).
"""

from __future__ import annotations

import json
import zlib
from contextlib import contextmanager
from datetime import timezone
from typing import Any, Sequence

from optuna.distributions import distribution_to_json
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import FrozenTrial
from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, Text, event, func, insert, inspect, select, text

from emsim.errors import OptimiseError

__all__ = ["JOURNAL_TABLE", "JOURNAL_DIALECTS", "SQLJournalBackend", "BatchJournalStorage", "journal_table",
           "prepare_sqlite", "sqlite_wal"]

JOURNAL_TABLE = "emsim_journal"
JOURNAL_DIALECTS = ("sqlite", "postgresql")
# optuna's journal operation codes (optuna.storages.journal._storage.JournalOperation, a private
# enum; the numbers are part of optuna's journal file format, which old files rely on).
_SET_STUDY_USER_ATTR = 2
_CREATE_TRIAL = 4
# PostgreSQL advisory lock held while the table is created (any fixed 64-bit number; crc32 of the name)
_CREATE_LOCK_KEY = zlib.crc32(JOURNAL_TABLE.encode())

_metadata = MetaData()
journal_table = Table(
    JOURNAL_TABLE, _metadata,
    # SQLite: INTEGER PRIMARY KEY is the rowid itself, no second index to keep
    Column("log_number", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("record", Text, nullable=False),
)


def prepare_sqlite(engine) -> None:
    """SQLite transactions as this module needs them: WAL, and ``BEGIN IMMEDIATE`` for appends.

    pysqlite opens transactions itself, lazily and deferred; a deferred transaction that reads
    the largest record number and then writes fails at once (``SQLITE_BUSY_SNAPSHOT``, no busy
    wait) when another process appended in between. So pysqlite's own handling is switched off
    and each transaction begins explicitly: ``IMMEDIATE`` (write lock first, waiting up to the
    busy timeout) when appending, deferred when reading. WAL with ``synchronous=NORMAL`` is
    crash-safe for a killed process (nothing committed is lost) without an fsync per commit,
    and readers do not block the writer.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        sqlite_wal(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("emsim_append") else "BEGIN")


def sqlite_wal(dbapi_conn) -> None:
    """WAL and ``synchronous=NORMAL`` on a new pysqlite connection (both layouts use them)."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class SQLJournalBackend(BaseJournalBackend):
    """optuna journal records in the table ``emsim_journal`` of a SQLite or PostgreSQL database.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        Opened on the study database; a SQLite engine must have been through
        :func:`prepare_sqlite`. The table is created if missing.
    """

    def __init__(self, engine):
        if engine.dialect.name not in JOURNAL_DIALECTS:
            raise OptimiseError("no journal storage for this database", path="storage", value=engine.dialect.name,
                                allowed=", ".join(JOURNAL_DIALECTS))
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        if not inspect(engine).has_table(JOURNAL_TABLE):
            self._create_table()

    def _create_table(self) -> None:
        # Workers starting together must not both find no table and both create it.
        with self._appending() as conn:
            if self._postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK_KEY})
            _metadata.create_all(conn, checkfirst=True)

    @contextmanager
    def _appending(self):
        """A transaction holding the database's write lock (SQLite) from its start."""
        with self.engine.connect() as conn:
            conn.execution_options(emsim_append=True)
            with conn.begin():
                yield conn

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        query = (select(journal_table.c.log_number, journal_table.c.record)
                 .where(journal_table.c.log_number >= log_number_from).order_by(journal_table.c.log_number))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        logs = []
        for expected, (number, record) in enumerate(rows, start=log_number_from):
            if number != expected:  # appends number densely under the write lock: a hole means damage
                raise OptimiseError(f"study journal has no record {expected} (next is {number}): the database was "
                                    "changed outside emsim", path="storage", value=JOURNAL_TABLE,
                                    allowed="a journal written only by emsim optimise")
            logs.append(json.loads(record))
        return logs

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if not logs:
            return
        records = [json.dumps(log, separators=(",", ":")) for log in logs]
        with self._appending() as conn:
            if self._postgres:
                # Commits stay synchronous (measured ~0.5 ms/eval faster without): a server crash
                # must not take back records that workers elsewhere have already read.
                conn.execute(text(f"LOCK TABLE {JOURNAL_TABLE} IN EXCLUSIVE MODE"))
            first = conn.execute(select(func.coalesce(func.max(journal_table.c.log_number) + 1, 0))).scalar_one()
            conn.execute(insert(journal_table), [{"log_number": first + i, "record": r} for i, r in enumerate(records)])


class BatchJournalStorage(JournalStorage):
    """optuna's journal storage with one more write: many finished trials in one append.

    ``Study.add_trials`` adds one trial at a time (one transaction each); :meth:`add_trials`
    writes the same records optuna's ``create_new_trial(template_trial=...)`` writes, for the
    whole batch at once, so a batch is stored completely or not at all.
    """

    def add_trials(self, study_id: int, trials: Sequence[FrozenTrial], user_attrs: dict | None = None) -> None:
        """Store finished ``trials`` (and set the study's ``user_attrs``) in the study ``study_id``, in one
        transaction."""
        for t in trials:
            t._validate()
            if not t.state.is_finished():
                raise ValueError(f"trial {t.number} is not finished ({t.state.name})")
        with self._thread_lock:
            worker_id = self._replay_result.worker_id
            logs = [_create_trial_log(study_id, t, worker_id) for t in trials]
            logs += [{"op_code": _SET_STUDY_USER_ATTR, "worker_id": worker_id, "study_id": study_id,
                      "user_attr": {k: v}} for k, v in (user_attrs or {}).items()]
            self._backend.append_logs(logs)
            self._sync_with_backend()


def _utc(dt) -> str | None:
    return None if dt is None else dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _create_trial_log(study_id: int, trial: FrozenTrial, worker_id: str) -> dict[str, Any]:
    """The journal record optuna 5's ``JournalStorage.create_new_trial(study_id, template_trial=trial)`` writes."""
    multi = trial.values is not None and len(trial.values) > 1
    log: dict[str, Any] = {
        "op_code": _CREATE_TRIAL, "worker_id": worker_id, "study_id": study_id,
        "datetime_start": _utc(trial.datetime_start), "state": int(trial.state),
        "value": None if multi else trial.value, "values": trial.values if multi else None,
        "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
        "params": {k: trial.distributions[k].to_internal_repr(v) for k, v in trial.params.items()},
        "user_attrs": trial.user_attrs, "system_attrs": trial.system_attrs,
        "intermediate_values": trial.intermediate_values,
    }
    if trial.datetime_complete is not None:
        log["datetime_complete"] = _utc(trial.datetime_complete)
    return log

