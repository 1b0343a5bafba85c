"""The Optimise tab in a real browser: a short search (16 evaluations of a 60 s preview), then a
Pareto member picked, its program and traces shown, and chosen for the Simulate tab."""

import pytest

pytestmark = [pytest.mark.ui, pytest.mark.slow]


def test_short_optimisation_and_pick_a_pareto_member(page_with_patient, shot):
    from playwright.sync_api import expect

    page = page_with_patient("Optimise")
    budget = page.locator(".emsim-budget input")
    budget.fill("16")
    budget.press("Enter")
    page.get_by_role("button", name="Run optimisation").click()
    status = page.locator(".emsim-optimise-status")
    # generous: the search shares two cores with whatever else runs
    expect(status).to_contain_text("Pareto-optimal programs from 16 evaluations", timeout=240_000)

    pick = page.locator(".emsim-pick select")
    labels = pick.locator("option").all_inner_texts()
    assert len(labels) >= 1 and labels[0].startswith("#1 ")
    chosen = labels[-1]
    pick.select_option(label=chosen)
    member = page.locator(".emsim-member").first
    expect(member).to_contain_text(chosen, timeout=60_000)
    expect(member).to_contain_text("ES-L")
    expect(page.get_by_text("Computing the traces…")).to_have_count(0, timeout=120_000)

    page.get_by_role("button", name="Use this program").click()
    expect(status).to_contain_text(f"Chosen program: {chosen}", timeout=30_000)
    shot(page, "optimise")
