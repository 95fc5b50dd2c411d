"""Explanations in a real browser: the Draw page's Why panel, the drawing on the Map, and a replayed run.

One browser session goes from page to page through the sidebar, as a user does, so the
drawing made on the Draw page is the one the Map shows. Screenshots land in
artifacts/screenshots/.
"""

import re

import pytest
from dashboard_helpers import draw_a_four, screenshot, wait_for_rerun
from playwright.sync_api import Page, expect

from mnist_core.checkpoints import save_checkpoint
from mnist_core.data import MNIST
from mnist_core.model import ModelConfig
from mnist_core.train import TrainConfig, train
from mnist_core.watch import watch_panel

pytestmark = pytest.mark.browser


def go_to(page: Page, label: str) -> None:
    """Follow the sidebar's link, which keeps this browser session (a new URL would start another)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=label).click()


def test_a_student_asks_why_follows_a_4_through_the_network_and_finds_it_on_the_map(server, page):
    """One drawing, every explanation of it, as one student goes: the Why panel (why 4, why not 1, why 4 and
    not 9, the conv layers), the Network page, then the Map, where the drawing is a point."""
    url, _ = server
    page.goto(f"{url}/Draw")
    draw_a_four(page)
    expect(page.locator("[data-testid='predicted-digit']")).to_have_text("4")
    expect(page.get_by_text("Why 4", exact=True)).to_be_visible()
    expect(page.get_by_text("Integrated gradients for 4")).to_be_visible()
    why = page.locator("[data-testid='stImage']").filter(has_text="Integrated gradients for 4").locator("img")
    before = why.screenshot()
    method, target, against = (page.get_by_test_id("stButtonGroup").nth(i) for i in range(3))
    against.get_by_text("9", exact=True).click()  # why 4 and not 9?
    expect(page.get_by_text("Why 4 and not 9?")).to_be_visible()
    why_not = page.locator("[data-testid='stImage']").filter(has_text="Integrated gradients: 4 and not 9")
    expect(why_not).to_be_visible()
    assert why_not.locator("img").screenshot() != before  # another map, not the same one again
    screenshot(page, "draw-why-not-9")
    against.get_by_text("9", exact=True).click()  # picked again: the contrast is put away
    target.get_by_text("1", exact=True).click()  # why not 1?
    expect(page.get_by_text("Why not 1? (it said 4)")).to_be_visible()
    method.get_by_text("Grad-CAM", exact=True).click()
    expect(page.get_by_text("Grad-CAM for 1")).to_be_visible()
    page.get_by_text("Inside the network").click()
    expect(page.get_by_text("Conv layer 2: 64 maps")).to_be_visible()
    screenshot(page, "draw-why")

    go_to(page, "Network")
    expect(page.get_by_text("Follow your drawing through the network")).to_be_visible()
    expect(page.get_by_text("32 × 28 × 28 · 864 parameters")).to_be_visible()
    expect(page.get_by_text("until then, a 4 from the test set")).to_have_count(0)  # the drawing, not a stand-in
    page.get_by_test_id("stRadio").get_by_text("conv 2", exact=True).click()  # the conv layer to open
    wait_for_rerun(page)
    channel = page.get_by_role("spinbutton", name="Channel")
    expect(channel).to_have_attribute("max", "63")
    channel.fill("5")
    channel.press("Enter")
    wait_for_rerun(page)
    expect(page.get_by_text("conv 2, channel 5")).to_be_visible()
    sum_line = page.get_by_text(re.compile(r"^At row \d+, column \d+: the products add up to"))
    start = sum_line.inner_text()  # where the filter lights the channel most
    slider = page.get_by_role("slider", name="Position of the filter")
    slider.focus()
    slider.press("ArrowLeft")  # the filter one step back along the row
    expect(sum_line).not_to_have_text(start)
    page.get_by_text("Open a channel").scroll_into_view_if_needed()
    screenshot(page, "network-channel")

    go_to(page, "Map")
    # The first map of a model reads 10,000 images through it, while UMAP starts beside it: allow for that.
    expect(page.get_by_text("PCA of the penultimate layer")).to_be_visible(timeout=240_000)
    expect(page.locator(".legend").get_by_text("your drawing")).to_be_visible()
    screenshot(page, "map-drawing")

    area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()  # lasso the middle of the map
    x, y, w, h = area["x"], area["y"], area["width"], area["height"]
    page.mouse.move(x + 0.3 * w, y + 0.3 * h)
    page.mouse.down()
    for fx, fy in ((0.7, 0.3), (0.7, 0.7), (0.3, 0.7), (0.3, 0.3)):
        page.mouse.move(x + fx * w, y + fy * h, steps=8)
    page.mouse.up()
    expect(page.get_by_text("image(s) selected")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^#\d+: \d → \d$")).first).to_be_visible()


def test_a_finished_run_is_replayed_epoch_by_epoch(server, page, mnist):
    url, folder = server
    small = MNIST(mnist.train_images[:6000], mnist.train_labels[:6000], mnist.test_images, mnist.test_labels, "x")
    panel = watch_panel(mnist, drawing=mnist.test_images[0])
    config = TrainConfig(epochs=3, batch_size=100, val_size=500, lr=3e-3)
    result = train(ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16), config, small, watch=panel.images)
    metrics = {"test_accuracy": 0.9}
    save_checkpoint(
        folder / "replayed.pt", result.model, config, metrics, result.history, "x", watch=panel.to_payload()
    )

    page.goto(f"{url}/Train")
    expect(page.get_by_text("Watch it learn: replay a run")).to_be_visible()
    slider = page.get_by_role("slider", name="After epoch")
    expect(slider).to_have_attribute("aria-valuetext", "3")
    slider.focus()
    slider.press("Home")
    expect(slider).to_have_attribute("aria-valuetext", "1")
    wait_for_rerun(page)
    expect(page.get_by_text("Probability of the right digit, epoch by epoch")).to_be_visible()
    page.get_by_text("Watch it learn: replay a run").scroll_into_view_if_needed()
    screenshot(page, "train-replay")
