"""The ``emsim`` command.

Exit codes: 0 success / valid; 1 the input was read but is invalid or unsafe; 2 usage error or
an input that cannot be read (missing, too large, not JSON); 3 internal error (a bug: please
report it). Problems are printed one per line on stderr; ``--json`` prints the
machine-readable report on stdout. Nothing is written unless the whole command succeeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from emsim import DISCLAIMER, __version__
from emsim._cli_args import bounded
from emsim.errors import EmsimError

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EPILOG = f"{DISCLAIMER} Do not use its programs on people without independent clinical judgement."


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other usage problem
        self.exit(EXIT_USAGE, f"emsim: usage error: {message} (see emsim {self.prog.split()[-1]} --help)\n"
                  if " " in self.prog else f"emsim: usage error: {message} (see emsim --help)\n")


def _print_problems(exc: EmsimError, prefix: str = "error") -> None:
    for problem in getattr(exc, "problems", None) or [exc]:
        print(f"emsim: {prefix}: {problem.one_line()}", file=sys.stderr)


def _exit_code(exc: EmsimError) -> int:
    return EXIT_USAGE if exc.unreadable else EXIT_INVALID


def _load_inputs(args):
    from emsim.body import load_patient
    from emsim.errors import PatientError
    from emsim.program import load

    program = load(args.program)
    patient = None
    if getattr(args, "patient", None):
        try:
            patient = load_patient(args.patient)
        except PatientError as exc:
            exc.unreadable = True  # a bad --patient is a bad argument
            raise
    return program, patient


def _device_arg(value: str) -> str:
    from emsim.program.device_profile import device_ids

    if value not in device_ids():
        raise argparse.ArgumentTypeError(f"unknown device {value!r} (allowed: {', '.join(device_ids())})")
    return value


_session_arg = bounded("session", 1, 10000, integer=True)


# --------------------------------------------------------------------------- commands


def cmd_validate(args) -> int:
    from emsim.safety import check

    try:
        program, patient = _load_inputs(args)
        report = check(program, patient, args.device, session=args.session)
    except EmsimError as exc:
        if args.json:
            problems = [p.to_dict() for p in (getattr(exc, "problems", None) or [exc])]
            print(json.dumps({"ok": False, "program": str(args.program), "format_errors": problems,
                              "safety": None}, indent=2))
        else:
            _print_problems(exc)
        return _exit_code(exc)
    if args.json:
        print(json.dumps({"ok": report.ok, "program": str(args.program), "format_errors": [],
                          "safety": report.to_dict()}, indent=2, default=str))
    else:
        for line in report.lines():
            print(f"emsim: {line}", file=sys.stderr)
        state = "valid" if report.ok else "INVALID"
        print(f"{args.program}: {state} ({len(report.errors)} error(s), {len(report.warnings)} warning(s)"
              f"{', device ' + report.device if report.device else ''}"
              f"{', patient ' + report.patient if report.patient else ''})")
    return EXIT_OK if report.ok else EXIT_INVALID


def _write_table(train, out: Path) -> None:
    columns = train.table()
    _write_columns({k: (v.tolist() if v.dtype == object else v) for k, v in columns.items()}, out)


def cmd_compile(args) -> int:
    from emsim.program import compile as compile_program
    from emsim.program.quantise import quantise
    from emsim.safety import check

    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        print(f"emsim: usage error: --out must end in .csv or .parquet (got {out.name!r})", file=sys.stderr)
        return EXIT_USAGE
    if not out.parent.is_dir():
        print(f"emsim: usage error: --out folder does not exist: {out.parent}", file=sys.stderr)
        return EXIT_USAGE
    try:
        program, patient = _load_inputs(args)
        report = check(program, patient, args.device, session=args.session)
        if not report.ok:
            for line in report.lines():
                print(f"emsim: {line}", file=sys.stderr)
            print(f"emsim: error: {args.program} failed the safety check; nothing written", file=sys.stderr)
            return EXIT_INVALID
        train = compile_program(program, patient, session=args.session)
        if args.device:
            train, qreport = quantise(train, args.device)
            if not qreport.ok:
                for problem in qreport.problems:
                    print(f"emsim: error: {problem}", file=sys.stderr)
                return EXIT_INVALID
    except EmsimError as exc:
        _print_problems(exc)
        return _exit_code(exc)
    _write_table(train, out)
    print(f"{out}: {train.n_pulses} pulses on {len(train.channel_ids)} channel(s), {train.duration_s:g} s, "
          f"session {train.session}{', quantised for ' + args.device if args.device else ''}")
    return EXIT_OK


def _write_columns(columns: dict, out: Path) -> None:
    import pyarrow as pa

    table = pa.table(columns)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if out.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        else:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


def cmd_evaluate(args) -> int:
    from emsim.simulate import SCALAR_KEYS, evaluate

    series = Path(args.series) if args.series else None
    if series is not None and (series.suffix not in (".csv", ".parquet") or not series.parent.is_dir()):
        print(f"emsim: usage error: --series must be a .csv or .parquet file in an existing folder "
              f"(got {args.series!r})", file=sys.stderr)
        return EXIT_USAGE
    try:
        program, patient = _load_inputs(args)
        pred = evaluate(program, patient, device=args.device, session=args.session,
                        trace=series is not None)
    except EmsimError as exc:
        if args.json:
            problems = [p.to_dict() for p in (getattr(exc, "problems", None) or [exc])]
            print(json.dumps({"ok": False, "errors": problems}, indent=2))
        else:
            _print_problems(exc)
        return _exit_code(exc)
    if series is not None:
        _write_columns(pred.series(), series)
    if args.json:
        print(json.dumps(pred.to_dict(), indent=2, default=str))
    else:
        print(DISCLAIMER)
        labels = {"peak_mvc_pct": "peak contraction (% max evoked)", "mean_mvc_pct": "mean contraction peak (%)",
                  "effective_contractions": "effective contractions", "fti_ns": "force-time integral (N s)",
                  "fatigue_decline_pct": "fatigue (% decline)", "peak_discomfort_nrs": "peak discomfort (NRS)",
                  "mean_discomfort_nrs": "mean discomfort (NRS)", "total_charge_mc": "total charge (mC)",
                  "motor_recruitment_fraction": "motor units recruited (peak fraction)"}
        for key in SCALAR_KEYS:
            value = pred.scalars[key]
            print(f"{labels[key]:<40} {value:.3g}" if isinstance(value, float) else f"{labels[key]:<40} {value}")
        print(f"{'safety':<40} {'passes' if pred.safety.ok else 'FAILS'}")
        print(f"{'weakest evidence of the parameters':<40} {pred.evidence}")
        for cid, m in pred.measured_mvc.items():
            print(f"{'measured MVC ' + cid:<40} {m['value']:g} {m['unit']} ({m['method']}"
                  f"{', ' + m['date'] if m['date'] else ''}; not the %MVC denominator)")
        for note in pred.notes:
            if note.startswith("%MVC"):
                print(f"note: {note}")
        for line in pred.safety.lines():
            print(f"emsim: {line}", file=sys.stderr)
    return EXIT_OK if pred.safety.ok else EXIT_INVALID


def cmd_calibrate(args) -> int:
    from emsim.body import load_patient
    from emsim.body.calibration import calibrate, with_calibration
    from emsim.errors import PatientError

    out = Path(args.out) if args.out else None
    if out is not None and (out.suffix != ".json" or not out.parent.is_dir()):
        print(f"emsim: usage error: --out must be a .json file in an existing folder (got {args.out!r})",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        try:
            patient = load_patient(args.patient)
        except PatientError as exc:
            exc.unreadable = exc.unreadable or exc.path == str(args.patient)
            raise
        program = None
        if args.program:
            from emsim.program import load

            program = load(args.program)
            channels = [(ch.site, ch.side, ch) for ch in program.channels]
        else:
            channels = [(s, d, None) for s, d in dict.fromkeys((t.site, t.side) for t in patient.thresholds)]
        if out is not None and program is not None:
            return _write_resolved_program(program, patient, args, out)
        if not channels:
            print(f"emsim: error: {args.patient}: no thresholds measured; nothing to calibrate "
                  f"(add thresholds: sensory_threshold, motor_threshold, tolerance)", file=sys.stderr)
            return EXIT_INVALID
        results = [calibrate(patient, site, side, channel=ch) for site, side, ch in channels]
        calibrated = with_calibration(patient, results, [ch for _, _, ch in channels]) if out else None
    except EmsimError as exc:
        _print_problems(exc)
        return _exit_code(exc)
    if calibrated is not None:
        from emsim._validation import atomic_write
        from emsim.body.patient import dumps_patient

        atomic_write(out, dumps_patient(calibrated))
    if args.json:
        print(json.dumps({"patient": patient.id, "calibrations": [c.to_dict() for c in results],
                          "written": str(out) if out else None}, indent=2, default=float))
        return EXIT_OK
    print(DISCLAIMER)
    for c in results:
        print(f"{c.site} ({c.side}):" + ("" if c.calibrated else " nothing measured; population-average models"))
        for name in ("motor_gain", "cutaneous_scale", "sensitivity"):
            rng = getattr(c, f"{name}_range")
            if rng:
                print(f"  {name:<16} {getattr(c, name):6.3f}   95 % range {rng[0]:.3f}-{rng[1]:.3f}")
        for f in c.fit:
            model = f.get("model_ma")
            what = (f"model before fit {model:.1f} mA" if model is not None
                    else f"model NRS before fit {f['model_nrs_before']:.1f}")
            print(f"  {f['kind']:<18} {f['pulse_width_us']:g} us {f['frequency_hz']:g} Hz: measured "
                  f"{f['measured_ma']:g} mA, {what}")
    if out is not None:
        print(f"{out}: patient file with its calibration section (used by emsim evaluate while the "
              f"thresholds stay the same)")
    return EXIT_OK


def _write_resolved_program(program, patient, args, out: Path) -> int:
    """``emsim calibrate PATIENT --program P --out RESOLVED.json``: relative amplitudes → mA, checked."""
    from emsim._validation import atomic_write
    from emsim.program.io import dumps
    from emsim.body.resolved_program import resolve_program
    from emsim.safety import check

    resolved, lines = resolve_program(program, patient)
    report = check(resolved, patient, args.device)
    if not report.ok:
        for line in report.lines():
            print(f"emsim: {line}", file=sys.stderr)
        print(f"emsim: error: the resolved program fails the safety check for {patient.id}; nothing written",
              file=sys.stderr)
        return EXIT_INVALID
    atomic_write(out, dumps(resolved))
    if args.json:
        print(json.dumps({"patient": patient.id, "program": str(args.program), "written": str(out),
                          "resolved": lines, "safety": report.to_dict()}, indent=2, default=str))
        return EXIT_OK
    print(DISCLAIMER)
    for line in lines:
        print(f"  {line}")
    print(f"{out}: {program.name} with amplitudes in mA for patient {patient.id} "
          f"(valid{', device ' + args.device if args.device else ''}; {len(report.warnings)} warning(s))")
    return EXIT_OK


def cmd_schema(args) -> int:
    from emsim.body import patient_schema
    from emsim.program import program_schema

    schema = program_schema() if args.document == "program" else patient_schema()
    print(json.dumps(schema, indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_demo(args) -> int:
    """Validate, compile and summarise the shipped paraspinal program for the example patient."""
    from emsim._data import models_dir
    from emsim.body import load_patient
    from emsim.program import compile as compile_program, load
    from emsim.safety import check

    root = models_dir()
    program = load(root / "programs" / "paraspinal_strengthening.json")
    patient = load_patient(root / "patients" / "example_measured.json")
    report = check(program, patient, "rehastim2")
    train = compile_program(program, patient, session=1)
    print(DISCLAIMER)
    print(f"program : {program.name}")
    print(f"patient : {patient.id} (example)")
    print(f"safety  : {'passes' if report.ok else 'FAILS'} for RehaStim 2 "
          f"({len(report.errors)} errors, {len(report.warnings)} warnings); worst r.m.s. current density "
          f"{report.metrics.get('current_density_rms_ma_cm2', 0):.2f} mA/cm² (limit 2)")
    print(f"session : {train.duration_s / 60:.1f} min, {train.n_pulses} pulses, "
          f"total charge {train.total_charge_c() * 1e3:.1f} mC, max |net charge| "
          f"{abs(train.net_charge_c()).max(initial=0) * 1e9:.3g} nC per pulse")
    for note in train.notes:
        print(f"  amplitude: {note}")
    print("(force, fatigue and discomfort predictions arrive with emsim evaluate)")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="emsim", description=f"emsim: EMS/NMES program workbench. {DISCLAIMER}",
                     epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"emsim {__version__} ({DISCLAIMER})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("validate", help="check a program file (format and safety)",
                       description=f"Check a program's format and safety. Exit 0 valid, 1 invalid, 2 unreadable. "
                                   f"{DISCLAIMER}", epilog=EPILOG)
    p.add_argument("program", type=Path)
    p.add_argument("--patient", type=Path, help="patient file (thresholds, contraindications, history)")
    p.add_argument("--device", type=_device_arg, help="device profile: rehastim2, p24 or generic")
    p.add_argument("--session", type=_session_arg, default=1, help="session number (default 1)")
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("compile", help="write the pulse table of one session (CSV or Parquet)",
                       description=f"Compile one session into its pulse table. Refuses unsafe programs. "
                                   f"{DISCLAIMER}", epilog=EPILOG)
    p.add_argument("program", type=Path)
    p.add_argument("--out", required=True, help="output file, .csv or .parquet")
    p.add_argument("--patient", type=Path)
    p.add_argument("--device", type=_device_arg, help="quantise to this device's steps")
    p.add_argument("--session", type=_session_arg, default=1)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("evaluate", help="predict contraction, fatigue and discomfort of one session",
                       description=f"Predict one session of a program on a patient: contraction (% of the "
                                   f"region's maximum evoked force), fatigue, discomfort (NRS), charge and "
                                   f"safety. Exit 0 safe, 1 unsafe or invalid, 2 unreadable. {DISCLAIMER}",
                       epilog=EPILOG)
    p.add_argument("program", type=Path)
    p.add_argument("--patient", type=Path, help="patient file (thresholds, fat thickness, questionnaire)")
    p.add_argument("--device", type=_device_arg, help="device profile for the safety check")
    p.add_argument("--session", type=_session_arg, default=1)
    p.add_argument("--json", action="store_true", help="machine-readable outcomes on stdout")
    p.add_argument("--series", help="also write the time series to this .csv or .parquet file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="fit the models' person factors to a patient's thresholds",
                       description=f"Fit motor gain, cutaneous threshold scale and sensitivity to the "
                                   f"thresholds measured on a patient (per site and side), with 95 % "
                                   f"ranges; --out stores them in a copy of the patient file. With --program "
                                   f"and --out, write the program with relative amplitudes resolved to mA for "
                                   f"this patient (safety-checked). {DISCLAIMER}", epilog=EPILOG)
    p.add_argument("patient", type=Path)
    p.add_argument("--program", type=Path, help="use this program's electrode pairs (default 5 x 9 cm); with "
                                                "--out, write the program with its relative amplitudes in mA")
    p.add_argument("--out", help="write the patient file with its calibration section (or, with --program, "
                                 "the resolved program) to this .json file")
    p.add_argument("--device", type=_device_arg, help="device profile the resolved program is checked for")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("schema", help="print the JSON Schema of a document",
                       description=f"Print the JSON Schema of the program or patient format. {DISCLAIMER}",
                       epilog=EPILOG)
    p.add_argument("document", choices=["program", "patient"])
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("demo", help="validate and compile the shipped example program",
                       description=f"A demonstration on the shipped examples. {DISCLAIMER}", epilog=EPILOG)
    p.set_defaults(func=cmd_demo)

    # Device commands live next to the code they drive; each module adds its own subcommands.
    from emsim.devices import cli_emulate, cli_run

    cli_run.register(sub)
    cli_emulate.register(sub)

    from emsim.optimise import cli as optimise_cli

    optimise_cli.register(sub)

    from emsim.study import cli as study_cli

    study_cli.register(sub)

    from emsim import workbench_cli

    workbench_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        return args.func(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print("emsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # never a traceback for users; say it is a bug
        print(f"emsim: internal error ({type(exc).__name__}: {exc}); please report it", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
