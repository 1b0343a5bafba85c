"""Logic tests of the Studies tab (no server, no browser) over one real ``--quick`` study run."""

import json

import pandas as pd
import pytest

pytest.importorskip("panel")

from apps.studies_view import MAX_HEAD_ROWS, NO_STUDY, StudiesView, list_studies  # noqa: E402

pytestmark = pytest.mark.ui


def test_lists_the_study_with_its_provenance(quick_study_dir):
    (row,) = list_studies(quick_study_dir)
    prov = json.loads((quick_study_dir / "strength_duration" / "provenance.json").read_text())
    assert row["study"] == "strength_duration" and row["title"] == prov["title"]
    assert row["complete"] and row["quick"] and row["rows"] == prov["n_rows"] and row["report"]
    assert row["fingerprint"] == prov["fingerprint"][:12]


def test_figures_and_table_head_of_the_selected_study(quick_study_dir):
    view = StudiesView(folder=str(quick_study_dir))
    assert view.study == "strength_duration"
    figs = view.figures()
    assert figs and all(f.suffix == ".png" and f.stat().st_size > 0 for f in figs)
    head = view.table_head()
    full = pd.read_parquet(quick_study_dir / "strength_duration" / "results.parquet")
    assert len(head) == min(MAX_HEAD_ROWS, len(full))
    pd.testing.assert_frame_equal(head, full.head(MAX_HEAD_ROWS))


def test_empty_or_missing_folder_lists_nothing(tmp_path):
    assert list_studies(tmp_path) == [] and list_studies(tmp_path / "nope") == []
    view = StudiesView(folder=str(tmp_path))
    assert view.study == NO_STUDY and view.figures() == [] and view.table_head() is None
    assert "No study results" in view._list().object


def test_broken_provenance_is_listed_with_the_reason(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "provenance.json").write_text("{not json")
    (row,) = list_studies(tmp_path)
    assert row["study"] == "half" and "unreadable provenance" in row["error"]


def test_changing_the_folder_rescans(quick_study_dir, tmp_path):
    view = StudiesView(folder=str(tmp_path))
    assert view.studies == []
    view.folder = str(quick_study_dir)
    assert [r["study"] for r in view.studies] == ["strength_duration"] and view.study == "strength_duration"
    view.folder = str(tmp_path)  # and back to an empty folder
    assert view.studies == [] and view.study == NO_STUDY


def test_renders_to_a_bokeh_model(quick_study_dir):
    import panel as pn
    from bokeh.document import Document
    from pyviz_comms import Comm

    root = pn.panel(StudiesView(folder=str(quick_study_dir))).get_root(Document(), comm=Comm())
    assert root.ref["id"]
