"""The HTML report of a finished study: figures (interactive + PNG), tables, provenance."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from emsim.study._errors import StudyError
from emsim.study._figures import save_figures
from emsim.study._storage import Layout, check_writable

__all__ = ["report"]

MAX_TABLE_ROWS = 200


def _table(df) -> str:
    shown = df.head(MAX_TABLE_ROWS)
    note = "" if len(df) <= MAX_TABLE_ROWS else f"<p>First {MAX_TABLE_ROWS} of {len(df)} rows; all in results.parquet.</p>"
    return shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="data") + note


def _stage_html(study, layout, prefix: str, figures_dir: Path, heading: str):
    """Figures, derived tables and results of one stage; returns (html, bokeh models)."""
    import pandas as pd

    from emsim.study._figures import _hv

    df = pd.read_parquet(layout.results)
    tables = study.derived(df)
    saved = save_figures(study, df, figures_dir, tables, prefix=prefix)
    hv = _hv()
    models = {k: hv.render(v["object"], backend="bokeh") for k, v in saved.items()}
    figs = "".join(
        f'<section class="figure" id="{k}"><h3>{html.escape(k)}</h3>{{{{div:{k}}}}}'
        f'<p><img src="figures/{v["png"].name}" alt="{k} (static)" width="640"></p>'
        f'<p><a href="figures/{v["html"].name}">interactive</a> · <a href="figures/{v["png"].name}">PNG</a></p></section>'
        for k, v in saved.items())
    derived = "".join(f"<h3>{html.escape(name)}</h3>{_table(t)}" for name, t in tables.items())
    body = (f"{heading}<p>{html.escape(study.description)}</p><h3>Figures</h3>{figs}"
            + (f"<h3>Derived tables</h3>{derived}" if derived else "")
            + f"<h3>Results ({len(df)} rows)</h3>{_table(df)}")
    return body, models, json.loads(layout.provenance.read_text(encoding="utf-8"))


def report(study, out: str | Path) -> Path:
    """Write ``<out>/<name>/report.html`` (and ``figures/*.html|png``) from a finished run.

    A study with follow-up stages (``then``) gets one section per stage on the same page.

    Raises
    ------
    StudyError
        No finished run of this study (same spec) in ``out``, or the folder is not writable.
    """
    import pandas as pd
    from bokeh.embed import components
    from bokeh.resources import INLINE

    from emsim.study._provenance import fingerprint
    from emsim.study._runner import stages

    top = Layout(Path(out), study.name)
    if top.finished() is None:
        raise StudyError("no finished run of this study in the output folder; run it first", path="--out",
                         value=str(top.dir), allowed=f"a folder holding `emsim study run {study.name}` output")
    check_writable(top.dir)
    sections, models, provs, all_stages = [], {}, [], []
    for n, (stage, folder) in enumerate(stages(study, out)):
        layout = Layout(folder, stage.name)
        prov = layout.finished()
        if prov is None or prov.get("fingerprint") != fingerprint(stage.spec()):
            raise StudyError("no finished run of this study in the output folder; run it first",
                             path="--out", value=str(layout.dir),
                             allowed=f"a folder holding `emsim study run {study.name}` output")
        heading = "" if n == 0 else f"<h2>Stage {n + 1}: {html.escape(stage.title)}</h2>"
        body, m, prov = _stage_html(stage, layout, "" if n == 0 else f"s{n + 1}_", top.dir / "figures", heading)
        sections.append(body)
        models.update(m)
        provs.append(prov)
        all_stages.append(stage)
    if study.then is not None and len(all_stages) < 2:
        raise StudyError("the study's follow-up stage has not run; run the study again to finish it",
                         path="--out", value=str(top.dir), allowed=f"`emsim study run {study.name}` to completion")
    script, divs = components(models) if models else ("", {})
    page_body = "".join(sections)
    for k, div in divs.items():
        page_body = page_body.replace("{{div:%s}}" % k, div)
    units = {}
    for st in all_stages:
        units.update(st.units())
    cols = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(u or 'dimensionless')}</li>"
                   for k, u in units.items())
    refs = "".join(
        f"<h3>{html.escape(r.label)}</h3><p>{html.escape(r.source)} — evidence: {html.escape(r.evidence)}</p>"
        + _table(pd.DataFrame(dict(r.data))) for st in all_stages for r in st.references) \
        or "<p>None: this study reproduces no paper.</p>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>emsim study: {html.escape(study.title)}</title>
{INLINE.render()}
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} table.data{{border-collapse:collapse;font-size:12px}}
table.data td,table.data th{{padding:2px 6px;border-bottom:1px solid #ddd}}</style>
{script}</head><body>
<h1>{html.escape(study.title)}</h1>
<p><em>Research use only: emsim has no clinical clearance.</em></p>
{page_body}
<h2>Published data overlaid</h2>{refs}
<h2>Columns and units</h2><ul>{cols}</ul>
<h2>Provenance</h2><pre>{html.escape(json.dumps(provs[0] if len(provs) == 1 else provs, indent=2))}</pre>
</body></html>
"""
    target = top.dir / "report.html"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target
