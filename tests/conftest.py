import copy

import pytest

from emsim.testing.documents import BASE_DOC, PATIENTS


@pytest.fixture
def measured_patient():
    from emsim.body import load_patient
    return load_patient(PATIENTS / "example_measured.json")


@pytest.fixture
def base_doc():
    """A small valid program document to mutate in tests (a deep copy each time)."""
    return copy.deepcopy(BASE_DOC)
