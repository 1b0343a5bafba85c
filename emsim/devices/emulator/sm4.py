"""ScienceMode 4 (Hasomed P24, "smpt") device emulator on a pseudo-terminal.

Behaviour modelled from the reference (``devices_and_safety.md`` §3.1–3.4, 5.2)
[verified: primary source]:

* mid level: ``Ml_init`` (high voltage on, 2 × 40 ms) → ``Ml_update`` (start or update;
  per-channel period and waveform points) → ``Ml_stop`` (high voltage off, 40 ms);
  ``Ml_get_current_data`` reports per-channel state and is the keep-alive;
* keep-alive: with neither ``Ml_update`` nor ``Ml_get_current_data`` for 2 s, stimulation
  pauses by itself (mid level stays initialised; a new ``Ml_update`` restarts it);
* result 7 (not initialised) for a mid-level command outside mid level or while low level is
  active; 2 (parameter) for currents beyond ±130 mA (the C library's validity check);
  16 (pulse timeout) when the channels' pulses do not fit their periods
  (Σ (pulse + 60 µs)/period ≥ 1); 1 (transfer) for a frame with a bad length or checksum;
  an ``UnknownCommand`` (67) packet for a command the device does not know;
* electrode errors need ≥ 15 mA to be detected (C-library comment); a load that needs more
  than the 150 V compliance voltage gives "pulse low current" (28). With
  ``Ml_init(stop_all_channels_on_error=True)`` any channel error stops every channel.

Choices where the description is silent: ``Ml_stop`` outside mid level is answered 7; an
error found while processing ``Ml_update`` is returned as that update's result and stays
visible in the channel states until the next ``Ml_init``. Version and device-id commands are
not modelled by the codec and are answered with ``UnknownCommand``.
"""

from __future__ import annotations

import math
import time

from emsim.devices.emulator._engine import EmulatorBase
from emsim.devices.emulator.timeline import ChannelOutput
from emsim.devices.sciencemode import BadFrame, BadFrameKind, CodecError, sm4, unstuff

__all__ = ["ScienceMode4Emulator", "KEEP_ALIVE_S", "ELECTRODE_CHECK_MIN_MA"]

KEEP_ALIVE_S = 2.0
ELECTRODE_CHECK_MIN_MA = 15.0
COMPLIANCE_V = 150.0
VALIDITY_MAX_MA = 130.0
HV_SWITCH_S = {sm4.Command.ML_INIT: 0.080, sm4.Command.ML_STOP: 0.040,
               sm4.Command.LL_INIT: 0.040, sm4.Command.LL_STOP: 0.040}
DEFAULT_LATENCY_MS = (1.0, 3.0)

_C = sm4.Command
_R = sm4.Result
_S = sm4.StimStatus
_ACKED = {c.value: a for c, a in sm4.ACK_FOR.items()}
_RESULT_ACKS = {
    _C.LL_INIT_ACK: sm4.LlInitAck, _C.LL_STOP_ACK: sm4.LlStopAck, _C.ML_INIT_ACK: sm4.MlInitAck,
    _C.ML_UPDATE_ACK: sm4.MlUpdateAck, _C.ML_STOP_ACK: sm4.MlStopAck,
}


def _error_ack(command: int, result: sm4.Result):
    ack = _ACKED[command]
    if ack in _RESULT_ACKS:
        return _RESULT_ACKS[ack](result)
    if ack == _C.ML_GET_CURRENT_DATA_ACK:
        return sm4.MlGetCurrentDataAck.for_channels([False] * 8, [0] * 8, result)
    if ack == _C.GET_STIM_STATUS_ACK:
        return sm4.GetStimStatusAck(result, _S.UNINITIALIZED, 0)
    if ack == _C.LL_CHANNEL_CONFIG_ACK:
        return sm4.LlChannelConfigAck(result)
    raise AssertionError(f"no error acknowledgement for command {command}")


class ScienceMode4Emulator(EmulatorBase):
    """A P24 as seen through its ScienceMode 4 serial protocol (mid level, basic low level).

    Parameters
    ----------
    latency_ms : float or (float, float)
        Command processing time before the acknowledgement (default 1–3 ms: the P24 is a
        USB CDC device; the reference gives no figure, so this is an assumption). Switching
        the high voltage adds 40–80 ms as documented.
    keep_alive_s : float
        Mid-level keep-alive timeout (2 s on the device).

    Attributes
    ----------
    port : str
        Path for the driver to open (3 Mbaud nominal, 8N2, RTS/CTS).
    status : StimStatus
    channel_states : list of MlChannelState
    """

    codec = sm4
    name = "sciencemode4"
    profile_id = "p24"

    default_latency_ms = DEFAULT_LATENCY_MS

    def __init__(self, *, keep_alive_s: float = KEEP_ALIVE_S, **kw):
        super().__init__(**kw)
        self.keep_alive_s = float(keep_alive_s)
        self.status = _S.UNINITIALIZED
        self.stop_all_on_error = True
        self.channel_states = [sm4.MlChannelState.OK] * 8
        self.load_ohm = [1000.0] * 8
        self._config: dict[int, sm4.MlChannelConfig] = {}
        self._last_keep_alive = 0.0
        self._busy_until = 0.0

    # ------------------------------------------------------------------ faults

    def disconnect_electrode(self, channel: int) -> None:
        """Fault: an electrode of mid-level ``channel`` (0–7) comes off (open circuit)."""
        self.set_load_ohm(channel, math.inf)

    def set_load_ohm(self, channel: int, ohm: float) -> None:
        """Set the load seen by ``channel``; checked now if it is stimulating, else at the next update."""
        with self.lock:
            self.load_ohm[channel] = float(ohm)
            if self.status == _S.ML_RUNNING:
                self._check_channels(time.monotonic())

    def general_error(self, result: sm4.Result | int = _R.UC_STIM_TIMEOUT_ERROR) -> None:
        """Fault: the device stops everything and sends an unsolicited GeneralError (66)."""
        with self.lock:
            now = time.monotonic()
            self._set_output(now, {}, "error", f"general error {sm4.Result(result).name}")
            if self.status == _S.ML_RUNNING:
                self.status = _S.ML_INITIALIZED
            self.send(sm4.GeneralError(sm4.Result(result)), self.next_own_pn())

    # ------------------------------------------------------------------ loop hooks

    def on_power_up(self, now: float) -> None:
        self.timeline.event(now, "power_on")

    def tick(self, now: float) -> None:
        if self.status == _S.ML_RUNNING and now - self._last_keep_alive > self.keep_alive_s:
            self._set_output(now, {}, "watchdog",
                             f"no keep-alive for {now - self._last_keep_alive:.3f} s")
            self.status = _S.ML_INITIALIZED

    def _set_output(self, now: float, configs: dict, kind: str, detail: str = "") -> None:
        outputs = {}
        for ch, cfg in configs.items():
            pos = [p for p in cfg.points if p.current_ma > 0]
            outputs[ch] = ChannelOutput(
                period_s=cfg.period_ms / 1000.0,
                pulse_width_us=float(pos[0].duration_us if pos else 0),
                current_ma=float(max((p.current_ma for p in cfg.points), default=0.0)),
                ramp_pulses=cfg.ramp)
        self._config = dict(configs)
        if outputs or self.timeline.stimulating:
            self.timeline.set_output(now, outputs, kind, detail)
        else:
            self.timeline.event(now, kind, detail)

    # ------------------------------------------------------------------ host → device

    def handle(self, item, now: float) -> None:
        if isinstance(item, BadFrame):
            self._bad_frame(item, now)
            return
        msg, pn, command = item.message, item.number, item.command
        if command not in _ACKED:
            self.after(self.latency(), lambda t: self.send(sm4.UnknownCommand(_R.INVALID_COMMAND_ERROR),
                                                           pn))
            return
        if isinstance(msg, (sm4.MlUpdate, sm4.MlGetCurrentData)):
            self._last_keep_alive = now
        # commands are processed one after another; HV switching makes some take longer
        start = max(now, self._busy_until)
        done = start + self.latency() + HV_SWITCH_S.get(command, 0.0)
        self._busy_until = done
        self.after(done - now, lambda t: self._process(msg, pn, t))

    def _bad_frame(self, item: BadFrame, now: float) -> None:
        if item.kind == BadFrameKind.PAYLOAD and item.command in _ACKED:
            cmd, pn = item.command, item.packet_number
            self.after(self.latency(), lambda t: self.reply(_error_ack(cmd, _R.PARAMETER_ERROR), pn))
        elif item.kind in (BadFrameKind.CRC, BadFrameKind.LENGTH):
            try:
                body = unstuff(item.raw[sm4.HEADER_SIZE:-1])
            except CodecError:
                return
            if len(body) >= 2:
                pn, cmd = body[0] >> 2, ((body[0] & 3) << 8) | body[1]
                if cmd in _ACKED:
                    self.after(self.latency(),
                               lambda t: self.reply(_error_ack(cmd, _R.TRANSFER_ERROR), pn))

    def _process(self, msg, pn: int, now: float) -> None:
        ml = self.status in (_S.ML_INITIALIZED, _S.ML_RUNNING)
        if isinstance(msg, sm4.GetStimStatus):
            self.reply(sm4.GetStimStatusAck(_R.OK, self.status, int(self.status != _S.UNINITIALIZED)), pn)
        elif isinstance(msg, sm4.MlInit):
            if self.status == _S.LL_INITIALIZED:
                self.reply(sm4.MlInitAck(_R.NOT_INITIALIZED_ERROR), pn)
                return
            self._set_output(now, {}, "ml_init")
            self.stop_all_on_error = msg.stop_all_channels_on_error
            self.channel_states = [sm4.MlChannelState.OK] * 8
            self.status = _S.ML_INITIALIZED
            self.reply(sm4.MlInitAck(_R.OK), pn)
        elif isinstance(msg, sm4.MlUpdate):
            self.reply(sm4.MlUpdateAck(self._update(msg, now) if ml else _R.NOT_INITIALIZED_ERROR), pn)
        elif isinstance(msg, sm4.MlStop):
            if not ml:
                self.reply(sm4.MlStopAck(_R.NOT_INITIALIZED_ERROR), pn)
                return
            self._set_output(now, {}, "stop", "Ml_stop")
            self.status = _S.UNINITIALIZED
            self.reply(sm4.MlStopAck(_R.OK), pn)
        elif isinstance(msg, sm4.MlGetCurrentData):
            if not ml:
                self.reply(_error_ack(_C.ML_GET_CURRENT_DATA, _R.NOT_INITIALIZED_ERROR), pn)
                return
            active = [ch in self._config and self.status == _S.ML_RUNNING for ch in range(8)]
            if msg.selection == sm4.MlDataSelection.CHANNELS:
                ack = sm4.MlGetCurrentDataAck.for_channels(active, self.channel_states)
            else:
                n = 4 if msg.selection == sm4.MlDataSelection.STIMULATION else 8
                errors = [s == sm4.MlChannelState.ELECTRODE_ERROR for s in self.channel_states[:n]]
                ack = sm4.MlGetCurrentDataAck.for_stimulation(self.status == _S.ML_RUNNING, errors)
            self.reply(ack, pn)
        elif isinstance(msg, sm4.LlInit):
            if ml:
                self.reply(sm4.LlInitAck(_R.NOT_INITIALIZED_ERROR), pn)
                return
            self.status = _S.LL_INITIALIZED
            self.reply(sm4.LlInitAck(_R.OK), pn)
        elif isinstance(msg, sm4.LlChannelConfig):
            if self.status != _S.LL_INITIALIZED:
                self.reply(sm4.LlChannelConfigAck(_R.NOT_INITIALIZED_ERROR, msg.channel, msg.connector), pn)
                return
            if msg.enable:
                peak = max(p.current_ma for p in msg.points)
                width = next((p.duration_us for p in msg.points if p.current_ma > 0), 0)
                self.timeline.single_pulse(now, 4 * msg.connector + msg.channel, width, peak)
            self.reply(sm4.LlChannelConfigAck(_R.OK, msg.channel, msg.connector), pn)
        elif isinstance(msg, sm4.LlStop):
            if self.status != _S.LL_INITIALIZED:
                self.reply(sm4.LlStopAck(_R.NOT_INITIALIZED_ERROR), pn)
                return
            self.status = _S.UNINITIALIZED
            self.reply(sm4.LlStopAck(_R.OK), pn)

    def _update(self, msg: sm4.MlUpdate, now: float) -> sm4.Result:
        for cfg in msg.channels:
            if any(abs(p.current_ma) > VALIDITY_MAX_MA for p in cfg.points):
                self.timeline.event(now, "parameter_error", f"channel {cfg.channel} current")
                return _R.PARAMETER_ERROR
        if msg.time_load >= 1.0:
            self.timeline.event(now, "parameter_error", f"time load {msg.time_load:.3f}")
            return _R.PULSE_TIMEOUT_ERROR
        configs = {c.channel: c for c in msg.channels}
        kind = "update" if self.status == _S.ML_RUNNING else "start"
        self.status = _S.ML_RUNNING if configs else _S.ML_INITIALIZED
        self._set_output(now, configs, kind,
                         ", ".join(f"ch{c} {max(p.current_ma for p in cfg.points):g} mA"
                                   for c, cfg in configs.items()))
        return self._check_channels(now)

    def _check_channels(self, now: float) -> sm4.Result:
        """Apply the electrode and compliance checks to the running channels."""
        result = _R.OK
        failed = []
        for ch, cfg in self._config.items():
            peak = max(abs(p.current_ma) for p in cfg.points)
            ohm = self.load_ohm[ch]
            if math.isinf(ohm) and peak >= ELECTRODE_CHECK_MIN_MA:
                self.channel_states[ch] = sm4.MlChannelState.ELECTRODE_ERROR
                failed.append(ch)
                result = _R.ELECTRODE_ERROR
            elif not math.isinf(ohm) and peak * 1e-3 * ohm > COMPLIANCE_V:
                self.channel_states[ch] = sm4.MlChannelState.LOW_CURRENT
                failed.append(ch)
                if result == _R.OK:
                    result = _R.PULSE_LOW_CURRENT_ERROR
        if failed:
            keep = {} if self.stop_all_on_error else {c: v for c, v in self._config.items()
                                                      if c not in failed}
            self._set_output(now, keep, "error",
                             ", ".join(f"ch{c} {self.channel_states[c].name}" for c in failed))
            if not keep:
                self.status = _S.ML_INITIALIZED
        return result
