"""The dashboard in a real browser: Playwright drives Debian's Chromium against `streamlit run`.

It does what a new user does: draws a digit with the mouse, clicks a cell of the
confusion matrix, and trains a tiny model. Screenshots land in artifacts/screenshots/.
Without Playwright or Chromium the tests skip, unless MNIST_REQUIRE_BROWSER=1 (as in CI).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mnist_core.checkpoints import load_checkpoint
from mnist_core.evaluate import evaluate
from mnist_core.runs import read_runs

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:
    sync_playwright = None


def require_browser() -> None:
    missing = "the playwright package" if sync_playwright is None else None
    if missing is None and not Path(CHROMIUM).is_file():
        missing = "Chromium"
    if missing and os.environ.get("MNIST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{missing} is not installed, and MNIST_REQUIRE_BROWSER=1")
    if missing:
        pytest.skip(f"{missing} is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run dashboard/Home.py` on a free port, its checkpoints in a temporary folder."""
    require_browser()
    folder = tmp_path_factory.mktemp("checkpoints")
    shutil.copy(REPO / "checkpoints" / "default.pt", folder / "default.pt")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/Home.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=REPO, env={**os.environ, "MNIST_CHECKPOINTS": str(folder)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "streamlit did not start"
            time.sleep(0.3)
    yield url, folder
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser(server):
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Page:
    """A new browser session (its own Streamlit session) with a window tall enough for whole pages."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def test_drawing_a_digit_shows_its_prediction(server, page):
    url, _ = server
    page.goto(f"{url}/Draw")
    expect(page.get_by_text("No digit found")).to_be_visible()
    canvas = page.locator("canvas.upper-canvas")
    box = canvas.bounding_box()
    x, y = box["x"], box["y"]
    page.mouse.move(x + 90, y + 80)  # a 7: the bar, then the diagonal, in one stroke
    page.mouse.down()
    for k in range(1, 21):
        page.mouse.move(x + 90 + 7 * k, y + 80)
    for k in range(1, 31):
        page.mouse.move(x + 230 - 3 * k, y + 80 + 6.5 * k)
    page.mouse.up()
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
    expect(page.get_by_role("button", name=re.compile(f"^{true} → {predicted} · "))).to_have_count(min(count, 24))
    screenshot(page, "evaluate")


def wait_for_rerun(page: Page) -> None:
    """Give the change a moment to reach the server, then wait until the script has finished rerunning."""
    page.wait_for_timeout(500)
    expect(page.locator("[data-testid=stApp]")).to_have_attribute("data-test-script-state", "notRunning")


def set_slider(page: Page, label: str, key: str, value: str) -> None:
    """Move a slider to one end with the keyboard, as a user can; a key pressed mid-rerun could be lost."""
    slider = page.get_by_role("slider", name=label)
    slider.focus()
    slider.press(key)
    expect(slider).to_have_attribute("aria-valuetext", value)
    wait_for_rerun(page)


def test_a_tiny_training_run_shows_progress_and_joins_the_history(server, page):
    url, folder = server
    page.goto(f"{url}/Train")
    expect(page.get_by_text("Run history")).to_be_visible()
    set_slider(page, "Epochs", "Home", "1")
    set_slider(page, "Batch size", "End", "512")
    set_slider(page, "Conv 1 channels", "Home", "4")
    set_slider(page, "Conv 2 channels", "Home", "8")
    set_slider(page, "Hidden units", "Home", "16")
    page.get_by_label("Run name (optional)").fill("browser-run")
    page.get_by_label("Run name (optional)").press("Enter")
    wait_for_rerun(page)
    page.get_by_role("button", name="Start training").click()

    expect(page.get_by_text(re.compile(r"epoch 1/1 · batch \d+/\d+ · ETA"))).to_be_visible()
    screenshot(page, "train-progress")
    expect(page.get_by_text("browser-run saved: test accuracy")).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Make it the active model").click()
    expect(page.get_by_role("combobox", name="Active model")).to_have_value(re.compile("^browser-run · "))
    wait_for_rerun(page)
    screenshot(page, "train-finished")
    [run] = read_runs(folder)
    assert (run["name"], run["status"], run["train_config"]["epochs"]) == ("browser-run", "finished", 1)
    assert [run["model_config"][k] for k in ("conv1_channels", "conv2_channels", "hidden_units")] == [4, 8, 16]
