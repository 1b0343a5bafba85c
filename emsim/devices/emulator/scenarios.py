"""Small shared pieces for emulator tests and benchmarks: a short example program and a raw client.

:func:`short_paraspinal_program` keeps the structure of the shipped
``models/programs/paraspinal_strengthening.json`` (warm-up 8 Hz, main 50 Hz with on/off
cycles and ramps, cool-down 5 Hz; amplitudes relative to the patient's thresholds) but with
phases of a few seconds, so a whole program runs against an emulator in a test.
"""

from __future__ import annotations

import json
import time

from emsim._data import models_dir

__all__ = ["short_paraspinal_program", "example_patient", "on_windows", "RawClient", "TEST_ACK_TIMEOUT_S"]

# Acknowledgement timeout for drivers talking to an emulator in tests. The emulator is a Python
# thread on a shared machine, so a 300 ms timeout (the RehaStim's MaxResponseTime is 100 ms)
# keeps CPU starvation from looking like a lost acknowledgement; the tests of lost
# acknowledgements inject the loss, so the value only sets how soon it is noticed.
TEST_ACK_TIMEOUT_S = 0.3


def short_paraspinal_program(warm_up_s: float = 4.0, main_s: float = 16.0, cool_down_s: float = 4.0,
                             on_s: float = 4.0, off_s: float = 4.0, ramp_s: float = 1.0):
    """The shipped paraspinal program with short phases (same frequencies, widths and amplitudes)."""
    from emsim.program import from_dict

    with open(models_dir() / "programs" / "paraspinal_strengthening.json", encoding="utf-8") as fh:
        doc = json.load(fh)
    shapes = [(warm_up_s, warm_up_s, 0.0), (main_s, on_s, off_s), (cool_down_s, cool_down_s, 0.0)]
    for phase, (duration, on, off) in zip(doc["phases"], shapes):
        phase["duration_s"] = duration
        for st in phase["stimulation"]:
            st.update(on_s=on, off_s=off, ramp_up_s=min(ramp_s, on / 2), ramp_down_s=min(ramp_s, on / 2))
    doc["name"] += " (shortened for emulator tests)"
    return from_dict(doc)


def example_patient(name: str = "example_measured"):
    """A shipped example patient (``models/patients/<name>.json``)."""
    from emsim.body import load_patient

    return load_patient(models_dir() / "patients" / f"{name}.json")


class RawClient:
    """Host side without a driver: pyserial plus a codec, for testing an emulator directly.

    Parameters
    ----------
    emulator
        A started emulator (its ``port``, ``serial_settings`` and ``codec`` are used).
    """

    def __init__(self, emulator):
        import serial

        self.codec = emulator.codec
        self.serial = serial.Serial(emulator.port, timeout=0.01, **emulator.serial_settings)
        self.decoder = self.codec.StreamDecoder()
        self.inbox: list = []

    def send(self, message, number: int) -> None:
        self.serial.write(self.codec.encode(message, number))

    def send_raw(self, frame: bytes) -> None:
        self.serial.write(frame)

    def receive(self, timeout_s: float = 0.5, *, count: int = 1) -> list:
        """Read until ``count`` items (packets or bad frames) arrived or the timeout passed."""
        end = time.monotonic() + timeout_s
        while len(self.inbox) < count and time.monotonic() < end:
            self.inbox += self.decoder.feed(self.serial.read(self.serial.in_waiting or 1))
        out, self.inbox = self.inbox[:count], self.inbox[count:]
        return out

    def request(self, message, number: int, timeout_s: float = 0.5):
        """Send and return the first item received (None on timeout)."""
        self.send(message, number)
        got = self.receive(timeout_s)
        return got[0] if got else None

    def close(self) -> None:
        self.serial.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def on_windows(train, channel: int) -> int:
    """Number of on-windows of ``channel`` in a compiled train.

    A window ends where the next pulse is more than 1.5 periods away or belongs to another
    block (phase); this is what an emulator's on/off timeline should show for that channel.
    """
    import numpy as np

    sl = train.channel_slice(channel)
    t, blk = train.t_s[sl], train.block[sl]
    if t.size == 0:
        return 0
    period = np.array([1.0 / train.blocks[b].stimulation.frequency_hz for b in blk])
    return 1 + int(np.sum((np.diff(t) > 1.5 * period[1:]) | (blk[1:] != blk[:-1])))
