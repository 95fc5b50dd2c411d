"""The Train page's estimates against real runs, on a quiet and on a busy machine.

For each load (a number of busy processes, each spinning one core at the bench's own
priority, started for the measurement and stopped after it) and each setting, the run
goes through the dashboard's own queue (each job in a niced training process that loads
MNIST) with the estimate the page shows before it starts (``TrainingQueue.forecast``:
the speed a run just measured, else the history of the runs before it, earlier loads
included, slowed by what the machine leaves a niced process now). While it runs, the
page's time left is read every ``SAMPLE_S``: estimated total (elapsed + time left) over
the real time at each quarter, and the largest move of that total between two readings
(how smoothly it updates). The real time is from the moment the worker takes the job to
the saved checkpoint. A sweep runs its trials as the sweep panel does, its estimate the
start once and then its trials, each the mean of trials drawn from the search space
(``TrainingQueue.forecast_sweep``). The issue's bar: every figure within 1.5x of the real time.

By default the default and best presets are cut short (``SHORT``: fewer epochs, and fewer
images for best) so that the whole bench, three loads, takes about 20 minutes on an idle
2-core machine; ``--full`` runs them as the page would.

    python bench/estimate.py                                   # every preset and a sweep, at loads 0, 2 and 4
    python bench/estimate.py --preset quick --load 2           # one part
    python bench/estimate.py --full --load 0                   # the presets at full length, on a quiet machine
    python bench/estimate.py --preset best --epochs best=3     # the best preset shortened to 3 epochs
    python bench/estimate.py --preset sweep --trials 4         # a sweep of 4 trials around the quick preset
    python bench/estimate.py --train-size quick=10000 sweep=5000  # shorter still, on a busy machine
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import subprocess
import sys
import tempfile
import time

import torch

from mnist_core.cost import busy_cores, slowdown_now, thread_factor, training_threads
from mnist_core.jobs import TRAINING_NICENESS, TrainingQueue
from mnist_core.model import ModelConfig
from mnist_core.runs import read_runs
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
# Still real runs of each preset's model and batches, only shorter: the whole bench in about 20 minutes.
SHORT: dict[str, dict] = {"default": {"epochs": 1}, "best": {"epochs": 1, "train_size": 10000}}
SWEEP_FIXED = {"epochs": 1, "train_size": 20000}  # each trial one epoch on part of the images, unless changed
QUARTERS = (0.25, 0.5, 0.75)
BAR = 1.5
SAMPLE_S = 1.0
COLUMNS = ("ratio", "1/4", "1/2", "3/4", "jump")
SETTLE_S = 60.0  # long enough for the watcher's looks; the 1-minute load average shows 63% of new work by then


def busy(processes: int) -> list[subprocess.Popen]:
    """``processes`` programs that each keep one core busy until stopped."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]


def measure(queue: TrainingQueue, history: list[dict], name: str, changes: dict, trials: int) -> dict:
    """One run: the estimate before it, the estimated total at each quarter, its largest move, the real time."""
    if name == "sweep":
        forecast = queue.forecast_sweep("quick", changes, history)
        job = queue.submit_sweep(f"bench-{time.time_ns()}", trials, fixed=changes, forecast=forecast)
        before = forecast.repeated(trials)
    else:
        model_config, train_config = SETTINGS[name]
        train_config = dataclasses.replace(train_config, **changes)
        forecast = queue.forecast(model_config, train_config, history)
        job = queue.submit(model_config, train_config, name=f"{name}-{time.time_ns()}", forecast=forecast)
        before = forecast.total
    totals: dict[float, float] = {}
    readings = [before]
    while job.ended is None:  # set just after the status
        time.sleep(SAMPLE_S)
        job.heartbeat()
        if job.started is None or job.done:
            continue
        readings.append(time.time() - job.started + job.remaining_seconds())
        quarter = next((q for q in QUARTERS if q not in totals and job.fraction >= q), None)
        if quarter is not None:
            totals[quarter] = readings[-1]
    assert job.status == "finished", job.error
    jump = max((abs(b - a) for a, b in itertools.pairwise(readings)), default=0.0)
    return {"before": before, "real": (job.ended or 0) - (job.started or 0), "totals": totals, "jump": jump}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", nargs="+", choices=[*SETTINGS, "sweep"], default=[*PRESETS, "sweep"])
    parser.add_argument("--load", nargs="+", type=int, default=[0, 2, 4], help="busy processes during the runs")
    parser.add_argument("--full", action="store_true", help="the presets at full length (default and best: minutes)")
    parser.add_argument("--epochs", nargs="*", default=[], metavar="NAME=N", help="a setting cut to N epochs")
    parser.add_argument("--train-size", nargs="*", default=[], metavar="NAME=N", help="a setting cut to N images")
    parser.add_argument("--trials", type=int, default=3, help="trials of the sweep")
    args = parser.parse_args()
    changes: dict[str, dict] = {name: {} if args.full else SHORT.get(name, {}) for name in SETTINGS}
    changes["sweep"] = SWEEP_FIXED
    for option, items in (("epochs", args.epochs), ("train_size", args.train_size)):
        for name, n in (item.split("=") for item in items):
            changes[name] = {**changes[name], option: int(n)}

    print(f"{os.cpu_count()} cores; estimated total over real time: before the run, then at each quarter of it;")
    print("jump: the largest move of the estimated total between two readings a second apart, over the real time;")
    print("machine: 1-minute load average at the end; threads: what the run trained on; slowdown: what the estimate")
    print("expected a niced run on those threads to meet, against all the cores of an idle machine")
    print(f"{'busy':>4s} {'setting':8s} {'before':>7s} {'real':>7s} " + " ".join(f"{c:>5s}" for c in COLUMNS))
    history = tempfile.TemporaryDirectory()  # the run log of every load: what calibrates a first run
    busy_cores()  # the machine is watched from now on, as a dashboard server watches it from its first page
    for load in args.load:
        spinners = busy(load)
        try:
            if spinners:  # as on a machine busy for a while: the load average, which the estimate reads, shows them
                time.sleep(SETTLE_S)
            queue = TrainingQueue(history.name)  # a new queue: no speed measured yet; each job loads MNIST
            for name in args.preset:
                since = queue.quiet_since()
                threads = training_threads(torch.get_num_threads(), since=since)  # what the run will train on
                expected = slowdown_now(TRAINING_NICENESS, threads, since) * thread_factor(threads)
                m = measure(queue, read_runs(history.name), name, changes[name], args.trials)
                ratios = [m["before"] / m["real"], *(m["totals"].get(q, float("nan")) / m["real"] for q in QUARTERS)]
                within = all(1 / BAR <= r <= BAR for r in ratios)
                cut = ", ".join(f"{k} {v}" for k, v in changes[name].items())
                print(
                    f"{load:4d} {name:8s} {m['before']:6.0f}s {m['real']:6.0f}s "
                    + " ".join(f"{r:5.2f}" for r in ratios)
                    + f" {m['jump'] / m['real']:5.2f}  {'ok' if within else 'MISSED'}"
                    + f"  (machine {os.getloadavg()[0]:.1f}, {threads} thread(s), slowdown {expected:.1f}"
                    + f"{'; ' + cut if cut else ''})",
                    flush=True,
                )
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()


if __name__ == "__main__":
    main()
