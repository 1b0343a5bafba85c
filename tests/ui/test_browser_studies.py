"""The Studies tab in a real browser lists a finished ``--quick`` study and shows its figures."""

import pytest

pytestmark = [pytest.mark.ui, pytest.mark.slow]


def test_studies_tab_lists_a_study(new_page, shot, quick_study_dir):
    from playwright.sync_api import expect

    page = new_page()
    page.get_by_text("Studies", exact=True).click()
    folder = page.locator(".emsim-study-folder input")
    folder.fill(str(quick_study_dir))
    folder.press("Enter")
    expect(page.locator(".emsim-studies")).to_contain_text(f"1 study in {quick_study_dir}", timeout=60_000)
    detail = page.locator(".emsim-study-detail")
    expect(detail).to_contain_text("Strength", timeout=30_000)
    expect(detail).to_contain_text("strength_duration")
    expect(page.locator("img[src^='data:image/png']").first).to_be_visible(timeout=30_000)
    shot(page, "studies")
