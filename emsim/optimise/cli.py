"""``emsim optimise``: search Pareto-optimal programs for a patient and write them out.

Registered on the ``emsim`` parser by :func:`register`. Exit codes as for the rest of
``emsim``: 0 done; 1 the problem was read but cannot be solved (nothing feasible, a study of
another problem); 2 usage error or unreadable input (patient file, storage URL); 130 when
interrupted (the study keeps every finished batch: run again with ``--resume``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emsim._cli_args import bounded

__all__ = ["register"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


_positive_int = bounded("value", 1, integer=True)
_seed = bounded("seed", 0, integer=True)
_nrs = bounded("discomfort", 0, 10, unit="(NRS)")


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _bounds(value: str) -> dict[str, list[float]]:
    """``FIELD=LO:HI[,FIELD=LO:HI]`` (FIELD may be ``CHANNEL.FIELD``) → ``{field: [lo, hi]}``."""
    out = {}
    for item in _csv(value):
        try:
            name, rng = item.split("=", 1)
            lo, hi = (float(v) for v in rng.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bounds must be FIELD=LOW:HIGH, comma-separated (got {item!r})") \
                from None
        out[name.strip()] = [lo, hi]
    return out


def _given_spec(args) -> dict:
    """The specification fields given on the command line (absent options are left out)."""
    from emsim.body import load_patient
    from emsim.errors import PatientError
    from emsim.optimise._objectives import check_statistic
    from emsim.optimise._spec import document_entry
    from emsim.program import load

    given = {key: getattr(args, attr) for key, attr in (
        ("budget", "budget"), ("sites", "sites"), ("vary", "vary"), ("bounds", "bounds"),
        ("objectives", "objective"), ("max_discomfort_nrs", "max_discomfort"),
        ("max_session_min", "max_session_min"), ("session_s", "session_s"), ("device", "device"),
        ("session", "session"), ("cohort", "cohort"), ("method", "method"), ("seed", "seed"))
        if getattr(args, attr) is not None}
    if args.statistic is not None:
        given["statistic"] = check_statistic(args.statistic)
    if args.patient is not None:
        try:
            patient = load_patient(args.patient)
        except PatientError as exc:
            exc.unreadable = True  # a bad --patient is a bad argument
            raise
        given["patient"] = document_entry(Path(args.patient).resolve(),
                                          patient.model_dump(mode="json", exclude_none=True))
    if args.template is not None:
        given["template"] = document_entry(Path(args.template).resolve(),
                                           load(args.template).model_dump(mode="json", exclude_none=True))
    return given


def _stored_spec(storage: str, study_name: str, resume: bool, given: dict):
    """The specification stored with an existing study (``None`` for a new one or without --resume)."""
    from emsim.errors import OptimiseError
    from emsim.optimise._spec import read_spec
    from emsim.optimise._storage import open_storage

    if not resume:
        return None
    exists, spec = read_spec(open_storage(storage), study_name)
    # A study without one was made through the API, or by a worker that has not stored it yet:
    # the full arguments then define the problem (and its fingerprint must match).
    if exists and spec is None and not {"patient", "budget"} <= set(given):
        raise OptimiseError("study has no stored arguments (not created by emsim optimise): give them all",
                            path="study", value=study_name,
                            allowed="a study created by emsim optimise, or another study name")
    return spec


def cmd_optimise(args) -> int:
    from emsim import DISCLAIMER
    from emsim.cli import _exit_code, _print_problems
    from emsim.errors import EmsimError, OptimiseError
    from emsim.optimise import export_pareto, optimise
    from emsim.optimise._spec import merge_spec, problem_from_spec

    print(DISCLAIMER, file=sys.stderr)
    out = Path(args.out)
    storage = args.storage or f"sqlite:///{(out / 'study.sqlite3').resolve()}"
    study_name = args.study or "emsim-optimise"
    bar = None
    try:
        given = _given_spec(args)
        if args.storage is None:
            out.mkdir(parents=True, exist_ok=True)
        spec = merge_spec(_stored_spec(storage, study_name, args.resume, given), given, study_name)
        problem = problem_from_spec(spec)
        bar = _progress_bar(spec["budget"], args.no_progress)

        def progress(p) -> None:
            bar.n = min(p.n_complete, p.budget)
            bar.set_postfix_str(f"feasible in batch {p.n_feasible_batch}/{p.n_batch}", refresh=False)
            bar.refresh()

        result = optimise(problem, spec["method"], budget=spec["budget"], seed=spec["seed"], storage=storage,
                          study_name=study_name, callback=progress, batch_size=args.batch_size,
                          workers=args.workers, scheduler=args.scheduler, resume=args.resume, spec=spec)
        bar.close()
        bar = None
        paths = export_pareto(result, out, study_name=study_name)
    except OptimiseError as exc:
        _close(bar)
        _print_problems(exc)
        # a contradicting option is a study of another problem (1); a missing one, a usage error (2)
        missing = exc.path in ("--patient", "--budget") and exc.value is None
        return EXIT_USAGE if exc.path in ("storage", "scheduler", "workers") or missing else EXIT_INVALID
    except EmsimError as exc:
        _close(bar)
        _print_problems(exc)
        return _exit_code(exc)
    except KeyboardInterrupt:
        _close(bar)
        print(f"emsim: interrupted; finished batches are kept: continue with emsim optimise --resume "
              f"--storage {_shown(storage)} --study {study_name} --out {out}", file=sys.stderr)
        return 130
    print(f"{len(paths)} Pareto-optimal program(s) in {out} (summary {out / 'pareto.csv'}); "
          f"{result.n_complete} evaluations in the study, {result.n_feasible} feasible, "
          f"{result.n_evaluated} in this run ({result.elapsed_s:.1f} s); study {study_name} in {_shown(storage)}")
    for c in result.pareto[:10]:
        print("  " + ", ".join(f"{k} {v:.3g}" for k, v in c.values.items()) + f"  (trial {c.trial_number})")
    return EXIT_OK


def _shown(url: str) -> str:
    from emsim.optimise._storage import _redact

    return _redact(url)


def _progress_bar(total: int, disabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="optimise", unit="eval", file=sys.stderr, disable=disabled,
                dynamic_ncols=True, mininterval=0.5)


def _close(bar) -> None:
    if bar is not None:
        bar.close()


def register(sub) -> None:
    """Add ``emsim optimise`` to the ``emsim`` sub-parser collection ``sub``."""
    from emsim import DISCLAIMER
    from emsim.cli import EPILOG, _device_arg, _session_arg
    from emsim.optimise import DEFAULT_OBJECTIVES, METHODS, OBJECTIVES

    p = sub.add_parser(
        "optimise", help="search Pareto-optimal programs for a patient",
        description="Search stimulation programs that trade contraction against discomfort and fatigue for one "
                    "patient; unsafe programs are infeasible, never merely penalised. The study is stored in a "
                    "database (SQLite file in --out by default, or --storage URL) so an interrupted run continues "
                    "with --resume and several processes can share one study. Writes the Pareto set as program files "
                    "with provenance and predicted outcomes, and pareto.csv. Exit 0 done, 1 nothing feasible or a "
                    f"study of another problem, 2 usage or unreadable input. {DISCLAIMER}", epilog=EPILOG)
    p.add_argument("--patient", type=Path,
                   help="patient file (thresholds, fat, contraindications); needed unless resuming")
    p.add_argument("--budget", type=_positive_int,
                   help="evaluations the study should hold when done (a resumed study counts what it has; "
                        "needed unless resuming, where a larger one extends the study)")
    p.add_argument("--out", type=Path, required=True, help="output folder for the Pareto programs and pareto.csv")
    p.add_argument("--sites", type=_csv,
                   help="comma-separated sites, a left/right channel pair each (default lumbar_erector_spinae)")
    p.add_argument("--template", type=Path, help="start from this program instead of the lumbar template")
    p.add_argument("--vary", type=_csv,
                   help="comma-separated fields to vary (frequency_hz, pulse_width_us, amplitude, on_s, off_s, "
                        "ramp_up_s, ramp_down_s, duration_s, waveform, pattern, electrode, site)")
    p.add_argument("--bounds", type=_bounds,
                   help="narrower bounds, FIELD=LOW:HIGH comma-separated (FIELD or CHANNEL.FIELD, e.g. "
                        "pulse_width_us=200:400,ES-L.on_s=5:10)")
    p.add_argument("--objective", type=_csv,
                   help=f"comma-separated objectives from {', '.join(OBJECTIVES)} "
                        f"(default {','.join(DEFAULT_OBJECTIVES)})")
    p.add_argument("--max-discomfort", type=_nrs, help="most discomfort tolerated (peak NRS 0-10): a constraint")
    p.add_argument("--max-session-min", type=float, help="longest session allowed, minutes: a constraint")
    p.add_argument("--session-s", type=float, default=None, help="main phase length of the template, s (default 1200)")
    p.add_argument("--device", type=_device_arg,
                   help="device profile the programs must fit (default rehastim2)")
    p.add_argument("--session", type=_session_arg, help="session number evaluated (default 1)")
    p.add_argument("--cohort", type=_positive_int,
                   help="robust mode: also optimise over this many virtual patients (emsim.body.cohort, "
                        "population adults_lbp, drawn with --seed)")
    p.add_argument("--statistic",
                   help="how outcomes combine over the patients: mean (default), worst, or a percentile counted "
                        "from the bad end, pNN (e.g. p90)")
    p.add_argument("--method", choices=METHODS, help="search method (default nsga2)")
    p.add_argument("--seed", type=_seed, help="random seed (default 0)")
    p.add_argument("--batch-size", type=_positive_int, default=16,
                   help="candidates per batch; a kill loses at most one batch (default 16)")
    p.add_argument("--storage", help="study database URL (default sqlite:///OUT/study.sqlite3; "
                                     "postgresql+psycopg://user@host:port/db works the same)")
    p.add_argument("--study", help="study name (default emsim-optimise)")
    p.add_argument("--resume", action="store_true",
                   help="continue (or join) the study of this name; its stored arguments are used, and "
                        "arguments given again must agree with them (only --budget may grow)")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="evaluate batches on a local Dask cluster of this many processes (default 1: in process)")
    p.add_argument("--scheduler", help="evaluate batches on the Dask cluster at this address (tcp://host:8786)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_optimise)


def main(argv: list[str] | None = None) -> int:
    """``python -m emsim.optimise.cli optimise ...``: the same command before (or without) ``emsim``'s wiring."""
    from emsim import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "optimise" not in sub.choices:
        register(sub)
    args = parser.parse_args(argv)
    return args.func(args) if getattr(args, "func", None) else EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
