"""Reading, checking and writing program documents.

``loads`` is strict: unknown fields, wrong types (including numbers given as strings with
units), out-of-range values and inconsistent timing raise :class:`~emsim.errors.ProgramError`
naming the JSON path, the value and the allowed range; every problem found is attached as
``error.problems``. ``dumps`` writes the one canonical form, so save → load → save is
byte-identical.
"""

from __future__ import annotations

from pathlib import Path

from emsim._validation import (atomic_write, canonical_json, parse_json, raise_all, read_text,
                               validate_document)
from emsim.body.sites import get_site
from emsim.errors import ProgramError
from emsim.program import waveform as wf
from emsim.program.model import (FORMAT, DoubletPattern, KhzBurst, Program, RelativeAmplitude,
                                 VariableFrequencyPattern)

__all__ = ["load", "loads", "dumps", "save", "from_dict", "check_consistency", "program_schema"]

MAX_PROGRAM_DURATION_S = 4 * 3600.0
_TOL = 1e-9


def loads(text: str | bytes) -> Program:
    """Parse and check a program document."""
    return from_dict(parse_json(text, ProgramError))


def load(path: str | Path) -> Program:
    """Read and check a program file (refuses files over 5 MB before reading them)."""
    try:
        return loads(read_text(path, ProgramError))
    except ProgramError as exc:
        if exc.unreadable and exc.path == "$":
            exc.path = str(path)  # "malformed JSON" should name the file, not the root
        raise


def from_dict(data) -> Program:
    """Check an already-parsed document (e.g. built by the optimiser or the UI)."""
    program = validate_document(data, Program, ProgramError, FORMAT)
    raise_all(check_consistency(program))
    return program


def dumps(program: Program) -> str:
    """The canonical JSON text of a program."""
    return canonical_json(program.model_dump(mode="json", exclude_none=True))


def save(program: Program, path: str | Path) -> None:
    """Write atomically: a failure leaves any existing file untouched."""
    raise_all(check_consistency(program))
    atomic_write(path, dumps(program))


def program_schema() -> dict:
    """The published JSON Schema of ``emsim.program/1``."""
    schema = Program.model_json_schema()
    schema.update({"$schema": "https://json-schema.org/draft/2020-12/schema",
                   "$id": "https://emsim.invalid/schema/emsim.program-1.json",
                   "title": "emsim stimulation program (emsim.program/1)",
                   "description": (schema.get("description", "") + " Research use only: emsim has no "
                                   "clinical clearance.").strip()})
    return schema


def check_consistency(program: Program) -> list[ProgramError]:
    """Cross-field rules the schema cannot express; returns the problems (empty if none)."""
    problems: list[ProgramError] = []

    def bad(message, path, value=None, allowed=None, has_value=True):
        problems.append(ProgramError(message, path=path, value=value, allowed=allowed,
                                     has_value=has_value))

    ids = [c.id for c in program.channels]
    for i, ch in enumerate(program.channels):
        p = f"$.channels[{i}]"
        if ids.index(ch.id) != i:
            bad("duplicate channel id", f"{p}.id", ch.id, "unique ids")
        site = get_site(ch.site)
        if ch.side not in site.sides:
            bad("side not possible for this site", f"{p}.side", ch.side, ", ".join(site.sides))
        for k, e in enumerate(ch.electrodes):
            pe = f"{p}.electrodes[{k}]"
            if e.shape == "rectangle":
                for name in ("width_cm", "length_cm"):
                    if getattr(e, name) is None:
                        bad("a rectangular electrode needs width_cm and length_cm", f"{pe}.{name}",
                            has_value=False)
                if e.diameter_cm is not None:
                    bad("diameter_cm is for circular electrodes", f"{pe}.diameter_cm", e.diameter_cm,
                        "absent for rectangles")
            else:
                if e.diameter_cm is None:
                    bad("a circular electrode needs diameter_cm", f"{pe}.diameter_cm", has_value=False)
                for name in ("width_cm", "length_cm"):
                    if getattr(e, name) is not None:
                        bad(f"{name} is for rectangular electrodes", f"{pe}.{name}", getattr(e, name),
                            "absent for circles")
            if e.side is not None and e.side not in get_site(e.site or ch.site).sides:
                bad("side not possible for this site", f"{pe}.side", e.side,
                    ", ".join(get_site(e.site or ch.site).sides))

    total = 0.0
    for i, ph in enumerate(program.phases):
        p = f"$.phases[{i}]"
        total += ph.duration_s
        seen: set[str] = set()
        for j, st in enumerate(ph.stimulation):
            ps = f"{p}.stimulation[{j}]"
            if st.channel not in ids:
                bad("unknown channel", f"{ps}.channel", st.channel, ", ".join(ids))
            if st.channel in seen:
                bad("channel stimulated twice in one phase", f"{ps}.channel", st.channel,
                    "each channel at most once per phase")
            seen.add(st.channel)
            _check_stimulation(st, ph.duration_s, ps, bad)
        t = ph.timing
        if t.mode != "sequential" and t.offset_s != 0:
            bad("offset_s applies only to sequential timing", f"{p}.timing.offset_s", t.offset_s, "0")
        if t.mode == "alternating":
            if len(ph.stimulation) < 2:
                bad("alternating timing needs at least two channels", f"{p}.timing.mode", t.mode,
                    "simultaneous for a single channel")
            cycles = {(st.on_s, st.off_s) for st in ph.stimulation}
            if len(cycles) > 1:
                bad("alternating channels must share on_s and off_s", f"{p}.timing.mode", t.mode,
                    "equal cycles on every channel")
        if t.mode == "sequential" and ph.stimulation:
            last = t.offset_s * (len(ph.stimulation) - 1)
            if last >= ph.duration_s:
                bad("the last channel would start after the phase ends", f"{p}.timing.offset_s",
                    t.offset_s, f"< {ph.duration_s / max(1, len(ph.stimulation) - 1):g} s")
    if total > MAX_PROGRAM_DURATION_S:
        bad("program longer than 4 hours", "$.phases", f"{total:g} s",
            f"<= {MAX_PROGRAM_DURATION_S:g} s in total")

    s = program.schedule
    if s.sessions_per_week * s.min_days_between_sessions > 7.0 + _TOL:
        bad("sessions_per_week cannot be kept with this spacing", "$.schedule.sessions_per_week",
            s.sessions_per_week, f"<= {7.0 / s.min_days_between_sessions:g} with "
            f"min_days_between_sessions = {s.min_days_between_sessions:g}")
    return problems


def _check_stimulation(st, phase_duration_s, ps, bad) -> None:
    if st.ramp_up_s + st.ramp_down_s > st.on_s + _TOL:
        bad("ramps longer than the on time", f"{ps}.ramp_up_s", st.ramp_up_s + st.ramp_down_s,
            f"ramp_up_s + ramp_down_s <= on_s = {st.on_s:g} s")
    if st.on_s > phase_duration_s + _TOL:
        bad("on time longer than the phase", f"{ps}.on_s", st.on_s,
            f"<= the phase duration {phase_duration_s:g} s")
    period = 1.0 / st.frequency_hz
    pulse = wf.duration_s(st.waveform)
    w = st.waveform
    if isinstance(w, KhzBurst):
        if st.pattern.type != "constant":
            bad("kHz bursts take the constant pattern", f"{ps}.pattern.type", st.pattern.type, "constant")
        if pulse >= period:
            bad("burst longer than the burst period", f"{ps}.waveform.burst_duration_ms",
                w.burst_duration_ms, f"< {1e3 * period:g} ms at {st.frequency_hz:g} Hz")
    elif pulse >= period:
        bad("pulse longer than the pulse period", f"{ps}.frequency_hz", st.frequency_hz,
            f"< {1.0 / pulse:g} Hz for a {pulse * 1e6:g} µs pulse")
    pat = st.pattern
    if isinstance(pat, DoubletPattern):
        ibi = pat.intra_burst_interval_ms * 1e-3
        if ibi <= pulse:
            bad("pulses within a burst overlap", f"{ps}.pattern.intra_burst_interval_ms",
                pat.intra_burst_interval_ms, f"> {pulse * 1e3:g} ms (the pulse duration)")
        if (pat.pulses_per_burst - 1) * ibi + pulse >= period:
            bad("burst longer than the pulse period", f"{ps}.pattern.intra_burst_interval_ms",
                pat.intra_burst_interval_ms,
                f"< {1e3 * (period - pulse) / (pat.pulses_per_burst - 1):g} ms at {st.frequency_hz:g} Hz")
    if isinstance(pat, VariableFrequencyPattern):
        for k, iv in enumerate(pat.onset_intervals_ms):
            if iv * 1e-3 <= pulse:
                bad("onset interval shorter than the pulse", f"{ps}.pattern.onset_intervals_ms[{k}]",
                    iv, f"> {pulse * 1e3:g} ms")
    amp = st.amplitude
    if isinstance(amp, RelativeAmplitude) and amp.relative_to == "tolerance" and amp.factor > 1.0:
        bad("amplitude above the patient's tolerance", f"{ps}.amplitude.factor", amp.factor,
            "<= 1 for relative_to = tolerance")
