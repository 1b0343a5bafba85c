import pytest

from emsim.optimise import Problem
from emsim.optimise.testing import surrogate_evaluate_batch


@pytest.fixture
def cheap_problem(measured_patient):
    """The default lumbar problem over the closed-form surrogate (for the search machinery only)."""
    return Problem(measured_patient, evaluator=surrogate_evaluate_batch, max_discomfort_nrs=8.5)
