"""A real mouse click on the body diagram (Debian's chromium via Playwright) moves the selected channel.

The click goes to the screen position of a region's centre: BokehJS maps the region's drawing
coordinates to canvas pixels (the diagram's own x and y scales), the canvas's place on the
page turns them into page pixels, and Playwright's mouse clicks there, as a user would.
"""

import pytest

from apps.body_diagram import REGIONS

pytestmark = [pytest.mark.ui, pytest.mark.slow]

_TITLE = "Click a region to place the selected channel"

# Page pixel position of drawing coordinates (x, y) in the diagram (found by its title).
_TO_SCREEN_JS = """([title, x, y]) => {
  const doc = window.Bokeh.documents[0];
  const plot = [...doc.all_models].find((m) => m.title != null && m.title.text === title);
  if (!plot) return null;
  const view = window.Bokeh.index.find_one(plot);
  if (!view) return null;
  view.canvas_view.el.scrollIntoView({block: "center"});  // the click must land inside the viewport
  const box = view.canvas_view.el.getBoundingClientRect();
  return [box.left + view.frame.x_scale.compute(x), box.top + view.frame.y_scale.compute(y)];
}"""


def _centre(site, side):
    x0, y0, x1, y1 = REGIONS[(site, side)]
    return (x0 + x1) / 2, (y0 + y1) / 2


@pytest.mark.parametrize("channel, site, side", [("ES-L", "gluteus_medius", "right"),
                                                 ("ES-R", "hip_flexors", "left")])
def test_mouse_click_on_a_region_moves_the_selected_channel(new_page, channel, site, side):
    from playwright.sync_api import expect

    page = new_page()
    expect(page.locator(f".emsim-site-{channel} select")).to_have_value("lumbar_erector_spinae", timeout=60_000)
    page.get_by_role("button", name=channel, exact=True).click()
    x, y = _centre(site, side)
    page.wait_for_function(f"() => ({_TO_SCREEN_JS})({[_TITLE, x, y]!r}) !== null", timeout=30_000)
    px, py = page.evaluate(_TO_SCREEN_JS, [_TITLE, x, y])
    page.mouse.click(px, py)
    expect(page.locator(f".emsim-site-{channel} select")).to_have_value(site, timeout=30_000)
    expect(page.locator(f".emsim-side-{channel} select")).to_have_value(side)
    other = "ES-R" if channel == "ES-L" else "ES-L"
    expect(page.locator(f".emsim-site-{other} select")).to_have_value("lumbar_erector_spinae")


def test_mouse_click_beside_every_region_moves_nothing(new_page):
    from playwright.sync_api import expect

    page = new_page()
    expect(page.locator(".emsim-site-ES-L select")).to_have_value("lumbar_erector_spinae", timeout=60_000)
    page.wait_for_function(f"() => ({_TO_SCREEN_JS})({[_TITLE, 10.0, 6.0]!r}) !== null", timeout=30_000)
    px, py = page.evaluate(_TO_SCREEN_JS, [_TITLE, 10.0, 6.0])  # between the back and the front view
    page.mouse.click(px, py)  # ES-L is selected
    # a later click that does land (ES-R onto a region) shows the first click has been handled
    page.get_by_role("button", name="ES-R", exact=True).click()
    px, py = page.evaluate(_TO_SCREEN_JS, [_TITLE, *_centre("gluteus_maximus", "left")])
    page.mouse.click(px, py)
    expect(page.locator(".emsim-site-ES-R select")).to_have_value("gluteus_maximus", timeout=30_000)
    expect(page.locator(".emsim-site-ES-L select")).to_have_value("lumbar_erector_spinae")
    expect(page.locator(".emsim-side-ES-L select")).to_have_value("left")
