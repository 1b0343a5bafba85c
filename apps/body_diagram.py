"""A schematic body diagram (back and front view) with the stimulation sites as clickable regions.

The outline and the regions are drawing coordinates, not anatomy to measure by: they show
where a site is (lumbar erector spinae and multifidus, gluteus maximus and medius on the back;
the hip flexors on the front of the thigh), and the electrode pairs placed on them. Back view
left, front view right; the back view shows the patient's left on the viewer's left, the
front view mirrors it.
"""

from __future__ import annotations

import holoviews as hv

from emsim.body import get_site

__all__ = ["REGIONS", "region_at", "diagram"]

# (site, side) -> (x0, y0, x1, y1) rectangle in drawing units.
REGIONS = {
    ("lumbar_erector_spinae", "left"): (3.55, 6.4, 4.45, 8.4),
    ("lumbar_erector_spinae", "right"): (5.55, 6.4, 6.45, 8.4),
    ("lumbar_multifidus", "left"): (4.5, 5.6, 4.95, 7.0),
    ("lumbar_multifidus", "right"): (5.05, 5.6, 5.5, 7.0),
    ("gluteus_medius", "left"): (2.5, 4.9, 3.6, 5.9),
    ("gluteus_medius", "right"): (6.4, 4.9, 7.5, 5.9),
    ("gluteus_maximus", "left"): (3.0, 3.2, 4.9, 4.8),
    ("gluteus_maximus", "right"): (5.1, 3.2, 7.0, 4.8),
    # front view: the patient's right thigh on the viewer's left
    ("hip_flexors", "right"): (14.0, 1.8, 15.4, 3.6),
    ("hip_flexors", "left"): (16.6, 1.8, 18.0, 3.6),
}
_BACK = [(2.6, 10.5), (7.4, 10.5), (7.2, 6.2), (7.7, 4.6), (7.4, 0.5), (5.3, 0.5), (5.0, 2.6), (4.7, 0.5),
         (2.6, 0.5), (2.3, 4.6), (2.8, 6.2)]
_FRONT = [(x + 11.0, y) for x, y in _BACK]
_SPINE = [(5.0, 10.5), (5.0, 5.2)]
_CHANNEL_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def region_at(x: float | None, y: float | None) -> tuple[str, str] | None:
    """The (site, side) whose region contains the point, or ``None`` (a click beside every region)."""
    if x is None or y is None:
        return None
    for key, (x0, y0, x1, y1) in REGIONS.items():
        if x0 <= x <= x1 and y0 <= y <= y1:
            return key
    return None


def _rect(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def diagram(placements: dict[str, tuple[str, str]], active: str | None = None):
    """The outline, every region (hover names it), and each channel's pair on its region.

    Parameters
    ----------
    placements : dict
        Channel id -> (site, side); a ``bilateral`` side marks both sides of the site.
    active : str, optional
        Channel that a click on a region moves (drawn with a thicker outline).
    """
    outline = hv.Path([_BACK, _FRONT, _SPINE]).opts(color="grey", line_width=1.5)
    regions = hv.Polygons([{("x", "y"): _rect(*box), "site": get_site(site).name.split(" (")[0], "side": side}
                           for (site, side), box in REGIONS.items()], vdims=["site", "side"]).opts(
        color="#f2efe8", line_color="#b9b2a4", tools=["hover"])
    pairs, labels = [], []
    for i, (cid, (site, side)) in enumerate(placements.items()):
        for s in (("left", "right") if side == "bilateral" else (side,)):
            box = REGIONS.get((site, s))
            if box is None:
                continue
            x0, y0, x1, y1 = box
            cx, h = (x0 + x1) / 2, (y1 - y0) / 5
            colour = _CHANNEL_COLOURS[i % len(_CHANNEL_COLOURS)]
            width = 3 if cid == active else 1.5
            # the pair: two electrodes along the region's long axis
            pairs += [hv.Polygons([_rect(x0 + 0.1, y0 + h * 0.5, x1 - 0.1, y0 + h * 2.2),
                                   _rect(x0 + 0.1, y1 - h * 2.2, x1 - 0.1, y1 - h * 0.5)]).opts(
                color=colour, fill_alpha=0.55, line_color=colour, line_width=width)]
            labels.append((cx, (y0 + y1) / 2, cid))
    text = hv.Labels(labels, ["x", "y"], "text").opts(text_font_size="9pt", text_color="black") if labels else None
    titles = hv.Labels([(5.0, 11.2, "back"), (16.0, 11.2, "front")], ["x", "y"], "text").opts(text_color="grey")
    parts = [outline, regions, *pairs, titles] + ([text] if text is not None else [])
    return hv.Overlay(parts).opts(
        width=520, height=300, xaxis=None, yaxis=None, xlim=(1.5, 19.5), ylim=(0, 11.8), show_grid=False,
        toolbar=None, title="Click a region to place the selected channel")
