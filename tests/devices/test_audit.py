"""The SQLite audit log: contents, durability against SIGKILL, and ``emsim log show``."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from emsim.devices.audit import AuditLog, format_session, read_events, read_sessions
from emsim.errors import DeviceError, InputFileError
from emsim.program import dumps, from_dict


def test_session_and_events_round_trip(tmp_path, base_doc):
    program = from_dict(base_doc)
    digest = hashlib.sha256(dumps(program).encode()).hexdigest()
    path = tmp_path / "log.sqlite"
    with AuditLog(path, operator="alice", device="sim") as log:
        log.record("operator", {"action": "connect"})           # before any program: an implicit session
        sid = log.begin_session(program_hash=digest, patient_id="p1", program_name=program.name, session_number=3)
        log.tx(b"\xf0\x81\x5c\x81\x57\x01\x04\x0f", {"type": "Watchdog"})
        log.rx(b"\x01\x02", "ack")
        log.record("stop_cause", {"cause": "program completed", "emergency": False})
    (s,) = read_sessions(path)
    assert s["id"] == sid and s["program_hash"] == digest and s["patient_id"] == "p1"
    assert (s["operator"], s["device"], s["session_number"], s["n_events"]) == ("alice", "sim", 3, 4)
    assert s["emsim_version"] and s["started_wall"].endswith("+00:00")
    ev = read_events(path, sid)
    assert [e["kind"] for e in ev] == ["operator", "tx", "rx", "stop_cause"]
    assert ev[1]["payload_hex"] == "f0815c815701040f" and ev[1]["decoded"] == {"type": "Watchdog"}
    assert all(a["mono_ns"] <= b["mono_ns"] for a, b in zip(ev, ev[1:]))


def test_a_second_program_opens_a_second_session(tmp_path):
    path = tmp_path / "log.sqlite"
    with AuditLog(path) as log:
        a = log.begin_session(program_hash="a" * 64, patient_id="p")
        assert log.begin_session(program_hash="a" * 64, patient_id="p") == a   # validate, then load
        b = log.begin_session(program_hash="b" * 64, patient_id="p")
        log.record("info", {"x": 1})
    assert a != b and [s["n_events"] for s in read_sessions(path)] == [0, 1]
    with AuditLog(path) as log:  # reopening appends
        log.record("info", None)
    assert len(read_sessions(path)) == 3


def test_unknown_kind_and_non_log_files_are_refused(tmp_path):
    with AuditLog(tmp_path / "log.sqlite") as log, pytest.raises(DeviceError, match="kind"):
        log.record("gossip", {})
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputFileError):
        read_sessions(junk)
    with pytest.raises(InputFileError):
        read_sessions(tmp_path / "missing.sqlite")


WRITER = textwrap.dedent("""
    import sys
    from emsim.devices.audit import AuditLog
    log = AuditLog(sys.argv[1], operator="crash-test")
    log.begin_session(program_hash="c" * 64, patient_id="p")
    i = 0
    while True:
        i += 1
        log.tx(bytes([i % 256]) * 8, {"seq": i})
        print(i, flush=True)   # only after the commit returned
""")


@pytest.mark.slow
def test_records_survive_kill_minus_nine(tmp_path):
    """A writer killed with SIGKILL mid-stream: every record it reported as written is in the log."""
    path = tmp_path / "crash.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    last = 0
    try:
        for line in proc.stdout:
            last = int(line)
            if last >= 40:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL and last >= 40
    events = read_events(path)
    seqs = [e["decoded"]["seq"] for e in events]
    assert last in seqs and seqs == list(range(1, len(seqs) + 1))   # no gap, nothing torn
    assert events[last - 1]["payload_hex"] == (bytes([last % 256]) * 8).hex()


def test_format_session_is_readable(tmp_path):
    path = tmp_path / "log.sqlite"
    with AuditLog(path, operator="bob") as log:
        log.begin_session(program_hash="d" * 64, patient_id="p9", device="sim", program_name="Demo")
        log.record("validator", {"ok": False, "device": "sim", "patient": "p9", "errors": ["[contra] pacemaker"]})
        log.record("state", {"from": "running", "to": "stopped"})
        log.record("stop_cause", {"cause": "electrode error on channel B", "emergency": True, "repeat": False})
    (s,) = read_sessions(path)
    text = "\n".join(format_session(s, read_events(path, s["id"])))
    for needle in ("Demo", "d" * 64, "p9", "bob", "REFUSED", "pacemaker", "running -> stopped",
                   "EMERGENCY STOP: electrode error on channel B"):
        assert needle in text


def test_emsim_log_show(tmp_path, capsys):
    from emsim.cli import main

    path = tmp_path / "log.sqlite"
    with AuditLog(path) as log:
        log.begin_session(program_hash="e" * 64, patient_id="first")
        log.record("info", {"n": 1})
        log.begin_session(program_hash="f" * 64, patient_id="second")
        for i in range(5):
            log.tx(bytes([i]), {"type": "Watchdog"})
    assert main(["log", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "second" in out and "first" not in out and out.count("Watchdog") == 5
    assert main(["log", "show", str(path), "--session", "all", "--frames", "2"]) == 0
    out = capsys.readouterr().out
    assert "first" in out and out.count("Watchdog") == 2 and "3 further tx/rx frames" in out
    assert main(["log", "show", str(path), "--session", "99"]) == 2
    assert main(["log", "show", str(tmp_path / "nope.sqlite")]) == 2
