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


def report(study, out: str | Path) -> Path:
    """Write ``<out>/<name>/report.html`` (and ``figures/*.html|png``) from a finished run.

    Raises
    ------
    StudyError
        No finished run of this study (same spec) in ``out``, or the folder is not writable.
    """
    import pandas as pd
    from bokeh.embed import components
    from bokeh.resources import INLINE

    from emsim.study._figures import _hv

    layout = Layout(Path(out), study.name)
    prov = layout.finished()
    if prov is None:
        raise StudyError("no finished run of this study in the output folder; run it first",
                         path="--out", value=str(layout.dir),
                         allowed=f"a folder holding `emsim study run {study.name}` output")
    check_writable(layout.dir)
    df = pd.read_parquet(layout.results)
    saved = save_figures(study, df, layout.dir / "figures")
    hv = _hv()
    models = {k: hv.render(v["object"], backend="bokeh") for k, v in saved.items()}
    script, divs = components(models) if models else ("", {})
    units = study.units()
    cols = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(u or 'dimensionless')}</li>"
                   for k, u in units.items())
    figs = "".join(
        f'<section class="figure" id="{k}"><h3>{html.escape(k)}</h3>{divs[k]}'
        f'<p><img src="figures/{v["png"].name}" alt="{k} (static)" width="640"></p>'
        f'<p><a href="figures/{v["html"].name}">interactive</a> · <a href="figures/{v["png"].name}">PNG</a></p></section>'
        for k, v in saved.items())
    refs = "".join(
        f"<h3>{html.escape(r.label)}</h3><p>{html.escape(r.source)} — evidence: {html.escape(r.evidence)}</p>"
        + _table(pd.DataFrame(dict(r.data))) for r in study.references) or "<p>None: this study reproduces no paper.</p>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>emsim study: {html.escape(study.title)}</title>
{INLINE.render()}
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} table.data{{border-collapse:collapse;font-size:12px}}
table.data td,table.data th{{padding:2px 6px;border-bottom:1px solid #ddd}}</style>
{script}</head><body>
<h1>{html.escape(study.title)}</h1>
<p><em>Research use only: emsim has no clinical clearance.</em></p>
<p>{html.escape(study.description)}</p>
<h2>Figures</h2>{figs}
<h2>Published data overlaid</h2>{refs}
<h2>Columns and units</h2><ul>{cols}</ul>
<h2>Results ({len(df)} rows)</h2>{_table(df)}
<h2>Provenance</h2><pre>{html.escape(json.dumps(prov, indent=2))}</pre>
</body></html>
"""
    target = layout.dir / "report.html"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target
