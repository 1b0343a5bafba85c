"""The decision space: named values ↔ a Program built from a template.

A decision vector is a ``dict`` of named values, e.g. ``{"ES-L.pulse_width_us": 300.0,
"frequency_hz": 50.0, ...}``. Every numeric variable lives on a grid (``low + k * step``,
or the device's own grid where it has one) so that the vector written into a program file
and read back is the same vector, bit for bit; the categorical variables choose among
prototypes (waveform shape, pulse pattern, electrode size, site). Programs are always built
through :func:`emsim.program.io.from_dict`, so each candidate is checked by the format
itself; a vector the format refuses raises :class:`~emsim.errors.ProgramError`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from emsim.errors import OptimiseError, ProgramError
from emsim.program.device_profile import DeviceProfile, device_profile
from emsim.program.io import from_dict
from emsim.program.model import Program, RelativeAmplitude

__all__ = ["Variable", "DesignSpace", "FIELDS", "DEFAULT_FIELDS"]

# field → (hard low, hard high, default low, default high, default step). Hard bounds are the
# program format's (emsim.program.model); the defaults are the usual lumbar NMES ranges
# (20-100 Hz, 150-450 µs, 1-2.5 x motor threshold, 4-15 s on, 5-40 s off; Alrwaily et al.
# 2019, Braz J Phys Ther 23:506 used 50 Hz, 300 µs, 10 s on / 20 s off) [assumed search range].
FIELDS: dict[str, tuple[float, float, float, float, float]] = {
    "frequency_hz": (0.5, 300.0, 20.0, 100.0, 1.0),
    "pulse_width_us": (10.0, 1000.0, 150.0, 450.0, 10.0),
    "amplitude_factor": (0.05, 5.0, 1.0, 2.5, 0.05),
    "amplitude_ma": (0.0, 200.0, 10.0, 80.0, 1.0),
    "on_s": (0.1, 7200.0, 4.0, 15.0, 0.5),
    "off_s": (0.0, 3600.0, 5.0, 40.0, 1.0),
    "ramp_up_s": (0.0, 60.0, 0.5, 2.0, 0.25),
    "ramp_down_s": (0.0, 60.0, 0.5, 2.0, 0.25),
    "duration_s": (1.0, 7200.0, 600.0, 1800.0, 60.0),
}
CATEGORICAL = ("waveform", "pattern", "electrode", "site")
#: Fields varied when the caller does not choose (waveform only when the device offers more than one).
DEFAULT_FIELDS = ("frequency_hz", "pulse_width_us", "amplitude", "on_s", "off_s", "ramp_up_s",
                  "ramp_down_s", "pattern", "waveform")

# Prototypes of the categorical choices. Doublets at 5 ms spacing after Binder-Macleod
# (Binder-Macleod & Barker 1991, Phys Ther 71:110) [measured, quadriceps]; the asymmetric
# secondary ratio is a common commercial choice [assumed].
_WAVEFORMS = {"symmetric_biphasic": {"shape": "symmetric_biphasic"},
              "asymmetric_biphasic": {"shape": "asymmetric_biphasic", "secondary_amplitude_ratio": 0.25}}
_PATTERNS = {"constant": {"type": "constant"},
             "doublets": {"type": "doublets", "pulses_per_burst": 2, "intra_burst_interval_ms": 5.0}}
_ELECTRODES = ("5x5", "5x9", "5x10", "8x10", "8x13")


def _decimals(step: float) -> int:
    return max(0, min(12, -math.floor(math.log10(step)) + 3)) if step > 0 else 12


@dataclass(frozen=True)
class Variable:
    """One decision variable.

    Attributes
    ----------
    name : str
        ``"<channel>.<field>"``, or ``"<field>"`` when one value is shared by ``channels``.
    field : str
        What it sets: a key of :data:`FIELDS`, or ``waveform``/``pattern``/``electrode``/``site``.
    channels : tuple of str
        Channel ids it sets (empty for phase-level fields such as ``duration_s``).
    low, high, step : float, optional
        Bounds and grid of a numeric variable.
    choices : tuple of str, optional
        Choices of a categorical variable.
    frequency_device : str, optional
        Device whose period grid the frequency snaps to.
    """

    name: str
    field: str
    channels: tuple[str, ...]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    frequency_device: str | None = None

    @property
    def categorical(self) -> bool:
        return self.choices is not None

    def snap(self, value: Any) -> Any:
        """The representable value nearest ``value`` (the identity on representable values)."""
        if self.categorical:
            if value not in self.choices:
                raise OptimiseError("value is not one of the choices", path=self.name, value=value,
                                    allowed=", ".join(self.choices))
            return value
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise OptimiseError("not a number", path=self.name, value=value,
                                allowed=f"{self.low:g} to {self.high:g}") from None
        if not math.isfinite(x):
            raise OptimiseError("not a finite number", path=self.name, value=value,
                                allowed=f"{self.low:g} to {self.high:g}")
        x = min(max(x, self.low), self.high)
        if self.frequency_device is not None:
            dev = device_profile(self.frequency_device)
            f = dev.snap_frequency_hz(x)
            # the grid point may fall just outside the bounds: step back inside
            if f > self.high + 1e-12 or f < self.low - 1e-12:
                period = 1000.0 / f + (dev.period_ms.step if f > self.high else -dev.period_ms.step)
                f = 1000.0 / period
            return float(f)
        k = round((x - self.low) / self.step)
        x = round(self.low + k * self.step, _decimals(self.step))
        if x > self.high:
            x = round(x - self.step, _decimals(self.step))
        return float(x)

    def describe(self) -> dict:
        d = {"name": self.name, "field": self.field, "channels": list(self.channels)}
        if self.categorical:
            d["choices"] = list(self.choices)
        else:
            d.update(low=self.low, high=self.high, step=self.step, frequency_device=self.frequency_device)
        return d


@dataclass(frozen=True)
class DesignSpace:
    """Decision vector ↔ Program, around one phase of a template program.

    Build one with :meth:`from_template`; :meth:`to_program` and :meth:`from_program` are
    exact inverses on the space (``from_program(to_program(x)) == x`` for every snapped
    ``x``, and ``to_program(from_program(p)) == p`` for every program of the space).

    Attributes
    ----------
    template : Program
    phase : int
        Index of the phase whose stimulation varies.
    variables : tuple of Variable
    """

    template: Program
    phase: int
    variables: tuple[Variable, ...]
    doublet_interval_ms: float = 5.0
    _data: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_template(cls, template: Program, *, fields: Sequence[str] | None = None,
                      channels: Sequence[str] | None = None, phase: int | str | None = None,
                      bounds: Mapping[str, tuple[float, float]] | None = None,
                      choices: Mapping[str, Sequence[str]] | None = None,
                      tie: Sequence[str] | None = None,
                      device: DeviceProfile | str | None = None) -> "DesignSpace":
        """A design space over ``fields`` of ``channels`` in one phase of ``template``.

        Parameters
        ----------
        template : Program
            Everything not varied is taken from here.
        fields : sequence of str, optional
            Subset of ``frequency_hz, pulse_width_us, amplitude, on_s, off_s, ramp_up_s,
            ramp_down_s, duration_s, waveform, pattern, electrode, site`` (default
            :data:`DEFAULT_FIELDS`). ``amplitude`` becomes ``amplitude_factor`` for relative
            amplitudes and ``amplitude_ma`` for absolute ones.
        channels : sequence of str, optional
            Channel ids that vary (default: all channels stimulated in the phase).
        phase : int or str, optional
            Index or name of the phase (default: the first ``main`` phase).
        bounds : mapping, optional
            ``field`` or ``"<channel>.<field>"`` → ``(low, high)``, inside the hard bounds.
        choices : mapping, optional
            ``waveform``/``pattern``/``electrode``/``site`` → allowed choices.
        tie : sequence of str, optional
            Fields that take one shared value on all channels (default: ``frequency_hz``
            when the device has one period for all channels, as the RehaStim 2 does).
        device : DeviceProfile or str, optional
            Narrows hard bounds and choices to what the device can deliver and snaps
            frequencies, pulse widths and absolute currents to its grid.

        Raises
        ------
        OptimiseError
            Unknown field or channel, contradictory or out-of-range bounds, an empty choice.
        """
        dev = device_profile(device) if isinstance(device, str) else device
        p = _phase_index(template, phase)
        stims = {st.channel: st for st in template.phases[p].stimulation}
        chans = tuple(channels) if channels is not None else tuple(stims)
        for c in chans:
            if c not in stims:
                raise OptimiseError("channel not stimulated in the phase", path="channels", value=c,
                                    allowed=", ".join(stims) or "(none)")
        if not chans:
            raise OptimiseError("nothing to vary: the phase stimulates no channel", path="channels",
                                value=template.phases[p].name, allowed="a phase with stimulation")
        wanted = list(fields) if fields is not None else list(DEFAULT_FIELDS)
        allowed_fields = set(FIELDS) | set(CATEGORICAL) | {"amplitude"}
        for f in wanted:
            if f not in allowed_fields:
                raise OptimiseError("unknown design field", path="fields", value=f,
                                    allowed=", ".join(sorted(allowed_fields - {"amplitude_factor", "amplitude_ma"})))
        if tie is None:
            tie = ("frequency_hz",) if dev is not None and dev.shared_period else ()
        bounds = dict(bounds or {})
        choices = dict(choices or {})
        variables: list[Variable] = []
        for f in wanted:
            if f == "duration_s":
                variables.append(_numeric("duration_s", f, (), template, bounds, dev))
                continue
            if f in CATEGORICAL:
                opts = _choices(f, choices, dev)
                if f == "waveform" and fields is None and len(opts) < 2:
                    continue  # nothing to choose on this device
                if f in ("electrode", "site") and f not in choices and fields is None:
                    continue
                groups = [chans] if f in tie else [(c,) for c in chans]
                for g in groups:
                    name = f if len(g) > 1 else f"{g[0]}.{f}"
                    variables.append(Variable(name, f, g, choices=tuple(opts)))
                continue
            if f == "amplitude":
                kinds = {isinstance(stims[c].amplitude, RelativeAmplitude) for c in chans}
                if len(kinds) > 1 and "amplitude" in tie:
                    raise OptimiseError("cannot tie relative and absolute amplitudes", path="tie",
                                        value="amplitude", allowed="channels of one amplitude kind")
            groups = [chans] if f in tie else [(c,) for c in chans]
            for g in groups:
                ff = f
                if f == "amplitude":
                    ff = "amplitude_factor" if isinstance(stims[g[0]].amplitude, RelativeAmplitude) else "amplitude_ma"
                name = ff if len(g) > 1 else f"{g[0]}.{ff}"
                variables.append(_numeric(name, ff, g, template, bounds, dev))
        unused = set(bounds) - {v.name for v in variables} - {v.field for v in variables} \
            - {"amplitude"}
        if unused:
            raise OptimiseError("bounds given for a variable that is not varied", path="bounds",
                                value=sorted(unused)[0], allowed=", ".join(v.name for v in variables))
        space = cls(template=template, phase=p, variables=tuple(variables),
                    doublet_interval_ms=_doublet_interval_ms(dev))
        space._check_ramps()
        return space

    def _check_ramps(self) -> None:
        """Refuse bounds under which no vector gives valid ramps (ramp_up + ramp_down <= on_s)."""
        st = {s.channel: s for s in self.template.phases[self.phase].stimulation}
        for c in {c for v in self.variables for c in v.channels}:
            lo = {}
            for f in ("on_s", "ramp_up_s", "ramp_down_s"):
                v = self.variable_for(c, f)
                lo[f] = (v.high if f == "on_s" else v.low) if v else getattr(st[c], f)
            if lo["ramp_up_s"] + lo["ramp_down_s"] > lo["on_s"] + 1e-9:
                raise OptimiseError("contradictory bounds: the shortest ramps are longer than the longest on time",
                                    path=f"{c}.ramp_up_s", value=lo["ramp_up_s"] + lo["ramp_down_s"],
                                    allowed=f"ramp_up_s + ramp_down_s <= on_s (at most {lo['on_s']:g} s)")

    # ------------------------------------------------------------------ queries

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)

    def variable_for(self, channel: str, field_name: str) -> Variable | None:
        for v in self.variables:
            if v.field == field_name and channel in v.channels:
                return v
        return None

    def snap(self, vector: Mapping[str, Any]) -> dict:
        """The representable vector nearest ``vector`` (all variables required)."""
        missing = [n for n in self.names if n not in vector]
        if missing:
            raise OptimiseError("decision vector lacks a variable", path=missing[0], has_value=False,
                                allowed=", ".join(self.names))
        extra = [k for k in vector if k not in self.names]
        if extra:
            raise OptimiseError("unknown decision variable", path=extra[0], value=vector[extra[0]],
                                allowed=", ".join(self.names))
        return {v.name: v.snap(vector[v.name]) for v in self.variables}

    def describe(self) -> dict:
        return {"phase": self.phase, "variables": [v.describe() for v in self.variables],
                "doublet_interval_ms": self.doublet_interval_ms}

    # ------------------------------------------------------------------ mapping

    def to_dict(self, vector: Mapping[str, Any]) -> dict:
        """The program document (a plain ``dict``) for ``vector`` (snapped first)."""
        x = self.snap(vector)
        if not self._data:
            object.__setattr__(self, "_data", self.template.model_dump(mode="json", exclude_none=True))
        data = copy.deepcopy(self._data)
        phase = data["phases"][self.phase]
        stims = {st["channel"]: st for st in phase["stimulation"]}
        chans = {c["id"]: c for c in data["channels"]}
        for v in self.variables:
            value = x[v.name]
            if v.field == "duration_s":
                phase["duration_s"] = value
                continue
            for c in v.channels:
                _set(stims[c], chans[c], v.field, value)
                if v.field == "pattern" and value == "doublets":
                    stims[c]["pattern"]["intra_burst_interval_ms"] = self.doublet_interval_ms
        return data

    def to_program(self, vector: Mapping[str, Any]) -> Program:
        """The Program for ``vector``; :class:`~emsim.errors.ProgramError` if the format refuses it."""
        return from_dict(self.to_dict(vector))

    def from_program(self, program: Program) -> dict:
        """The decision vector of ``program``.

        Raises
        ------
        OptimiseError
            ``program`` is not in this space (it differs from the template outside the
            variables, or a value is off the grid or out of bounds).
        """
        phase = program.phases[self.phase] if self.phase < len(program.phases) else None
        if phase is None:
            raise OptimiseError("program has no such phase", path="$.phases", value=len(program.phases),
                                allowed=f"at least {self.phase + 1} phases")
        stims = {st.channel: st for st in phase.stimulation}
        chans = {c.id: c for c in program.channels}
        x: dict[str, Any] = {}
        for v in self.variables:
            if v.field == "duration_s":
                vals = [phase.duration_s]
            else:
                if any(c not in stims or c not in chans for c in v.channels):
                    raise OptimiseError("program lacks a channel of the design space", path=v.name,
                                        value=", ".join(stims), allowed=", ".join(v.channels))
                vals = [_get(stims[c], chans[c], v.field) for c in v.channels]
            if any(val != vals[0] for val in vals):
                raise OptimiseError("a shared variable differs between channels", path=v.name, value=vals,
                                    allowed="one value for " + ", ".join(v.channels))
            x[v.name] = vals[0]
        snapped = self.snap(x)
        for name, value in x.items():
            if snapped[name] != value:
                raise OptimiseError("program value is not on the design grid", path=name, value=value,
                                    allowed=f"{snapped[name]!r} (nearest grid value)")
        rebuilt = self.to_program(snapped)
        if _content(rebuilt) != _content(program):
            raise OptimiseError("program differs from the template outside the design variables",
                                path="$", value=program.name, allowed="the template with only the variables changed")
        return snapped

    def with_template(self, template: Program) -> "DesignSpace":
        return replace(self, template=template, _data={})


def _content(program: Program) -> dict:
    d = program.model_dump(mode="json", exclude_none=True)
    for k in ("name", "description", "provenance"):
        d.pop(k, None)
    return d


def _phase_index(template: Program, phase) -> int:
    if phase is None:
        for i, ph in enumerate(template.phases):
            if ph.kind == "main":
                return i
        return 0
    if isinstance(phase, int):
        if not 0 <= phase < len(template.phases):
            raise OptimiseError("no such phase", path="phase", value=phase,
                                allowed=f"0 to {len(template.phases) - 1}")
        return phase
    for i, ph in enumerate(template.phases):
        if ph.name == phase:
            return i
    raise OptimiseError("no such phase", path="phase", value=phase,
                        allowed=", ".join(ph.name for ph in template.phases))


def _numeric(name, f, chans, template, bounds, dev) -> Variable:
    hard_lo, hard_hi, lo, hi, step = FIELDS[f]
    freq_dev = None
    if dev is not None:
        if f == "pulse_width_us":
            hard_lo, hard_hi = max(hard_lo, dev.pulse_width_us.min), min(hard_hi, dev.pulse_width_us.max)
            step = max(step, dev.pulse_width_us.step)
        elif f == "amplitude_ma":
            hard_lo, hard_hi = max(hard_lo, dev.current_ma.min), min(hard_hi, dev.current_ma.max)
            step = max(step, dev.current_ma.step)
        elif f == "frequency_hz":
            hard_lo = max(hard_lo, 1000.0 / dev.period_ms.max)
            hard_hi = min(hard_hi, 1000.0 / dev.period_ms.min)
            freq_dev = dev.id
    if f == "on_s" and chans:
        hard_hi = min(hard_hi, max(ph.duration_s for ph in template.phases))
    given = bounds.get(name, bounds.get(f, bounds.get("amplitude") if f.startswith("amplitude") else None))
    if given is not None:
        try:
            lo, hi = (float(given[0]), float(given[1]))
        except (TypeError, ValueError, IndexError):
            raise OptimiseError("bounds must be a pair of numbers (low, high)", path=f"bounds.{name}",
                                value=given, allowed="(low, high)") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise OptimiseError("contradictory bounds: low above high", path=f"bounds.{name}",
                                value=(lo, hi), allowed="low <= high")
        if lo < hard_lo - 1e-12 or hi > hard_hi + 1e-12:
            raise OptimiseError("bounds outside what the format and device allow", path=f"bounds.{name}",
                                value=(lo, hi), allowed=f"{hard_lo:g} to {hard_hi:g}")
    else:
        lo, hi = max(lo, hard_lo), min(hi, hard_hi)
        if lo > hi:
            raise OptimiseError("contradictory bounds: the device leaves no default range", path=name,
                                value=(lo, hi), allowed=f"{hard_lo:g} to {hard_hi:g}")
    return Variable(name, f, tuple(chans), low=lo, high=hi, step=step, frequency_device=freq_dev)


def _doublet_interval_ms(dev) -> float:
    """5 ms doublets, or the device's closest representable spacing at or above 5 ms."""
    if dev is None:
        return 5.0
    r = dev.intra_burst_interval_ms
    ms = float(r.snap(max(5.0, r.min)))
    return ms if ms >= r.min else float(ms + r.step)


def _choices(f: str, given: Mapping[str, Sequence[str]], dev) -> list[str]:
    from emsim.program.model import SITE_IDS

    universe = {"waveform": tuple(_WAVEFORMS), "pattern": tuple(_PATTERNS), "electrode": _ELECTRODES,
                "site": SITE_IDS}[f]
    opts = list(given.get(f, universe))
    for o in opts:
        if o not in universe:
            raise OptimiseError(f"unknown {f} choice", path=f"choices.{f}", value=o, allowed=", ".join(universe))
    if dev is not None and f == "waveform":
        opts = [o for o in opts if o in dev.waveforms]
    if dev is not None and f == "pattern":
        opts = [o for o in opts if o in dev.patterns]
    if not opts:
        raise OptimiseError(f"no {f} choice is left", path=f"choices.{f}", value=list(given.get(f, universe)),
                            allowed=f"at least one the device offers ({', '.join(getattr(dev, f + 's', ()))})")
    return opts


def _set(st: dict, ch: dict, f: str, value) -> None:
    if f in ("frequency_hz", "on_s", "off_s", "ramp_up_s", "ramp_down_s"):
        st[f] = value
    elif f == "pulse_width_us":
        st["waveform"]["pulse_width_us"] = value
    elif f == "amplitude_factor":
        st["amplitude"]["factor"] = value
    elif f == "amplitude_ma":
        st["amplitude"] = {"ma": value}
    elif f == "waveform":
        w = dict(_WAVEFORMS[value])
        w["pulse_width_us"] = st["waveform"].get("pulse_width_us", 300.0)
        w["interphase_gap_us"] = st["waveform"].get("interphase_gap_us", 0.0)
        st["waveform"] = w
    elif f == "pattern":
        st["pattern"] = dict(_PATTERNS[value])
    elif f == "electrode":
        w, length = (float(s) for s in value.split("x"))
        ch["electrodes"] = [{"shape": "rectangle", "width_cm": w, "length_cm": length}] * 2
    elif f == "site":
        ch["site"] = value


def _get(st, ch, f: str):
    if f in ("frequency_hz", "on_s", "off_s", "ramp_up_s", "ramp_down_s"):
        return getattr(st, f)
    if f == "pulse_width_us":
        return getattr(st.waveform, "pulse_width_us", None)
    if f == "amplitude_factor":
        return getattr(st.amplitude, "factor", None)
    if f == "amplitude_ma":
        return getattr(st.amplitude, "ma", None)
    if f == "waveform":
        return st.waveform.shape
    if f == "pattern":
        return st.pattern.type
    if f == "electrode":
        e = ch.electrodes[0]
        return f"{e.width_cm:g}x{e.length_cm:g}" if e.shape == "rectangle" else None
    if f == "site":
        return ch.site
    raise ProgramError("unknown design field", path=f)  # pragma: no cover - guarded at construction
