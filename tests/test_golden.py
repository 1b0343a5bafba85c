"""Golden results of the prediction pipeline: a refactor must not move them silently.

Each case of :mod:`emsim.testing.golden` (muscle force and fatigue, recruitment and discomfort,
skin current density, program compile, a seeded optimiser run) is computed through the public
API and compared element by element with ``tests/golden/<case>.json``:
``|got - stored| <= atol + rtol·|stored|`` with rtol 1e-9. The per-case atol and the reason for
it are in the case (``Case.tolerance_note``, also written into each file): every case was run
3 times in one process, in a fresh process and with ``NUMBA_NUM_THREADS=1`` and came out
bit-identical, so atol (1e-12, 1e-15 for recruitment fractions, 0 for the compiled programs)
only keeps exact zeros from demanding an impossible relative match; nothing is loosened for
thread-order noise because none was measured.

A deliberate change of results is regenerated with
``python -m emsim.testing.golden --update <case>`` (it prints what moved and by how much) and
committed with the reason.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from emsim.errors import EmsimError
from emsim.testing import golden


def _param(case: golden.Case):
    return pytest.param(case.name, id=case.name, marks=[pytest.mark.slow] if case.slow else [])


@pytest.mark.parametrize("name", [_param(c) for c in golden.CASES.values()])
def test_golden_case_reproduces_its_stored_values(name):
    case = golden.CASES[name]
    expected = golden.load(name)
    mismatches = golden.compare(expected, golden.compute(name), rtol=case.rtol, atol=case.atol)
    assert not mismatches, golden.failure_message(name, mismatches, rtol=case.rtol, atol=case.atol)


def test_every_case_has_a_stored_file_and_every_file_a_case():
    stored = {p.stem for p in golden.golden_dir().glob("*.json")}
    assert stored == set(golden.CASES)


# --------------------------------------------------------------------------- the machinery itself

def _values():
    return {"force_n": np.array([[0.0, 1.5, 270.25], [np.nan, 3.0, -2.0]]), "count": np.array(7),
            "capacity": np.array(0.123456789012345678), "threshold_a": np.array([1e-3, np.inf, -np.inf])}


def test_stored_values_round_trip_bit_for_bit(tmp_path):
    name = next(iter(golden.CASES))
    v = _values()
    golden.save(name, v, tmp_path)
    back = golden.load(name, tmp_path)
    assert set(back) == set(v)
    for k in v:
        assert back[k].shape == v[k].shape
        np.testing.assert_array_equal(back[k], v[k])  # NaN, ±inf and every bit of the floats
    assert back["count"].dtype.kind == "i"


def test_a_value_moved_beyond_tolerance_is_named_with_its_worst_element():
    expected, got = _values(), _values()
    got["force_n"] = got["force_n"].copy()
    got["force_n"][0, 2] *= 1 + 1e-8   # 10x rtol
    got["force_n"][0, 1] *= 1 + 1e-12  # within it
    m = golden.compare(expected, got, rtol=1e-9, atol=1e-12)
    assert [x.key for x in m] == ["force_n"]
    assert m[0].index == (0, 2) and m[0].n_moved == 1
    msg = golden.failure_message("muscle_x", m, rtol=1e-9, atol=1e-12)
    assert "muscle_x" in msg and "force_n" in msg and "[0, 2]" in msg
    assert repr(270.25) in msg and repr(float(got["force_n"][0, 2])) in msg
    assert "python -m emsim.testing.golden --update muscle_x" in msg


def test_a_decayed_tail_may_move_by_rounding_of_the_peak_but_not_more():
    # merging s9rev moved a relaxed force of 1.63e-11 N to 1.47e-11 N beside a 4 N peak:
    # 10 % of itself, 4e-13 of the key's peak -- rounding, not a result
    expected = {"force_n": np.array([4.0, 1.6269678293753055e-11])}
    noise = {"force_n": np.array([4.0, 1.4681977872630774e-11])}
    assert golden.compare(expected, noise, rtol=1e-9, atol=0.0) == []
    moved = {"force_n": np.array([4.0, 1e-9])}   # 2.5e-10 of the peak: a real change in the tail
    assert [m.key for m in golden.compare(expected, moved, rtol=1e-9, atol=0.0)] == ["force_n"]
    assert golden.compare(expected, noise, rtol=1e-9, atol=0.0, peak_rtol=0.0) != []


def test_nan_for_a_number_shape_and_key_changes_all_count():
    expected = _values()
    got = {**_values(), "extra": np.array(1.0)}
    del got["count"]
    got["capacity"] = np.array(math.nan)
    got["threshold_a"] = np.array([1e-3, np.inf])
    problems = {m.key: m for m in golden.compare(expected, got, rtol=1e-9, atol=1.0)}
    assert set(problems) == {"count", "extra", "capacity", "threshold_a"}
    assert problems["capacity"].n_moved == 1   # atol 1 does not excuse a NaN


def test_an_infinity_must_stay_the_same_infinity():
    expected, got = _values(), _values()
    got["threshold_a"] = np.array([1e-3, -np.inf, -np.inf])
    assert [m.key for m in golden.compare(expected, got, rtol=1.0, atol=1.0)] == ["threshold_a"]


def test_unknown_case_is_a_typed_error():
    with pytest.raises(EmsimError, match="unknown golden case"):
        golden.compute("no_such_case")


def test_update_rewrites_only_what_moved_and_says_by_how_much(tmp_path, monkeypatch, capsys):
    values = _values()
    monkeypatch.setitem(golden.CASES, "toy", golden.Case("toy", lambda: values))
    assert golden.main(["--update", "--dir", str(tmp_path), "toy"]) == 0
    assert "(new case)" in capsys.readouterr().out
    assert golden.main(["--update", "--dir", str(tmp_path), "toy"]) == 0
    assert "unchanged" in capsys.readouterr().out
    values["capacity"] = np.array(0.1234)
    assert golden.main(["--dir", str(tmp_path), "toy"]) == 1   # a check only: the file is kept
    assert "MOVED" in capsys.readouterr().out
    assert golden.main(["--update", "--dir", str(tmp_path), "toy"]) == 0
    out = capsys.readouterr().out
    assert "capacity: 1 of 1 changed" in out and "0.1234" in out
    assert golden.load("toy", tmp_path)["capacity"] == 0.1234
