"""ScienceMode 2 driver for the Hasomed RehaStim 2 (continuous channel-list mode).

Protocol facts from ``devices_and_safety.md`` §1 [verified: primary source]: 460 800 Bd 8E1
without flow control; the device sends ``Init`` until the host answers ``InitAck``; watchdog
1.2 s (the heartbeat sends ``Watchdog`` every 0.48 s); acknowledgements within 100 ms
(MaxResponseTime); one base period t1 for all channels, slower channels only as integer
sub-multiples (low-frequency factor); ramps, on/off cycles and pauses are produced by the host
by re-sending ``StartChannelListMode`` (a pause is 0 mA).

Mapping of a validated program (the base class has already checked it for this device and
patient and quantised it with the ``rehastim2`` profile, which snaps every phase to one
shared base period and reports the change):

* per phase: one ``InitChannelListMode`` (active channels = the phase's channels, t1 = the
  shortest quantised period, low-frequency channels at the one multiple the quantiser chose,
  t2 = the doublet spacing or the 8 ms firmware minimum); a phase change with another
  configuration is ``Stop`` → ``Init`` → ``Start``;
* every schedule step (on, off, ramp step of 100 ms, operator intensity change): one
  ``StartChannelListMode`` with every active channel's mode, pulse width and current.

Where pysciencemode differs from the protocol description, and this driver does *not* follow
it (reference §1.8 for the codec points; the driver points are from reading
``pysciencemode/sciencemode.py`` of s2mLab/pyScienceMode @0212f59):

* framing: it escapes 0x0A and 0x55 as well and XORs the packet number and command in place;
  the codec escapes only 0xF0/0x0F/0x81 (§1.8); its default t2 = 2 ms is below the 8 ms
  firmware minimum (this driver uses ≥ 8 ms);
* keep-alive: its watchdog thread is a non-daemon thread that sends ``Watchdog`` whenever
  0.8 s have passed since the last command, independently of the controlling code, so it keeps
  the device alive after the controller has crashed (as long as the process lives); and because
  it checks only every 0.8 s, the gap between packets can reach ~1.6 s, beyond the 1.2 s
  watchdog. Here the heartbeat runs every 0.48 s on a monotonic schedule and is withheld as
  soon as the session executor stops showing signs of life;
* acknowledgements: it takes the last packet read as the answer, without matching the packet
  number or the expected acknowledgement command, and its reader loops without a timeout until
  a stop byte arrives. Here acknowledgements are matched by packet number and command, with a
  100 ms timeout (MaxResponseTime) followed by a mode query and a stop, never a resend;
* timing uses ``time.time()`` (wall clock, which can jump); this driver uses ``time.monotonic``;
* a pause is sent as current 0, which this driver also does for pauses, but never as a
  replacement for the stop command (a 0 mA update fails with "wrong mode" once the device has
  stopped).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from emsim.devices.base import DevicePlan
from emsim.devices.sciencemode import sm2
from emsim.devices.sciencemode._driver import DeviceFault, FramedDriver
from emsim.errors import DeviceError
from emsim.program.model import DoubletPattern

__all__ = ["ScienceMode2Stimulator"]

# Inits that arrive this soon after our InitAck were already on the wire when we answered.
_STALE_INIT_S = 0.3


@dataclass(frozen=True)
class _PhaseConfig:
    init: sm2.InitChannelListMode
    pulse_width_us: dict[int, int]     # program channel index -> µs
    mode: dict[int, sm2.PulseMode]


class ScienceMode2Stimulator(FramedDriver):
    """Drive a RehaStim 2 over ScienceMode 2.

    Parameters
    ----------
    port : str
        Serial port (or an emulator's pseudo-terminal path).
    **kw
        See :class:`~emsim.devices.sciencemode._driver.FramedDriver` (``audit``, ``speed``,
        ``ack_timeout_s`` (default 100 ms), ``heartbeat_period_s`` ...).

    Notes
    -----
    :meth:`connect` only listens for the device's ``Init``; the first byte is written by
    :meth:`load`, after the program has passed the safety check for this patient.
    Program channel ``k`` (0-based) is device channel ``k + 1``.
    """

    codec = sm2
    profile_id = "rehastim2"
    default_ack_timeout_s = 0.1  # MaxResponseTime (§1.4)
    max_packet_number = sm2.MAX_PACKET_NUMBER

    def __init__(self, port: str, **kw):
        super().__init__(port, **kw)
        self._init_seen = threading.Event()
        self._init_pn: int | None = None
        self._init_version: int | None = None
        self._handshaken = False
        self._handshake_t = 0.0
        self._phase_cfg: dict[int, _PhaseConfig] = {}
        self._device_cfg: _PhaseConfig | None = None

    # ------------------------------------------------------------------ connection

    def _open_port(self) -> None:
        self._init_seen.clear()
        self._handshaken = False
        self._device_cfg = None
        super()._open_port()

    def _dev_connect(self) -> None:
        if not self._init_seen.wait(self.connect_timeout_s):
            raise DeviceError(f"no Init from the device within {self.connect_timeout_s:g} s (it sends one "
                              "every 500 ms while waiting for a host)", path="port", value=self.port,
                              allowed="a RehaStim 2 in ScienceMode 2")

    def _dev_prepare(self, plan: DevicePlan) -> None:
        if not self._handshaken:
            if not self._init_seen.wait(self.connect_timeout_s):
                raise DeviceError("no Init from the device", path="port", value=self.port)
            self._handshake_t = time.monotonic()
            self._handshaken = True
            self._write(sm2.InitAck(sm2.Result.OK), self._init_pn)
        reply = self._transact(sm2.GetStimulationMode())
        if reply.result != sm2.Result.OK:
            raise DeviceFault(f"GetStimulationMode refused: {reply.result.name}", value=int(reply.result))
        if reply.mode != sm2.StimulationMode.START:
            self._device_stop()
        self._device_cfg = None

    def _dev_unsolicited(self, packet) -> bool:
        msg = packet.message
        if isinstance(msg, sm2.Init):
            self._init_pn, self._init_version = packet.number, msg.version
            self._init_seen.set()
            if self._handshaken and time.monotonic() - self._handshake_t > _STALE_INIT_S:
                self._handshaken = False
                if self._delivering() and not self._halt.is_set():
                    self._device_error("the device sent Init again: its watchdog expired or it restarted, "
                                       "so it has stopped stimulating", kind="watchdog")
            return True
        if isinstance(msg, sm2.StimulationError):
            kind = "electrode" if msg.error == sm2.StimulationErrorCode.ELECTRODE_ERROR else "device"
            self._device_error(f"device reported {msg.error.name} (StimulationError {int(msg.error)}); "
                               "it has stopped and returned to start mode", kind=kind)
            return True
        if isinstance(msg, sm2.UnknownCommand):
            self._device_error(f"device did not recognise command {msg.echoed_command}", kind="protocol")
            return True
        return False

    # ------------------------------------------------------------------ program mapping

    def _dev_check_plan(self, plan: DevicePlan) -> None:
        cfgs: dict[int, _PhaseConfig] = {}
        by_phase: dict[int, list] = {}
        for b in plan.train.blocks:
            by_phase.setdefault(b.phase, []).append(b)
        for p, blocks in by_phase.items():
            where = f"phase {p} ({plan.program.phases[p].name})"
            periods = {b.channel: 1000.0 / b.stimulation.frequency_hz for b in blocks}
            base = min(periods.values())
            ratios = {c: round(t / base) for c, t in periods.items()}
            lf = {c for c, r in ratios.items() if r > 1}
            factors = {ratios[c] for c in lf}
            if len(factors) > 1 or any(abs(periods[c] - base * ratios[c]) > 1e-6 for c in periods):
                raise DeviceError(f"{where}: channel frequencies are not one base frequency and one "
                                  "sub-multiple", path="program", value=sorted(periods.values()),
                                  allowed="one shared base period (ScienceMode 2)")
            group_ms = {b.stimulation.pattern.intra_burst_interval_ms for b in blocks
                        if isinstance(b.stimulation.pattern, DoubletPattern)}
            if len(group_ms) > 1:
                raise DeviceError(f"{where}: doublet spacings differ between channels", path="program",
                                  value=sorted(group_ms), allowed="one spacing per phase (ScienceMode 2)")
            modes, widths = {}, {}
            for b in blocks:
                pat = b.stimulation.pattern
                n = pat.pulses_per_burst if isinstance(pat, DoubletPattern) else 1
                if b.waveform.shape != "symmetric_biphasic" or n > 3:
                    raise DeviceError(f"{where}: not representable on ScienceMode 2", path="program",
                                      value=f"{b.waveform.shape}, {n} pulses per burst",
                                      allowed="symmetric_biphasic, 1-3 pulses per burst")
                modes[b.channel] = sm2.PulseMode(n - 1)
                widths[b.channel] = int(round(b.waveform.pulse_width_us))
            init = sm2.InitChannelListMode.from_ms(
                {c + 1 for c in periods}, base,
                max(group_ms) if group_ms else sm2.FIRMWARE_MIN_GROUP_TIME_MS,
                low_frequency_channels={c + 1 for c in lf},
                low_frequency_factor=(factors.pop() - 1) if factors else 0, quantize=False)
            cfgs[p] = _PhaseConfig(init, widths, modes)
        self._phase_cfg = cfgs

    def _dev_apply(self, block: np.ndarray, amplitude_a: np.ndarray, phase: int) -> None:
        cfg = self._phase_cfg.get(phase)
        if cfg is not self._device_cfg:
            if self._device_cfg is not None:
                self._device_stop()
            self._device_cfg = None
            if cfg is not None:
                self._check(self._transact(cfg.init), "InitChannelListMode")
            self._device_cfg = cfg
        if cfg is None:
            return
        entries = []
        for ch in sorted(cfg.init.active_channels):
            c = ch - 1
            current = int(round(amplitude_a[c] * 1e3)) if block[c] >= 0 else 0
            entries.append(sm2.ChannelSettings(cfg.pulse_width_us[c], current, cfg.mode[c]))
        self._check(self._transact(sm2.StartChannelListMode(tuple(entries))), "StartChannelListMode")

    def _check(self, reply, what: str) -> None:
        if reply.result != sm2.Result.OK:
            raise DeviceFault(f"{what} refused by the device: {reply.result.name} ({int(reply.result)})",
                              value=int(reply.result), allowed="0 (OK)")

    # ------------------------------------------------------------------ keep-alive and stop

    def _dev_keep_alive(self) -> None:
        if self._handshaken:
            self._write(sm2.Watchdog(), self._next_pn())

    def _dev_stop_message(self):
        return sm2.StopChannelListMode()

    def _dev_check_stop(self, reply) -> None:
        # "wrong mode" means the device is already in start mode: stopped
        if reply.result not in (sm2.Result.OK, sm2.Result.WRONG_MODE):
            raise DeviceFault(f"StopChannelListMode refused: {reply.result.name}", value=int(reply.result))
        self._device_cfg = None

    def _dev_query(self) -> str:
        reply = self._transact(sm2.GetStimulationMode(), urgent=True)
        if reply.result != sm2.Result.OK:
            return f"GetStimulationMode result {reply.result.name}"
        return f"stimulation mode {reply.mode.name}"

    def _is_busy(self, reply) -> bool:
        return getattr(reply, "result", None) == sm2.Result.BUSY

    def _status_extra(self) -> dict:
        d = super()._status_extra()
        d["protocol_version"] = self._init_version
        return d
