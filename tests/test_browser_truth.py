"""Two browser sessions on one server: the queue, a cancel from the other session, a reload mid-run, a sweep
reloaded, and a matrix click that brings its images into view and filters the error explorer.

Screenshots of both sessions land in artifacts/screenshots/.
"""

import re

import pytest
from conftest import offline_page
from dashboard_helpers import expect_local_icon, screenshot, start_run, wait_for_rerun
from playwright.sync_api import expect

from mnist_core.runs import read_runs

pytestmark = pytest.mark.browser


def test_two_sessions_share_the_queue_cancel_each_other_and_survive_a_reload(server, page, offline):
    url, folder = server
    other, outside = offline_page(offline)
    try:
        page.goto(f"{url}/Train")
        start_run(page, "b-long", "long")
        expect(page.get_by_text(re.compile(r"b-long · epoch 1/30 · batch \d+/\d+ · ETA about"))).to_be_visible()
        expect(page.get_by_role("button", name="Start training")).to_be_disabled()

        other.goto(f"{url}/Train")
        expect(other.get_by_text(re.compile(r"b-long \(another session's\) · epoch"))).to_be_visible()
        start_run(other, "b-waiting", "as set")
        expect(other.get_by_text("b-waiting is queued behind b-long: number 2 in line")).to_be_visible()
        screenshot(page, "truth-session-1-running")
        screenshot(other, "truth-session-2-queued")

        page.locator(".st-key-cancel-b-waiting button").first.click()  # the first session cancels the second's run
        expect(other.get_by_text("b-waiting was cancelled")).to_be_visible(timeout=15_000)
        expect(other.get_by_role("button", name="Start training")).to_be_enabled()
        screenshot(other, "truth-session-2-cancelled")

        page.reload()
        expect(page.get_by_text("Your run: b-long")).to_be_visible()
        expect(page.get_by_text(re.compile(r"b-long · epoch \d+/30"))).to_be_visible()
        screenshot(page, "truth-session-1-reloaded")

        page.get_by_role("link", name="Draw").click()  # every page says how your run is doing
        expect(page.get_by_text(re.compile(r"Your run b-long: epoch \d+/30"))).to_be_visible()
        screenshot(page, "truth-session-1-draw")
        page.get_by_role("link", name="Train").click()

        page.locator(".st-key-cancel-own button").first.click()
        expect(page.get_by_text("b-long was cancelled")).to_be_visible()
        expect(page.get_by_text(re.compile(r"b-long · epoch"))).to_have_count(0)
        screenshot(page, "truth-session-1-cancelled")

        # The history lists the runs of the shared log newest first, as read_runs does: find b-waiting's row.
        row = [r["name"] for r in read_runs(folder)].index("b-waiting")
        assert row < 9, "the row must be in the table's first screen"
        table = page.locator(".st-key-history [data-testid=stDataFrame]")  # not the sweep panel's trials
        table.scroll_into_view_if_needed()  # mouse clicks land only inside the window
        box = table.bounding_box()
        page.mouse.click(box["x"] + 15, box["y"] + 35 + 35 * row + 17)  # that row's selection box
        expect(
            page.get_by_text("b-waiting was cancelled (while waiting in the queue): it left no model to use.")
        ).to_be_visible()
        screenshot(page, "truth-history-cancelled-row")

        # A sweep is its session's in the queue and the buttons, and still after a reload from the address.
        wait_for_rerun(page)
        study = page.get_by_role("combobox", name="Study")
        study.click()
        study.press_sequentially("bsweep")
        study.press("Enter")
        wait_for_rerun(page)
        page.get_by_role("spinbutton", name="Trials in the study").fill("2")
        page.get_by_role("spinbutton", name="Trials in the study").press("Enter")
        expect(page.get_by_text(re.compile(r"for 2 more trial\(s\), each about"))).to_be_visible()
        page.get_by_role("button", name="Start sweep").click()
        expect(page.get_by_text(re.compile(r"^sweep bsweep \(yours\) · "))).to_be_visible(timeout=30_000)
        expect(page.get_by_role("button", name="Start training")).to_be_disabled()
        page.reload()
        expect(page.get_by_text("Study bsweep: 0 trial(s) done, 1 running.")).to_be_visible(timeout=60_000)
        expect(page.get_by_role("spinbutton", name="Trials in the study")).to_have_value("2")  # the study's own
        expect(page.get_by_role("button", name="Start training")).to_be_disabled()
        screenshot(page, "truth-sweep-reloaded")
        page.get_by_role("button", name="Stop sweep").click()
        expect(page.get_by_text("sweep bsweep was stopped")).to_be_visible(timeout=30_000)
        expect(page.get_by_role("button", name="Start training")).to_be_enabled()

    finally:
        other.close()
    statuses = {r["name"]: r["status"] for r in read_runs(folder)}  # the server (and its log) is shared by tests
    assert (statuses["b-long"], statuses["b-waiting"]) == ("cancelled", "cancelled")
    assert not outside, f"requests left the machine: {outside}"


def test_a_matrix_click_filters_the_explorer_brings_it_into_view_and_an_image_click_inspects_it(
    server, page, default_evaluation
):
    url, _ = server  # its active model is the committed one
    result = default_evaluation
    off_diagonal = result.confusion.clone().fill_diagonal_(0)
    true, predicted = divmod(int(off_diagonal.argmax()), 10)
    shown = result.select(true, predicted).tolist()

    page.set_viewport_size({"width": 1400, "height": 800})
    page.goto(f"{url}/Evaluate")
    expect_local_icon(page)
    explorer = page.locator(".st-key-explorer")
    cell = page.locator(".js-plotly-plot .scatterlayer .point").nth(10 * true + predicted)
    cell.scroll_into_view_if_needed()
    images = explorer.locator(".js-plotly-plot").first
    expect(images).not_to_be_in_viewport(ratio=0.5)  # below the fold
    box = cell.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_text(f"{len(shown)} image(s), 24 per page.")).to_be_visible()
    expect(images).to_be_in_viewport(ratio=0.9)
    expect(images.locator(".scatterlayer .trace").first.locator(".point")).to_have_count(min(len(shown), 24))
    screenshot(page, "truth-evaluate-cell-clicked")

    tile = explorer.locator(".js-plotly-plot .scatterlayer .trace").first.locator(".point").nth(1)
    tile.scroll_into_view_if_needed()
    box = tile.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_role("heading", name=f"Test image #{shown[1]}")).to_be_visible()
    screenshot(page, "truth-evaluate-image-clicked")

    true, predicted = divmod(int((result.confusion == 0).flatten().nonzero()[0]), 10)  # an empty cell: said at once
    empty = page.locator(".js-plotly-plot .scatterlayer .point").nth(10 * true + predicted)
    empty.scroll_into_view_if_needed()
    box = empty.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_text(f"Empty cell: the model never read a true {true} as a {predicted}.")).to_be_in_viewport()
