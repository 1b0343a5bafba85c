"""HoloViews figures of a study: interactive HTML (bokeh) and static PNG (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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


def _panel(hv, study, plot, df, refs):
    x, y = _dim(hv, study, plot.x), _dim(hv, study, plot.y)
    layers = []
    groups = [(None, df)] if plot.by is None else list(df.groupby(plot.by, sort=True))
    for key, g in groups:
        g = g.sort_values(plot.x)
        label = "" if key is None else f"{plot.by.replace('_', ' ')} = {key}"
        layers.append(hv.Curve((g[plot.x].to_numpy(), g[plot.y].to_numpy()), kdims=[x], vdims=[y], label=label)
                      * hv.Scatter((g[plot.x].to_numpy(), g[plot.y].to_numpy()), kdims=[x], vdims=[y], label=label))
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


def figures(study, df) -> dict:
    """One HoloViews object per ``study.plots`` entry, keyed by a file-safe name."""
    hv = _hv()
    out = {}
    for i, plot in enumerate(study.plots):
        sub = df
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
                   hv.opts.Scatter(size=6, tools=["hover"], backend="bokeh"),
                   hv.opts.Overlay(legend_position="right", width=640, backend="bokeh"))
    return obj.opts(hv.opts.Overlay(legend_position="bottom", fig_size=200, aspect=1.6, backend="matplotlib"))


def save_figures(study, df, folder: Path) -> dict[str, dict]:
    """Write every figure as ``<key>.html`` and ``<key>.png``; returns the objects and paths."""
    hv = _hv()
    folder.mkdir(parents=True, exist_ok=True)
    saved = {}
    for key, obj in figures(study, df).items():
        obj = _style(hv, obj)
        html, png = folder / f"{key}.html", folder / f"{key}.png"
        hv.save(obj, html, backend="bokeh", resources="inline")
        hv.save(obj, png, backend="matplotlib")
        saved[key] = {"object": obj, "html": html, "png": png}
    return saved
