"""The training estimate against real runs: each preset and two custom settings, as the dashboard runs them.

Each run goes through the dashboard's own queue (its training process loads MNIST), and the
measured time is from the moment the worker takes the job to the saved checkpoint.
Three forecasts are printed: for an idle machine (the constants alone), for the
machine's load now, and calibrated on the runs this benchmark has already finished
as well (what the Train page shows). The load is printed before and after each run.
The long presets can be shortened with ``--epochs``: the forecast is then for the
shortened run, which checks the same model of cost.

    python bench/estimate.py                       # all five settings, in full (the best preset takes ~8 min)
    python bench/estimate.py --only quick small    # a subset
    python bench/estimate.py --epochs best=3       # best preset with 3 epochs instead of 15
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

from mnist_core.cost import estimate
from mnist_core.jobs import TrainingQueue
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS), help="settings to run")
    parser.add_argument(
        "--epochs", nargs="*", default=[], metavar="NAME=N", help="shorten a setting to N epochs, e.g. best=3"
    )
    args = parser.parse_args()
    shortened = {name: int(n) for name, n in (item.split("=") for item in args.epochs)}

    with tempfile.TemporaryDirectory() as folder:
        queue = TrainingQueue(folder)
        print(
            f"{'setting':8s} {'epochs':>6s} {'idle':>6s} {'load now':>8s} {'history':>8s} {'measured':>9s}  ratio  load"
        )
        for name in args.only:
            model_config, train_config = SETTINGS[name]
            if name in shortened:
                train_config = dataclasses.replace(train_config, epochs=shortened[name])
            history = read_runs(folder)
            idle = estimate(model_config, train_config, load=0)
            alone, calibrated = estimate(model_config, train_config), estimate(model_config, train_config, history)
            load_before = os.getloadavg()[0]
            job = queue.submit(model_config, train_config, name=name, history=history)
            while not job.done:
                time.sleep(0.2)
                job.heartbeat()
            assert job.status == "finished", job.error
            measured = (job.ended or 0) - (job.started or 0)
            print(
                f"{name:8s} {train_config.epochs:6d} {idle.total:5.0f}s {alone.total:7.0f}s {calibrated.total:7.0f}s "
                f"{measured:8.0f}s "
                f"{measured / calibrated.total:6.2f}  {load_before:.1f}-{os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
