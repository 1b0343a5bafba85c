"""Write a Pareto set: one program file per member (with provenance) and a summary table."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
from pathlib import Path

from emsim import DISCLAIMER, __version__
from emsim._validation import atomic_write
from emsim.errors import InputFileError
from emsim.program.io import dumps, from_dict

__all__ = ["export_pareto", "SUMMARY_NAME"]

SUMMARY_NAME = "pareto.csv"


def _scalar(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v
    v = float(v)
    return v if math.isfinite(v) else None


def export_pareto(result, out_dir, *, study_name: str | None = None, patient_index: int = 0) -> list[Path]:
    """Write every Pareto program of ``result`` into ``out_dir`` and ``pareto.csv`` beside them.

    Each file is the candidate program with its provenance replaced: emsim version, seed,
    study, trial, and the predicted outcomes for the patient ``patient_index`` (the values a
    fresh ``emsim evaluate`` of the file reproduces). Files are written atomically.

    Returns
    -------
    list of Path
        The program files, in Pareto order; the summary is ``out_dir / "pareto.csv"``.

    Raises
    ------
    InputFileError
        ``out_dir`` cannot be created.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"output folder cannot be created ({exc.strerror})", path=str(out),
                             unreadable=True) from None
    problem = result.problem
    patient = problem.patients[patient_index]
    today = _dt.date.today().isoformat()
    rows, paths = [], []
    n = len(result.pareto)
    for k, cand in enumerate(result.pareto):
        pred = cand.predictions[patient_index]
        outcomes = {key: _scalar(v) for key, v in pred.scalars.items()}
        outcomes.update(patient=getattr(patient, "id", None), device=problem.device, session=problem.session,
                        evidence=pred.evidence, safety_ok=bool(pred.safety.ok))
        data = cand.program.model_dump(mode="json", exclude_none=True)
        summary = ", ".join(f"{o.label} {cand.values[o.name]:.4g}" for o in problem.objectives)
        data["name"] = f"Optimised program {k + 1} of {n} ({study_name or 'emsim optimise'})"[:120]
        data["description"] = (
            f"Pareto-optimal program {k + 1} of {n} found by emsim optimise ({result.method}, seed {result.seed}, "
            f"study {study_name or '-'}, trial {cand.trial_number}) for patient {outcomes['patient']} on "
            f"{problem.device or 'no device'}, session {problem.session}. Predicted: {summary}; evidence level of "
            f"the model parameters: {pred.evidence} (lumbar values are extrapolated from limb data). "
            f"{DISCLAIMER}")[:4000]
        data["provenance"] = {
            "emsim_version": __version__, "model_versions": {}, "seed": result.seed,
            "created_by": "emsim optimise",
            "created_with": f"emsim.optimise {result.method}; study {study_name or '-'}; trial {cand.trial_number}"[:200],
            "created": today, "predicted_outcomes": outcomes,
        }
        program = from_dict(data)
        path = out / f"pareto_{k + 1:03d}.json"
        atomic_write(path, dumps(program))
        paths.append(path)
        row = {"file": path.name, "trial": cand.trial_number}
        row.update({f"objective:{name}": v for name, v in cand.values.items()})
        row.update({key: outcomes[key] for key in pred.scalars})
        row.update(safety_ok=outcomes["safety_ok"], warnings=len(pred.safety.warnings), evidence=pred.evidence)
        row.update(cand.vector)
        rows.append(row)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(out / SUMMARY_NAME, buf.getvalue())
    return paths
