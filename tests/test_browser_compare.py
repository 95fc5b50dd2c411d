"""The sweep panel and the Compare page in Chromium, on a small study made here; screenshots for a human to look at."""

import re

import pytest
from dashboard_helpers import choose, screenshot, wait_for_rerun
from playwright.sync_api import expect

from mnist_core.sweep import run_sweep, summary

pytestmark = pytest.mark.browser

TINY = {"epochs": 1, "train_size": 2000, "val_size": 500, "conv1_channels": 4, "conv2_channels": 8, "hidden_units": 16}


def test_a_sweeps_best_trial_made_active_and_compared_with_the_default_model(server, page, mnist):
    url, folder = server
    best = summary(run_sweep(3, mnist, folder, "browser-sweep", fixed=TINY))["best"]
    best_run = f"browser-sweep-trial-{best['trial']}"

    page.goto(f"{url}/Train")
    choose(page, "Study", "browser-sweep")
    expect(page.get_by_text("Study browser-sweep: 3 trial(s) done, 0 running.")).to_be_visible()
    expect(page.get_by_text(f"Best so far: trial {best['trial']}")).to_be_visible()
    history = page.locator("[class*='st-key-sweep-Optimisation'] .js-plotly-plot")  # the figure shown first
    history.scroll_into_view_if_needed()
    expect(history).to_be_visible()
    screenshot(page, "sweep-panel")
    page.get_by_test_id("stButtonGroup").get_by_text("Parallel coordinates", exact=True).click()
    expect(page.locator("[class*='st-key-sweep-Parallel'] .js-plotly-plot")).to_be_visible()
    expect(history).to_have_count(0)  # one figure at a time
    screenshot(page, "sweep-parallel-coordinates")
    page.get_by_role("button", name="Make best trial active").click()
    expect(page.get_by_role("combobox", name="Active model")).to_have_value(re.compile(f"^{best_run} · "))

    page.get_by_role("link", name="Compare").click()  # the sidebar's page list: same session, same active model
    expect(page.get_by_text("Fixed and broken")).to_be_visible()
    expect(page.get_by_text(f"A · {best_run}")).to_be_visible()
    expect(page.get_by_text("Agreement")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Test image #\d+: a \d$"))).to_be_visible()
    wait_for_rerun(page)
    screenshot(page, "compare")
    broken = page.get_by_test_id("stMetricValue").nth(4).inner_text()  # "Broken by B", after two accuracies,
    page.wait_for_timeout(1000)  # agreement and fixed; the gallery's images settle before the click
    page.get_by_text("broken by B", exact=True).click()
    expect(page.get_by_text(f"{broken} image(s), 24 per page")).to_be_visible()
    second = page.get_by_role("button", name=re.compile(r"^\d → \d . \d$")).nth(1)
    second.click()
    expect(second).to_have_attribute("data-testid", "stBaseButton-primary")  # the one inspected
    wait_for_rerun(page)
    page.wait_for_timeout(1000)  # the enlarged image arrives after the rerun
    screenshot(page, "compare-broken")


def test_a_study_run_on_other_machines_followed_and_its_best_trial_adopted(server, page, mnist, tmp_path_factory):
    """The study and the artifacts in a folder other machines share, inside this server's checkpoints folder: a page
    may point the server only there (or at the operator's MNIST_SWEEP_STORAGE, as test_dashboard_compare does)."""
    url, folder = server
    elsewhere, artifacts = tmp_path_factory.mktemp("gpu-box"), folder / "shared" / "artifacts"
    storage = f"journal:{folder / 'shared' / 'far.journal'}"
    artifacts.mkdir(parents=True)
    small = {**TINY, "train_size": 1000, "val_size": 200}
    best = summary(run_sweep(2, mnist, elsewhere, "far", storage, fixed=small, artifacts=artifacts))["best"]

    page.goto(f"{url}/Train")
    page.get_by_role("textbox", name="Shared storage").fill(storage)
    page.get_by_role("textbox", name="Shared storage").press("Enter")
    choose(page, "Study", "far")
    expect(page.get_by_text("Study far: 2 trial(s) done, 0 running.")).to_be_visible()
    expect(page.get_by_role("button", name="Make best trial active")).to_be_disabled()  # no artifact folder yet
    page.get_by_role("textbox", name="Shared artifact folder").fill(str(artifacts))
    page.get_by_role("textbox", name="Shared artifact folder").press("Enter")
    wait_for_rerun(page)
    page.get_by_text(f"Best so far: trial {best['trial']}").scroll_into_view_if_needed()
    screenshot(page, "sweep-shared-study")
    page.get_by_role("button", name="Make best trial active").click()
    best_run = f"far-trial-{best['trial']}"
    expect(page.get_by_role("combobox", name="Active model")).to_have_value(re.compile(f"^{best_run} · "))
    assert (folder / f"{best_run}.pt").is_file()  # fetched through the artifact folder, not from the other machine
