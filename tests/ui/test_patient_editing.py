"""Patient & placement logic: new patient, questionnaire, thresholds, fat, saving, the body diagram."""

import pytest

pytest.importorskip("panel")

from apps.body_diagram import REGIONS, diagram, region_at  # noqa: E402
from apps.store import PATIENT_DIR, PLACEMENT_SITES  # noqa: E402
from emsim.body import get_site, loads_patient  # noqa: E402
from emsim.body.patient import contraindication_items  # noqa: E402

pytestmark = pytest.mark.ui


def test_new_patient_is_valid_and_saves_as_a_patient_file(store):
    assert store.new_patient("P-0001")
    assert store.patient.id == "P-0001" and store.patient_error == ""
    assert all(row["answer"] is None for row in store.questionnaire())  # nothing asked yet
    saved = loads_patient(store.patient_json())  # the download is a valid patient file
    assert saved == store.patient
    assert not store.new_patient("bad id with spaces")
    assert "id" in store.patient_error and store.patient.id == "P-0001"  # the refused id changed nothing


def test_questionnaire_lists_every_item_with_blocking_first(store):
    store.new_patient("P-0002")
    rows = store.questionnaire()
    assert {r["id"] for r in rows} == {i["id"] for i in contraindication_items()}
    blocking = [r["blocking"] for r in rows]
    assert blocking == sorted(blocking, reverse=True) and any(blocking) and not all(blocking)
    assert all(r["blocking"] == (r["severity"] == "absolute") for r in rows)


def test_answering_an_absolute_item_blocks_the_export(store):
    store.new_patient("P-0003")
    absolute = next(i["id"] for i in contraindication_items() if i["severity"] == "absolute" and i["scope"] != "site")
    store.channels[0].amplitude_ma = 20.0
    assert store.set_answer(absolute, False)
    assert store.patient.contraindications.model_dump()[absolute] is False
    assert store.set_answer(absolute, True)
    (found,) = store.contraindications()
    assert found["id"] == absolute and found["blocking"]
    text, report = store.export()
    assert text is None and not report.ok
    assert store.set_answer(absolute, None)  # back to "not asked"
    assert store.patient.contraindications.model_dump()[absolute] is None


def test_thresholds_are_added_replaced_removed_and_validated(store):
    store.new_patient("P-0004")
    assert store.add_threshold("lumbar_erector_spinae", "left", "motor_threshold", 300.0, 50.0, 25.0)
    assert store.add_threshold("lumbar_erector_spinae", "left", "motor_threshold", 300.0, 50.0, 27.0)  # replaces
    assert [t.amplitude_ma for t in store.patient.thresholds] == [27.0]
    # sensory above motor at the same site and pulse width is refused and changes nothing
    assert not store.add_threshold("lumbar_erector_spinae", "left", "sensory_threshold", 300.0, 50.0, 40.0)
    assert "sensory_threshold above motor_threshold" in store.patient_error
    assert len(store.patient.thresholds) == 1
    assert not store.add_threshold("gluteus_maximus", "bilateral", "motor_threshold", 300.0, 50.0, 30.0)
    assert "side" in store.patient_error
    assert not store.remove_threshold(5) and "no such threshold" in store.patient_error
    assert store.remove_threshold(0) and store.patient.thresholds == ()
    assert store.calibrations()[0]["fit"] == []  # nothing measured: neutral factors


def test_measured_threshold_calibrates_the_channel(store):
    store.new_patient("P-0005")
    store.add_threshold("lumbar_erector_spinae", "left", "motor_threshold", 300.0, 50.0, 30.0)
    rows = {(r["site"], r["side"]): r for r in store.calibrations()}
    left = rows["lumbar_erector_spinae", "left"]
    assert left["fit"] and left["motor_gain"] != 1.0
    lo, hi = left["motor_gain_range"]
    assert lo < left["motor_gain"] < hi  # the uncertainty shown with it


def test_fat_thickness_is_set_per_site_and_side(store):
    store.new_patient("P-0006")
    assert store.set_fat("lumbar_erector_spinae", "left", 12.0)
    assert store.set_fat("lumbar_erector_spinae", "left", 18.0, "skinfold")
    (fat,) = store.patient.fat_thickness
    assert (fat.value_mm, fat.method) == (18.0, "skinfold")
    assert not store.set_fat("lumbar_erector_spinae", "right", 500.0)
    assert "value_mm" in store.patient_error and len(store.patient.fat_thickness) == 1


def test_edits_without_a_patient_say_so(store):
    assert not store.set_answer("pregnancy", True)
    assert "no patient" in store.patient_error


def test_loaded_patient_can_be_edited_and_saved(store):
    store.load_patient_file(PATIENT_DIR / "example_measured.json")
    store.set_fat("lumbar_erector_spinae", "left", 20.0)
    again = loads_patient(store.patient_json())
    assert {(f.side, f.value_mm) for f in again.fat_thickness} == {("left", 20.0), ("right", 15.0)}
    assert len(again.thresholds) == 6


def test_every_region_is_a_placement_site_side_and_hit_tests_to_itself():
    assert {site for site, _ in REGIONS} == set(PLACEMENT_SITES)
    for (site, side), (x0, y0, x1, y1) in REGIONS.items():
        assert side in get_site(site).sides
        assert region_at((x0 + x1) / 2, (y0 + y1) / 2) == (site, side)
    assert region_at(0.0, 0.0) is None and region_at(None, None) is None


def test_click_on_the_diagram_places_the_selected_channel(store):
    from apps.patient_view import PatientView

    view = PatientView(store=store)
    view.active_channel = "ES-R"
    x0, y0, x1, y1 = REGIONS["gluteus_maximus", "right"]
    version = store.placement_version
    assert view.place_at((x0 + x1) / 2, (y0 + y1) / 2)
    chan = view.channel("ES-R")
    assert (chan.site, chan.side) == ("gluteus_maximus", "right")
    assert store.placement_version > version
    assert store.program(60.0).channel("ES-R").site == "gluteus_maximus"
    assert not view.place_at(0.0, 0.0)  # beside every region: nothing moves
    assert (chan.site, chan.side) == ("gluteus_maximus", "right")


def test_site_change_keeps_the_side_possible(store):
    chan = store.channels[0]
    chan.side = "bilateral"
    chan.site = "gluteus_maximus"  # no bilateral pair over the glutes
    assert chan.side in get_site("gluteus_maximus").sides
    assert "bilateral" not in chan.param["side"].objects


def test_electrode_size_reaches_the_program(store):
    store.channels[0].electrode = "round 5 cm"
    (e1, e2) = store.program(60.0).channel("ES-L").electrodes
    assert e1.shape == e2.shape == "circle" and e1.diameter_cm == 5.0


def test_diagram_renders_with_pairs():
    import holoviews as hv

    hv.extension("bokeh", logo=False)
    plot = diagram({"ES-L": ("lumbar_erector_spinae", "bilateral"), "ES-R": ("hip_flexors", "left")}, "ES-L")
    assert hv.render(plot) is not None
    pairs = [el for el in plot if isinstance(el, hv.Polygons) and len(el.data) == 2]
    assert len(pairs) == 3  # bilateral marks both sides


def test_tap_stream_of_the_diagram_places_the_channel(store):
    import holoviews as hv
    import panel as pn
    from bokeh.document import Document
    from pyviz_comms import Comm

    from apps.patient_view import PatientView

    hv.extension("bokeh", logo=False)
    view = PatientView(store=store)
    pn.panel(view).get_root(Document(), comm=Comm())  # wires the tap stream to the rendered diagram
    view.active_channel = "ES-L"
    x0, y0, x1, y1 = REGIONS["hip_flexors", "left"]
    view._tap.event(x=(x0 + x1) / 2, y=(y0 + y1) / 2)  # what a click in the browser sends
    chan = view.channel("ES-L")
    assert (chan.site, chan.side) == ("hip_flexors", "left")
