"""How long a training run takes: a model of its cost, calibrated on the runs this machine has done.

Time is not proportional to arithmetic alone. A run pays a fixed cost to start (the
training process, MNIST, the model), then for every image it pushes through the
network (forward and backward: about three forward passes of multiply-accumulates),
for every optimizer step (a fixed overhead plus Adam's pass over every weight, which is
what makes small batches slow), for augmentation (per image), for the validation images
of each epoch, and at the end for the 10,000 test images and the digit score's fit. A
tiny model is dominated by the per-step and per-image overheads, a large one by its
multiply-accumulates; the constants below are seconds on an idle 2-core CPU.

Two things move a real run away from them, and each is measured rather than assumed:

- how fast this machine is for a model of this size: the newest finished runs of a
  similar step cost (``machine_speed``), each divided by the slowdown it trained under,
  since the cost model's shape is least sure across sizes;
- how much of the CPU a training process gets now: it runs niced (``jobs.TRAINING_NICENESS``),
  so beside ordinary work it gets far less than a fair share (``slowdown``), which the
  CPU time the other processes use says (``busy_cores``), and a finished run logs
  the slowdown it met (``CpuShare``). Beside other work it trains on fewer threads
  (``training_threads``), one of which runs slower than all the cores would on an idle
  machine (``thread_factor``), but far faster than all of them each squeezed beside work.

A run in flight measures both at once: its pace (``jobs.Job.pace``) is what the next
estimate of a similar run is scaled by, so the estimate before a run and the time left
during one come from one throughput. (Timing a few training steps instead was tried: the
first steps of each new shape in a process run several times slower than the rest.)
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .model import ModelConfig
from .ood import REFERENCES
from .train import CHECK_IMAGES, TrainConfig, autocast_dtype, checks_per_epoch, pick_device

TEST_IMAGES = 10000

# Seconds on an idle 2-core CPU: the shape from single-thread CPU time of each setting's real training loop
# (insensitive to other work on the machine), the scale from the presets' measured times (bench/RESULTS.md).
MACS_PER_SECOND = 1.9e11  # training arithmetic (3 forward-pass equivalents per image)
FORWARD_MACS_PER_SECOND = 1.4e11  # validation, test and the digit score: forward only, in chunks, in float32
# Training runs in bfloat16 where the CPU computes it natively (``train.autocast_dtype``): the quick model's step took
# 11.0 ms against 19.8 ms in float32, the precision the constants above were measured in (bench/RESULTS.md).
BFLOAT16_SPEEDUP = 1.8
SECONDS_PER_STEP = 2.5e-3  # Python, the scheduler, the progress report and kernel launches, whatever the batch
SECONDS_PER_WEIGHT_STEP = 5.0e-9  # Adam reads and writes every weight at every step
SECONDS_PER_IMAGE = 1.0e-4  # gathering a batch, layout changes, element-wise layers: tiny models are all this
SECONDS_PER_FORWARD_IMAGE = 1.0e-5
SECONDS_PER_AUGMENTED_IMAGE = 4.5e-5  # affine warp and stroke-width change
# The training process forked, MNIST read, the watched panel, the model and optimizer built, the first steps of each
# new shape (which run several times slower than the rest).
STARTING_SECONDS = 2.5
SAVING_SECONDS = 0.8  # the digit score's decomposition, the checkpoint written and read back by the server

HISTORY_RUNS = 5  # the newest finished runs that calibrate the machine's speed
SIMILAR = 1.5  # runs whose seconds per image are within this factor of each other calibrate each other first
# How far the history may move the forecast from the constants: a faster or slower machine than the
# one they were fitted on. The history is divided by the slowdown it ran under first (``slowdown``).
SPEED_BOUNDS = (1 / 4, 10.0)
NICE_STEP = 1.25  # Linux's scheduler gives each nice level about 1.25 times less CPU than the level below
SAMPLE_S = 0.1  # ``busy_cores``'s first look at the machine: ten ticks of the kernel's CPU clock per core
WATCH_S = 1.0  # how often ``busy_cores`` looks at the machine after that
WATCH_LOOKS = 10  # how many looks it keeps: work that kept a core busy in all of them counts
# The most ``CpuShare.met`` says: near a full machine, what is left is a small difference of two large measures.
MAX_SLOWDOWN = 50.0
# How many times faster the quick preset trains on two threads than on one, on an idle 2-core machine; taken for
# every doubling of threads (bench/RESULTS.md, "Training threads beside other work").
THREAD_SPEEDUP = 1.6


@dataclass(frozen=True)
class Estimate:
    """Seconds for each stage of a run, already scaled by the machine's speed."""

    loading: float  # the training process starting, MNIST, the model, its first steps
    training: float  # the training loop, validation after each epoch included
    finishing: float  # the test-set evaluation, the digit score and saving the checkpoint
    speed: float = 1.0  # the factor applied to the cost model's seconds: this machine now, against the constants

    @property
    def total(self) -> float:
        return self.loading + self.training + self.finishing

    @property
    def work(self) -> float:
        """Seconds once started: the training and the end, what each further trial of a sweep costs."""
        return self.training + self.finishing

    def repeated(self, runs: float) -> float:
        """Seconds for ``runs`` runs like this one in one training process, as a sweep's trials: it starts once."""
        return self.loading + runs * self.work


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


def finished_images(train_config: TrainConfig) -> int:
    """Images forwarded after training: the test set, and the digit score's references and held-out digits (the
    validation split, or the test set again without one: ``ood.fit_digit_score``)."""
    return TEST_IMAGES + REFERENCES + (train_config.val_size or TEST_IMAGES)


def _modelled(model_config: ModelConfig, train_config: TrainConfig) -> Estimate:
    """The cost model with the measured constants, before any calibration."""
    macs = multiply_accumulates(model_config)
    images = train_config.images_per_epoch
    steps = steps_per_epoch(train_config)
    precision = BFLOAT16_SPEEDUP if autocast_dtype(pick_device(train_config.device)) == torch.bfloat16 else 1.0
    per_image = (3 * macs / MACS_PER_SECOND + SECONDS_PER_IMAGE) / precision
    per_step = SECONDS_PER_STEP + weights(model_config) * SECONDS_PER_WEIGHT_STEP
    per_forward = macs / FORWARD_MACS_PER_SECOND + SECONDS_PER_FORWARD_IMAGE
    epoch = images * per_image + steps * per_step + checked_images(train_config) * per_forward
    augmenting = train_config.augmented_epochs * images * SECONDS_PER_AUGMENTED_IMAGE
    return Estimate(
        loading=STARTING_SECONDS,
        training=train_config.epochs * epoch + augmenting,
        finishing=finished_images(train_config) * per_forward + SAVING_SECONDS,
    )


def averaged(
    forecast: Estimate, settings: tuple[ModelConfig, TrainConfig], drawn: Sequence[tuple[ModelConfig, TrainConfig]]
) -> Estimate:
    """``forecast`` for ``settings``, its training and its end moved to the mean the cost model gives the ``drawn``
    settings against ``settings``: a sweep's trial on average (``sweep.sampled_trials``), calibrated as its typical
    one was."""
    base, models = _modelled(*settings), [_modelled(*s) for s in drawn]
    return replace(
        forecast,
        training=forecast.training * statistics.fmean(m.training for m in models) / base.training,
        finishing=forecast.finishing * statistics.fmean(m.finishing for m in models) / base.finishing,
    )


def seconds_per_image(model_config: ModelConfig, train_config: TrainConfig) -> float:
    """The modelled training seconds per image seen: how alike two runs are in size (``SIMILAR``)."""
    return _modelled(model_config, train_config).training / (train_config.epochs * train_config.images_per_epoch)


def similar(a: tuple[ModelConfig, TrainConfig], b: tuple[ModelConfig, TrainConfig]) -> bool:
    """Whether two runs cost about the same per image, so the speed one measured stands for the other."""
    ratio = seconds_per_image(*a) / seconds_per_image(*b)
    return 1 / SIMILAR <= ratio <= SIMILAR


def sharing(load: float) -> float:
    """The slowdown of a run that took a fair share of the CPU beside a 1-minute load average of ``load``: what the
    history logged before runs logged their slowdown (``CpuShare``)."""
    return 1.0 + max(load, 0.0) / (os.cpu_count() or 1)


def slowdown(
    unniced: float,
    niced: float,
    niceness: int,
    cores: int | None = None,
    niced_at: int | None = None,
    threads: int | None = None,
) -> float:
    """How many times longer a run at ``niceness`` on ``threads`` threads (by default one per core) takes beside
    other work that keeps ``unniced`` cores busy at nice 0 and ``niced`` cores at a positive nice value,
    ``niced_at`` (by default the run's own), than it would alone.

    The scheduler shares each core by weight, and a process at nice 5 weighs about a
    third of one at nice 0: two busy ordinary processes on two cores leave it a quarter
    of each, not the half a fair share would (bench/RESULTS.md). Fewer threads than
    cores take the free cores first; only those left over share a busy one.
    """
    cores = cores or os.cpu_count() or 1
    niced_at = niceness if niced_at is None else niced_at
    others = max(unniced, 0.0) * NICE_STEP**niceness + max(niced, 0.0) * NICE_STEP ** (niceness - niced_at)
    if threads is None or threads >= cores:
        return 1.0 + others / cores
    free = max(cores - max(unniced, 0.0) - max(niced, 0.0), 0.0)
    crowded = max(threads - free, 0.0) / threads  # the share of the threads beside work on a busy core
    return 1.0 + crowded * others / cores


def slowdown_now(niceness: int, threads: int | None = None, since: float = 0.0) -> float:
    """The slowdown a process started from this one, ``niceness`` levels below it, on ``threads`` threads, meets
    beside the work on the machine now (``busy_cores``, watched ``since``). Niced work is taken to run at this
    process's level when this one is niced (so it is with a benchmark run under ``nice``), else at the new
    process's."""
    own = _niceness()
    return slowdown(*busy_cores(since), own + niceness, niced_at=own or own + niceness, threads=threads)


def training_threads(most: int, cores: int | None = None, since: float = 0.0) -> int:
    """Threads for a training process started now: the cores the other work leaves free (``busy_cores``, watched
    ``since``; a core counts as taken once it is three quarters busy), at least one and at most ``most``.

    A niced process's threads each get a slice of a busy core, and wait for one another
    at every layer: beside two busy processes on two cores, the quick preset took three
    times as long on two threads as on one (bench/RESULTS.md). On an idle machine every
    core is free, and every thread helps.
    """
    cores = cores or os.cpu_count() or 1
    # A page redrawing in the user's own browser keeps a core half busy in bursts: two threads still train faster.
    return max(1, min(most, cores - math.floor(sum(busy_cores(since)) + 0.25)))


def thread_factor(threads: int | None, cores: int | None = None) -> float:
    """How many times longer a run takes on ``threads`` threads than on all the cores, both alone on the machine."""
    cores = cores or os.cpu_count() or 1
    return THREAD_SPEEDUP ** math.log2(cores / threads) if threads and threads < cores else 1.0


def _cpu_times() -> tuple[float, float] | None:
    """Seconds of CPU the whole machine has spent so far, at nice 0 (user, system and interrupts) and niced; None
    where the system does not say (no ``/proc/stat``)."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + system + irq + softirq) / tick, nice / tick


def _niceness() -> int:
    return os.nice(0) if hasattr(os, "nice") else 0


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


class CpuShare:
    """What the rest of the machine used while this process worked, from the moment it is made: the slowdown a
    process at this one's niceness met (``met``), from the CPU the other processes took from it.

    Over a run, what the other processes used is what they left to it: if they used
    ``others`` of ``cores`` cores, the run had the rest, ``cores - others``.
    """

    def __init__(self) -> None:
        self._start, self._own, self._time = _cpu_times(), _own_seconds(), time.monotonic()

    def others(self) -> tuple[float, float] | None:
        """Cores the other processes kept busy since the start, at nice 0 and niced (None without ``/proc/stat``)."""
        end, wall = _cpu_times(), self.seconds()
        if self._start is None or end is None or wall <= 0:
            return None
        unniced, niced = (b - a for a, b in zip(self._start, end))
        own = _own_seconds() - self._own
        if _niceness() > 0:  # this process's own time is in the niced column
            niced -= own
        else:
            unniced -= own
        return max(unniced, 0.0) / wall, max(niced, 0.0) / wall

    def seconds(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self._time

    def met(self, threads: int | None = None) -> float | None:
        """The slowdown this process met on ``threads`` threads (by default one per core): the cores its threads
        would have had alone over what the others left it."""
        others = self.others()
        if others is None:
            return None
        cores = os.cpu_count() or 1
        wanted = min(threads or cores, cores)
        return wanted / max(min(wanted, cores - sum(others)), wanted / MAX_SLOWDOWN)


# The machine as ``busy_cores`` sees it: when each of the last few seconds began (``time.time``), and what the
# other processes used over it.
_looks: tuple[tuple[float, tuple[float, float]], ...] = ()
_watched = False  # whether the watcher has looked at least once (``_looks`` also keeps a moment's samples)
_watcher: threading.Thread | None = None
_watcher_lock = threading.Lock()  # the server's sessions ask at once: one watcher for them all


def _watch() -> None:
    """Look at the machine every ``WATCH_S``, keeping the last ``WATCH_LOOKS`` looks, for as long as the process
    lives."""
    global _looks, _watched
    while True:
        began, share = time.time(), CpuShare()
        time.sleep(WATCH_S)
        others = share.others()
        if others is not None:
            _looks, _watched = (*_looks, (began, others))[-WATCH_LOOKS:], True


def watched() -> bool:
    """Whether ``busy_cores`` has watched the machine for a whole look yet. Before that it answers from a moment's
    sample, and a page asks while the user's browser draws it: what it showed then is worth asking again."""
    return _watched


def busy_cores(since: float = 0.0) -> tuple[float, float]:
    """Cores the other processes keep busy now, at nice 0 and niced: the least they used in any of the last
    ``WATCH_LOOKS`` looks (one a second, watched from the first call on) that began after ``since``
    (``time.time``), else over ``SAMPLE_S`` from now, kept as a look. A queue passes the end of its last training
    process, work the next one will not meet.

    A run meets the work that lasts, not the moment a page asks: a page drawing in the user's own browser keeps a
    core busy for a second or two, right when it loads or Start is pressed, and a run that just ended used every
    core a moment ago. The 1-minute load average checks the answer both ways: work it does not show yet is taken
    to pass, unless every look of a whole window saw it (a minute after work starts, the load average shows only
    63% of it); and a saturated machine uses every core whatever waits, so there the load average, when higher,
    says how much work there is. Without ``/proc/stat``, the load average, taken as ordinary work."""
    global _watcher, _looks
    with _watcher_lock:
        if _watcher is None or not _watcher.is_alive():  # also in a forked process, which has no thread but its own
            _watcher = threading.Thread(target=_watch, name="busy_cores", daemon=True)
            _watcher.start()
    looks = [others for began, others in _looks if began >= since]
    if looks:
        others: tuple[float, float] | None = min(looks, key=sum)
    else:
        began, share = time.time(), CpuShare()
        time.sleep(SAMPLE_S)
        others = share.others()
        if others is not None:  # a look like the watcher's, so the next question does not wait
            _looks = (*_looks, (began, others))[-WATCH_LOOKS:]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if others is None:
        return load, 0.0
    cores = os.cpu_count() or 1
    total = sum(others)
    passing = total > load and len(looks) < WATCH_LOOKS
    scale = load / total if passing or (total > 0.9 * cores and load > total) else 1.0
    return others[0] * scale, others[1] * scale


def machine_speed(runs: list[dict] | None, model_config: ModelConfig, train_config: TrainConfig) -> float:
    """Measured over modelled training time of the newest finished runs of the same settings (where none, of a
    similar size, ``SIMILAR``; where none, of any size), their median, within ``SPEED_BOUNDS``. The cost model's
    shape is least sure across settings: a sweep's short trials measured 0.9-1.6x what a quick run of a similar
    size did (bench/RESULTS.md), so a run of the same settings, where there is one, speaks first.

    Each run is first divided by the slowdown it met (``CpuShare``; runs logged before that,
    by their load average) and by its threads' (``thread_factor``), so a run on a busy machine does not make every
    later forecast long, nor the reverse.
    """
    same: list[float] = []
    near: list[float] = []
    anywhere: list[float] = []
    for run in runs or []:
        metrics = run.get("metrics")
        seconds = metrics.get("train_seconds") if isinstance(metrics, dict) else None
        if run.get("status") != "finished" or not isinstance(seconds, int | float) or seconds <= 0:
            continue
        try:
            settings = ModelConfig(**run["model_config"]), TrainConfig(**run["train_config"])
        except (KeyError, TypeError, ValueError, AttributeError):  # written by another version, or damaged
            continue
        met, load, threads = run.get("slowdown"), run.get("load"), run.get("threads")
        if isinstance(met, int | float) and met >= 1:
            under = float(met)
        else:
            under = sharing(load if isinstance(load, int | float) else 0.0)
        if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
            under *= thread_factor(threads)
        ratio = seconds / _modelled(*settings).training / under
        if settings == (model_config, train_config) and len(same) < HISTORY_RUNS:
            same.append(ratio)
        if similar(settings, (model_config, train_config)) and len(near) < HISTORY_RUNS:
            near.append(ratio)
        if len(anywhere) < HISTORY_RUNS:
            anywhere.append(ratio)
    ratios = same or near or anywhere
    if not ratios:
        return 1.0
    low, high = SPEED_BOUNDS
    return min(max(statistics.median(ratios), low), high)


def estimate(
    model_config: ModelConfig,
    train_config: TrainConfig,
    runs: list[dict] | None = None,
    slowed: float | None = None,
    speed: float | None = None,
    threads: int | None = None,
) -> Estimate:
    """The forecast for a run on this machine now.

    ``speed`` is a measured one (``jobs.Job.speed``); without it the history ``runs``
    (``runs.read_runs``, newest first) calibrate the constants, slowed by ``slowed``: the
    slowdown the run will meet (1 on an idle machine), by default the one a process at this one's
    priority would meet beside the work on the machine now (``slowdown_now``);
    and by training on ``threads`` threads (by default one per core) rather than on all the cores.
    """
    base = _modelled(model_config, train_config)
    if speed is None:
        if slowed is None:
            slowed = slowdown_now(0, threads)
        speed = machine_speed(runs, model_config, train_config) * slowed * thread_factor(threads)
    return Estimate(base.loading * speed, base.training * speed, base.finishing * speed, speed)
