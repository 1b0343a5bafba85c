"""Scripted parameter studies: spaces, batch runner (local or Dask), storage, figures, reports.

Public API
----------
A script in ``studies/`` defines ``build(quick=False) -> Study``; :func:`run` evaluates it in
checkpointed batches and writes a tidy Parquet table (plus NetCDF for grids) with provenance;
:func:`report` draws its figures (HoloViews: HTML and PNG) into an HTML report. :func:`main`
gives a script the same options as ``emsim study run``.
"""

from emsim.study._cache import worker_cache
from emsim.study._errors import StudyError
from emsim.study._registry import load_study, studies_dir, study_names
from emsim.study._report import report
from emsim.study._runner import RunResult, run
from emsim.study._space import (Cohort, Grid, LatinHypercube, MorrisTrajectories, Parameter, RandomSamples,
                                 elementary_effects)
from emsim.study._study import Plot, Reference, Study, cohort_patients, pareto_mask

__all__ = ["Study", "Parameter", "Grid", "RandomSamples", "LatinHypercube", "Cohort", "Plot", "Reference",
           "StudyError", "RunResult", "run", "report", "load_study", "study_names", "studies_dir",
           "cohort_patients", "main", "MorrisTrajectories", "elementary_effects", "pareto_mask", "worker_cache"]


def main(build, argv=None) -> int:
    """Command line of a study script: ``python studies/NAME.py [--quick] [--out DIR] [--workers K |
    --scheduler ADDR] [--no-report]`` (same exit codes as ``emsim study run``)."""
    from emsim.study.cli import run_script

    return run_script(build, argv)
