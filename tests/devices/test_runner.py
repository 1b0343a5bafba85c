"""``emsim run``: the README command, refusal before the port, signals, keyboard control."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emsim import DISCLAIMER
from emsim.devices.audit import read_events

ROOT = Path(__file__).resolve().parents[2]
EMSIM = [sys.executable, "-m", "emsim.cli"]


def _popen(args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(EMSIM + args, cwd=kw.pop("cwd", ROOT), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _wait_for(stream, needle: str, timeout: float = 30.0) -> str:
    """Read lines from ``stream`` until one contains ``needle``; returns everything read."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.2)
        if ready:
            line = stream.readline()
            if not line:
                break
            seen.append(line)
            if needle in line:
                return "".join(seen)
    raise AssertionError(f"{needle!r} not seen within {timeout} s; got:\n{''.join(seen)}")


@pytest.fixture
def program_file(tmp_path, base_doc):
    path = tmp_path / "program.json"
    path.write_text(json.dumps(base_doc))
    return path


PATIENT = str(ROOT / "models" / "patients" / "example_measured.json")
PACEMAKER = str(ROOT / "models" / "patients" / "example_pacemaker.json")


@pytest.mark.slow
def test_the_readme_command_runs_the_example_to_its_end():
    cmd = ("emsim run models/programs/paraspinal_strengthening.json --patient models/patients/example_measured.json "
           "--device sim --speed 100")
    assert cmd in (ROOT / "README.md").read_text()
    proc = _popen(cmd.split()[1:])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert DISCLAIMER in err and "100.0%" in err and "main cycle" in err
    assert "session ended: program completed" in out and "pulses delivered" in out
    assert "predicted peak force" in out


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_session_cleanly(program_file, tmp_path, sig, code):
    log = tmp_path / "run.sqlite"
    proc = _popen(["run", str(program_file), "--patient", PATIENT, "--device", "sim", "--speed", "2",
                   "--log", str(log)])
    _wait_for(proc.stderr, "running")
    time.sleep(0.3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    name = signal.Signals(sig).name
    assert proc.returncode == code, err
    assert f"{name} received" in out and "pulses delivered" in out
    causes = [e["decoded"] for e in read_events(log) if e["kind"] == "stop_cause"]
    assert causes == [{"cause": f"{name} received", "emergency": False}]
    states = [e["decoded"]["to"] for e in read_events(log) if e["kind"] == "state"]
    assert states[-3:] == ["stopping", "stopped", "disconnected"]


def test_an_unsafe_program_is_refused_before_the_device_is_opened(program_file, tmp_path):
    log = tmp_path / "refused.sqlite"
    proc = _popen(["run", str(program_file), "--patient", PACEMAKER, "--device", "sim", "--log", str(log)])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "nothing was sent" in err and DISCLAIMER in err
    events = read_events(log)
    assert [e["kind"] for e in events] == ["validator"] and events[0]["decoded"]["ok"] is False


@pytest.mark.parametrize("device, code, needle", [
    ("laser", 2, "unknown device"),
    ("sciencemode2", 2, "needs a serial port"),
    ("sciencemode4:/nonexistent/tty-emsim", 1, "tty-emsim"),
])
def test_bad_devices_give_one_line_errors(program_file, tmp_path, device, code, needle):
    proc = _popen(["run", str(program_file), "--patient", PATIENT, "--device", device,
                   "--log", str(tmp_path / "x.sqlite")])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code and needle in err and "Traceback" not in err


def test_keyboard_controls_intensity_pause_and_emergency_stop(program_file, tmp_path):
    log = tmp_path / "keys.sqlite"
    master, slave = os.openpty()
    try:
        proc = _popen(["run", str(program_file), "--patient", PATIENT, "--device", "sim", "--speed", "1",
                       "--log", str(log)], stdin=slave)
        _wait_for(proc.stderr, "keys:")
        for key, pause in ((b"-", 0.4), (b" ", 0.4), (b" ", 0.4), (b"e", 0.0)):
            os.write(master, key)
            time.sleep(pause)
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 1, err
    ops = [e["decoded"] for e in read_events(log) if e["kind"] == "operator"]
    assert [o["action"] for o in ops if o["action"] in ("set_intensity", "pause", "resume")] == \
        ["set_intensity", "pause", "resume"]
    lowered = next(o for o in ops if o["action"] == "set_intensity")
    assert lowered["applied_ma"] == pytest.approx(20.0 - 1.0)       # one 1 mA step down from 20 mA
    causes = [e["decoded"] for e in read_events(log) if e["kind"] == "stop_cause"]
    assert causes[0] == {"cause": "operator emergency stop (keyboard)", "emergency": True, "repeat": False}


def test_plus_key_never_goes_above_the_validated_maximum(program_file, measured_patient, tmp_path):
    import io

    from emsim.devices.runner import SessionRunner
    from emsim.devices.simulated import SimulatedStimulator
    from emsim.program import load

    sim = SimulatedStimulator(threaded=False, physiology=None)
    out = io.StringIO()
    runner = SessionRunner(sim, load(program_file), measured_patient, out=out, keyboard=False)
    sim.connect()
    sim.load(runner.program, measured_patient)
    sim.start()
    runner._key("-")
    runner._key("-")
    assert sim.level_a(0) * 1e3 == pytest.approx(18.0)
    for _ in range(5):
        runner._key("+")
    assert sim.level_a(0) * 1e3 == pytest.approx(20.0)            # back to the validated 20 mA, no further
    assert "validated maximum 20 mA" in out.getvalue()
    runner._key("e")
    assert sim.emergency_stopped and sim.status().stop_cause == "operator emergency stop (keyboard)"


def test_a_device_fault_ends_the_run_with_the_error(program_file, measured_patient):
    import io

    from emsim.devices.runner import SessionRunner
    from emsim.devices.simulated import SimulatedStimulator
    from emsim.program import load

    sim = SimulatedStimulator(speed=50.0, physiology=None)
    sim.add_listener(lambda e: sim.inject_fault("electrode", channel="A")
                     if e.kind == "pulses" and not sim.emergency_stopped else None)
    out = io.StringIO()
    result = SessionRunner(sim, load(program_file), measured_patient, out=out, keyboard=False,
                           refresh_s=0.01).run()
    assert result.emergency and not result.completed and "electrode" in result.last_error
    assert result.program_s < 60.0
    assert out.getvalue().splitlines()[-1].split("]")[1].split()[0] == "error"  # the last display line
