"""Discomfort vs pulse width, frequency, waveform (pulsed vs kHz carrier) and electrode size, lumbar.

At the left lumbar erector spinae of the average archetype (``models/patients/lbp_average.json``),
for each waveform (symmetric biphasic pulses of several widths, or 4 ms bursts of a 1–10 kHz
sine carrier), repetition rate and electrode pair, the current is swept (1–200 mA) through
:func:`emsim.physiology.recruitment.recruit` (motor units, fibre tables with each waveform's
thresholds) and the discomfort model by the route :func:`emsim.simulate.predict_train` takes
(:func:`emsim.physiology.discomfort.cutaneous_activation` on the channel's skin current density,
then :func:`~emsim.physiology.discomfort.predict` as a steady train, recruited motor fraction as
the contraction term). Recorded: sensation, motor, pain (NRS 3) and tolerance (NRS 8)
thresholds, the current for a 20 % motor-pool contraction and the discomfort there, and the
contraction reached at NRS 5.

kHz bursts: the afferent thresholds come from the Brian2 fibre tables relative to the calibration
pulse (``waveform=``, :func:`emsim.physiology.cutaneous.waveform_multiplier`) and each active
afferent fires the number of action potentials per burst of the Brian2 burst-firing table
(:func:`emsim.physiology.cutaneous.burst_spikes`), as :func:`emsim.physiology.recruitment.recruit`
computes them. Whether the published discomfort minimum at 2.5–5 kHz is reproduced is the
validation test D1 in ``tests/validation/test_discomfort_targets.py``.

Run: ``python studies/discomfort.py [--quick]`` or ``emsim study run discomfort``.
"""

from __future__ import annotations

import numpy as np

from emsim.study import Grid, Parameter, Plot, Reference, Study, main

SITE = "lumbar_erector_spinae"
PATIENT = "lbp_average"
TARGET_MOTOR = 0.20  # a clearly visible, submaximal contraction (fraction of the ES pool)
BURST_MS = 4.0  # 4 ms bursts at 50 Hz = 20 % duty: Ward et al. 2004's best duty (20–25 %)
AMPS_MA = np.geomspace(1.0, 200.0, 96)
ELECTRODES_CM = {"2x2": (2.0, 2.0), "5x5": (5.0, 5.0), "5x9": (5.0, 9.0), "8x13": (8.0, 13.0)}
# label -> (shape, pulse width µs, carrier Hz)
WAVEFORMS = {f"biphasic {pw} µs": ("symmetric_biphasic", float(pw), 0.0) for pw in (100, 200, 300, 450, 700)}
WAVEFORMS.update({f"kHz {c / 1000:g} kHz": ("khz_burst", 0.0, float(c)) for c in (1000, 2500, 4000, 10000)})
PULSED_REF, KHZ_REF = "biphasic 300 µs", "kHz 2.5 kHz"


def _channel(electrode):
    from emsim.program.model import Channel

    w, l = ELECTRODES_CM[electrode]
    return Channel(id="ES-L", site=SITE, side="left", spacing_cm=4.0, orientation="along_fibres",
                   electrodes=({"shape": "rectangle", "width_cm": w, "length_cm": l},) * 2)


def _crossing(y, level):
    """Current (mA) where ``y`` (rising with AMPS_MA) first reaches ``level`` (log-interpolated)."""
    y = np.maximum.accumulate(y)  # a rising envelope: the first crossing is what a user meets
    if y[-1] < level:
        return np.nan
    return float(np.exp(np.interp(level, y, np.log(AMPS_MA))))


def _at(current_ma, y):
    """``y`` (over AMPS_MA) at ``current_ma`` (NaN where the current was never reached)."""
    return float(np.interp(np.log(current_ma), np.log(AMPS_MA), y)) if np.isfinite(current_ma) else np.nan


def _sweep(waveform, frequency_hz, electrode, patient):
    """Motor fraction, Aβ fraction and NRS over AMPS_MA for one stimulus."""
    from emsim.physiology import cutaneous as cut
    from emsim.physiology import discomfort as dsc
    from emsim.physiology.recruitment import StimulusSet, recruit

    shape, pw, carrier = WAVEFORMS[waveform]
    ch = _channel(electrode)
    stim = StimulusSet.from_arrays(AMPS_MA, pw or 300.0, frequency_hz, channels=ch, shape=shape,
                                   carrier_hz=carrier or 2500.0, burst_duration_ms=BURST_MS)
    rec = recruit(stim, SITE, patient)
    motor = rec.force_fraction[:, 0]
    person = dsc.Person.from_patient(patient)
    contact = rec.fields[0].skin_current_density()
    act = dsc.cutaneous_activation(contact, stim.amplitude_a, stim.waveform["pulse_width_s"], person=person,
                                   waveform=stim.waveform)
    spikes = cut.burst_spikes(contact, stim.amplitude_a, stim.waveform, threshold_scale=person.cutaneous_threshold_scale,
                              threshold_multiplier=cut.waveform_multiplier(stim.waveform))
    n = AMPS_MA.size
    area = np.array([[e.area_cm2 * 1e-4 for e in ch.electrodes]] * n)
    drive = dsc.AfferentDrive(times_s=np.zeros((n, 1)), afferent={k: v[:, :, None] for k, v in act.items()},
                              electrode_area_m2=area, force_fraction=motor[:, None],
                              steady_rate_hz=np.full(n, float(frequency_hz)),
                              spike_factor={k: v[:, :, None] for k, v in spikes.items()})
    nrs = dsc.predict(drive).peak
    return motor, act["abeta"].mean(axis=1), nrs


def evaluate(params):
    """Thresholds and discomfort at matched contraction, per row."""
    from emsim._data import models_dir
    from emsim.body import load_patient

    patient = load_patient(models_dir() / "patients" / f"{PATIENT}.json")
    keys = ("sensation_threshold_ma", "motor_threshold_ma", "pain_threshold_ma", "tolerance_ma",
            "current_at_target_ma", "nrs_at_target", "motor_at_nrs5_pct", "current_density_at_target_ma_cm2")
    out = {k: np.empty(len(params["waveform"])) for k in keys}
    for r, (wave, f, el) in enumerate(zip(params["waveform"], params["frequency_hz"], params["electrode"])):
        motor, abeta, nrs = _sweep(str(wave), float(f), str(el), patient)
        target = _crossing(motor, TARGET_MOTOR)
        at5 = _crossing(nrs, 5.0)
        w, l = ELECTRODES_CM[str(el)]
        vals = {"sensation_threshold_ma": _crossing(abeta, 0.05), "motor_threshold_ma": _crossing(motor, 0.02),
                "pain_threshold_ma": _crossing(nrs, 3.0), "tolerance_ma": _crossing(nrs, 8.0),
                "current_at_target_ma": target,
                "nrs_at_target": _at(target, nrs), "motor_at_nrs5_pct": 100.0 * _at(at5, motor),
                "current_density_at_target_ma_cm2": target / (w * l)}
        for k in keys:
            out[k][r] = vals[k]
    return out


def tables(df):
    """Pulse-width, carrier, electrode and waveform-comparison views of the results."""
    import pandas as pd

    shape = df["waveform"].map(lambda w: WAVEFORMS[w][0])
    pulsed = df[shape == "symmetric_biphasic"]
    pulsed = pulsed.assign(pulse_width_us=pulsed["waveform"].map(lambda w: WAVEFORMS[w][1]))
    khz = df[shape == "khz_burst"].assign(carrier_hz=lambda d: d["waveform"].map(lambda w: WAVEFORMS[w][2]))
    best = khz.groupby(["frequency_hz", "electrode"])["nrs_at_target"].transform("min")
    khz = khz.assign(nrs_relative_to_best_carrier=khz["nrs_at_target"] / best)
    thresholds = pulsed.melt(id_vars=["pulse_width_us", "frequency_hz", "electrode"],
                             value_vars=["sensation_threshold_ma", "motor_threshold_ma", "pain_threshold_ma",
                                         "tolerance_ma"], var_name="threshold", value_name="threshold_ma")
    thresholds["threshold"] = thresholds["threshold"].str.replace("_ma", "").str.replace("_", " ")
    sizes = df.assign(electrode_area_cm2=df["electrode"].map(lambda e: ELECTRODES_CM[e][0] * ELECTRODES_CM[e][1]))
    a = df[df["waveform"] == PULSED_REF].set_index(["frequency_hz", "electrode"])["motor_at_nrs5_pct"]
    b = df[df["waveform"] == KHZ_REF].set_index(["frequency_hz", "electrode"])["motor_at_nrs5_pct"]
    comp = (a / b).rename("force_ratio_pulsed_over_khz_at_nrs5").reset_index()
    return {"pulse width": pulsed.reset_index(drop=True), "thresholds": thresholds,
            "carrier": khz.reset_index(drop=True), "electrode size": sizes,
            "pulsed vs kHz at NRS 5": pd.DataFrame(comp)}


REFERENCES = (
    Reference("Ward 2004: least discomfort at a 4 kHz carrier",
              "Ward, Robertson & Ioannou 2004, Med Eng Phys 26:569 (wrist extensors, 50 Hz bursts, 0.5–20 kHz): "
              "least discomfort at 4 kHz, 20–25 % duty; Modesto et al. 2022 review: 2.5–5 kHz lowest discomfort "
              "(reference nerve_recruitment_discomfort.md §4.4, D1). Plotted as the carrier of the minimum "
              "(relative discomfort 1); the band is 2.5–5 kHz.",
              "verified (abstracts); location of a minimum, not an NRS value",
              {"carrier_hz": [4000.0], "nrs_relative_to_best_carrier": [1.0]}),
    Reference("PMID 29308952: pulsed current ~1/3 more force at VAS 5",
              "Burst-modulated pulsed current vs burst-modulated AC with discomfort held at VAS 5/10: pulsed gave "
              "about 1/3 more force at lower amplitude (PMID 29308952; reference §4.4). Model: 300 µs biphasic vs "
              "2.5 kHz bursts (carrier assumed), motor fraction as the force stand-in.",
              "verified (abstract); carrier of the AC arm assumed",
              {"electrode": ["5x9"], "force_ratio_pulsed_over_khz_at_nrs5": [1.33]}),
    Reference("BMC Sports Sci Med Rehabil 2022;14:11: electrode size (ordinal)",
              "5x5 and 5x9 cm electrodes more comfortable than 2x2 cm and needing less current density for a visible "
              "contraction (quadriceps, hamstrings, gluteus maximus; reference §4.3). Ordinal result: 1 = most "
              "comfortable; no NRS values published, so not drawn as points.",
              "verified (abstract); ordinal",
              {"electrode": ["2x2", "5x5", "5x9"], "comfort_rank": [2, 1, 1]}),
)


def build(quick: bool = False) -> Study:
    """Discomfort vs pulse width, frequency, waveform and electrode size at the lumbar erector spinae."""
    waves = (("biphasic 100 µs", PULSED_REF, KHZ_REF, "kHz 4 kHz") if quick else tuple(WAVEFORMS))
    freqs = (50.0,) if quick else (20.0, 35.0, 50.0, 85.0, 100.0)
    elecs = ("5x5", "5x9") if quick else tuple(ELECTRODES_CM)
    return Study(
        name="discomfort", title="Discomfort vs pulse width, frequency, waveform and electrode size (lumbar)",
        description=" ".join(__doc__.strip().split("\n\n")[1].split()), quick=quick, evaluate=evaluate,
        space=Grid(Parameter("waveform", "", waves, label="waveform"),
                   Parameter("frequency_hz", "Hz", freqs, label="pulse / burst rate"),
                   Parameter("electrode", "cm × cm", elecs, label="electrode pair")),
        outcomes={"sensation_threshold_ma": "mA", "motor_threshold_ma": "mA", "pain_threshold_ma": "mA",
                  "tolerance_ma": "mA", "current_at_target_ma": "mA", "nrs_at_target": "NRS 0–10",
                  "motor_at_nrs5_pct": "% of pool", "current_density_at_target_ma_cm2": "mA/cm²"},
        outcome_labels={"nrs_at_target": "discomfort at a 20 % motor-pool contraction",
                        "current_at_target_ma": "current for a 20 % contraction",
                        "motor_at_nrs5_pct": "motor pool recruited at NRS 5",
                        "nrs_relative_to_best_carrier": "discomfort / lowest over carriers",
                        "force_ratio_pulsed_over_khz_at_nrs5": "contraction at NRS 5, pulsed / kHz",
                        "carrier_hz": "kHz carrier frequency", "pulse_width_us": "pulse width",
                        "threshold_ma": "threshold current", "electrode_area_cm2": "electrode area"},
        derived_units={"pulse_width_us": "µs", "carrier_hz": "Hz", "nrs_relative_to_best_carrier": "×",
                       "threshold_ma": "mA", "electrode_area_cm2": "cm²", "force_ratio_pulsed_over_khz_at_nrs5": "×"},
        tables=tables, batch_size=4 if quick else 12, references=REFERENCES,
        models=(f"patients/{PATIENT}.json", "discomfort/discomfort.json", "fibres/thresholds.npz",
                "fibres/motor_pools.json", "sites/layers.json", "tissues/conductivities.json"),
        plots=(Plot("pulse_width_us", "nrs_at_target", by="electrode", facet="frequency_hz", table="pulse width",
                    title="Discomfort at matched contraction vs pulse width"),
               Plot("pulse_width_us", "threshold_ma", by="threshold", table="thresholds", logx=True, logy=True,
                    where={"frequency_hz": 50.0, "electrode": "5x9"},
                    title="Sensation, motor, pain and tolerance thresholds vs pulse width (50 Hz, 5 × 9 cm)"),
               Plot("carrier_hz", "nrs_relative_to_best_carrier", by="electrode", table="carrier", logx=True,
                    where={"frequency_hz": 50.0}, references=(REFERENCES[0].label,),
                    title="kHz carrier: discomfort at matched contraction (50 Hz bursts, 20 % duty)"),
               Plot("frequency_hz", "nrs_at_target", by="waveform", where={"electrode": "5x9"},
                    title="Discomfort at matched contraction vs rate (5 × 9 cm)"),
               Plot("electrode_area_cm2", "nrs_at_target", by="waveform", table="electrode size",
                    where={"frequency_hz": 50.0}, logx=True, title="Electrode size (50 Hz)"),
               Plot("electrode", "force_ratio_pulsed_over_khz_at_nrs5", by="frequency_hz",
                    table="pulsed vs kHz at NRS 5", kind="scatter", references=(REFERENCES[1].label,),
                    title="Contraction at NRS 5: 300 µs pulses vs 2.5 kHz bursts")))


if __name__ == "__main__":
    raise SystemExit(main(build))
