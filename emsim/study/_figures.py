"""HoloViews figures of a study: interactive HTML (bokeh) and static PNG (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emsim.study._errors import StudyError

__all__ = ["figures", "save_figures"]

_loaded = False
_REF_COLOURS = ("black", "purple", "saddlebrown")
# One colour per value of a plot's ``by`` column across all its facet panels (Tableau 10), so
# that the single legend of a static faceted figure is right for every panel; then its light
# variants (Tableau 20), so up to 20 values stay distinct.
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
            "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5")


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


def _groups(hv, plot, df, x, y, by_values=(), single_label="", by_name=None, by_unit=""):
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
        label = single_label if key is None else f"{by_name or plot.by} = {_value(key)} {by_unit}".strip()
        pts = hv.Scatter((g[plot.x].to_numpy(), g[plot.y].to_numpy()), kdims=[x], vdims=[y], label=label)
        curve = hv.Curve((g[plot.x].to_numpy(), g[plot.y].to_numpy()), kdims=[x], vdims=[y], label=label)
        if key in by_values:
            colour = _PALETTE[list(by_values).index(key) % len(_PALETTE)]
            pts, curve = (_both(e, color=colour) for e in (pts, curve))
        layers.append(pts if plot.kind == "scatter" else curve * pts)
    return layers


def _panel(hv, study, plot, df, refs, by_values=()):
    x, y = _dim(hv, study, plot.x), _dim(hv, study, plot.y)
    # With published points beside it, a single curve needs a legend entry of its own.
    layers = _groups(hv, plot, df, x, y, by_values, single_label="model" if refs else "",
                     by_name=study.labels().get(plot.by), by_unit=study.units().get(plot.by) or "")
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
    return _both(hv.Overlay(layers), logx=plot.logx, logy=plot.logy)


def _both(obj, **options):
    """Options for both backends (a plain ``.opts`` only reaches the current one, bokeh)."""
    return obj.opts(**options, backend="bokeh").opts(**options, backend="matplotlib")


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else str(v)


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
            obj = _both(_panel(hv, study, plot, sub, refs), title=title)
        else:
            facet = study.labels().get(plot.facet, plot.facet.replace("_", " "))
            by_values = sorted(sub[plot.by].unique()) if plot.by is not None else ()
            unit = study.units().get(plot.facet) or ""
            panels = [_both(_panel(hv, study, plot, g, refs, by_values), title=f"{facet}: {_value(k)} {unit}".strip())
                      for k, g in sub.groupby(plot.facet, sort=True)]
            obj = _both(hv.Layout(panels).cols(min(3, len(panels))), title=title, shared_axes=plot.shared_axes)
        out[f"fig{i + 1}_{plot.y}_vs_{plot.x}"] = obj
    return out


def _plain_log_ticks(plot, element) -> None:
    """Matplotlib hook: log axes labelled 20, 50, 100, 200, … instead of crowded powers of ten
    (matplotlib labels every minor tick of an axis spanning less than two decades)."""
    from matplotlib.ticker import FuncFormatter

    ax = plot.handles.get("axis")
    if ax is None:
        return
    major = FuncFormatter(lambda v, _: f"{v:g}")
    minor = FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else "")
    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale == "log":
            axis.set_major_formatter(major)
            axis.set_minor_formatter(minor)


def _style(hv, obj):
    obj = obj.opts(hv.opts.Curve(width=520, height=360, tools=["hover"], backend="bokeh"),
                   hv.opts.BoxWhisker(width=640, height=360, xrotation=30, backend="bokeh"),
                   hv.opts.Bars(width=640, height=360, xrotation=30, tools=["hover"], backend="bokeh"),
                   hv.opts.Scatter(size=6, tools=["hover"], backend="bokeh"),
                   hv.opts.Overlay(legend_position="right", width=640, backend="bokeh"))
    return obj.opts(hv.opts.Overlay(legend_position="right", fig_size=200, aspect=1.6, hooks=[_plain_log_ticks],
                                    backend="matplotlib"),
                    hv.opts.BoxWhisker(xrotation=60, backend="matplotlib"),
                    hv.opts.Bars(xrotation=60, backend="matplotlib"),
                    hv.opts.Layout(sublabel_format="", hspace=1.1, vspace=0.6, backend="matplotlib"))


def _static(hv, obj):
    """The PNG form of a figure: facet panels stacked in one column, the legend (the same for
    every panel) drawn once, beside the first panel, so that no legend covers a neighbour."""
    if not isinstance(obj, hv.Layout):
        return obj
    panels = [p.opts(show_legend=(i == 0), backend="matplotlib") for i, p in enumerate(obj.clone())]
    return hv.Layout(panels).cols(1).opts(**obj.opts.get("plot", backend="matplotlib").kwargs,
                                          backend="matplotlib").opts(vspace=0.45, fig_size=150 * len(panels) ** 0.5,
                                                                     backend="matplotlib")


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
        hv.save(_static(hv, obj), png, backend="matplotlib")
        saved[key] = {"object": obj, "html": html, "png": png}
    return saved
