"""ScienceMode 2 (Hasomed RehaStim 2) device emulator on a pseudo-terminal.

Behaviour modelled from the protocol description (reference ``devices_and_safety.md`` §1.3–1.6,
5.2) [verified: primary source]:

* after power-up the device sends ``Init`` every 500 ms until the host answers ``InitAck``
  (echoing the device's packet number; result 0);
* watchdog: no valid packet for 1.2 s → stimulation stops, every mode is reset and the
  device starts sending ``Init`` again;
* modes start → initialized (``InitChannelListMode``) → started (``StartChannelListMode``,
  which also updates) → start (``StopChannelListMode``); a command in the wrong mode gets −3,
  ``SinglePulse`` is only allowed in start mode;
* parameter errors get −2 (t1 below the 8 ms firmware minimum, a channel count that does not
  match the active channels, doublets that do not fit t1, fields out of range), a frame with a
  bad length or checksum gets −1, an unknown command an ``UnknownCommand`` packet, and a
  command that arrives while the previous one is still being processed gets −8 (busy);
* acknowledgements leave after a configurable latency (the repository README gives 10–24 ms).

Choices where the description is silent (documented so tests do not mistake them for facts):
``StopChannelListMode`` in start mode is answered −3 (the mode diagram has no such transition);
one-shot channel-list mode (t1 code 0) is not emulated and is answered −2; packets other than
``InitAck`` are ignored before the handshake.
"""

from __future__ import annotations

import time

from emsim.devices.emulator._engine import EmulatorBase
from emsim.devices.emulator.timeline import ChannelOutput
from emsim.devices.sciencemode import BadFrame, BadFrameKind, CodecError, sm2, unstuff

__all__ = ["ScienceMode2Emulator", "INIT_REPETITION_S", "WATCHDOG_S"]

INIT_REPETITION_S = 0.5
WATCHDOG_S = 1.2
DEFAULT_LATENCY_MS = (10.0, 24.0)

_C = sm2.Command
_R = sm2.Result
_MODE = sm2.StimulationMode

_ACKED = {c.value: a for c, a in sm2.ACK_FOR.items()}
_ACK_CLASS = {
    _C.GET_STIMULATION_MODE_ACK: sm2.GetStimulationModeAck,
    _C.INIT_CHANNEL_LIST_MODE_ACK: sm2.InitChannelListModeAck,
    _C.START_CHANNEL_LIST_MODE_ACK: sm2.StartChannelListModeAck,
    _C.STOP_CHANNEL_LIST_MODE_ACK: sm2.StopChannelListModeAck,
    _C.SINGLE_PULSE_ACK: sm2.SinglePulseAck,
}


def _error_ack(command: int, result: sm2.Result):
    cls = _ACK_CLASS[_ACKED[command]]
    return cls(result)


class ScienceMode2Emulator(EmulatorBase):
    """A RehaStim 2 as seen through its ScienceMode 2 serial protocol.

    Parameters
    ----------
    latency_ms : float or (float, float)
        Command processing time; default uniform 10–24 ms.
    watchdog_s : float
        Device watchdog (1.2 s on the device; tests may not change what they assert about).
    time_scale, seed
        See :class:`~emsim.devices.emulator._engine.EmulatorBase`.

    Attributes
    ----------
    port : str
        Path for the driver to open (460 800 Bd, 8E1, no flow control).
    mode : StimulationMode
    connected : bool
        True after a valid ``InitAck`` until the watchdog expires.
    """

    codec = sm2
    name = "sciencemode2"
    profile_id = "rehastim2"

    default_latency_ms = DEFAULT_LATENCY_MS

    def __init__(self, *, watchdog_s: float = WATCHDOG_S, **kw):
        super().__init__(**kw)
        self.watchdog_s = float(watchdog_s)
        self.mode = _MODE.START
        self.connected = False
        self.handshakes = 0
        self._init_pns: set[int] = set()
        self._next_init = 0.0
        self._last_valid = 0.0
        self._busy = False
        self._config: sm2.InitChannelListMode | None = None

    # ------------------------------------------------------------------ device → host

    def _send_init(self, now: float) -> None:
        pn = self.next_own_pn()
        self._init_pns.add(pn)
        self.send(sm2.Init(1), pn)
        self._next_init = now + INIT_REPETITION_S

    def stimulation_error(self, error: sm2.StimulationErrorCode | int = sm2.StimulationErrorCode.ELECTRODE_ERROR
                          ) -> None:
        """Fault: the device detects an error, stops, returns to start mode and reports it (cmd 38)."""
        with self.lock:
            code = sm2.StimulationErrorCode(error)
            self._reset_output(time.monotonic(), "error", code.name)
            self.mode = _MODE.START
            self._config = None
            self.send(sm2.StimulationError(code), self.next_own_pn())

    # ------------------------------------------------------------------ loop hooks

    def on_power_up(self, now: float) -> None:
        self.timeline.event(now, "power_on")
        self._next_init = now

    def tick(self, now: float) -> None:
        if self.connected:
            if now - self._last_valid > self.watchdog_s:
                self._watchdog(now)
        elif now >= self._next_init:
            self._send_init(now)

    def _watchdog(self, now: float) -> None:
        # stop + reset every mode + start sending Init again (§1.4)
        self._reset_output(now, "watchdog", f"no valid packet for {now - self._last_valid:.3f} s")
        self.mode = _MODE.START
        self._config = None
        self.connected = False
        self._busy = False
        self.cancel_timers()
        self._send_init(now)

    def _reset_output(self, now: float, kind: str, detail: str = "") -> None:
        if self.timeline.stimulating or self.mode == _MODE.STARTED:
            self.timeline.set_output(now, {}, kind, detail)
        else:
            self.timeline.event(now, kind, detail)

    # ------------------------------------------------------------------ host → device

    def handle(self, item, now: float) -> None:
        if isinstance(item, BadFrame):
            self._bad_frame(item, now)
            return
        self._last_valid = now
        msg, pn = item.message, item.number
        if not self.connected:
            if isinstance(msg, sm2.InitAck) and pn in self._init_pns:
                if msg.result == _R.OK:
                    self.connected = True
                    self.handshakes += 1
                    self._init_pns.clear()
                    self.timeline.event(now, "connected", f"InitAck pn {pn}")
            return
        if isinstance(msg, (sm2.Watchdog, sm2.InitAck)):
            return
        command = item.command
        if command not in _ACKED:
            self.after(self.latency(), lambda t: self.send(sm2.UnknownCommand(command & 0xFF),
                                                           self.next_own_pn()))
            return
        if self._busy:
            self.reply(_error_ack(command, _R.BUSY), pn)
            return
        self._busy = True
        self.after(self.latency(), lambda t: self._process(msg, pn, t))

    def _bad_frame(self, item: BadFrame, now: float) -> None:
        if item.kind == BadFrameKind.PAYLOAD and item.command in _ACKED:
            # an intact frame whose fields are out of range: a parameter error
            self._last_valid = now
            if not self.connected:
                return
            if self._busy:
                self.reply(_error_ack(item.command, _R.BUSY), item.packet_number)
                return
            self._busy = True
            cmd, pn = item.command, item.packet_number

            def answer(t: float) -> None:
                self._busy = False
                self.reply(_error_ack(cmd, _R.PARAMETER_ERROR), pn)
            self.after(self.latency(), answer)
            return
        if item.kind in (BadFrameKind.CRC, BadFrameKind.LENGTH) and self.connected:
            # best effort: the answer needs the command, which the damaged body may still show
            try:
                body = unstuff(item.raw[5:-1])
            except CodecError:
                return
            if len(body) >= 2 and body[1] in _ACKED:
                pn, cmd = body[0], body[1]
                self.after(self.latency(),
                           lambda t: self.reply(_error_ack(cmd, _R.TRANSFER_ERROR), pn))

    def _process(self, msg, pn: int, now: float) -> None:
        self._busy = False
        if isinstance(msg, sm2.GetStimulationMode):
            self.reply(sm2.GetStimulationModeAck(_R.OK, self.mode), pn)
        elif isinstance(msg, sm2.InitChannelListMode):
            self.reply(sm2.InitChannelListModeAck(self._init_clm(msg, now)), pn)
        elif isinstance(msg, sm2.StartChannelListMode):
            self.reply(sm2.StartChannelListModeAck(self._start_clm(msg, now)), pn)
        elif isinstance(msg, sm2.StopChannelListMode):
            if self.mode == _MODE.START:
                result = _R.WRONG_MODE
            else:
                self._reset_output(now, "stop", "StopChannelListMode")
                self.mode = _MODE.START
                self._config = None
                result = _R.OK
            self.reply(sm2.StopChannelListModeAck(result), pn)
        elif isinstance(msg, sm2.SinglePulse):
            if self.mode != _MODE.START:
                result = _R.WRONG_MODE
            else:
                self.timeline.single_pulse(now, msg.channel, max(msg.pulse_width_us, 20),
                                           msg.current_ma)
                result = _R.OK
            self.reply(sm2.SinglePulseAck(result), pn)

    def _init_clm(self, msg: sm2.InitChannelListMode, now: float) -> sm2.Result:
        if self.mode != _MODE.START:
            return _R.WRONG_MODE
        if (not msg.active_channels or msg.main_time_code == 0
                or msg.main_time_ms < sm2.FIRMWARE_MIN_MAIN_TIME_MS
                or not msg.low_frequency_channels <= msg.active_channels):
            self.timeline.event(now, "parameter_error", repr(msg))
            return _R.PARAMETER_ERROR
        self._config = msg
        self.mode = _MODE.INITIALIZED
        self.timeline.event(now, "initialized", f"t1 {msg.main_time_ms:g} ms")
        return _R.OK

    def _start_clm(self, msg: sm2.StartChannelListMode, now: float) -> sm2.Result:
        cfg = self._config
        if self.mode == _MODE.START or cfg is None:
            return _R.WRONG_MODE
        active = sorted(cfg.active_channels)
        if len(msg.channels) != len(active):
            self.timeline.event(now, "parameter_error", "channel count")
            return _R.PARAMETER_ERROR
        t1 = cfg.main_time_ms
        per_module = max(sum(1 for c in active if c <= 4), sum(1 for c in active if c > 4))
        outputs = {}
        for ch, s in zip(active, msg.channels):
            n = int(s.mode) + 1
            if n > 1 and (cfg.group_time_ms < sm2.FIRMWARE_MIN_GROUP_TIME_MS
                          or t1 < n * cfg.group_time_ms):
                self.timeline.event(now, "parameter_error", f"channel {ch} group time")
                return _R.PARAMETER_ERROR
            if t1 < 1.5 * per_module * n:  # 1.5 ms slot per selected channel and pulse
                self.timeline.event(now, "parameter_error", "slots do not fit t1")
                return _R.PARAMETER_ERROR
            period = t1 * (cfg.low_frequency_factor + 1 if ch in cfg.low_frequency_channels else 1)
            outputs[ch] = ChannelOutput(period_s=period / 1000.0,
                                        pulse_width_us=max(s.pulse_width_us, 20),  # firmware clamp
                                        current_ma=s.current_ma, pulses_per_group=n,
                                        group_interval_s=cfg.group_time_ms / 1000.0)
        kind = "update" if self.mode == _MODE.STARTED else "start"
        self.mode = _MODE.STARTED
        self.timeline.set_output(now, outputs, kind,
                                 ", ".join(f"ch{c} {o.current_ma:g} mA" for c, o in outputs.items()))
        return _R.OK
