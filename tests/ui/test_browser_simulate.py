"""The Simulate tab in a real browser: play the designed program on the simulated stimulator in
real time, press the emergency stop, and find the stop in the state and in the audit log."""

import re

import pytest

pytestmark = [pytest.mark.ui, pytest.mark.slow]


def test_play_a_simulated_session_and_emergency_stop(page_with_patient, shot):
    from playwright.sync_api import expect

    page = page_with_patient("Simulate")
    page.locator(".emsim-speed select").select_option("real time (1×)")
    page.get_by_role("button", name="Start").click()
    state = page.locator(".emsim-sim-state")
    # a few seconds of the program delivered (an explicit state, not a sleep); session 1 runs 45 s
    expect(state).to_contain_text(re.compile(r"State: running\. Program ([3-9]|[1-3]\d)\.\d of 45 s"),
                                  timeout=90_000)
    estop = page.get_by_role("button", name="EMERGENCY STOP")
    expect(estop).to_be_enabled()
    estop.click()
    # stopped by the button, before the program could end
    expect(state).to_contain_text(
        re.compile(r"State: stopped — stop cause: emergency stop button in the workbench\. "
                   r"Program (\d|[1-3]\d|4[0-4])\.\d of 45 s"), timeout=30_000)
    audit = page.locator(".emsim-audit")
    expect(audit).to_contain_text("EMERGENCY STOP: emergency stop button in the workbench", timeout=30_000)
    expect(audit).to_contain_text("validator  passed")
    expect(audit).to_contain_text("running -> stopped")
    expect(audit).not_to_contain_text("program completed")
    expect(page.get_by_role("button", name="Start")).to_be_enabled(timeout=30_000)
    shot(page, "simulate")
