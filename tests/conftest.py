"""Shared fixtures: the real MNIST, a temporary checkpoint folder, and the dashboard in Chromium.

The browser fixtures start one `streamlit run dashboard/Home.py` per test session (per
pytest-xdist worker), its checkpoints in a temporary folder, and give each test a new
browser tab (its own Streamlit session) that cannot reach beyond this machine. Without
Playwright or Chromium those tests skip, unless MNIST_REQUIRE_BROWSER=1 (as in CI).
"""

from __future__ import annotations

import os

# One torch thread per process, here and in every process the tests start (the dashboard's server, CLI
# workers, the notebook's kernel). On a loaded 2-core machine two threads that wait for each other at
# every layer ran one epoch of a small model 8 to 16 times slower than one thread did.
os.environ["OMP_NUM_THREADS"] = "1"

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import postgres
import pytest
import torch

from mnist_core.checkpoints import load_checkpoint
from mnist_core.data import MNIST, load_mnist
from mnist_core.evaluate import Evaluation, evaluate
from mnist_core.places import shipped_model

torch.set_num_threads(1)  # in case a plugin imported torch before the variable was set

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = shipped_model()
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--process-per-site",  # the dashboard's tabs share a renderer: see ``offline``
]
# A cold page on a loaded 2-core machine takes well over Playwright's default 5 s: wait for the app.
BROWSER_TIMEOUT_MS = 90_000
LOCAL = {"127.0.0.1", "localhost"}
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port, where nothing listens: every connection is refused

try:
    from playwright.sync_api import BrowserContext, Page, expect, sync_playwright
except ImportError:
    sync_playwright = None


@pytest.fixture(scope="session")
def mnist() -> MNIST:
    return load_mnist()


@pytest.fixture(scope="session")
def default_evaluation(mnist) -> Evaluation:
    """The committed model on the 10,000 test images, measured once per test process: many tests compare a page
    or a command with it, and none changes it."""
    return evaluate(load_checkpoint(DEFAULT_MODEL).model, mnist.test_images, mnist.test_labels)


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    shutil.copy(DEFAULT_MODEL, tmp_path / "default.pt")
    monkeypatch.setenv("MNIST_CHECKPOINTS", str(tmp_path))
    return tmp_path


def require_browser() -> None:
    missing = "the playwright package" if sync_playwright is None else None
    if missing is None and not Path(CHROMIUM).is_file():
        missing = "Chromium"
    if missing and os.environ.get("MNIST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{missing} is not installed, and MNIST_REQUIRE_BROWSER=1")
    if missing:
        pytest.skip(f"{missing} is not installed")


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server (tests/postgres.py), its URL; skipped without PostgreSQL, unless
    MNIST_REQUIRE_POSTGRES=1 (as in CI)."""
    bin_dir = postgres.binaries()
    missing = "PostgreSQL (initdb, pg_ctl)" if bin_dir is None else None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing = missing or "the psycopg driver (pip install -e '.[postgres]')"
    if missing and os.environ.get("MNIST_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{missing} is not installed, and MNIST_REQUIRE_POSTGRES=1")
    if missing or bin_dir is None:
        pytest.skip(f"{missing} is not installed (Debian: apt install postgresql)")
    with postgres.throwaway_server(bin_dir) as url:
        yield url


@pytest.fixture(params=["journal", "postgresql"])
def sweep_storage(request, tmp_path) -> str:
    """Where a sweep test's study lives: Optuna's journal file, then a fresh database on the PostgreSQL server."""
    if request.param == "journal":
        return f"journal:{tmp_path / 'sweeps.journal'}"
    return postgres.new_database(request.getfixturevalue("postgres_server"), f"t{abs(hash(request.node.nodeid))}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """`streamlit run dashboard/Home.py` on a free port, its checkpoints and sample sets in temporary folders."""
    require_browser()
    folder = tmp_path_factory.mktemp("checkpoints")
    shutil.copy(DEFAULT_MODEL, folder / "default.pt")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/Home.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
        ],
        cwd=REPO,
        env={**os.environ, "MNIST_CHECKPOINTS": str(folder), "MNIST_SAMPLES": str(folder.parent / "samples")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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


@pytest.fixture(scope="session")
def browser(server):
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def offline(browser, server) -> BrowserContext:
    """The browser profile every test's pages open in: the desktop window the issues are checked in (1400x1000: what
    a laptop shows without scrolling), on a machine without a network, as on a laptop offline (every request that
    would leave the machine goes to a proxy that is not there), asking for reduced motion as some users' systems do
    (5% less CPU in two browser test files, bench/RESULTS.md).

    One profile, not one per test: with ``--process-per-site`` the dashboard's tabs share one renderer, kept alive
    by a tab on the server's health check, so a new tab does not compile Streamlit's scripts again (about 2 s of
    CPU less per tab, bench/RESULTS.md). Each tab is still its own Streamlit session."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000},
        reduced_motion="reduce",
        proxy={"server": DEAD_PROXY, "bypass": ",".join(LOCAL)},
    )
    context.new_page().goto(f"{server[0]}/_stcore/health")
    yield context
    context.close()


def offline_page(context: BrowserContext) -> tuple[Page, list[str]]:
    """A new tab in the ``offline`` profile: its own Streamlit session, and the list of the hosts outside this
    machine it tried to reach. Requests are watched, not intercepted: interception costs a round trip to Python
    per request and turns off the browser's cache."""
    outside: list[str] = []

    def watch(request) -> None:
        host = urlparse(request.url).hostname or ""
        if host not in LOCAL and not request.url.startswith("data:"):
            outside.append(host)

    page = context.new_page()
    page.on("request", watch)
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    return page, outside


@pytest.fixture
def page(offline) -> Page:
    """An offline browser session (``offline_page``): every browser test checks that the lab needs no network."""
    page, outside = offline_page(offline)
    expect.set_options(timeout=BROWSER_TIMEOUT_MS)
    yield page
    page.close()
    assert not outside, f"requests left the machine: {outside}"
