"""Dashboard speed: cold start to first render, each page's render time, and training from the page.

Two views of the same thing. Streamlit's ``AppTest`` runs the page scripts in this
process, so it times the Python side alone; ``streamlit run`` with headless Chromium
times what a user waits for: the server answering its health check, then each page
until its last section is on screen. Both start cold: this script imports neither
torch nor mnist_core itself, so their import is part of the first render.

Last, the browser starts the quick preset on the Train page and waits, the page open,
until the run is saved: the server trains while the page's live view reruns every
second, so this is what the dashboard's own work costs a run (compare
`bench/train_speed.py`). Streamlit options set in the environment reach the server,
so a setting's effect is one run away, e.g. STREAMLIT_RUNNER_POST_SCRIPT_GC=true.

    python bench/app.py
    python bench/app.py --no-browser      # AppTest only
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / "dashboard" / "Home.py"
# Each page's URL path, its script for AppTest, and the text that only appears once the page has rendered to the end.
PAGES = (
    ("", None, "Active model"),
    ("Train", "pages/1_Train.py", "Run history"),
    ("Evaluate", "pages/2_Evaluate.py", "Error explorer"),
    ("Draw", "pages/3_Draw.py", "No digit found"),
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def apptest_timings() -> None:
    """Home cold, then every page once after switching to it, then Home again warm."""
    from streamlit.testing.v1 import AppTest

    started = time.perf_counter()
    app = AppTest.from_file(str(HOME), default_timeout=120).run()
    print(f"AppTest: Home cold (imports torch and mnist_core, loads the model): {time.perf_counter() - started:.2f} s")
    for name, script, _ in PAGES[1:] + PAGES[:1]:
        started = time.perf_counter()
        if script is None:
            app.switch_page("Home.py").run()
        else:
            app.switch_page(script).run()
        if app.exception:
            raise SystemExit(f"{name or 'Home'} raised: {app.exception}")
        print(f"AppTest: {name or 'Home'}: {time.perf_counter() - started:.2f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, checkpoints: Path) -> subprocess.Popen:
    """``streamlit run`` of the dashboard on ``port``, its runs in ``checkpoints``, once it answers its health check."""
    started = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(HOME),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
        ],
        cwd=REPO,
        env={**os.environ, "MNIST_CHECKPOINTS": str(checkpoints)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            return server
        except OSError:
            if server.poll() is not None or time.perf_counter() - started > 60:
                stop_server(server)
                raise SystemExit("streamlit did not start within 60 s") from None
            time.sleep(0.05)


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def browser_timings(chromium: str) -> None:
    """``streamlit run`` to its first health answer and to Home on screen, then each page, in headless Chromium;
    then a quick-preset run from the Train page, saved into a temporary checkpoint folder.

    Chromium is launched before the server starts, so its own start-up is not counted.
    """
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    checkpoints = Path(tempfile.mkdtemp(prefix="bench-app-"))
    shutil.copy(REPO / "mnist_core" / "default.pt", checkpoints)
    with sync_playwright() as playwright:
        launched = time.perf_counter()
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
        page.set_default_timeout(120_000)
        print(f"browser: Chromium launched in {time.perf_counter() - launched:.2f} s (not counted below)")

        started = time.perf_counter()
        server = start_server(port, checkpoints)
        try:
            print(f"server: streamlit run to first health answer: {time.perf_counter() - started:.2f} s")
            for number, (path, _, marker) in enumerate(PAGES):
                page_started = time.perf_counter()
                page.goto(f"{url}/{path}")
                page.get_by_text(marker).first.wait_for(state="visible")
                print(f"browser: {path or 'Home'} rendered in {time.perf_counter() - page_started:.2f} s")
                if number == 0:
                    print(f"browser: cold start, streamlit run to Home rendered: {time.perf_counter() - started:.2f} s")
            page.goto(f"{url}/Train")
            page.get_by_text("Run history").first.wait_for(state="visible")
            page.get_by_role("button", name="Start training").click()
            run_started = time.perf_counter()
            page.get_by_text("saved: test accuracy").wait_for(state="visible", timeout=600_000)
            trained = time.perf_counter() - run_started
            print(f"browser: quick preset trained from the Train page, page open: {trained:.1f} s")
            browser.close()
        finally:
            stop_server(server)
            shutil.rmtree(checkpoints, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-browser", action="store_true", help="skip the streamlit run + Chromium timings")
    parser.add_argument(
        "--chromium",
        default=shutil.which("chromium") or "/usr/bin/chromium",
        help="Chromium executable for Playwright (default: chromium on PATH)",
    )
    args = parser.parse_args()

    print(f"load average at start {os.getloadavg()[0]:.2f}")
    if not args.no_browser:  # first, while nothing is imported or cached anywhere
        browser_timings(args.chromium)
    apptest_timings()
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
