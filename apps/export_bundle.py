"""What the Export tab offers for a design: the program, its device-quantised version, and their checks.

Nothing is exported that fails the safety check for the chosen device, patient and session.
An exported program carries the predicted outcomes of the whole session in its provenance
when that prediction is of this very program.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from emsim.program import compile as compile_program
from emsim.program import dumps, from_dict
from emsim.program.quantise import quantise
from emsim.safety import check

__all__ = ["ExportBundle", "build_export", "with_outcomes", "same_design"]


@dataclass(frozen=True)
class ExportBundle:
    """Everything the Export tab offers for one design, validated for its patient and device.

    ``program_text`` and ``quantised_text`` are ``None`` when the safety check has errors.
    """

    program_text: str | None
    safety: object
    quantised_text: str | None = None
    quantisation: object = None
    prediction: object = None


def build_export(doc: dict | None, patient, device: str, session: int, prediction=None) -> ExportBundle:
    """Check ``doc`` and build the bundle.

    Parameters
    ----------
    doc : dict or None
        The whole-session program document (``None``: every channel is off).
    prediction : emsim.simulate.Prediction, optional
        The whole session's prediction; its outcomes go into the provenance when it is of
        this program (a prediction of another design is ignored).
    """
    if doc is None:
        return ExportBundle(None, None)
    program = from_dict(doc)
    report = check(program, patient, device, session=session)
    if not report.ok:
        return ExportBundle(None, report)
    if prediction is not None and not same_design(prediction.program, program):
        prediction = None
    if prediction is not None:
        doc = with_outcomes(doc, prediction)
        program = from_dict(doc)
    train = compile_program(program, patient, session=session)
    qtrain, qreport = quantise(train, device)
    qdoc = json.loads(dumps(qtrain.program))
    qdoc["provenance"]["created_with"] = f"emsim workbench, quantised for {device} (emsim.program.quantise)"
    return ExportBundle(dumps(program), report, dumps(from_dict(qdoc)), qreport, prediction)


def with_outcomes(doc: dict, pred) -> dict:
    """A copy of ``doc`` whose provenance holds the scalar outcomes of ``pred``."""
    outcomes = {k: _scalar(v) for k, v in pred.scalars.items()}
    outcomes.update(evidence=pred.evidence, session=pred.session, patient=getattr(pred.patient, "id", None))
    doc = dict(doc, provenance=dict(doc["provenance"], predicted_outcomes=outcomes))
    return doc


def same_design(a, b) -> bool:
    """Same program apart from provenance."""
    return a.model_dump(exclude={"provenance"}) == b.model_dump(exclude={"provenance"})


def _scalar(v):
    return round(float(v), 6) if isinstance(v, float) or hasattr(v, "dtype") else v
