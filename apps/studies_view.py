"""Studies tab: browse the results of ``emsim study run``, their provenance, figures and tables.

A study folder is ``<out>/<name>/`` holding ``provenance.json`` (written last, with
``"complete": true``), ``results.parquet`` and, once ``--report`` ran, ``report.html`` and
``figures/*.png``. Only folders with a readable provenance file are listed; nothing in them is
executed, and the path field only names a folder on this machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import panel as pn
import param

from emsim.study.cli import DEFAULT_OUT

__all__ = ["StudiesView", "list_studies", "MAX_HEAD_ROWS", "NO_STUDY"]

MAX_HEAD_ROWS = 20
#: The study selector's only entry when the folder holds none (Panel's Select misbehaves without options).
NO_STUDY = "(none)"
_PROVENANCE = "provenance.json"


def list_studies(folder: str | Path) -> list[dict]:
    """One row per study folder below ``folder`` that has a provenance file (sorted by name).

    Rows carry the provenance fields the page shows plus ``path``; unreadable provenance gives
    a row with ``error``.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        return []
    rows = []
    # a study with a follow-up stage writes that stage's results one level deeper
    found = sorted([*root.glob(f"*/{_PROVENANCE}"), *root.glob(f"*/*/{_PROVENANCE}")])
    for prov in found:
        d = prov.parent
        row = {"study": d.relative_to(root).as_posix(), "path": str(d)}
        try:
            doc = json.loads(prov.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            rows.append(dict(row, error=f"unreadable provenance ({exc})"))
            continue
        row.update(title=doc.get("title", ""), complete=bool(doc.get("complete")), quick=doc.get("quick"),
                   rows=doc.get("n_rows"), seed=doc.get("seed"), emsim=doc.get("emsim_version"),
                   finished_utc=doc.get("finished_utc"), fingerprint=str(doc.get("fingerprint", ""))[:12],
                   executor=doc.get("executor"),
                   evidence=", ".join(sorted({r.get("evidence", "?") for r in doc.get("references", [])})) or "-",
                   report=(d / "report.html").is_file())
        rows.append(row)
    return rows


class StudiesView(pn.viewable.Viewer):
    """A folder field, the studies found there, and the selected study's figures and table head."""

    folder = param.String(default=str(DEFAULT_OUT.resolve()), doc="where `emsim study run` wrote its output")
    refresh = param.Event(label="Refresh")
    study = param.Selector(default=NO_STUDY, objects=[NO_STUDY])
    studies = param.List(default=[])

    def __init__(self, **params):
        super().__init__(**params)
        self._scan()

    @param.depends("folder", "refresh", watch=True)
    def _scan(self) -> None:
        rows = list_studies(self.folder)
        names = [r["study"] for r in rows]
        self.param.study.objects = names or [NO_STUDY]
        self.studies = rows
        if self.study not in names:
            self.study = names[0] if names else NO_STUDY

    def selected(self) -> dict | None:
        return next((r for r in self.studies if r["study"] == self.study), None)

    def figures(self) -> list[Path]:
        row = self.selected()
        return sorted((Path(row["path"]) / "figures").glob("*.png")) if row else []

    def table_head(self, n: int = MAX_HEAD_ROWS):
        """The first ``n`` rows of the selected study's results table (pandas), or None."""
        row = self.selected()
        if row is None or not (Path(row["path"]) / "results.parquet").is_file():
            return None
        import pandas as pd

        return pd.read_parquet(Path(row["path"]) / "results.parquet").head(n)

    @param.depends("studies")
    def _list(self):
        if not self.studies:
            return pn.pane.Markdown(f"No study results in `{self.folder}` (run `emsim study run NAME --report "
                                    f"--out {self.folder}`).", css_classes=["emsim-studies"])
        import pandas as pd

        cols = ["study", "title", "complete", "quick", "rows", "seed", "emsim", "finished_utc", "fingerprint",
                "evidence", "report"]
        frame = pd.DataFrame([{c: r.get(c, r.get("error")) for c in cols} for r in self.studies])
        return pn.Column(pn.pane.Markdown(f"{len(self.studies)} stud{'y' if len(self.studies) == 1 else 'ies'} "
                                          f"in `{self.folder}`", css_classes=["emsim-studies"]),
                         pn.pane.DataFrame(frame, index=False, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")

    @param.depends("study", "studies")
    def _detail(self):
        row = self.selected()
        if row is None:
            return pn.pane.Markdown("")
        if "error" in row:
            return pn.pane.Alert(f"{row['study']}: {row['error']}", alert_type="warning")
        parts = [pn.pane.Markdown(f"### {row['title']}\n`{row['path']}` — {row['rows']} rows, seed {row['seed']}, "
                                  f"emsim {row['emsim']}, finished {row['finished_utc']} UTC, "
                                  f"fingerprint `{row['fingerprint']}`", css_classes=["emsim-study-detail"])]
        report = Path(row["path"]) / "report.html"
        if report.is_file():
            parts.append(pn.widgets.FileDownload(file=str(report), filename=f"{row['study']}_report.html",
                                                 label="Download the HTML report", embed=False))
        figs = self.figures()
        if figs:
            parts.append(pn.Row(*[pn.Column(f"**{f.stem}**", pn.pane.PNG(str(f), width=560)) for f in figs],
                                sizing_mode="stretch_width"))
        else:
            parts.append(pn.pane.Markdown("No figures yet: `emsim study report NAME` draws them."))
        head = self.table_head()
        if head is not None:
            parts += [pn.pane.Markdown(f"#### Results (first {len(head)} rows)"),
                      pn.pane.DataFrame(head.round(4), index=False, sizing_mode="stretch_width")]
        return pn.Column(*parts, sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(
            pn.Row(pn.widgets.TextInput.from_param(self.param.folder, name="Study results folder", width=560,
                                                   css_classes=["emsim-study-folder"]),
                   pn.widgets.Button.from_param(self.param.refresh)),
            self._list, pn.widgets.Select.from_param(self.param.study, name="Study", width=300), self._detail,
            name="Studies", sizing_mode="stretch_width")
