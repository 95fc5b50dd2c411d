"""The Train page's estimates against real runs, on a quiet and on a busy machine.

For each load (a number of busy processes, each spinning one core, started for the
measurement and stopped after it) and each setting, the run goes through the
dashboard's own queue (each job in a training process that loads MNIST) with the estimate the page shows
before it starts: the cost model scaled by the speed a run of the same model just
measured (``TrainingQueue.measured_speed``), else calibrated by the history of the runs
before it (earlier loads included) and slowed by the load average now. While it runs, the page's time left is read at
each quarter: estimated total (elapsed + time left) over the real time. The real
time is from the moment the worker takes the job to the saved checkpoint. A sweep
runs its trials as the sweep panel does, its estimate a typical trial's times the
trials. The issue's bar: every figure within 1.5x of the real time.

    python bench/estimate.py                                   # every preset and a sweep, at loads 0, 2 and 4
    python bench/estimate.py --preset quick --load 2           # one part
    python bench/estimate.py --preset best --epochs best=3     # the best preset shortened to 3 epochs
    python bench/estimate.py --preset sweep --trials 4         # a sweep of 4 trials around the quick preset
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time

from mnist_core.cost import Estimate, estimate
from mnist_core.jobs import Job, TrainingQueue
from mnist_core.model import ModelConfig
from mnist_core.runs import read_runs
from mnist_core.sweep import typical_trial
from mnist_core.train import PRESETS, TrainConfig

SETTINGS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    **PRESETS,
    # The smallest the Train page offers, with small batches: dominated by per-step overhead.
    "small": (ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16), TrainConfig(epochs=1, batch_size=32)),
    # Wide layers and large batches: dominated by arithmetic.
    "large": (
        ModelConfig(conv1_channels=64, conv2_channels=128, hidden_units=512, dropout=0.3),
        TrainConfig(epochs=2, batch_size=512, lr=3e-3),
    ),
}
QUARTERS = (0.25, 0.5, 0.75)
BAR = 1.5


SETTLE_S = 60.0  # the 1-minute load average takes about this long to show new work


def busy(processes: int) -> list[subprocess.Popen]:
    """``processes`` programs that each keep one core busy until stopped."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]


def submit_sweep(queue: TrainingQueue, trials: int, forecast: Estimate) -> Job:
    """A sweep of ``trials`` around the quick preset, queued as the sweep panel queues it, in a study of its own."""
    return queue.submit_sweep(f"bench-{time.time_ns()}", trials, preset="quick", forecast=forecast)


def measure(queue: TrainingQueue, history: list[dict], name: str, shortened: dict[str, int], trials: int) -> dict:
    """One run: the estimate before it, the estimated total at each quarter, the real time."""
    if name == "sweep":
        model_config, train_config = typical_trial("quick")
        speed = queue.measured_speed(model_config, train_config.batch_size)
        forecast = estimate(model_config, train_config, history, speed=speed)
        job = submit_sweep(queue, trials, forecast)
        before = forecast.total * trials
    else:
        model_config, train_config = SETTINGS[name]
        if name in shortened:
            train_config = dataclasses.replace(train_config, epochs=shortened[name])
        speed = queue.measured_speed(model_config, train_config.batch_size)
        forecast = estimate(model_config, train_config, history, speed=speed)
        job = queue.submit(model_config, train_config, name=f"{name}-{time.time_ns()}", forecast=forecast)
        before = forecast.total
    totals: dict[float, float] = {}
    while job.ended is None:  # set just after the status
        time.sleep(0.2)
        job.heartbeat()
        quarter = next((q for q in QUARTERS if q not in totals and job.fraction >= q), None)
        if quarter is not None and job.started is not None:
            totals[quarter] = time.time() - job.started + job.remaining_seconds()
    assert job.status == "finished", job.error
    return {"before": before, "real": (job.ended or 0) - (job.started or 0), "totals": totals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", nargs="+", choices=[*SETTINGS, "sweep"], default=[*PRESETS, "sweep"])
    parser.add_argument("--load", nargs="+", type=int, default=[0, 2, 4], help="busy processes during the runs")
    parser.add_argument("--epochs", nargs="*", default=[], metavar="NAME=N", help="shorten a setting to N epochs")
    parser.add_argument("--trials", type=int, default=4, help="trials of the sweep")
    args = parser.parse_args()
    shortened = {name: int(n) for name, n in (item.split("=") for item in args.epochs)}

    print(f"{os.cpu_count()} cores; estimated total over real time: before the run, then at each quarter of it")
    print(f"{'load':>4s} {'setting':8s} {'before':>7s} {'real':>7s} {'ratio':>5s} {'1/4':>5s} {'1/2':>5s} {'3/4':>5s}")
    history = tempfile.TemporaryDirectory()  # the run log of every load: what calibrates a first run
    for load in args.load:
        spinners = busy(load)
        try:
            if spinners:  # as on a machine busy for a while: the load average, which the estimate reads, shows them
                time.sleep(SETTLE_S)
            queue = TrainingQueue(history.name)  # a new queue: no speed measured yet; each job loads MNIST
            for name in args.preset:
                m = measure(queue, read_runs(history.name), name, shortened, args.trials)
                ratios = [
                    m["before"] / m["real"],
                    *(m["totals"].get(q, float("nan")) / m["real"] for q in QUARTERS),
                ]
                within = all(1 / BAR <= r <= BAR for r in ratios)
                print(
                    f"{load:4d} {name:8s} {m['before']:6.0f}s {m['real']:6.0f}s "
                    + " ".join(f"{r:5.2f}" for r in ratios)
                    + f"  {'ok' if within else 'MISSED'}  (load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()


if __name__ == "__main__":
    main()
