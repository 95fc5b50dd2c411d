"""Sweeps at scale: reading a large study again, and trials per hour with one and two workers on PostgreSQL.

``journal``: a journal of 3,000 finished trials read the first time and again (what a
page pays on each rerun). ``page``: the Train page (Streamlit's AppTest, in this process)
rerun with that study shown, each figure in turn. ``workers``: the ``sweep`` command started as 1 and as 2
worker processes (one torch thread each) on a throwaway PostgreSQL server, small
trials (1 epoch on 5,000 images); then 2 workers again with one killed (SIGKILL)
mid-trial, to show what a dead worker costs: its trial's work so far, and the
heartbeat's grace period before another worker runs the trial again.

    python bench/sweep.py journal
    python bench/sweep.py page
    python bench/sweep.py workers --trials 8 --heartbeat 2
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from postgres import binaries, new_database, throwaway_server
from test_sweep_journal import write_journal

from mnist_core.runs import read_runs
from mnist_core.studies import open_storage, view_storage
from mnist_core.sweep import summary

SMALL = ["--epochs=1", "--train-size=5000", "--val-size=1000"]


def journal(trials: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.journal"
        write_journal(path, trials)
        for label in ("first read", "read again", "read again"):
            start = time.perf_counter()
            storage = view_storage(f"journal:{path}", folder)
            assert storage is not None
            study = optuna.load_study(study_name="s", storage=storage)
            summary(study)
            print(f"{trials:,} trials, {label}: {time.perf_counter() - start:.3f} s")


def page(trials: int) -> None:
    from dashboard_helpers import open_page  # imports streamlit: only this part needs it

    with tempfile.TemporaryDirectory() as folder:
        os.environ["MNIST_CHECKPOINTS"] = folder
        write_journal(Path(folder) / "sweeps.journal", trials)
        at = open_page("1_Train.py")
        at.selectbox(key="sweep_study").set_value("s").run()
        sweep_view = sys.modules["sweep_view"]  # as the page imported it: its panel is timed apart
        panel, spent = sweep_view.panel, []

        def timed(*args: object) -> None:
            start = time.perf_counter()
            panel(*args)
            spent.append(time.perf_counter() - start)

        sweep_view.panel = timed  # type: ignore[attr-defined]
        for figure in at.button_group(key="sweep_figure").options:
            at.button_group(key="sweep_figure").set_value(figure).run()  # drawn the first time
            times = []
            for _ in range(5):
                start = time.perf_counter()
                at.run()
                times.append(time.perf_counter() - start)
            assert not at.exception, at.exception
            print(
                f"Train page, {trials:,} trials, {figure}: rerun {min(times):.3f}-{max(times):.3f} s, "
                f"of which the sweep panel {min(spent[-5:]):.3f}-{max(spent[-5:]):.3f} s (5 reruns)"
            )


def workers(url: str, count: int, trials: int, heartbeat: int, kill: bool) -> None:
    folder = Path(tempfile.mkdtemp())
    command = [
        *(sys.executable, "-m", "mnist_core", "sweep", "--study", "bench", "--storage", url),
        *("--trials", str(trials), "--heartbeat", str(heartbeat), *SMALL),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    machines = [folder / f"machine-{n}" for n in range(count)]
    start = time.monotonic()
    processes = [
        subprocess.Popen(command, env={**env, "MNIST_CHECKPOINTS": str(m)}, stdout=subprocess.DEVNULL) for m in machines
    ]
    killed_at = None
    if kill:  # the first worker dies in the middle of its second trial
        while sum(r["status"] == "finished" for r in read_runs(machines[0])) < 1 or not any(
            r["status"] == "running" for r in read_runs(machines[0])
        ):
            time.sleep(0.05)
        time.sleep(1.0)
        processes[0].send_signal(signal.SIGKILL)
        killed_at = time.monotonic() - start
    for p in processes:
        p.wait()
    elapsed = time.monotonic() - start
    study = optuna.load_study(study_name="bench", storage=open_storage(url, folder))
    states = [t.state.name for t in study.trials]
    killed = f" (one killed at {killed_at:.0f} s)" if killed_at is not None else ""
    print(
        f"{count} worker(s){killed}: {trials} trials in {elapsed:.1f} s = {trials / elapsed * 3600:,.0f} "
        f"trials/hour; states { ({s: states.count(s) for s in sorted(set(states))}) }"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["journal", "page", "workers"])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--heartbeat", type=int, default=2)
    args = parser.parse_args()
    if args.part == "journal":
        journal(3000)
        return
    if args.part == "page":
        page(3000)
        return
    bin_dir = binaries()
    assert bin_dir is not None, "PostgreSQL is not installed"
    with throwaway_server(bin_dir) as server:
        for count, kill in ((1, False), (2, False), (2, True)):
            workers(new_database(server, f"bench{count}{int(kill)}"), count, args.trials, args.heartbeat, kill)


if __name__ == "__main__":
    main()
