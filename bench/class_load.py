"""A class on one laptop: N Chromium sessions draw on the Draw page while one session trains a Quick run.

What a teacher's class would do to one server on a 2-core machine. Every session is its
own browser context (its own Streamlit session) in one headless Chromium. The first
session opens the Draw page of a cold server (its time is the cold first page); the
others join, each picking one of ``--models`` models in the sidebar (copies of the
default model that differ in their bytes, so the server loads and measures each). One
more session starts the quick preset on the Train page (``--no-train``: none does);
meanwhile each drawing session, round after round, clicks Clear and at once draws a 1
or a 7 (in turn) and waits for the page to read it: that wait is the draw-to-prediction
time. A round whose digit is not read within the timeout counts as a stroke lost; an
exception on the page as an error. Chromium's own CPU time is measured, so its share of
the machine is said beside the server's (the server trains in a child process, niced,
on the same cores), over the whole window (sessions joining included) and per stroke
while the sessions draw (Chromium by process, the Train page's live view included; the
server with the run). Memory is the server's and its children's proportional set size
(shared pages counted once), at its peak.

``strokes``: one session, each round Clear and then 7 or 8 ones drawn at once, without
waiting; the page must read every one of them (a number of 7 or 8 ones). 27 rounds are
203 strokes after a Clear.

    python bench/class_load.py                        # 10 sessions on 5 models, until the Quick run is saved
    python bench/class_load.py --pace 5               # each session a digit every 5 s or so, as a student
    python bench/class_load.py --sessions 3 --models 2 --seconds 60
    python bench/class_load.py --sessions 1 --no-train --seconds 60   # one session alone
    python bench/class_load.py strokes --rounds 27
    python bench/class_load.py cost --strokes 20       # CPU seconds per stroke: Chromium's processes, the server

``cost``: one session, no run, the class's rounds (Clear, draw at once, wait for the
reading, until the page has settled); the CPU seconds each stroke costs Chromium, by
process (the page's renderer, the GPU process that composites it, the browser and
utility processes), and the server. CPU seconds, not wall time: a figure that holds on
a machine shared with other work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
from app import CHROMIUM_ARGS, REPO, free_port, start_server, stop_server
from playwright.async_api import Page, async_playwright

READ_TIMEOUT_S = 120.0  # a digit not read within this long after the pen lifts is a lost stroke, not a slow one


async def open_draw(page: Page, url: str) -> float:
    """Seconds from asking for the Draw page to its canvas ready for a stroke."""
    started = time.perf_counter()
    await page.goto(f"{url}/Draw")
    await page.get_by_text("No digit found").wait_for(state="visible")
    await page.locator("canvas.upper-canvas[width='320']").wait_for(state="visible")
    return time.perf_counter() - started


async def draw(page: Page, digit: int) -> None:
    """A 1 (one stroke down) or a 7 (the bar, then the diagonal) in one stroke, as tests/dashboard_helpers.py."""
    box = await page.locator("canvas.upper-canvas").bounding_box()
    assert box is not None
    x, y = box["x"], box["y"]
    path: list[tuple[float, float]]
    if digit == 1:
        path = [(160, 40 + 10 * k) for k in range(26)]
    else:
        path = [(90 + 7 * k, 80) for k in range(21)] + [(230 - 3 * k, 80 + 6.5 * k) for k in range(1, 31)]
    await page.mouse.move(x + path[0][0], y + path[0][1])
    await page.mouse.down()
    for dx, dy in path[1:]:
        await page.mouse.move(x + dx, y + dy)
    await page.mouse.up()


async def pick_model(page: Page, name: str) -> None:
    """Make ``name`` the session's active model in the sidebar, and wait for the page to use it."""
    await page.get_by_role("combobox", name="Active model").click()
    await page.get_by_role("option", name=f"{name} · ").first.click()
    await page.get_by_text("No digit found").wait_for(state="visible")


def make_models(folder: Path, count: int) -> list[str]:
    """``default`` and ``count - 1`` copies of it that differ in their bytes (a tag): models the server caches apart."""
    from mnist_core.checkpoints import load_checkpoint, save_checkpoint

    base = load_checkpoint(folder / "default.pt")
    for n in range(1, count):
        save_checkpoint(
            folder / f"model-{n}.pt",
            base.model,
            base.train_config,
            base.metrics,
            base.history,
            base.dataset_sha256,
            tags={"copy": n},
            watch=base.watch or None,
            digit_score=base.digit_score,
        )
    return ["default", *(f"model-{n}" for n in range(1, count))]


async def drawing_session(page: Page, until: asyncio.Event, results: dict, pace: float, seed: int) -> None:
    """Clear, draw at once, wait for the reading; again until ``until`` is set.

    With ``pace``, a digit starts every ``pace`` seconds on average (each wait drawn between half and one and a
    half times it, so the sessions do not keep in step), as a student who looks at the reading before the next;
    a reading slower than that starts the next digit at once. Without it, the next digit starts at once.
    """
    digit, rng = 1, random.Random(seed)
    while not until.is_set():
        began = time.perf_counter()
        await page.get_by_role("button", name="Clear").click()
        await draw(page, digit)
        lifted = time.perf_counter()
        try:
            await (
                page.get_by_test_id("predicted-digit")
                .filter(has_text=str(digit))
                .wait_for(state="visible", timeout=READ_TIMEOUT_S * 1000)
            )
            results["latencies"].append(time.perf_counter() - lifted)
        except Exception:
            results["lost"] += 1
        results["errors"] += await page.get_by_test_id("stException").count()
        digit = 8 - digit  # 1, 7, 1, 7...
        if pace:
            await asyncio.sleep(max(0.0, rng.uniform(0.5, 1.5) * pace - (time.perf_counter() - began)))


async def settled(page: Page) -> None:
    """Until the page's script run has ended."""
    await page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for()


def chromium_kind(process: psutil.Process) -> str:
    """A Chromium process's part: renderer, gpu-process, utility, zygote, or browser (the one without ``--type``)."""
    with contextlib.suppress(psutil.Error):
        for part in process.cmdline():
            if part.startswith("--type="):
                return part.removeprefix("--type=")
    return "browser"


def chromium_snapshot() -> dict[int, tuple[str, float]]:
    """Each Chromium process's part and CPU seconds so far, listed afresh: a page opened later has a new renderer."""
    return {
        process.pid: (chromium_kind(process), cpu_seconds([process]))
        for process in psutil.Process().children(recursive=True)
        if "chrom" in process.name().lower()
    }


def chromium_used(before: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each part of Chromium used since ``before`` (a process started since counts from zero)."""
    used: dict[str, float] = {}
    for pid, (kind, seconds) in chromium_snapshot().items():
        used[kind] = used.get(kind, 0.0) + seconds - before.get(pid, (kind, 0.0))[1]
    return used


def describe_cpu(used: dict[str, float], strokes: int) -> str:
    """ "Chromium X (renderer ..., gpu-process ...)" in CPU seconds per stroke."""
    parts = ", ".join(f"{kind} {seconds / strokes:.3f}" for kind, seconds in sorted(used.items()) if seconds >= 0.0005)
    return f"Chromium {sum(used.values()) / strokes:.3f} ({parts})"


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def family(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def memory(processes: list[psutil.Process]) -> int:
    """Bytes of proportional set size: a page shared by the server and its children (torch's code) counted once."""
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_full_info().pss
    return total


async def measure(args: argparse.Namespace) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    checkpoints = Path(tempfile.mkdtemp(prefix="bench-class-"))
    shutil.copy(REPO / "mnist_core" / "default.pt", checkpoints)
    models = make_models(checkpoints, args.models)
    print(
        f"{args.sessions} drawing sessions on {len(models)} model(s), "
        f"{'a Quick run training' if args.train else 'no run'}, "
        f"{f'a digit every {args.pace:g} s on average' if args.pace else 'each digit at once after the last'}; "
        f"load average at start {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs"
    )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        pages = []
        for _ in range(args.sessions + 1):
            context = await browser.new_context(viewport={"width": 1400, "height": 1200})
            context.set_default_timeout(180_000)
            pages.append(await context.new_page())
        started = time.perf_counter()
        server = start_server(port, checkpoints)
        try:
            server_process = psutil.Process(server.pid)
            first = await open_draw(pages[0], url)
            print(f"cold server: streamlit run to the first Draw page ready: {time.perf_counter() - started:.1f} s")
            print(f"  of which the page itself: {first:.1f} s")

            trainer, drawers = pages[-1], pages[:-1]
            estimate = ""
            if args.train:
                await trainer.goto(f"{url}/Train")
                await trainer.get_by_text("Run history").wait_for(state="visible")
                estimate = await trainer.get_by_text("Takes about").first.inner_text()
            chromium_before, server_before = chromium_snapshot(), cpu_seconds(family(server_process))
            window = time.perf_counter()
            if args.train:
                await trainer.get_by_role("button", name="Start training").click()

            joins = await asyncio.gather(*(open_draw(page, url) for page in drawers[1:]))
            if joins:
                print(f"new sessions under load, Draw page ready: {min(joins):.1f}-{max(joins):.1f} s")
            picked = time.perf_counter()
            await asyncio.gather(
                *(pick_model(page, models[n % len(models)]) for n, page in enumerate(drawers) if n % len(models))
            )
            if len(models) > 1:
                print(f"sessions switched to their models in {time.perf_counter() - picked:.1f} s")
            until = asyncio.Event()
            results: dict = {"latencies": [], "lost": 0, "errors": 0}
            drawing_chromium, drawing_server = chromium_snapshot(), cpu_seconds(family(server_process))
            used: list[int] = []

            async def stop_when_done() -> None:
                deadline = time.perf_counter() + (args.seconds or 3600)
                saved = trainer.get_by_text("saved: test accuracy")
                while time.perf_counter() < deadline and not (args.train and await saved.count()):
                    used.append(memory(family(server_process)))
                    await asyncio.sleep(1)
                if not args.train:
                    print(f"stopped after {args.seconds:.0f} s")
                elif await saved.count():
                    print(f"Quick run trained and saved in {time.perf_counter() - window:.0f} s ({estimate})")
                else:
                    print(f"stopped after {args.seconds:.0f} s, the Quick run unfinished ({estimate})")
                until.set()

            await asyncio.gather(
                stop_when_done(),
                *(drawing_session(page, until, results, args.pace, n) for n, page in enumerate(drawers)),
            )
            wall = time.perf_counter() - window
            chromium_cpu = sum(chromium_used(chromium_before).values())
            server_cpu = cpu_seconds(family(server_process)) - server_before
            strokes = len(results["latencies"]) + results["lost"]
            if strokes:
                print(
                    f"CPU seconds per stroke while drawing (the Train page's live view and the run included): "
                    f"{describe_cpu(chromium_used(drawing_chromium), strokes)}, "
                    f"server and its children {(cpu_seconds(family(server_process)) - drawing_server) / strokes:.3f}"
                )
            latencies = sorted(results["latencies"])
            if latencies:
                p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
                print(
                    f"draw-to-prediction over {len(latencies)} strokes: p50 {statistics.median(latencies):.2f} s, "
                    f"p95 {p95:.2f} s, worst {latencies[-1]:.2f} s"
                )
            lost, errors = results["lost"], results["errors"]
            print(f"strokes lost (not read within {READ_TIMEOUT_S:.0f} s): {lost}; page errors: {errors}")
            cores = os.cpu_count() or 1
            print(
                f"CPU over {wall:.0f} s on {cores} cores: Chromium {chromium_cpu:.0f} s "
                f"({chromium_cpu / wall / cores:.0%} of the machine), "
                f"server and its children {server_cpu:.0f} s ({server_cpu / wall / cores:.0%})"
            )
            if used:
                print(f"server memory (with its children, proportional set size), peak: {max(used) / 2**30:.2f} GB")
        finally:
            await browser.close()
            stop_server(server)
            shutil.rmtree(checkpoints, ignore_errors=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")


@contextlib.asynccontextmanager
async def one_session(args: argparse.Namespace) -> AsyncIterator[tuple[Page, subprocess.Popen]]:
    """A fresh server on the default model and one Chromium session on its Draw page, ready for a stroke."""
    port = free_port()
    checkpoints = Path(tempfile.mkdtemp(prefix="bench-session-"))
    shutil.copy(REPO / "mnist_core" / "default.pt", checkpoints)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = await (await browser.new_context(viewport={"width": 1400, "height": 1200})).new_page()
        page.set_default_timeout(READ_TIMEOUT_S * 1000)
        server = start_server(port, checkpoints)
        try:
            await open_draw(page, f"http://127.0.0.1:{port}")
            yield page, server
        finally:
            await browser.close()
            stop_server(server)
            shutil.rmtree(checkpoints, ignore_errors=True)


async def strokes_after_clear(args: argparse.Namespace) -> None:
    """One session: each round Clear, then 7 or 8 ones at once; every one must be read."""
    async with one_session(args) as (page, _):
        box = await page.locator("canvas.upper-canvas").bounding_box()
        assert box is not None
        drawn = lost = 0
        started = time.perf_counter()
        for round in range(args.rounds):
            ones = 8 - round % 2  # each round's number differs in length from the last
            await page.get_by_role("button", name="Clear").click()
            for i in range(ones):
                x, y = box["x"] + 20 + i * 40 + round % 3 * 2, box["y"] + 90
                await page.mouse.move(x, y)
                await page.mouse.down()
                for k in range(1, 5):
                    await page.mouse.move(x, y + 35 * k)
                await page.mouse.up()
            drawn += ones
            number = page.get_by_test_id("predicted-number")
            try:
                await number.filter(has_text="1" * ones).wait_for(timeout=READ_TIMEOUT_S * 1000)
                read = ones
            except Exception:
                read = (await number.inner_text()).count("1") if await number.count() else 0
            lost += ones - min(read, ones)
        elapsed = time.perf_counter() - started
        print(f"{drawn} strokes after Clear in {args.rounds} rounds ({elapsed:.0f} s): {lost} lost")


async def cost(args: argparse.Namespace) -> None:
    """One session's rounds of Clear, a stroke and its reading: CPU seconds per stroke, by process."""
    async with one_session(args) as (page, server):
        server_family = family(psutil.Process(server.pid))
        for digit in (1, 7):  # the first readings load the model and fill the caches: not counted
            await page.get_by_role("button", name="Clear").click()
            await draw(page, digit)
            await page.get_by_test_id("predicted-digit").filter(has_text=str(digit)).wait_for()
            await settled(page)
        idle, idle_started = chromium_snapshot(), time.perf_counter()
        await asyncio.sleep(3)
        idle_used = sum(chromium_used(idle).values()) / (time.perf_counter() - idle_started)
        print(f"a settled Draw page, idle: Chromium {idle_used:.3f} CPU s per second")
        before, server_before, started = chromium_snapshot(), cpu_seconds(server_family), time.perf_counter()
        digit = 1
        for _ in range(args.strokes):
            await page.get_by_role("button", name="Clear").click()
            await draw(page, digit)
            await page.get_by_test_id("predicted-digit").filter(has_text=str(digit)).wait_for()
            digit = 8 - digit
        await settled(page)
        used, server_used = chromium_used(before), cpu_seconds(server_family) - server_before
        wall = time.perf_counter() - started
    print(f"{args.strokes} strokes in {wall:.0f} s; CPU seconds per stroke:")
    print(f"  {describe_cpu(used, args.strokes)}")
    print(f"  server {server_used / args.strokes:.3f}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "part", nargs="?", choices=["class", "strokes", "cost"], default="class", help="(default: class)"
    )
    parser.add_argument("--sessions", type=int, default=10, help="drawing sessions (default: 10)")
    parser.add_argument("--models", type=int, default=5, help="models the sessions are spread over (default: 5)")
    parser.add_argument("--no-train", dest="train", action="store_false", help="no Quick run meanwhile")
    parser.add_argument(
        "--seconds", type=float, default=None, help="stop drawing after this long (default: when saved)"
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="a session starts a digit every this many seconds on average, as a student who reads the answer "
        "first (default: 0, each digit at once after the last reading)",
    )
    parser.add_argument("--strokes", type=int, default=20, help="cost: strokes measured (default: 20)")
    parser.add_argument("--rounds", type=int, default=27, help="strokes: rounds of Clear and 7 or 8 ones (default: 27)")
    parser.add_argument(
        "--chromium",
        default=shutil.which("chromium") or "/usr/bin/chromium",
        help="Chromium executable for Playwright (default: chromium on PATH)",
    )
    args = parser.parse_args()
    if not args.train and args.seconds is None:
        parser.error("--no-train needs --seconds")
    parts = {"class": measure, "strokes": strokes_after_clear, "cost": cost}
    asyncio.run(parts[args.part](args))


if __name__ == "__main__":
    main()
