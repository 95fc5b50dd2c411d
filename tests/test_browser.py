"""The dashboard in a real browser: Playwright drives Debian's Chromium against `streamlit run`.

It does what a new user does: draws a digit with the mouse, clicks a cell of the
confusion matrix, and trains a tiny model. Screenshots land in artifacts/screenshots/.
Without Playwright or Chromium the tests skip, unless MNIST_REQUIRE_BROWSER=1 (as in CI).
"""

import re

import pytest
from dashboard_helpers import draw_a_seven, screenshot, start_run, wait_for_rerun
from playwright.sync_api import expect

from mnist_core.checkpoints import load_checkpoint
from mnist_core.evaluate import evaluate
from mnist_core.runs import read_runs

pytestmark = pytest.mark.browser


def test_drawing_a_digit_shows_its_prediction(server, page):
    url, _ = server
    page.goto(f"{url}/Draw")
    expect(page.get_by_text("No digit found")).to_be_visible()
    draw_a_seven(page)
    expect(page.locator("[data-testid='predicted-digit']")).to_have_text("7")
    expect(page.get_by_text("What the model sees")).to_be_visible()
    expect(page.locator(".js-plotly-plot")).to_be_visible()  # the ten probabilities
    screenshot(page, "draw")

    page.get_by_role("button", name="Clear").click()
    expect(page.get_by_text("No digit found")).to_be_visible()


def test_clicking_a_confusion_cell_filters_the_error_explorer(server, page, mnist):
    url, folder = server
    confusion = evaluate(load_checkpoint(folder / "default.pt").model, mnist.test_images, mnist.test_labels).confusion
    off_diagonal = confusion.clone().fill_diagonal_(0)
    true, predicted = divmod(int(off_diagonal.argmax()), 10)
    count = int(confusion[true, predicted])

    page.goto(f"{url}/Evaluate")
    cell = page.locator(".js-plotly-plot .scatterlayer .point").nth(10 * true + predicted)
    cell.scroll_into_view_if_needed()
    box = cell.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    expect(page.get_by_text(f"{count} image(s), 24 per page.")).to_be_visible()
    grid = page.locator(".st-key-explorer .js-plotly-plot .scatterlayer .trace").first
    expect(grid.locator(".point")).to_have_count(min(count, 24))
    screenshot(page, "evaluate")


def test_a_tiny_training_run_joins_the_history_and_becomes_the_active_model(server, page):
    url, folder = server
    page.goto(f"{url}/Train")
    expect(page.get_by_text("Run history")).to_be_visible()
    start_run(page, "browser-run")  # its progress line is followed in test_browser_truth.py, on a longer run
    expect(page.get_by_text("browser-run saved: test accuracy")).to_be_visible(timeout=300_000)  # load 15: 2+ min
    page.get_by_role("button", name="Make it the active model").click()
    expect(page.get_by_role("combobox", name="Active model")).to_have_value(re.compile("^browser-run · "))
    wait_for_rerun(page)
    screenshot(page, "train-finished")
    run = {r["name"]: r for r in read_runs(folder)}["browser-run"]  # the server's log is shared by browser tests
    assert (run["status"], run["train_config"]["epochs"], run["train_config"]["train_size"]) == ("finished", 1, 1000)
    assert [run["model_config"][k] for k in ("conv1_channels", "conv2_channels", "hidden_units")] == [4, 8, 16]
