"""Where studies live: a SQLite file or a PostgreSQL database, through SQLAlchemy.

A new database holds the study as optuna journal records in one table
(:mod:`emsim.optimise._journal`): a batch of finished trials is one transaction, and each
worker keeps the study in memory, reading only the records added since it last looked.
Databases that already hold optuna's RDB tables (``studies``, ``trials``, ...: written by
emsim before the journal, or by optuna itself) keep that layout and open with optuna's
:class:`~optuna.storages.RDBStorage` as before; other SQLAlchemy dialects (MySQL, ...) use it
too. Either way only finished trials are written, a batch at a time (RDB layout: a trial at a
time), so killing a worker at any moment loses at most the batch it had in flight and never
leaves a trial half-written.

A study records the problem's fingerprint in its user attributes and refuses to be resumed
by a different problem.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import optuna

from emsim.errors import OptimiseError
from emsim.optimise._spec import SPEC_KEY

__all__ = ["open_storage", "journal_engine", "close_storage", "storage_layout", "open_study", "WorkerLease",
           "FINGERPRINT_KEY", "PROBLEM_KEY", "UID_KEY", "RDB_TABLES"]

FINGERPRINT_KEY = "emsim.problem_fingerprint"
PROBLEM_KEY = "emsim.problem"
_WORKER_PREFIX = "emsim.worker:"
UID_KEY = "emsim.uid"  # identity of a trial across the shared study and each worker's mirror
#: Tables of optuna's RDB storage whose presence means "this database uses the RDB layout".
RDB_TABLES = ("studies", "trials", "version_info")

optuna.logging.set_verbosity(optuna.logging.WARNING)

_OPEN_ATTEMPTS = 5
_RACES = ("IntegrityError", "database is locked")
_URLS = "sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB"


def open_storage(url: str | None):
    """An optuna storage for ``url`` (``None``: in memory, not persistent).

    The layout is read from the database: the journal table (or an empty database of a
    supported dialect) → the journal storage; optuna's RDB tables, or another dialect →
    :class:`optuna.storages.RDBStorage`. SQLite gets a generous lock timeout so that several
    local worker processes can share a file; PostgreSQL URLs
    (``postgresql+psycopg://user@host:port/db``) work the same.

    Raises
    ------
    OptimiseError
        The URL is malformed, its driver is missing, or the database cannot be opened.
    """
    if url is None:
        return optuna.storages.InMemoryStorage()
    if not isinstance(url, str) or "://" not in url:
        raise OptimiseError("not a storage URL", path="storage", value=url, allowed=_URLS)
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            return _open(url)
        except OptimiseError:
            raise
        except Exception as exc:  # sqlalchemy/driver errors come in many types; all mean "cannot open"
            # Workers starting together race to create the tables, and to switch a new SQLite file
            # to WAL (which SQLite refuses at once, without waiting, while another connection
            # upgrades its lock): the loser finds the tables, or WAL, next time.
            if attempt < _OPEN_ATTEMPTS - 1 and any(m in type(exc).__name__ + repr(exc) for m in _RACES):
                time.sleep(0.2 * (attempt + 1) * (1.0 + random.random()))
                continue
            raise OptimiseError(f"storage cannot be opened ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
                                path="storage", value=_redact(url),
                                allowed="a reachable SQLite file or PostgreSQL database URL") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _engine_kwargs(url: str) -> dict[str, Any]:
    return {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}


def _open(url: str):
    import sqlalchemy

    from emsim.optimise._journal import JOURNAL_DIALECTS, JOURNAL_TABLE, BatchJournalStorage, SQLJournalBackend

    engine = sqlalchemy.create_engine(url, **_engine_kwargs(url))
    tables = set(sqlalchemy.inspect(engine).get_table_names())
    engine.dispose()
    if JOURNAL_TABLE in tables or (engine.dialect.name in JOURNAL_DIALECTS and not tables & set(RDB_TABLES)):
        return BatchJournalStorage(SQLJournalBackend(journal_engine(url)))
    storage = optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    if url.startswith("sqlite"):
        _sqlite_wal(storage.engine)
    return storage


def journal_engine(url: str):
    """A SQLAlchemy engine on ``url`` set up for :class:`~emsim.optimise._journal.SQLJournalBackend`."""
    import sqlalchemy

    from emsim.optimise._journal import prepare_sqlite

    kwargs = _engine_kwargs(url)
    if url.startswith("sqlite"):
        # the lease's heartbeat thread writes too; the pool hands a connection to one thread at a time
        kwargs["connect_args"]["check_same_thread"] = False
    engine = sqlalchemy.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        prepare_sqlite(engine)
    return engine


def storage_layout(storage) -> str:
    """``"journal"``, ``"rdb"`` (optuna's tables) or ``"memory"``."""
    if isinstance(storage, optuna.storages.JournalStorage):
        return "journal"
    if isinstance(storage, optuna.storages._CachedStorage):  # how optuna wraps an RDB storage in a study
        storage = storage._backend
    return "rdb" if isinstance(storage, optuna.storages.RDBStorage) else "memory"


def close_storage(storage) -> None:
    """Close the database connections of a storage from :func:`open_storage` (it may open them again)."""
    engine = getattr(storage, "engine", None) or getattr(getattr(storage, "_backend", None), "engine", None)
    if engine is not None:
        engine.dispose()


def _sqlite_wal(engine) -> None:
    from sqlalchemy import event

    from emsim.optimise._journal import sqlite_wal

    event.listen(engine, "connect", lambda dbapi_conn, _record: sqlite_wal(dbapi_conn))
    engine.dispose()  # connections opened before the listener existed


def _redact(url: str) -> str:
    """The URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}:***@{host}" if ":" in cred else url
    return url


def open_study(storage, name: str, problem, *, sampler, resume: bool, spec: dict | None = None):
    """Create the study ``name`` for ``problem``, or (``resume=True``) join the existing one.

    ``spec`` (JSON-safe, optional) is stored with the study once it is known to belong to
    ``problem`` (:mod:`emsim.optimise._spec`: what ``emsim optimise --resume`` rebuilds the
    problem from); it replaces an earlier one.

    Raises
    ------
    OptimiseError
        The study exists and ``resume`` is false; it belongs to a different problem; it was
        not created by emsim.
    """
    fp = problem.fingerprint()
    existing = _study_names(storage)
    if name in existing and not resume:
        raise OptimiseError("a study of this name exists already", path="study", value=name,
                            allowed="resume=True (--resume) to continue it, or another study name")
    try:
        if name in existing:  # loading writes nothing (creating would log a refused creation in a journal)
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
            if [d.name.lower() for d in study.directions] != list(problem.directions):
                raise ValueError(f"directions {[d.name.lower() for d in study.directions]}")
        else:  # another worker may create it at the same moment
            study = optuna.create_study(storage=storage, sampler=sampler, study_name=name,
                                        directions=list(problem.directions), load_if_exists=True)
    except ValueError as exc:  # the directions differ from the stored study's
        raise OptimiseError(f"study {name!r} belongs to a different problem ({exc})", path="study",
                            value=name, allowed="the same problem, or another study name") from None
    attrs = study.user_attrs
    stored = attrs.get(FINGERPRINT_KEY)
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise OptimiseError("study was not created by emsim optimise", path="study", value=name,
                                allowed="a study created by emsim optimise, or a new name")
        study.set_user_attr(FINGERPRINT_KEY, fp)
        study.set_user_attr(PROBLEM_KEY, problem.describe())
    elif stored != fp:
        raise OptimiseError("study belongs to a different problem (objectives, space, patients, device or limits "
                            "differ)", path="study", value=name,
                            allowed="the same problem as when it was created, or another study name")
    if spec is not None:
        study.set_user_attr(SPEC_KEY, spec)
    return study


def _study_names(storage) -> set[str]:
    try:
        return {s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)}
    except Exception as exc:  # a storage that opened but cannot be read
        raise OptimiseError(f"storage cannot be read ({type(exc).__name__})", path="storage") from None


class WorkerLease:
    """Heartbeat of one worker process: how many candidates it has in flight, and since when.

    Candidates are asked and told in a private in-memory mirror of the study and written to
    the shared storage only when evaluated, so the database never holds a half-finished
    trial. The lease lets workers sharing one study see each other's batches in flight (so
    they do not overshoot the budget); a worker silent for longer than ``grace_s`` is dead
    and its in-flight count no longer counts.
    """

    def __init__(self, study, *, interval_s: float = 2.0, grace_s: float = 10.0):
        self.study = study
        self.token = uuid.uuid4().hex[:12]
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.in_flight = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> "WorkerLease":
        self.beat()
        self._thread = threading.Thread(target=self._run, name=f"emsim-lease-{self.token}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.interval_s)
        try:
            self.study.set_user_attr(_WORKER_PREFIX + self.token, [-1.0, 0])  # gone
        except Exception:  # the storage may be what failed; nothing more to do
            pass

    def heartbeat(self, in_flight: int | None = None) -> dict:
        """The study attribute a beat writes now (to write it with other records: ``_Mirror.push``)."""
        if in_flight is not None:
            self.in_flight = in_flight
        return {_WORKER_PREFIX + self.token: [time.time(), self.in_flight]}

    def beat(self, in_flight: int | None = None) -> None:
        for key, value in self.heartbeat(in_flight).items():
            self.study.set_user_attr(key, value)

    def _attrs(self) -> dict:
        # read-only: Study.user_attrs would deep-copy every attribute (the stored patient document too)
        return self.study._storage.get_study_user_attrs(self.study._study_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except BaseException as exc:  # noqa: BLE001 - reported by the search loop
                self.error = exc
                return

    def n_workers_seen(self) -> int:
        return sum(1 for k in self._attrs() if k.startswith(_WORKER_PREFIX))

    def others_in_flight(self) -> int:
        """Candidates other live workers are evaluating now."""
        now = time.time()
        n = 0
        for key, value in self._attrs().items():
            if not key.startswith(_WORKER_PREFIX) or key == _WORKER_PREFIX + self.token:
                continue
            last, count = value
            if last >= 0 and now - last <= self.grace_s:
                n += int(count)
        return n
