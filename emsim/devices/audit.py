"""The session audit log: one SQLite file per log, durable record by record.

Every command sent to a stimulator and every reply, every operator action, state change,
validator decision and stop cause is one row of the ``event`` table, committed before the
call returns. The commit uses ``PRAGMA synchronous=FULL`` in WAL mode, so a record that was
written survives a crash of the process (``kill -9``) and a power loss once the call returned
[SQLite documentation, "PRAGMA synchronous" and "Write-Ahead Logging"]. Drivers call
:meth:`AuditLog.tx` *before* writing a frame to the port: the log may show a command that
never reached the device, never a command that reached it unrecorded.

Tables
------
``session``  one row per loaded program: program hash (SHA-256 of the canonical program JSON),
             program name, patient id, device, emsim version, operator, session number and the
             wall-clock start time (UTC).
``event``    ``mono_ns`` (:func:`time.monotonic_ns`, for intervals), ``wall`` (UTC ISO 8601),
             ``kind`` (tx, rx, operator, state, stop_cause, validator, error, info),
             ``payload_hex`` (raw frame bytes) and ``decoded`` (JSON).

Research use only: emsim has no clinical clearance.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from emsim.errors import DeviceError, InputFileError

__all__ = ["AuditLog", "KINDS", "read_sessions", "read_events", "format_session", "FORMAT"]

FORMAT = "emsim.audit/1"
KINDS = ("tx", "rx", "operator", "state", "stop_cause", "validator", "error", "info")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS session (
    id INTEGER PRIMARY KEY,
    started_wall TEXT NOT NULL,
    program_hash TEXT,
    program_name TEXT,
    patient_id TEXT,
    device TEXT,
    emsim_version TEXT NOT NULL,
    operator TEXT,
    session_number INTEGER,
    host TEXT,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS event (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES session(id),
    mono_ns INTEGER NOT NULL,
    wall TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload_hex TEXT,
    decoded TEXT
);
CREATE INDEX IF NOT EXISTS event_session ON event(session_id, id);
"""


def _now_wall() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _jsonable(obj: Any):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"type": type(obj).__name__, **{f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}}
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return str(obj)


def _dumps(decoded: Any) -> str | None:
    if decoded is None:
        return None
    return json.dumps(decoded, default=_jsonable, ensure_ascii=False, sort_keys=True)


class AuditLog:
    """Append-only audit log in a SQLite file (created if missing; existing sessions are kept).

    Parameters
    ----------
    path : str or Path
    operator : str, optional
        Default operator recorded with each session.
    device : str, optional
        Default device recorded with each session.

    Thread-safe: the driver's reader and heartbeat threads and the operator's thread share it.
    """

    def __init__(self, path: str | Path, *, operator: str | None = None, device: str | None = None):
        from emsim import __version__

        self.path = Path(path)
        self.operator = operator
        self.device = device
        self._version = __version__
        # Re-entrant: a signal handler that emergency-stops may interrupt this thread inside
        # record() and write its own record; a plain lock would deadlock there.
        self._lock = threading.RLock()
        self._session_id: int | None = None
        self._session_has_program = False
        self._session_fields: tuple | None = None
        try:
            # isolation_level=None: autocommit, so each INSERT is its own durable transaction.
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                       timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('format', ?)", (FORMAT,))
        except sqlite3.Error as exc:
            raise DeviceError(f"cannot open the audit log ({exc})", path=str(path)) from exc

    # ------------------------------------------------------------------ writing
    @property
    def session_id(self) -> int | None:
        return self._session_id

    def begin_session(self, *, program_hash: str | None = None, patient_id: str | None = None,
                      device: str | None = None, operator: str | None = None,
                      program_name: str | None = None, session_number: int | None = None) -> int:
        """Start a session row (or complete the current one if no program was recorded yet)."""
        fields = (program_hash, program_name, patient_id, device or self.device,
                  operator or self.operator, session_number)
        with self._lock:
            if self._session_fields == fields:
                return self._session_id  # validate-then-load of the same program: one session
            self._session_fields = fields
            if self._session_id is not None and not self._session_has_program:
                self._db.execute("UPDATE session SET program_hash=?, program_name=?, patient_id=?, device=?,"
                                 " operator=?, session_number=? WHERE id=?", (*fields, self._session_id))
            else:
                self._session_id = self._insert_session(*fields)
            self._session_has_program = program_hash is not None
            return self._session_id

    def _insert_session(self, program_hash, program_name, patient_id, device, operator, session_number) -> int:
        cur = self._db.execute(
            "INSERT INTO session(started_wall, program_hash, program_name, patient_id, device, emsim_version,"
            " operator, session_number, host, pid) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (_now_wall(), program_hash, program_name, patient_id, device, self._version, operator,
             session_number, socket.gethostname(), os.getpid()))
        return int(cur.lastrowid)

    def record(self, kind: str, decoded: Any = None, payload: bytes | None = None) -> int:
        """Append one event and commit it; returns its row id."""
        if kind not in KINDS:
            raise DeviceError("unknown audit record kind", path="kind", value=kind, allowed=", ".join(KINDS))
        text = _dumps(decoded)
        hexed = bytes(payload).hex() if payload is not None else None
        with self._lock:
            if self._session_id is None:
                self._session_id = self._insert_session(None, None, None, self.device, self.operator, None)
            cur = self._db.execute(
                "INSERT INTO event(session_id, mono_ns, wall, kind, payload_hex, decoded) VALUES (?,?,?,?,?,?)",
                (self._session_id, time.monotonic_ns(), _now_wall(), kind, hexed, text))
            return int(cur.lastrowid)

    def tx(self, frame: bytes, decoded: Any = None) -> int:
        """Record a frame about to be sent. Committed when this returns: send only after it."""
        return self.record("tx", decoded, bytes(frame))

    def rx(self, frame: bytes, decoded: Any = None) -> int:
        """Record a frame received from the device."""
        return self.record("rx", decoded, bytes(frame))

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- reading

def _open_ro(path: str | Path) -> sqlite3.Connection:
    p = Path(path)
    if not p.is_file():
        raise InputFileError("audit log not found", path=str(path), unreadable=True)
    try:
        # Read-write open (not mode=ro) so SQLite can replay a WAL left by a killed writer.
        db = sqlite3.connect(str(p), timeout=10.0)
        db.row_factory = sqlite3.Row
        fmt = db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
    except sqlite3.Error as exc:
        raise InputFileError(f"not an emsim audit log ({exc})", path=str(path), unreadable=True) from exc
    if fmt is None or fmt[0] != FORMAT:
        raise InputFileError("not an emsim audit log", path=str(path), value=fmt and fmt[0], allowed=FORMAT,
                             unreadable=True)
    return db


def read_sessions(path: str | Path) -> list[dict]:
    """All session rows, oldest first, each with its event count."""
    db = _open_ro(path)
    try:
        rows = db.execute("SELECT s.*, (SELECT COUNT(*) FROM event e WHERE e.session_id = s.id) AS n_events"
                          " FROM session s ORDER BY s.id").fetchall()
        return [dict(r) for r in rows]
    finally:
        db.close()


def read_events(path: str | Path, session_id: int | None = None) -> list[dict]:
    """Events of one session (default: all), in write order, with ``decoded`` parsed from JSON."""
    db = _open_ro(path)
    try:
        q = "SELECT * FROM event" + (" WHERE session_id = ?" if session_id is not None else "") + " ORDER BY id"
        rows = db.execute(q, () if session_id is None else (session_id,)).fetchall()
    finally:
        db.close()
    out = []
    for r in rows:
        d = dict(r)
        d["decoded"] = json.loads(d["decoded"]) if d["decoded"] else None
        out.append(d)
    return out


def _describe(ev: dict) -> str:
    d = ev["decoded"]
    kind = ev["kind"]
    if kind == "state" and isinstance(d, dict):
        return f"{d.get('from')} -> {d.get('to')}"
    if kind == "operator" and isinstance(d, dict):
        rest = ", ".join(f"{k}={v}" for k, v in d.items() if k != "action")
        return f"{d.get('action')}{' (' + rest + ')' if rest else ''}"
    if kind == "stop_cause" and isinstance(d, dict):
        tag = "EMERGENCY STOP" if d.get("emergency") else "stop"
        return f"{tag}: {d.get('cause')}{' (repeated)' if d.get('repeat') else ''}"
    if kind == "validator" and isinstance(d, dict):
        if d.get("ok"):
            return f"passed for {d.get('device')} / patient {d.get('patient')} ({len(d.get('warnings') or [])} warning(s))"
        return f"REFUSED for {d.get('device')} / patient {d.get('patient')}: " + "; ".join(d.get("errors") or [])
    if kind in ("tx", "rx"):
        text = ev["payload_hex"] or ""
        text = " ".join(text[i:i + 2] for i in range(0, len(text), 2))
        summary = d.get("type") if isinstance(d, dict) and "type" in d else (d if isinstance(d, str) else None)
        return f"{text}{'  ' + str(summary) if summary else ''}"
    if d is None:
        return ""
    return json.dumps(d, ensure_ascii=False, sort_keys=True)


def format_session(session: dict, events: list[dict], *, limit_frames: int | None = None) -> list[str]:
    """Readable lines for one session: header, then one line per event (time from the first)."""
    lines = [f"session {session['id']}: started {session['started_wall']} UTC",
             f"  program  : {session.get('program_name') or '-'} (sha256 {session.get('program_hash') or '-'})",
             f"  patient  : {session.get('patient_id') or '-'}    device: {session.get('device') or '-'}"
             f"    session no.: {session.get('session_number') or '-'}",
             f"  operator : {session.get('operator') or '-'}    emsim {session['emsim_version']}"
             f"    host {session.get('host') or '-'} pid {session.get('pid') or '-'}",
             f"  events   : {len(events)}"]
    t0 = events[0]["mono_ns"] if events else 0
    frames = 0
    skipped = 0
    for ev in events:
        if ev["kind"] in ("tx", "rx") and limit_frames is not None:
            frames += 1
            if frames > limit_frames:
                skipped += 1
                continue
        lines.append(f"  {(ev['mono_ns'] - t0) / 1e9:10.3f} s  {ev['kind']:<10} {_describe(ev)}")
    if skipped:
        lines.append(f"  ({skipped} further tx/rx frames not shown; use --all)")
    return lines
