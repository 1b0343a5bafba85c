"""HoloViews figures of a study: interactive HTML (bokeh) and static PNG (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emsim.study._errors import StudyError

__all__ = ["figures", "save_figures"]

_loaded = False
_REF_COLOURS = ("black", "purple", "saddlebrown")


def _hv():
    global _loaded
    import holoviews as hv

    if not _loaded:
        hv.extension("bokeh", "matplotlib", logo=False)
        _loaded = True
    return hv


def _dim(hv, study, name):
    unit = study.units().get(name) or None
    return hv.Dimension(name, label=study.labels().get(name, name), unit=unit)


def _groups(hv, plot, df, x, y):
    if plot.kind == "box":
        return [hv.BoxWhisker((df[plot.x].astype(str).to_numpy(), df[plot.y].to_numpy(float)), kdims=[x], vdims=[y])]
    if plot.kind == "bar":
        if plot.by is None:
            return [hv.Bars((df[plot.x].astype(str).to_numpy(), df[plot.y].to_numpy(float)), kdims=[x], vdims=[y])]
        b = hv.Dimension(plot.by, label=plot.by.replace("_", " "))
        return [hv.Bars((df[plot.x].astype(str).to_numpy(), df[plot.by].astype(str).to_numpy(),
                         df[plot.y].to_numpy(float)), kdims=[x, b], vdims=[y])]
    layers = []
    groups = [(None, df)] if plot.by is None else list(df.groupby(plot.by, sort=True))
    for key, g in groups:
        g = g.sort_values(plot.x)
        label = "" if key is None else f"{plot.by.replace('_', ' ')} = {key}"
        pts = hv.Scatter((g[plot.x].to_numpy(), g[plot.y].to_numpy()), kdims=[x], vdims=[y], label=label)
        layers.append(pts if plot.kind == "scatter" else
                      hv.Curve((g[plot.x].to_numpy(), g[plot.y].to_numpy()), kdims=[x], vdims=[y], label=label) * pts)
    return layers


def _panel(hv, study, plot, df, refs):
    x, y = _dim(hv, study, plot.x), _dim(hv, study, plot.y)
    layers = _groups(hv, plot, df, x, y)
    for n, ref in enumerate(refs):
        d = ref.data
        if plot.x not in d or plot.y not in d:
            continue
        xs, ys = np.asarray(d[plot.x]), np.asarray(d[plot.y], float)
        label = f"published: {ref.label}"
        layers.append(hv.Scatter((xs, ys), kdims=[x], vdims=[y], label=label)
                      .opts(marker="diamond", size=10, color=_REF_COLOURS[n % 3], backend="bokeh")
                      .opts(marker="D", color=_REF_COLOURS[n % 3], backend="matplotlib"))
        if ref.error and ref.error in d:
            layers.append(hv.ErrorBars((xs, ys, np.asarray(d[ref.error], float)), kdims=[x],
                                       vdims=[y, hv.Dimension("err")]))
    overlay = hv.Overlay(layers)
    return overlay.opts(logx=plot.logx, logy=plot.logy)


def _source(study, plot, df, tables):
    sub = df if plot.table is None else tables.get(plot.table)
    if sub is None:
        raise StudyError("plot draws from a table the study does not derive", path="plot.table",
                         value=plot.table, allowed=", ".join(tables) or "(none)")
    missing = [c for c in (plot.x, plot.y, plot.by, plot.facet, *plot.where) if c is not None and c not in sub]
    if missing:
        raise StudyError("plot refers to an unknown column", path=f"plot.{plot.y}", value=missing,
                         allowed=", ".join(map(str, sub.columns)))
    return sub


def figures(study, df, tables=None) -> dict:
    """One HoloViews object per ``study.plots`` entry, keyed by a file-safe name."""
    hv = _hv()
    tables = study.derived(df) if tables is None else tables
    out = {}
    for i, plot in enumerate(study.plots):
        sub = _source(study, plot, df, tables)
        for col, val in plot.where.items():
            sub = sub[sub[col] == val]
        refs = [r for r in study.references if r.label in plot.references]
        title = plot.title or f"{study.labels().get(plot.y, plot.y)} vs {study.labels().get(plot.x, plot.x)}"
        if plot.facet is None:
            obj = _panel(hv, study, plot, sub, refs).opts(title=title)
        else:
            panels = [_panel(hv, study, plot, g, refs).opts(title=f"{plot.facet.replace('_', ' ')} = {k}")
                      for k, g in sub.groupby(plot.facet, sort=True)]
            obj = hv.Layout(panels).cols(min(3, len(panels))).opts(title=title)
        out[f"fig{i + 1}_{plot.y}_vs_{plot.x}"] = obj
    return out


def _style(hv, obj):
    obj = obj.opts(hv.opts.Curve(width=520, height=360, tools=["hover"], backend="bokeh"),
                   hv.opts.BoxWhisker(width=640, height=360, xrotation=30, backend="bokeh"),
                   hv.opts.Bars(width=640, height=360, xrotation=30, tools=["hover"], backend="bokeh"),
                   hv.opts.Scatter(size=6, tools=["hover"], backend="bokeh"),
                   hv.opts.Overlay(legend_position="right", width=640, backend="bokeh"))
    return obj.opts(hv.opts.Overlay(legend_position="right", fig_size=200, aspect=1.6, backend="matplotlib"),
                    hv.opts.BoxWhisker(xrotation=60, backend="matplotlib"),
                    hv.opts.Bars(xrotation=60, backend="matplotlib"),
                    hv.opts.Layout(sublabel_format="", hspace=1.1, vspace=0.6, backend="matplotlib"))


def save_figures(study, df, folder: Path, tables=None, prefix: str = "") -> dict[str, dict]:
    """Write every figure as ``<prefix><key>.html`` and ``.png``; returns the objects and paths."""
    hv = _hv()
    folder.mkdir(parents=True, exist_ok=True)
    saved = {}
    for key, obj in figures(study, df, tables).items():
        key = prefix + key
        obj = _style(hv, obj)
        html, png = folder / f"{key}.html", folder / f"{key}.png"
        hv.save(obj, html, backend="bokeh", resources="inline")
        hv.save(obj, png, backend="matplotlib")
        saved[key] = {"object": obj, "html": html, "png": png}
    return saved
