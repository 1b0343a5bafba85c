"""``emsim study list | run | report``: the command line of scripted studies.

Exit codes follow ``emsim``: 0 done, 1 a model rejected the study's input, 2 usage (unknown
study, unreachable scheduler, unwritable folder, bad option), 3 internal error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emsim._cli_args import bounded
from emsim.errors import EmsimError
from emsim.study._errors import StudyError

__all__ = ["register", "run_script"]

DEFAULT_OUT = Path("study_results")
EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


_positive_int = bounded("value", 1, integer=True)


def _fail(exc: EmsimError) -> int:
    print(f"emsim study: {exc.one_line()}", file=sys.stderr)
    return EXIT_USAGE if isinstance(exc, StudyError) or exc.unreadable else EXIT_INVALID


def cmd_list(args) -> int:
    from emsim.study import load_study, study_names

    from emsim.study._registry import _module, study_options

    for name in study_names():
        try:
            title = load_study(name, quick=True).title
            opts = study_options(_module(name).build)
        except EmsimError as exc:
            title, opts = f"(cannot load: {exc.one_line()})", {}
        extra = f"\toptions: {', '.join(opts)}" if opts else ""
        print(f"{name}\t{title}{extra}")
    return EXIT_OK


def _run(study, args) -> int:
    from emsim.study import report, run

    res = run(study, args.out, workers=args.workers, scheduler=args.scheduler,
              progress=not getattr(args, "no_progress", False))
    for r in (res, *res.stages):
        resumed = f", {r.batches_resumed} resumed from checkpoints" if r.batches_resumed else ""
        print(f"{study.name}: {r.n_rows} rows ({r.batches_run} batches run{resumed}) -> {r.results}")
        if r.netcdf is not None:
            print(f"{study.name}: gridded -> {r.netcdf}")
    if getattr(args, "report", False):
        print(f"{study.name}: report -> {report(study, args.out)}")
    return EXIT_OK


def cmd_run(args) -> int:
    from emsim.study import load_study
    from emsim.study._registry import parse_options

    try:
        return _run(load_study(args.name, quick=args.quick, options=parse_options(args.set)), args)
    except EmsimError as exc:
        return _fail(exc)


def cmd_report(args) -> int:
    from emsim.study import load_study, report
    from emsim.study._registry import parse_options

    try:
        study = load_study(args.name, quick=args.quick, options=parse_options(args.set))
        print(f"{study.name}: report -> {report(study, args.out)}")
    except EmsimError as exc:
        return _fail(exc)
    return EXIT_OK


def _run_options(p) -> None:
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--quick", action="store_true", help="the small test-suite size of the study")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, help="run on a local Dask cluster of K worker processes")
    where.add_argument("--scheduler", help="run on the Dask scheduler at ADDR (e.g. tcp://host:8786)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _set_option(p)


def _set_option(p) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a study option (repeatable; each study lists its own in its docstring and in "
                        "`emsim study list`); give the same ones to `emsim study report`")


def register(sub) -> None:
    """Add ``emsim study`` to the ``emsim`` sub-parser collection ``sub``."""
    from emsim import DISCLAIMER

    p = sub.add_parser("study", help="run scripted parameter studies and report their figures",
                       description="Scripted parameter studies (scripts in studies/): sweeps, cohorts and "
                                   "reproductions of published experiments, run in checkpointed batches "
                                   f"locally or on Dask, with tables, figures and an HTML report. {DISCLAIMER}")
    ssub = p.add_subparsers(dest="study_command", metavar="{list,run,report}")
    ssub.required = True
    q = ssub.add_parser("list", help="list the studies (one per line, name first)")
    q.set_defaults(func=cmd_list)
    q = ssub.add_parser("run", help="run a study (resumes an interrupted run of the same study)")
    q.add_argument("name", metavar="NAME")
    _run_options(q)
    q.add_argument("--report", action="store_true", help="also write the HTML report")
    q.set_defaults(func=cmd_run)
    q = ssub.add_parser("report", help="HTML report (figures + tables) of a finished run")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder the study ran in (default {DEFAULT_OUT})")
    q.add_argument("--quick", action="store_true", help="report the --quick run")
    _set_option(q)
    q.set_defaults(func=cmd_report)


def run_script(build, argv=None) -> int:
    """``python studies/NAME.py``: run the study (and write its report unless --no-report)."""
    p = argparse.ArgumentParser(description=(build.__doc__ or "").strip() or None)
    _run_options(p)
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    args = p.parse_args(argv)
    args.report = not args.no_report
    try:
        from emsim.study._registry import build_with_options, parse_options

        return _run(build_with_options(build, args.quick, parse_options(args.set)), args)
    except EmsimError as exc:
        return _fail(exc)
