"""The safety rules. Each rule cites its basis; numbers come from
``shared/reference/devices_and_safety.md`` §6-§7 (IEC 60601-2-10, FDA powered-muscle-stimulator
practice, the Hasomed instructions for use and the whole-body-EMS guidelines).

A rule is a function ``rule(ctx) -> iterable of Finding``. Rules read the program's blocks
(one channel in one phase) with the amplitude resolved for this patient and session, so a
program that is unsafe for one patient may pass for another and the report says why.
"""

from __future__ import annotations

import datetime as _dt
import math

import numpy as np
from dataclasses import dataclass

from emsim.body.patient import contraindication_items
from emsim.body.sites import get_site
from emsim.errors import ProgramError
from emsim.program import waveform as wf
from emsim.program.compile import pattern_offsets
from emsim.program.device_profile import DeviceProfile
from emsim.program.model import DoubletPattern, KhzBurst, Program, RelativeAmplitude
from emsim.program.quantise import RELATIVE_FREQUENCY_TOLERANCE, device_frequencies
from emsim.program.resolve import resolve_amplitude, session_factors
from emsim.safety.report import Finding

__all__ = ["RULES", "Context", "LIMITS", "BASIS"]

LIMITS = {
    "charge_balance_fraction": 0.01,      # |net| <= 1 % of the phase charge
    "current_density_rms_ma_cm2": 2.0,    # reject above
    "current_density_warn_ma_cm2": 1.5,   # warn above
    "power_density_w_cm2": 0.1,           # Hasomed IFU, at the 1 kOhm specification load
    "power_density_fda_w_cm2": 0.25,      # FDA PMS guidance, at 500 Ohm
    "pulse_energy_j": 0.300,              # IEC 60601-2-10 (1987) cl. 51.104, into 500 Ohm
    "wb_ems_min_days_reject": 4.0,
    "wb_ems_min_days_warn": 5.0,
    "wb_ems_max_session_min": 20.0,
    "first_session_tolerance_fraction": 0.9,
    "default_voltage_v": 150.0,
    "default_load_ohm": 1000.0,
}

BASIS = {
    "device": "device envelope from the manufacturer's protocol and IFU (models/devices/*.json; "
              "devices_and_safety.md §1, §3, rule table 1-4)",
    "charge": "no d.c. component: IEC 60601-2-10 d.c. disclosure; the P24 can deliver unbalanced pulses "
              "(devices_and_safety.md §3.1, rule 5)",
    "density": "r.m.s. current density <= 2 mA/cm2 under the smaller electrode: IEC 60601-2-10:2012 and "
               "Hasomed RehaStim2/P24 IFU (devices_and_safety.md §6.1, §6.3, §6.4, rule 6)",
    "power": "average power density <= 0.1 W/cm2 (Hasomed IFU, 1 kOhm); FDA 0.25 W/cm2 at 500 Ohm "
             "(devices_and_safety.md §6.2-6.4, rule 7)",
    "voltage": "compliance voltage I x R <= device maximum (devices_and_safety.md §3.6, rule 8)",
    "energy": "pulse energy <= 300 mJ into 500 Ohm: IEC 60601-2-10 (1987) cl. 51.104 (rule 9)",
    "placement": "IEC 60601-2-10:2012 IFU warning and FDA labelling: not through the head, on the eyes or "
                 "mouth, on the front of the neck, from chest to upper back or across the heart (rule 10)",
    "local": "no stimulation over lesions, wounds, inflammation, thrombosis, tumours or recent implants "
             "(FDA labelling, Hasomed IFU; rule 11)",
    "questionnaire": "contraindication questionnaire: FDA labelling, Hasomed IFU, WB-EMS consensus "
                     "(von Stengel, Kemmler et al. 2024) (models/safety/contraindications.json; rule 12)",
    "conditioning": "WB-EMS: initial application to exhaustion must be strictly avoided; conditioning over the "
                    "first sessions (Kemmler et al. 2016, Dtsch Z Sportmed; Kemmler et al. 2023, Front Physiol). "
                    "The 90 %-of-tolerance cap is a design choice, not from a source (rule 13)",
    "spacing": "WB-EMS: >= 4 days between sessions (Kemmler et al. 2023 [unverified recollection]); a studio "
               "FAQ citing DIN 33961-5 says >= 5 days [secondary source] (rule 14)",
    "duration": "WB-EMS sessions <= 20 min (Kemmler et al. 2023 [unverified recollection]) (rule 15)",
}


@dataclass
class BlockView:
    """A stimulation block with what the rules need, resolved for this patient and session."""

    phase: int
    index: int
    path: str
    stim: object
    channel: object
    amplitude_ma: float | None      # None: relative amplitude that cannot be resolved here
    amplitude_note: str
    area_cm2: float                 # smaller electrode of the pair
    rate_hz: float                  # pulses per second during the on time (worst 1 s)


@dataclass
class Context:
    program: Program
    patient: object | None
    device: DeviceProfile | None
    session: int
    today: _dt.date
    blocks: list[BlockView]
    metrics: dict


def build_context(program, patient, device, session, today) -> Context:
    intensity, _ = session_factors(program.schedule, session)
    blocks = []
    for p, ph in enumerate(program.phases):
        for j, st in enumerate(ph.stimulation):
            ch = program.channel(st.channel)
            path = f"$.phases[{p}].stimulation[{j}]"
            try:
                res = resolve_amplitude(st, ch.site, ch.side, patient, path=path)
                amp, note = res.ma * intensity, res.note
            except ProgramError as exc:
                if patient is not None:
                    raise
                amp, note = None, exc.message
            # Worst pulse count in any window of min(on, 1 s), across cycle boundaries (off may be 0).
            window = min(st.on_s, 1.0)
            cycle = st.on_s + st.off_s
            offs = pattern_offsets(st, st.on_s)
            reps = int(np.ceil(window / cycle)) + 2
            times = (cycle * np.arange(reps)[:, None] + offs[None, :]).ravel()
            counts = np.searchsorted(times, times + window - 1e-9) - np.arange(times.size)
            rate = float(counts.max()) / window
            blocks.append(BlockView(p, j, path, st, ch, amp, note,
                                    min(e.area_cm2 for e in ch.electrodes), rate))
    return Context(program, patient, device, session, today, blocks, {})


def _f(rule, severity, message, basis, path=None, value=None, limit=None):
    return Finding(rule, severity, message, path, value, limit, BASIS[basis])


# --------------------------------------------------------------------------- amplitude-free


def rule_charge_balance(ctx):
    for b in ctx.blocks:
        w = b.stim.waveform
        net, phase = wf.net_charge_s(w), wf.max_phase_charge_s(w)
        frac = abs(net) / phase if phase > 0 else 0.0
        if frac > LIMITS["charge_balance_fraction"]:
            yield _f("charge_balance", "error",
                     f"net charge per pulse is {100 * frac:.1f} % of the phase charge (d.c. component)",
                     "charge", f"{b.path}.waveform", round(100 * frac, 3), "<= 1 %")


def rule_placement(ctx):
    for i, ch in enumerate(ctx.program.channels):
        path = f"$.channels[{i}]"
        places = [(e.site or ch.site, e.side or ch.side) for e in ch.electrodes]
        regions = [get_site(s).region for s, _ in places]
        for (site_id, _), region in zip(places, regions):
            site = get_site(site_id)
            if site.stimulation == "forbidden":
                yield _f("placement", "error", f"electrode on {site.name}: never stimulate here", "placement",
                         path, site_id, "no electrodes on the head, face or anterior neck")
        if "thorax_anterior" in regions and "thorax_posterior" in regions:
            yield _f("placement", "error", "trans-thoracic path: chest to upper back", "placement", path,
                     "/".join(regions), "both electrodes on the same side of the thorax")
        thoracic = [(s, side) for (s, side), r in zip(places, regions) if r.startswith("thorax")]
        sides = {side for _, side in thoracic}
        if len(thoracic) == 2 and ({"left", "right"} <= sides or "bilateral" in sides):
            yield _f("placement", "error", "path across the heart: left to right thorax", "placement", path,
                     "/".join(sorted(sides)), "both electrodes on one side of the thorax")
        elif thoracic:
            yield _f("placement", "warning", "electrode near the thorax raises the fibrillation risk", "placement",
                     path, "/".join(regions))


def rule_device_envelope(ctx):
    dev = ctx.device
    if dev is None:
        return
    used = {b.stim.channel for b in ctx.blocks}
    if len(ctx.program.channels) > dev.channels:
        yield _f("device_channels", "error", f"{len(ctx.program.channels)} channels, {dev.id} has {dev.channels}",
                 "device", "$.channels", len(ctx.program.channels), f"<= {dev.channels}")
    freqs = device_frequencies(ctx.program, dev)
    for b in ctx.blocks:
        w, st = b.stim.waveform, b.stim
        if w.shape not in dev.waveforms:
            yield _f("device_waveform", "error", f"waveform {w.shape} not available on {dev.id}", "device",
                     f"{b.path}.waveform.shape", w.shape, ", ".join(dev.waveforms))
        if st.pattern.type not in dev.patterns:
            yield _f("device_pattern", "error", f"pattern {st.pattern.type} not available on {dev.id}", "device",
                     f"{b.path}.pattern.type", st.pattern.type, ", ".join(dev.patterns))
        if isinstance(st.pattern, DoubletPattern):
            if st.pattern.pulses_per_burst > dev.max_pulses_per_burst:
                yield _f("device_pattern", "error", "too many pulses per burst", "device",
                         f"{b.path}.pattern.pulses_per_burst", st.pattern.pulses_per_burst,
                         f"<= {dev.max_pulses_per_burst}")
            if not dev.intra_burst_interval_ms.contains(st.pattern.intra_burst_interval_ms):
                yield _f("device_pattern", "error", "burst spacing outside the device range", "device",
                         f"{b.path}.pattern.intra_burst_interval_ms", st.pattern.intra_burst_interval_ms,
                         dev.intra_burst_interval_ms.text("ms"))
        if not isinstance(w, KhzBurst):
            if not dev.pulse_width_us.contains(w.pulse_width_us):
                yield _f("device_pulse_width", "error", "pulse width outside the device range", "device",
                         f"{b.path}.waveform.pulse_width_us", w.pulse_width_us, dev.pulse_width_us.text("µs"))
            gap = getattr(w, "interphase_gap_us", None)
            if gap is not None and not dev.interphase_gap_us.contains(gap):
                fixed = dev.interphase_gap_us.min == dev.interphase_gap_us.max
                yield _f("device_interphase_gap", "warning" if fixed else "error",
                         f"inter-phase gap {'fixed at' if fixed else 'outside'} "
                         f"{dev.interphase_gap_us.text('µs') if not fixed else f'{dev.interphase_gap_us.min:g} µs'} "
                         f"on {dev.id}", "device", f"{b.path}.waveform.interphase_gap_us", gap)
        elif dev.max_waveform_points is not None:
            points = 2 * math.ceil(w.burst_duration_ms * 1e-3 * w.carrier_hz)
            if w.carrier_shape != "rectangular" or points > dev.max_waveform_points:
                yield _f("device_waveform", "error", f"kHz burst needs {points} rectangular points", "device",
                         f"{b.path}.waveform", w.carrier_shape, f"rectangular, <= {dev.max_waveform_points} points")
        period_ms = 1000.0 / st.frequency_hz
        if not dev.period_ms.contains(period_ms):
            yield _f("device_frequency", "error", "frequency outside the device range", "device",
                     f"{b.path}.frequency_hz", st.frequency_hz,
                     f"{1000 / dev.period_ms.max:.3g} to {1000 / dev.period_ms.min:.4g} Hz")
        else:
            f_dev = freqs[b.phase, b.index]
            err = f_dev / st.frequency_hz - 1.0
            if abs(err) > RELATIVE_FREQUENCY_TOLERANCE:
                yield _f("device_frequency", "error",
                         f"not representable: {st.frequency_hz:g} Hz would run at {f_dev:.4g} Hz "
                         f"({100 * err:+.1f} %){' (one shared period for all channels)' if dev.shared_period else ''}",
                         "device", f"{b.path}.frequency_hz", st.frequency_hz, f"within {100 * RELATIVE_FREQUENCY_TOLERANCE:g} %")
            elif abs(err) > 1e-9:
                yield _f("device_frequency", "info", f"quantised to {f_dev:.4g} Hz ({100 * err:+.2f} %)", "device",
                         f"{b.path}.frequency_hz", st.frequency_hz)
        if b.amplitude_ma is not None and b.amplitude_ma > dev.current_ma.max + 1e-9:
            yield _f("device_current", "error", "amplitude above the device maximum", "device",
                     f"{b.path}.amplitude", round(b.amplitude_ma, 3), f"<= {dev.current_ma.max:g} mA")
    # Multiplexing budget per phase (rule 4).
    for p, ph in enumerate(ctx.program.phases):
        blocks = [b for b in ctx.blocks if b.phase == p]
        if not blocks:
            continue
        if dev.slot_ms > 0:
            per_source = math.ceil(len(blocks) / 2) if len(blocks) > dev.channels_per_source else len(blocks)
            base_ms = min(1000.0 / freqs[b.phase, b.index] for b in blocks)
            need = dev.slot_ms * min(per_source, dev.channels_per_source)
            for b in blocks:
                if isinstance(b.stim.pattern, DoubletPattern):
                    need = max(need, b.stim.pattern.pulses_per_burst * b.stim.pattern.intra_burst_interval_ms)
            if base_ms + 1e-9 < need:
                yield _f("device_multiplex", "error", "channels do not fit in the main period", "device",
                         f"$.phases[{p}]", round(base_ms, 3), f">= {need:g} ms")
        else:
            load = sum((wf.duration_s(b.stim.waveform) * 1e6 * (b.stim.pattern.pulses_per_burst
                        if isinstance(b.stim.pattern, DoubletPattern) else 1) + dev.pulse_overhead_us)
                       * 1e-3 / (1000.0 / freqs[b.phase, b.index]) for b in blocks)
            if load >= 1.0:
                yield _f("device_multiplex", "error", "channels overload the time-multiplexed output", "device",
                         f"$.phases[{p}]", round(load, 3), "< 1")
    del used


# --------------------------------------------------------------------------- amplitude-dependent


def _electrical(b: BlockView, load_ohm: float):
    """r.m.s. current (A), r.m.s. density (mA/cm2), power density (W/cm2), energy (J), phase charge (C)."""
    i = b.amplitude_ma * 1e-3
    sq = wf.square_integral_s(b.stim.waveform)
    i_rms = i * math.sqrt(b.rate_hz * sq)
    return (i_rms, i_rms * 1e3 / b.area_cm2, i_rms ** 2 * load_ohm / b.area_cm2, i * i * 500.0 * sq,
            i * wf.max_phase_charge_s(b.stim.waveform))


def rule_amplitude_resolved(ctx):
    for b in ctx.blocks:
        if b.amplitude_ma is None:
            # The density limit as a current, so the designer knows what the patient may get.
            sq = wf.square_integral_s(b.stim.waveform)
            i_max = LIMITS["current_density_rms_ma_cm2"] * b.area_cm2 / math.sqrt(b.rate_hz * sq)
            yield _f("amplitude_unresolved", "warning",
                     f"relative amplitude: current-dependent rules run when a patient is given "
                     f"(the 2 mA/cm² r.m.s. limit is reached at {i_max:.0f} mA here)", "density",
                     f"{b.path}.amplitude", b.stim.amplitude.relative_to)


def rule_density_power_energy(ctx):
    load = ctx.device.load_ohm if ctx.device else LIMITS["default_load_ohm"]
    vmax = ctx.device.max_voltage_v if ctx.device else LIMITS["default_voltage_v"]
    worst = {"current_density_rms_ma_cm2": 0.0, "power_density_w_cm2": 0.0, "max_phase_charge_uc": 0.0,
             "max_amplitude_ma": 0.0}
    for b in ctx.blocks:
        if b.amplitude_ma is None:
            continue
        i_rms, j, pd, energy, q = _electrical(b, load)
        worst["current_density_rms_ma_cm2"] = max(worst["current_density_rms_ma_cm2"], j)
        worst["power_density_w_cm2"] = max(worst["power_density_w_cm2"], pd)
        worst["max_phase_charge_uc"] = max(worst["max_phase_charge_uc"], q * 1e6)
        worst["max_amplitude_ma"] = max(worst["max_amplitude_ma"], b.amplitude_ma)
        where = f"{b.path}.amplitude"
        if j > LIMITS["current_density_rms_ma_cm2"]:
            yield _f("current_density", "error",
                     f"r.m.s. current density {j:.2f} mA/cm² under the {b.area_cm2:.1f} cm² electrode", "density",
                     where, round(j, 3), "<= 2 mA/cm²")
        elif j > LIMITS["current_density_warn_ma_cm2"]:
            yield _f("current_density", "warning", f"r.m.s. current density {j:.2f} mA/cm² is close to the limit",
                     "density", where, round(j, 3), "<= 2 mA/cm²")
        if pd > LIMITS["power_density_w_cm2"]:
            yield _f("power_density", "error", f"average power density {pd:.3f} W/cm² at {load:g} Ω", "power",
                     where, round(pd, 4), "<= 0.1 W/cm²")
        if energy > LIMITS["pulse_energy_j"]:
            yield _f("pulse_energy", "error", f"pulse energy {1e3 * energy:.0f} mJ into 500 Ω", "energy", where,
                     round(1e3 * energy, 1), "<= 300 mJ")
        if b.amplitude_ma * 1e-3 * load > vmax:
            yield _f("compliance_voltage", "warning",
                     f"{b.amplitude_ma:.0f} mA needs {b.amplitude_ma * load * 1e-3:.0f} V at {load:g} Ω; the device "
                     "delivers less (low-current error)", "voltage", where, round(b.amplitude_ma * load * 1e-3, 1),
                     f"<= {vmax:g} V")
    ctx.metrics.update({k: round(v, 4) for k, v in worst.items()})


# --------------------------------------------------------------------------- patient


def rule_questionnaire(ctx):
    if ctx.patient is None:
        yield Finding("patient", "warning", "no patient given: contraindications, thresholds and session history "
                      "not checked (required before delivery)", None, None, None, BASIS["questionnaire"])
        return
    answers = ctx.patient.contraindications
    local = ctx.patient.local_conditions
    sites = {(e.site or ch.site, e.side or ch.side) for ch in ctx.program.channels for e in ch.electrodes}
    for item in contraindication_items():
        key, answer = item["id"], getattr(answers, item["id"])
        sev = "error" if item["severity"] == "absolute" else "warning"
        path = f"patient.contraindications.{key}"
        if answer is None:
            yield _f("contraindication_unanswered", "warning", f"not answered: {item['question']}", "questionnaire",
                     path)
            continue
        if not answer:
            continue
        if item["scope"] == "patient":
            yield _f(f"contraindication.{key}", sev,
                     f"{item['severity']} contraindication: {item['question']}", "questionnaire", path, True)
            continue
        where = [c for c in local if c.condition == key]
        if not where:
            yield _f(f"contraindication.{key}", sev,
                     f"{item['severity']} contraindication without a recorded site (assumed anywhere): "
                     f"{item['question']}", "local", path, True)
        for c in where:
            hit = [(s, sd) for s, sd in sites
                   if s == c.site and (sd == c.side or "bilateral" in (sd, c.side))]
            if hit:
                yield _f(f"contraindication.{key}", sev,
                         f"electrode over {c.site} ({c.side}) where the patient has: {item['question']}", "local",
                         path, f"{c.site}/{c.side}")


def rule_conditioning(ctx):
    prog = ctx.program
    fs = prog.schedule.first_sessions
    novice = ctx.patient is None or ctx.patient.history.sessions_completed < (fs.count if fs else 1)
    if prog.category == "wb_ems" and fs is None:
        yield _f("conditioning", "error", "whole-body EMS without a conditioning phase (first_sessions)",
                 "conditioning", "$.schedule.first_sessions", None, "reduced intensity and duration in the first sessions")
    in_first = fs is not None and ctx.session <= fs.count
    if not novice or (fs is not None and not in_first):
        return
    for b in ctx.blocks:
        amp = b.stim.amplitude
        frac = None
        if isinstance(amp, RelativeAmplitude) and amp.relative_to == "tolerance":
            intensity, _ = session_factors(prog.schedule, ctx.session)
            frac = amp.factor * intensity
        elif ctx.patient is not None and b.amplitude_ma is not None:
            tol = ctx.patient.thresholds_for(b.channel.site, b.channel.side, "tolerance")
            if tol:
                frac = b.amplitude_ma / min(t.amplitude_ma for t in tol)
        if frac is not None and frac >= LIMITS["first_session_tolerance_fraction"]:
            yield _f("conditioning", "error",
                     f"first session at {100 * frac:.0f} % of the tolerated current (never to exhaustion at the start)",
                     "conditioning", f"{b.path}.amplitude", round(frac, 3), "< 90 % of tolerance in the first sessions")


def rule_wb_ems_dosing(ctx):
    prog = ctx.program
    s = prog.schedule
    if prog.category == "wb_ems":
        if s.min_days_between_sessions < LIMITS["wb_ems_min_days_reject"]:
            yield _f("session_spacing", "error", "WB-EMS sessions too close together", "spacing",
                     "$.schedule.min_days_between_sessions", s.min_days_between_sessions, ">= 4 days")
        elif s.min_days_between_sessions < LIMITS["wb_ems_min_days_warn"]:
            yield _f("session_spacing", "warning", "WB-EMS spacing below the 5 days some guidelines ask", "spacing",
                     "$.schedule.min_days_between_sessions", s.min_days_between_sessions, ">= 5 days")
        minutes = prog.duration_s / 60.0
        if minutes > LIMITS["wb_ems_max_session_min"]:
            yield _f("session_duration", "warning", f"WB-EMS session of {minutes:.0f} min", "duration", "$.phases",
                     round(minutes, 2), "<= 20 min")
    if ctx.patient is not None and ctx.patient.history.last_session_date:
        last = _dt.date.fromisoformat(ctx.patient.history.last_session_date)
        gap = (ctx.today - last).days
        if gap < s.min_days_between_sessions:
            yield _f("session_spacing", "error", f"only {gap} day(s) since the last session on {last}", "spacing",
                     "patient.history.last_session_date", gap, f">= {s.min_days_between_sessions:g} days")


RULES = (rule_placement, rule_charge_balance, rule_device_envelope, rule_amplitude_resolved,
         rule_density_power_energy, rule_questionnaire, rule_conditioning, rule_wb_ems_dosing)
