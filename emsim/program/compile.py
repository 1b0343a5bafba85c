"""Compile a program into the exact pulses each channel delivers: the ``PulseTrain``.

The compiled train is the single source of pulse timing for the physiology, the simulated
stimulator and every device driver. Pulses are stored as flat NumPy columns sorted by
channel, then time (``channel_ptr`` delimits each channel, as in a CSR matrix), so memory is
a fixed 28 bytes per pulse plus one small record per (channel, phase) block. Each block's
pulses are generated in one vectorised step: the pulse offsets of one on-window (the
pattern) are computed once and broadcast over the cycle starts, so the cost is linear in the
number of pulses and no time grid is ever sampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from emsim._validation import raise_all
from emsim.program import waveform as wf
from emsim.program.io import check_consistency
from emsim.program.model import DoubletPattern, Program, Stimulation, VariableFrequencyPattern
from emsim.program.resolve import resolve_amplitude, session_factors

__all__ = ["PulseTrain", "Block", "compile", "pattern_offsets"]

_EPS = 1e-9  # s; keeps a pulse that lands exactly on a window edge out of the next window


@dataclass(frozen=True)
class Block:
    """One channel during one phase: the stimulation settings and where its pulses are."""

    channel: int                 # index into PulseTrain.channel_ids
    phase: int                   # index into program.phases
    start_s: float               # phase window in session time
    end_s: float
    first_cycle_s: float         # start of the first on-window (after timing offsets)
    stimulation: Stimulation
    amplitude_a: float           # plateau amplitude after resolution, progression and caps
    amplitude_note: str
    first: int                   # pulse index range [first, stop)
    stop: int

    @property
    def waveform(self):
        return self.stimulation.waveform


@dataclass(frozen=True, eq=False)
class PulseTrain:
    """Every pulse of one session of a program, per channel.

    Attributes
    ----------
    t_s : ndarray of float64
        Pulse onset times in seconds from the start of the session.
    width_s : ndarray of float64
        Width of the primary (depolarising) phase; a carrier half-cycle for kHz bursts.
    amplitude_a : ndarray of float64
        Primary-phase peak current in amperes (ramps applied).
    block : ndarray of int32
        Index into ``blocks``; the block's waveform gives the pulse's full phase shape
        (see :func:`emsim.program.waveform.segments`).
    channel_ptr : ndarray of int64
        Pulses of channel ``c`` are ``[channel_ptr[c], channel_ptr[c + 1])``.
    """

    program: Program
    patient: object | None
    session: int
    channel_ids: tuple[str, ...]
    duration_s: float
    t_s: np.ndarray
    width_s: np.ndarray
    amplitude_a: np.ndarray
    block: np.ndarray
    channel_ptr: np.ndarray
    blocks: tuple[Block, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def n_pulses(self) -> int:
        return int(self.t_s.size)

    @property
    def nbytes(self) -> int:
        return int(self.t_s.nbytes + self.width_s.nbytes + self.amplitude_a.nbytes + self.block.nbytes
                   + self.channel_ptr.nbytes)

    def channel_slice(self, channel: int | str) -> slice:
        c = self.channel_ids.index(channel) if isinstance(channel, str) else channel
        return slice(int(self.channel_ptr[c]), int(self.channel_ptr[c + 1]))

    def block_values(self, fn) -> np.ndarray:
        """Evaluate ``fn(waveform)`` per block and spread it over the pulses (vectorised)."""
        per_block = np.array([fn(b.waveform) for b in self.blocks] or [0.0], dtype=np.float64)
        return per_block[self.block] if self.n_pulses else np.zeros(0)

    def net_charge_c(self) -> np.ndarray:
        """Signed net charge of each pulse in coulombs."""
        return self.amplitude_a * self.block_values(wf.net_charge_s)

    def phase_charge_c(self) -> np.ndarray:
        """Largest single-phase charge of each pulse in coulombs."""
        return self.amplitude_a * self.block_values(wf.max_phase_charge_s)

    def total_charge_c(self) -> float:
        """Sum of the absolute charge of all phases of all pulses (the dose through the skin)."""
        abs_per_amp = self.block_values(lambda w: sum(abs(d * lv) for d, lv in wf.segments(w)))
        return float(np.sum(self.amplitude_a * abs_per_amp))

    def table(self) -> dict[str, np.ndarray]:
        """The pulse table as columns in human units (for CSV/Parquet export)."""
        chan = np.repeat(np.arange(len(self.channel_ids)), np.diff(self.channel_ptr))
        names = np.array(self.channel_ids, dtype=object)
        shapes = np.array([b.waveform.shape for b in self.blocks] or [""], dtype=object)
        phase = np.array([b.phase for b in self.blocks] or [0], dtype=np.int32)
        return {
            "channel": names[chan] if self.n_pulses else np.zeros(0, dtype=object),
            "t_s": self.t_s,
            "pulse_width_us": self.width_s * 1e6,
            "amplitude_ma": self.amplitude_a * 1e3,
            "waveform": shapes[self.block] if self.n_pulses else np.zeros(0, dtype=object),
            "phase": phase[self.block] if self.n_pulses else np.zeros(0, dtype=np.int32),
            "net_charge_nc": self.net_charge_c() * 1e9,
        }


def pattern_offsets(stim: Stimulation, window_s: float) -> np.ndarray:
    """Pulse onsets within one on-window of length ``window_s`` (seconds from its start)."""
    period = 1.0 / stim.frequency_hz
    pat = stim.pattern
    limit = window_s - _EPS
    if isinstance(pat, VariableFrequencyPattern):
        onset = np.concatenate([[0.0], np.cumsum(np.asarray(pat.onset_intervals_ms) * 1e-3)])
        onset = onset[onset < limit]
        rest_n = max(0, math.ceil((limit - onset[-1]) / period))
        rest = onset[-1] + period * np.arange(1, rest_n + 1)
        out = np.concatenate([onset, rest])
    else:
        base = period * np.arange(max(1, math.ceil(limit / period)))
        if isinstance(pat, DoubletPattern):
            ibi = pat.intra_burst_interval_ms * 1e-3
            out = (base[:, None] + ibi * np.arange(pat.pulses_per_burst)[None, :]).ravel()
        else:
            out = base
    return out[out < limit]


def _envelope(stim: Stimulation, offsets: np.ndarray) -> np.ndarray:
    env = np.ones_like(offsets)
    if stim.ramp_up_s > 0:
        np.minimum(env, offsets / stim.ramp_up_s, out=env)
    if stim.ramp_down_s > 0:
        # Ramp down over the last ramp_down_s of the *programmed* on time, even if the phase
        # truncates the window: a truncated ramp is then visible, not silently reshaped.
        np.minimum(env, (stim.on_s - offsets) / stim.ramp_down_s, out=env)
    return env


def compile(program: Program, patient=None, *, session: int = 1) -> PulseTrain:  # noqa: A001
    """Compile one session of ``program`` for ``patient`` into a :class:`PulseTrain`.

    Parameters
    ----------
    program : Program
        A program from :func:`emsim.program.load` (or built in code; it is re-checked).
    patient : Patient, optional
        Needed when amplitudes are relative to measured thresholds.
    session : int
        1-based session number; selects progression steps and first-session caps.

    Raises
    ------
    ProgramError
        Inconsistent program, or a relative amplitude that cannot be resolved.
    """
    raise_all(check_consistency(program))
    intensity, duration_factor = session_factors(program.schedule, session)
    channel_ids = tuple(c.id for c in program.channels)
    index = {cid: k for k, cid in enumerate(channel_ids)}

    # Phase windows after the session's duration factor.
    starts, t = [], 0.0
    for ph in program.phases:
        starts.append(t)
        t += ph.duration_s * duration_factor
    total = t

    per_channel: list[list[tuple]] = [[] for _ in channel_ids]
    notes: list[str] = []
    for p, ph in enumerate(program.phases):
        t0, length = starts[p], ph.duration_s * duration_factor
        for j, st in enumerate(ph.stimulation):
            c = index[st.channel]
            ch = program.channels[c]
            resolved = resolve_amplitude(st, ch.site, ch.side, patient,
                                         path=f"$.phases[{p}].stimulation[{j}]")
            amp = resolved.ma * 1e-3 * intensity
            if ph.timing.mode == "alternating":
                offset = (j % 2) * 0.5 * (st.on_s + st.off_s)
            elif ph.timing.mode == "sequential":
                offset = j * ph.timing.offset_s
            else:
                offset = 0.0
            per_channel[c].append((p, t0, t0 + length, t0 + offset, st, amp, resolved.note))
            if resolved.note != "absolute":
                notes.append(f"{st.channel} phase {ph.name!r}: {resolved.note}")

    times, widths, amps, block_ids, blocks = [], [], [], [], []
    ptr = [0]
    n = 0
    for c, entries in enumerate(per_channel):
        for (p, start, end, first_cycle, st, amp, note) in sorted(entries, key=lambda e: e[1]):
            window = min(st.on_s, end - first_cycle)
            cycle = st.on_s + st.off_s
            if window <= 0 or amp <= 0:
                tt = np.zeros(0)
                env = np.zeros(0)
            else:
                offs = pattern_offsets(st, st.on_s)
                env_one = _envelope(st, offs)
                n_cycles = max(1, math.ceil((end - first_cycle) / cycle - _EPS))
                cyc = first_cycle + cycle * np.arange(n_cycles)
                tt = (cyc[:, None] + offs[None, :]).ravel()
                env = np.broadcast_to(env_one, (n_cycles, offs.size)).ravel()
                keep = (tt < end - _EPS) & (env > 0)
                tt, env = tt[keep], env[keep]
            k = tt.size
            times.append(tt)
            amps.append(env * amp)
            widths.append(np.full(k, wf.primary_width_s(st.waveform)))
            block_ids.append(np.full(k, len(blocks), dtype=np.int32))
            blocks.append(Block(channel=c, phase=p, start_s=start, end_s=end, first_cycle_s=first_cycle,
                                stimulation=st, amplitude_a=amp, amplitude_note=note, first=n, stop=n + k))
            n += k
        ptr.append(n)

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

    return PulseTrain(program=program, patient=patient, session=session, channel_ids=channel_ids,
                      duration_s=total, t_s=cat(times, np.float64), width_s=cat(widths, np.float64),
                      amplitude_a=cat(amps, np.float64), block=cat(block_ids, np.int32),
                      channel_ptr=np.asarray(ptr, dtype=np.int64), blocks=tuple(blocks),
                      notes=tuple(notes))

