"""A class on one laptop: N Chromium sessions draw on the Draw page while one session trains a Quick run.

What a teacher's class would do to one server on a 2-core machine. Every session is its
own browser context (its own Streamlit session) in one headless Chromium. The first
session opens the Draw page of a cold server (its time is the cold first page); the
others join. One more session starts the quick preset on the Train page; meanwhile each
drawing session, round after round, clicks Clear and at once draws a 1 or a 7 (in turn)
and waits for the page to read it: that wait is the draw-to-prediction time. A round
whose digit is not read within the timeout counts as a stroke lost; an exception on the
page as an error. Chromium's own CPU time is measured, so its share of the machine is
said beside the server's (the server trains in its own threads, so both run on the same
2 cores).

    python bench/class_load.py                        # 10 sessions, until the Quick run is saved
    python bench/class_load.py --sessions 3 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psutil
from app import CHROMIUM_ARGS, REPO, free_port, start_server, stop_server
from playwright.async_api import Page, async_playwright

READ_TIMEOUT_S = 30.0  # a digit not read within this long after the pen lifts is a lost stroke


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


async def drawing_session(page: Page, until: asyncio.Event, results: dict) -> None:
    """Clear, draw at once, wait for the reading; again until ``until`` is set."""
    digit = 1
    while not until.is_set():
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


async def measure(args: argparse.Namespace) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    checkpoints = Path(tempfile.mkdtemp(prefix="bench-class-"))
    shutil.copy(REPO / "mnist_core" / "default.pt", checkpoints)
    print(f"{args.sessions} drawing sessions; load average at start {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        pages = []
        for _ in range(args.sessions + 1):
            context = await browser.new_context(viewport={"width": 1400, "height": 1200})
            context.set_default_timeout(180_000)
            pages.append(await context.new_page())
        chromium = [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]

        started = time.perf_counter()
        server = start_server(port, checkpoints)
        try:
            server_process = psutil.Process(server.pid)
            first = await open_draw(pages[0], url)
            print(f"cold server: streamlit run to the first Draw page ready: {time.perf_counter() - started:.1f} s")
            print(f"  of which the page itself: {first:.1f} s")

            trainer, drawers = pages[-1], pages[:-1]
            await trainer.goto(f"{url}/Train")
            await trainer.get_by_text("Run history").wait_for(state="visible")
            estimate = await trainer.get_by_text("Takes about").first.inner_text()
            chromium_before, server_before = cpu_seconds(chromium), cpu_seconds(family(server_process))
            window = time.perf_counter()
            await trainer.get_by_role("button", name="Start training").click()

            joins = await asyncio.gather(*(open_draw(page, url) for page in drawers[1:]))
            if joins:
                print(f"new sessions under load, Draw page ready: {min(joins):.1f}-{max(joins):.1f} s")
            until = asyncio.Event()
            results: dict = {"latencies": [], "lost": 0, "errors": 0}
            memory: list[int] = []

            async def stop_when_done() -> None:
                deadline = time.perf_counter() + (args.seconds or 3600)
                saved = trainer.get_by_text("saved: test accuracy")
                while time.perf_counter() < deadline and not await saved.count():
                    memory.append(sum(p.memory_info().rss for p in family(server_process) if p.is_running()))
                    await asyncio.sleep(1)
                if await saved.count():
                    print(f"Quick run trained and saved in {time.perf_counter() - window:.0f} s ({estimate})")
                else:
                    print(f"stopped after {args.seconds:.0f} s, the Quick run unfinished ({estimate})")
                until.set()

            await asyncio.gather(stop_when_done(), *(drawing_session(page, until, results) for page in drawers))
            wall = time.perf_counter() - window
            chromium_cpu = cpu_seconds(chromium) - chromium_before
            server_cpu = cpu_seconds(family(server_process)) - server_before
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
            if memory:
                print(f"server memory (with its children), peak: {max(memory) / 2**30:.2f} GB")
        finally:
            await browser.close()
            stop_server(server)
            shutil.rmtree(checkpoints, ignore_errors=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10, help="drawing sessions (default: 10)")
    parser.add_argument(
        "--seconds", type=float, default=None, help="stop drawing after this long (default: when saved)"
    )
    parser.add_argument(
        "--chromium",
        default=shutil.which("chromium") or "/usr/bin/chromium",
        help="Chromium executable for Playwright (default: chromium on PATH)",
    )
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
