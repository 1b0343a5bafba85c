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


def cmd_optimise(args) -> int:
    from emsim import DISCLAIMER
    from emsim.body import load_patient
    from emsim.cli import _exit_code, _print_problems
    from emsim.errors import EmsimError, OptimiseError, PatientError
    from emsim.optimise import DesignSpace, Problem, export_pareto, lumbar_template, optimise
    from emsim.program import load

    print(DISCLAIMER, file=sys.stderr)
    out = Path(args.out)
    storage = args.storage or f"sqlite:///{(out / 'study.sqlite3').resolve()}"
    study_name = args.study or "emsim-optimise"
    bar = None
    try:
        try:
            patient = load_patient(args.patient)
        except PatientError as exc:
            exc.unreadable = True  # a bad --patient is a bad argument
            raise
        if args.template is not None:
            template = load(args.template)
        else:
            # virtual patients have no measured thresholds: robust searches use absolute currents
            template = lumbar_template(None if args.cohort else patient, sites=args.sites,
                                       duration_s=args.session_s)
        space = DesignSpace.from_template(template, device=args.device, fields=args.vary)
        patients = [patient]
        if args.cohort:
            from emsim.body import cohort

            # robust mode: the patient's own file plus virtual patients of the population
            patients += cohort(args.cohort, seed=args.seed)
        problem = Problem(patients, space, objectives=args.objective, device=args.device, session=args.session,
                          max_discomfort_nrs=args.max_discomfort, max_session_min=args.max_session_min,
                          statistic=args.statistic)
        if args.storage is None:
            out.mkdir(parents=True, exist_ok=True)
        bar = _progress_bar(args.budget, args.no_progress)

        def progress(p) -> None:
            bar.n = min(p.n_complete, p.budget)
            bar.set_postfix_str(f"feasible in batch {p.n_feasible_batch}/{p.n_batch}", refresh=False)
            bar.refresh()

        result = optimise(problem, args.method, budget=args.budget, seed=args.seed, storage=storage,
                          study_name=study_name, callback=progress, batch_size=args.batch_size,
                          workers=args.workers, scheduler=args.scheduler, resume=args.resume)
        bar.close()
        bar = None
        paths = export_pareto(result, out, study_name=study_name)
    except OptimiseError as exc:
        _close(bar)
        _print_problems(exc)
        return EXIT_USAGE if exc.path in ("storage", "scheduler", "workers") else EXIT_INVALID
    except EmsimError as exc:
        _close(bar)
        _print_problems(exc)
        return _exit_code(exc)
    except KeyboardInterrupt:
        _close(bar)
        print(f"emsim: interrupted; finished batches are kept in {storage} (study {study_name}): "
              "run again with --resume", file=sys.stderr)
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
    p.add_argument("--patient", type=Path, required=True, help="patient file (thresholds, fat, contraindications)")
    p.add_argument("--budget", type=_positive_int, required=True,
                   help="evaluations the study should hold when done (a resumed study counts what it has)")
    p.add_argument("--out", type=Path, required=True, help="output folder for the Pareto programs and pareto.csv")
    p.add_argument("--sites", type=_csv, default=["lumbar_erector_spinae"],
                   help="comma-separated sites, a left/right channel pair each (default lumbar_erector_spinae)")
    p.add_argument("--template", type=Path, help="start from this program instead of the lumbar template")
    p.add_argument("--vary", type=_csv, default=None,
                   help="comma-separated fields to vary (frequency_hz, pulse_width_us, amplitude, on_s, off_s, "
                        "ramp_up_s, ramp_down_s, duration_s, waveform, pattern, electrode, site)")
    p.add_argument("--objective", type=_csv, default=list(DEFAULT_OBJECTIVES),
                   help=f"comma-separated objectives from {', '.join(OBJECTIVES)} "
                        f"(default {','.join(DEFAULT_OBJECTIVES)})")
    p.add_argument("--max-discomfort", type=_nrs, help="most discomfort tolerated (peak NRS 0-10): a constraint")
    p.add_argument("--max-session-min", type=float, help="longest session allowed, minutes: a constraint")
    p.add_argument("--session-s", type=float, default=None, help="main phase length of the template, s (default 1200)")
    p.add_argument("--device", type=_device_arg, default="rehastim2",
                   help="device profile the programs must fit (default rehastim2)")
    p.add_argument("--session", type=_session_arg, default=1, help="session number evaluated (default 1)")
    p.add_argument("--cohort", type=_positive_int, default=0,
                   help="robust mode: also optimise over this many virtual patients (emsim.body.cohort, "
                        "population adults_lbp, drawn with --seed)")
    p.add_argument("--statistic", default="mean",
                   help="how outcomes combine over the patients: mean, worst or a percentile (e.g. 90)")
    p.add_argument("--method", choices=METHODS, default="nsga2", help="search method (default nsga2)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--batch-size", type=_positive_int, default=16,
                   help="candidates per batch; a kill loses at most one batch (default 16)")
    p.add_argument("--storage", help="study database URL (default sqlite:///OUT/study.sqlite3; "
                                     "postgresql+psycopg://user@host:port/db works the same)")
    p.add_argument("--study", help="study name (default emsim-optimise)")
    p.add_argument("--resume", action="store_true", help="continue (or join) the study of this name")
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
