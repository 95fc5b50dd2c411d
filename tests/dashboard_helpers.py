"""Helpers for driving the dashboard: under AppTest (in-process) and in Chromium (Playwright)."""

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from playwright.sync_api import Page, expect
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
HOME = str(REPO / "dashboard" / "Home.py")
SCREENSHOTS = REPO / "artifacts" / "screenshots"


def open_page(page: str | None = None) -> AppTest:
    """A fresh browser session: Home first, as a user arrives, then ``page``."""
    at = AppTest.from_file(HOME, default_timeout=120).run()
    if page:
        at.switch_page(f"pages/{page}").run()
    assert not at.exception, at.exception
    return at


def reloaded(name: str, key: str = "run") -> AppTest:
    """The Train tab reloaded: a new session, with only the address (``?run=name``, ``?sweep=study``) to go on."""
    at = AppTest.from_file(HOME, default_timeout=120)
    at.query_params[key] = name
    at.run()
    at.switch_page("pages/1_Train.py").run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    """Everything the page says in Markdown, captions and alerts, as one string to search."""
    parts = [*at.markdown, *at.caption, *at.info, *at.success, *at.warning, *at.error, *at.subheader]
    return "\n".join(str(p.value) for p in parts)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def tiny_settings(at: AppTest, name: str, epochs: int = 1, images: int = 1000) -> None:
    """Train page settings for a run of seconds: a tiny model on ``images`` training images (0: all of them).

    A run that must still be going while the test acts on it (a queue, a cancel) trains on all
    of them for many epochs; any other needs only to finish.
    """
    at.slider(key="epochs").set_value(epochs)
    at.select_slider(key="train_size").set_value(images)
    for key, value in (("conv1_channels", 4), ("conv2_channels", 8), ("hidden_units", 16), ("batch_size", 512)):
        at.select_slider(key=key).set_value(value)
    at.text_input(key="run_name").input(name)
    at.run()


def run_until(at: AppTest, condition, timeout: float = 180) -> None:
    """Rerun the page (as its live view does every second) until ``condition(at)`` holds."""
    deadline = time.monotonic() + timeout
    while not condition(at):
        assert time.monotonic() < deadline, texts(at)
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def expect_local_icon(page: Page) -> None:
    """The tab's icon comes from the dashboard itself (an emoji icon would be fetched from a CDN, offline: none)."""
    expect(page.locator("link[rel='shortcut icon']")).to_have_attribute("href", re.compile(r"^(/|http://127)"))


def wait_for_rerun(page: Page) -> None:
    """Give the change a moment to reach the server, then wait until the script has finished rerunning."""
    page.wait_for_timeout(500)
    expect(page.locator("[data-testid=stApp]")).to_have_attribute("data-test-script-state", "notRunning")


def choose(page: Page, label: str, option: str) -> None:
    """Pick ``option`` (the option's label or its start) in the select box ``label`` once the page has finished
    drawing, typed as a user may: a rerun in flight redraws the box and can close its list, and the list shows
    only the options that fit below the box."""
    box = page.get_by_role("combobox", name=label)
    expect(box).to_be_visible()
    wait_for_rerun(page)
    box.click()
    box.press_sequentially(option)
    page.get_by_role("option", name=option).click()  # the start of its label will do
    wait_for_rerun(page)


def set_slider(page: Page, label: str, key: str, value: str) -> None:
    """Move a slider to one end with the keyboard, as a user can; a key pressed mid-rerun could be lost."""
    slider = page.get_by_role("slider", name=label)
    slider.focus()
    slider.press(key)
    expect(slider).to_have_attribute("aria-valuetext", value)
    wait_for_rerun(page)


def start_run(page: Page, name: str, kind: Literal["tiny", "long", "as set"] = "tiny") -> None:
    """Start a run on the Train page: ``tiny``, a tiny model for 1 epoch on 1,000 images (seconds); ``long``, the
    preset for 30 epochs, for a test that acts on a run while it is still going; ``as set``, the settings as they
    are, for a run that is cancelled before it starts. Every slider moved is a rerun to wait for."""
    if kind == "long":
        set_slider(page, "Epochs", "End", "30")
    elif kind == "tiny":
        set_slider(page, "Epochs", "Home", "1")
        set_slider(page, "Training images", "Home", "1,000")
        set_slider(page, "Batch size", "End", "512")
        set_slider(page, "Conv 1 channels", "Home", "4")
        set_slider(page, "Conv 2 channels", "Home", "8")
        set_slider(page, "Hidden units", "Home", "16")
    page.get_by_label("Run name (optional)").fill(name)
    page.get_by_label("Run name (optional)").press("Enter")
    wait_for_rerun(page)
    page.get_by_role("button", name="Start training").click()


def drawable_canvas(page: Page) -> dict[str, float]:
    """The Draw page's canvas once a stroke on it counts; its box on the page.

    A new canvas (on the page's first load, after a new pen width) exists before its first data from Python:
    until then it has the default size and no pen, and a stroke drawn on it would be lost. The data sizes it to
    320 px and gives it the pen. Clear keeps the canvas (``test_browser.py``'s Draw story: no stroke lost after Clear).
    """
    canvas = page.locator("canvas.upper-canvas")
    expect(canvas).to_have_attribute("width", "320")
    return canvas.bounding_box()


def draw_a_seven(page: Page) -> tuple[float, float]:
    """A 7 in one mouse stroke on the Draw page's canvas, the bar then the diagonal; returns the canvas's top-left
    corner."""
    box = drawable_canvas(page)
    x, y = box["x"], box["y"]
    page.mouse.move(x + 90, y + 80)
    page.mouse.down()
    for k in range(1, 21):
        page.mouse.move(x + 90 + 7 * k, y + 80)
    for k in range(1, 31):
        page.mouse.move(x + 230 - 3 * k, y + 80 + 6.5 * k)
    page.mouse.up()
    return x, y


def draw_a_four(page: Page) -> None:
    """A 4 in two strokes on the Draw page's canvas: down and across, then the long bar down."""
    box = drawable_canvas(page)
    x, y = box["x"], box["y"]
    page.mouse.move(x + 120, y + 50)
    page.mouse.down()
    for k in range(1, 21):
        page.mouse.move(x + 120 - 1.5 * k, y + 50 + 6.5 * k)
    for k in range(1, 21):
        page.mouse.move(x + 90 + 7 * k, y + 180)
    page.mouse.up()
    page.wait_for_timeout(300)
    page.mouse.move(x + 200, y + 50)
    page.mouse.down()
    for k in range(1, 26):
        page.mouse.move(x + 200, y + 50 + 10 * k)
    page.mouse.up()


def draw_a_one(page: Page) -> tuple[float, float]:
    """A 1 in one mouse stroke down the Draw page's canvas; returns the canvas's top-left corner."""
    box = drawable_canvas(page)
    x, y = box["x"], box["y"]
    page.mouse.move(x + 160, y + 40)
    page.mouse.down()
    for k in range(1, 26):
        page.mouse.move(x + 160, y + 40 + 10 * k)
    page.mouse.up()
    return x, y


def as_a_phone(page: Page) -> Callable[[list[tuple[float, float]]], None]:
    """Turn the page into a 390x844 phone with a touch screen; return a function that swipes a finger through
    points (page coordinates), as a touch the page sees as a phone's."""
    page.set_viewport_size({"width": 390, "height": 844})
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})

    def swipe(points: list[tuple[float, float]]) -> None:
        (x, y), *rest = points
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        for x, y in rest:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    return swipe
