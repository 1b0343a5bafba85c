"""ScienceMode 4 driver for the Hasomed P24 (mid level).

Protocol facts from ``devices_and_safety.md`` §3 [verified: primary source]: 3 Mbaud (nominal
on the USB CDC port) 8N2 with RTS/CTS; ``Ml_init`` switches the high voltage on (2 × 40 ms),
``Ml_update`` starts or updates stimulation with a period and up to 16 waveform points per
channel, ``Ml_stop`` switches it off; stimulation pauses by itself after 2 s without
``Ml_update`` or ``Ml_get_current_data``; the P24 has no emergency-stop input.

Mapping (§3.6): one ``Ml_update`` per schedule step (on, off, 100 ms ramp step, intensity
change) with every channel that delivers current enabled (an off channel is disabled);
a symmetric biphasic pulse is the three points (+I, pw), (0, inter-phase gap), (−I, pw);
the device's own ramp (≤ 15 pulses) is not used because clinical ramps of 1–3 s are longer.
The heartbeat sends ``Ml_get_current_data`` (selection 4, all channel states) every 0.8 s;
it is both the keep-alive and the error poll: an electrode error, pulse timeout or low
current on any channel is an emergency stop with an error event naming the channel.

Where other implementations differ (not copied): science_mode_4 encodes the period as
``round(period_ms / 2)``; the codec follows the C library (``period_ms * 2``). pysciencemode's
P24 path wraps a Windows-only C library; this driver is pure Python over pyserial.
"""

from __future__ import annotations

import numpy as np

from emsim.devices.base import DevicePlan
from emsim.devices.sciencemode import sm4
from emsim.devices.sciencemode._driver import DeviceFault, FramedDriver
from emsim.errors import DeviceError
from emsim.program.model import ConstantPattern

__all__ = ["ScienceMode4Stimulator"]

# Switching the high voltage takes 40-80 ms (§3.4); allow for it on top of the response time.
HV_ACK_TIMEOUT_S = 0.3

_CHANNEL_FAULT = {
    sm4.MlChannelState.ELECTRODE_ERROR: ("electrode", "electrode error"),
    sm4.MlChannelState.PULSE_TIMEOUT: ("device", "pulse timeout (period too short for the pulse)"),
    sm4.MlChannelState.LOW_CURRENT: ("compliance", "pulse low current (compliance voltage insufficient)"),
}
_RESULT_FAULT = {
    sm4.Result.ELECTRODE_ERROR: "electrode",
    sm4.Result.PULSE_LOW_CURRENT_ERROR: "compliance",
    sm4.Result.PULSE_TIMEOUT_ERROR: "device",
}


class ScienceMode4Stimulator(FramedDriver):
    """Drive a P24 over ScienceMode 4 mid level.

    Parameters
    ----------
    port : str
        Serial port (or an emulator's pseudo-terminal path).
    **kw
        See :class:`~emsim.devices.sciencemode._driver.FramedDriver`; ``ack_timeout_s``
        defaults to 150 ms (an assumption: the reference gives no P24 response time).

    Notes
    -----
    :meth:`connect` opens the port and writes nothing; :meth:`load` (after the safety check)
    asks for the stimulation status and stops any level left running; :meth:`start` sends
    ``Ml_init``. Program channel ``k`` (0-based) is mid-level channel ``k``.
    """

    codec = sm4
    profile_id = "p24"
    default_ack_timeout_s = 0.15
    max_packet_number = sm4.MAX_PACKET_NUMBER

    def __init__(self, port: str, **kw):
        super().__init__(port, **kw)
        self._ml = False
        self._expected: set[int] = set()
        self._pulse: dict[int, tuple[float, int, int, bool]] = {}  # block -> period, pw, gap, dpa

    # ------------------------------------------------------------------ program mapping

    def _dev_check_plan(self, plan: DevicePlan) -> None:
        pulses = {}
        for k, b in enumerate(plan.train.blocks):
            where = f"channel {plan.channel_ids[b.channel]} in phase {b.phase}"
            w = b.waveform
            if w.shape != "symmetric_biphasic" or not isinstance(b.stimulation.pattern, ConstantPattern):
                raise DeviceError(f"{where}: this driver maps symmetric biphasic pulses at a constant "
                                  "frequency only", path="program", value=f"{w.shape}, "
                                  f"{b.stimulation.pattern.type}",
                                  allowed="symmetric_biphasic, constant (doublets, kHz bursts and "
                                          "other shapes are not mapped yet)")
            period = 1000.0 / b.stimulation.frequency_hz
            fine = abs(period * 2 - round(period * 2)) > 1e-6
            period = round(period * (4 if fine else 2)) / (4 if fine else 2)
            pw, gap = int(round(w.pulse_width_us)), int(round(w.interphase_gap_us))
            # build one config now so that a field the device cannot take fails at load, not mid-session
            sm4.MlChannelConfig(0, period, sm4.biphasic_points(pw, 0.0, gap), 0, fine)
            pulses[k] = (period, pw, gap, fine)
        self._pulse = pulses

    def _dev_prepare(self, plan: DevicePlan) -> None:
        reply = self._transact(sm4.GetStimStatus())
        if reply.result != sm4.Result.OK:
            raise DeviceFault(f"GetStimStatus refused: {reply.result.name}", value=int(reply.result))
        if reply.stim_status in (sm4.StimStatus.ML_INITIALIZED, sm4.StimStatus.ML_RUNNING):
            self._device_stop()
        elif reply.stim_status == sm4.StimStatus.LL_INITIALIZED:
            ack = self._transact(sm4.LlStop(), timeout_s=HV_ACK_TIMEOUT_S)
            if ack.result != sm4.Result.OK:
                raise DeviceFault(f"LlStop refused: {ack.result.name}", value=int(ack.result))
        self._ml = False

    def _dev_begin(self, plan: DevicePlan) -> None:
        reply = self._transact(sm4.MlInit(stop_all_channels_on_error=True), timeout_s=HV_ACK_TIMEOUT_S)
        if reply.result != sm4.Result.OK:
            raise DeviceFault(f"MlInit refused: {reply.result.name}", value=int(reply.result))
        self._ml = True
        self._expected = set()

    def _dev_apply(self, block: np.ndarray, amplitude_a: np.ndarray, phase: int) -> None:
        configs = []
        for c in range(block.size):
            if block[c] < 0 or amplitude_a[c] <= 0:
                continue
            period, pw, gap, fine = self._pulse[int(block[c])]
            ma = round(amplitude_a[c] * 1e3 * 2) / 2  # already on the 0.5 mA grid; remove float noise
            configs.append(sm4.MlChannelConfig(c, period, sm4.biphasic_points(pw, ma, gap), 0, fine))
        reply = self._transact(sm4.MlUpdate(tuple(configs)))
        if reply.result != sm4.Result.OK:
            enabled = [cfg.channel for cfg in configs]
            failed = self._failed_channels() if reply.result in _RESULT_FAULT else []
            channel = failed[0] if failed else (enabled[0] if len(enabled) == 1 else None)
            raise DeviceFault(f"MlUpdate refused by the device: {reply.result.name} ({int(reply.result)})"
                              + (f" on mid-level channel {channel}" if channel is not None else ""),
                              fault_kind=_RESULT_FAULT.get(reply.result, "device"), channel=channel,
                              value=int(reply.result))
        self._expected = {cfg.channel for cfg in configs}

    def _failed_channels(self) -> list[int]:
        """Channels whose state is not OK (asked after a refused update, to name the channel)."""
        try:
            reply = self._transact(sm4.MlGetCurrentData(sm4.MlDataSelection.CHANNELS), urgent=True)
        except DeviceError:
            return []
        return [c for c, st in enumerate(reply.channel_states or ()) if st != sm4.MlChannelState.OK]

    # ------------------------------------------------------------------ keep-alive, errors, stop

    def _dev_keep_alive(self) -> None:
        with self._tx_lock:  # decide and poll atomically with respect to Ml_init / Ml_stop
            if not self._ml:
                return  # outside mid level the P24 has no keep-alive to feed
            reply = self._transact(sm4.MlGetCurrentData(sm4.MlDataSelection.CHANNELS))
        if reply.result != sm4.Result.OK:
            raise DeviceFault(f"status poll refused: {reply.result.name} ({int(reply.result)})",
                              value=int(reply.result))
        for c, st in enumerate(reply.channel_states):
            if st != sm4.MlChannelState.OK:
                kind, text = _CHANNEL_FAULT[st]
                raise DeviceFault(f"device reports {text} on mid-level channel {c}", fault_kind=kind,
                                  channel=c if self._plan and c < len(self._plan.channel_ids) else None)
        expected = self._expected
        if expected and not any(reply.channels_active[c] for c in expected) and self._delivering() \
                and not self._halt.is_set():
            raise DeviceFault("the device stopped stimulating on its own (keep-alive expired or "
                              "internal stop)", fault_kind="watchdog")

    def _dev_unsolicited(self, packet) -> bool:
        msg = packet.message
        if isinstance(msg, sm4.GeneralError):
            self._device_error(f"device reported a general error "
                               f"({msg.result.name if msg.result is not None else 'no code'})", kind="device")
            return True
        if isinstance(msg, sm4.UnknownCommand):
            self._device_error("device did not recognise a command", kind="protocol")
            return True
        return False

    def _dev_stop_message(self):
        return sm4.MlStop()

    def _device_stop(self) -> None:
        with self._tx_lock:  # no status poll between the stop and clearing the mid-level flag
            reply = self._transact(sm4.MlStop(), timeout_s=HV_ACK_TIMEOUT_S, what="stop", urgent=True)
            self._dev_check_stop(reply)

    def _dev_check_stop(self, reply) -> None:
        # "not initialised" means no mid level is active: nothing is stimulating
        if reply.result not in (sm4.Result.OK, sm4.Result.NOT_INITIALIZED_ERROR):
            raise DeviceFault(f"MlStop refused: {reply.result.name}", value=int(reply.result))
        self._ml = False
        self._expected = set()

    def _dev_query(self) -> str:
        reply = self._transact(sm4.GetStimStatus(), urgent=True)
        if reply.result != sm4.Result.OK:
            return f"GetStimStatus result {reply.result.name}"
        return f"stimulation status {reply.stim_status.name}"

    def _is_busy(self, reply) -> bool:
        return getattr(reply, "result", None) == sm4.Result.BUSY
