"""Multi-objective search for stimulation programs.

The shape follows pymoo (a :class:`Problem` evaluated by the batch, kept apart from the search
algorithm, one front door returning one :class:`Result`) and the vocabulary follows optuna
(studies, trials, samplers, storages), which does the searching: NSGA-II, NSGA-III, TPE or
random sampling with constraints, in a study stored through SQLAlchemy (a SQLite file, or
PostgreSQL; :func:`open_storage` opens one for optuna) so that runs resume after an
interruption and several workers can share one.

>>> from emsim.body import load_patient
>>> from emsim.optimise import Problem, optimise
>>> problem = Problem(load_patient("patient.json"), max_discomfort_nrs=6)      # doctest: +SKIP
>>> result = optimise(problem, "nsga2", budget=400, seed=1,
...                   storage="sqlite:///study.db", study_name="lbp-01")       # doctest: +SKIP
>>> [c.values for c in result.pareto]                                          # doctest: +SKIP

Research use only: emsim has no clinical clearance.
"""

from emsim.optimise._export import export_pareto
from emsim.optimise._objectives import DEFAULT_OBJECTIVES, OBJECTIVES, Objective
from emsim.optimise._problem import CONSTRAINTS, Evaluation, Problem
from emsim.optimise._result import Candidate, Result
from emsim.optimise._search import METHODS, SETTINGS, Progress, optimise
from emsim.optimise._space import DEFAULT_FIELDS, DesignSpace, Variable
from emsim.optimise._storage import open_storage
from emsim.optimise._template import lumbar_template

__all__ = ["optimise", "Problem", "DesignSpace", "Variable", "Result", "Candidate", "Evaluation", "Progress",
           "Objective", "OBJECTIVES", "DEFAULT_OBJECTIVES", "DEFAULT_FIELDS", "CONSTRAINTS", "METHODS",
           "SETTINGS", "lumbar_template", "export_pareto", "open_storage"]
