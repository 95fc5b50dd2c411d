"""How long a training run takes: a model of its cost, calibrated on the runs this machine has done.

Time is not proportional to arithmetic alone. A run pays for every image it pushes
through the network (forward and backward: about three forward passes of
multiply-accumulates), for every optimizer step (a fixed overhead plus Adam's pass
over every weight, which is what makes small batches slow), for augmentation (per
image), for the validation images after each epoch, and for the 10,000 test images
at the end. A tiny model is dominated by the per-step and per-image overheads, a
large one by its multiply-accumulates; the constants below were measured on a 2-core
CPU (``bench/estimate.py``).

How fast *this* machine is *now* is measured, not assumed, wherever training measures it:
the pace of the run in flight, or of one that has just ended (``jobs.TrainingQueue.measured_speed``),
so the estimate before a run and the time left during one come from the same throughput
and agree. Without such a measure, the history says it: the median ratio of measured to
modelled time over the newest finished runs, within bounds, so one run on a busy machine
cannot make every forecast absurd, slowed by the load on the machine now. (Timing a few
training steps instead was tried: the first steps of each new shape in a process run
several times slower than the rest, for seconds, which no short probe can tell apart.)
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass

from .model import ModelConfig
from .train import CHECK_IMAGES, TrainConfig, checks_per_epoch

TEST_IMAGES = 10000

# Fitted on a 2-core CPU: the shape from single-thread CPU time of each setting (insensitive to other
# work on the machine), the scale from the quick and best presets' measured times (bench/RESULTS.md).
MACS_PER_SECOND = 3.75e11  # training arithmetic (3 forward-pass equivalents per image)
FORWARD_MACS_PER_SECOND = 2.0e11  # validation and test: forward only, in small chunks
SECONDS_PER_STEP = 2.0e-3  # Python, the scheduler and kernel launches, whatever the batch
SECONDS_PER_WEIGHT_STEP = 2.5e-9  # Adam reads and writes every weight at every step
SECONDS_PER_IMAGE = 5.0e-5  # gathering a batch, layout changes, element-wise layers: tiny models are all this
SECONDS_PER_FORWARD_IMAGE = 1.0e-5
SECONDS_PER_AUGMENTED_IMAGE = 4.5e-5  # affine warp and stroke-width change
LOADING_SECONDS = 1.5  # building the model, first-batch warm-up; the dataset is already in memory
SAVING_SECONDS = 0.5

HISTORY_RUNS = 5  # the newest finished runs that calibrate the machine's speed
# How far the history may move the forecast from the constants: a faster or slower machine than the
# one they were fitted on. The history is divided by the load it ran under first (``sharing``).
SPEED_BOUNDS = (1 / 4, 10.0)


@dataclass(frozen=True)
class Estimate:
    """Seconds for each stage of a run, already scaled by the machine's speed."""

    loading: float
    training: float  # the training loop, validation after each epoch included
    finishing: float  # the test-set evaluation and saving the checkpoint
    speed: float = 1.0  # the factor applied to the cost model's seconds: this machine now, against the constants

    @property
    def total(self) -> float:
        return self.loading + self.training + self.finishing


def multiply_accumulates(config: ModelConfig) -> int:
    """Multiply-accumulates of one forward pass for one image."""
    k2 = config.kernel_size**2
    return (
        28 * 28 * k2 * config.conv1_channels
        + 14 * 14 * k2 * config.conv1_channels * config.conv2_channels
        + 7 * 7 * config.conv2_channels * config.hidden_units
        + config.hidden_units * 10
    )


def weights(config: ModelConfig) -> int:
    """The weights Adam updates (biases and batch-norm scales left out: they are too few to matter)."""
    k2 = config.kernel_size**2
    c1, c2, hidden = config.conv1_channels, config.conv2_channels, config.hidden_units
    return k2 * c1 + k2 * c1 * c2 + 7 * 7 * c2 * hidden + hidden * 10


def steps_per_epoch(train_config: TrainConfig) -> int:
    """Optimizer steps in one epoch: one per batch, the last batch possibly smaller."""
    return -(-train_config.images_per_epoch // train_config.batch_size)


def checked_images(train_config: TrainConfig) -> int:
    """Images each epoch only forwards to measure the model (``train.checks_per_epoch``): the validation split and a
    training subset at its end, a part of each at every check within it."""
    subset = min(CHECK_IMAGES, train_config.images_per_epoch)
    within = checks_per_epoch(train_config.epochs) - 1 if train_config.val_size else 0
    return train_config.val_size + subset + within * (min(CHECK_IMAGES, train_config.val_size) + subset)


def _modelled(model_config: ModelConfig, train_config: TrainConfig) -> Estimate:
    """The cost model with the measured constants, before any calibration."""
    macs = multiply_accumulates(model_config)
    images = train_config.images_per_epoch
    steps = steps_per_epoch(train_config)
    per_image = 3 * macs / MACS_PER_SECOND + SECONDS_PER_IMAGE
    per_step = SECONDS_PER_STEP + weights(model_config) * SECONDS_PER_WEIGHT_STEP
    per_forward = macs / FORWARD_MACS_PER_SECOND + SECONDS_PER_FORWARD_IMAGE
    epoch = images * per_image + steps * per_step + checked_images(train_config) * per_forward
    augmenting = train_config.augmented_epochs * images * SECONDS_PER_AUGMENTED_IMAGE
    return Estimate(
        loading=LOADING_SECONDS,
        training=train_config.epochs * epoch + augmenting,
        finishing=TEST_IMAGES * per_forward + SAVING_SECONDS,
    )


def sharing(load: float | None = None) -> float:
    """How much slower a run is on a machine that other work keeps busy: 1 + load per core.

    A run wants every core; with the 1-minute load average at L on N cores it gets about
    N / (N + L) of them. Without this factor the forecast fell far short on a busy machine (bench/RESULTS.md).
    """
    load = os.getloadavg()[0] if load is None else load
    return 1.0 + max(load, 0.0) / (os.cpu_count() or 1)


def machine_speed(runs: list[dict] | None) -> float:
    """Measured over modelled time for the newest finished runs (median), within ``SPEED_BOUNDS``.

    Each run is first divided by how busy the machine was when it started (``sharing``),
    so a run on a busy machine does not make every later forecast long, nor the reverse.
    """
    ratios = []
    for run in runs or []:
        metrics = run.get("metrics")
        seconds = metrics.get("train_seconds") if isinstance(metrics, dict) else None
        if run.get("status") != "finished" or not isinstance(seconds, int | float) or seconds <= 0:
            continue
        try:
            modelled = _modelled(ModelConfig(**run["model_config"]), TrainConfig(**run["train_config"]))
        except (KeyError, TypeError, ValueError, AttributeError):  # written by another version, or damaged
            continue
        load = run.get("load")
        ratios.append(seconds / modelled.training / sharing(load if isinstance(load, int | float) else 0.0))
        if len(ratios) == HISTORY_RUNS:
            break
    if not ratios:
        return 1.0
    low, high = SPEED_BOUNDS
    return min(max(statistics.median(ratios), low), high)


def estimate(
    model_config: ModelConfig,
    train_config: TrainConfig,
    runs: list[dict] | None = None,
    load: float | None = None,
    speed: float | None = None,
) -> Estimate:
    """The forecast for a run on this machine now.

    ``speed`` is a measured one (``jobs.Job.speed``); without it the history
    ``runs`` (``runs.read_runs``, newest first) calibrate the constants and ``load``, the
    machine's load average (read now when ``None``; 0 for an idle machine), slows them.
    """
    base = _modelled(model_config, train_config)
    if speed is None:
        speed = machine_speed(runs) * sharing(load)
    return Estimate(base.loading * speed, base.training * speed, base.finishing * speed, speed)
