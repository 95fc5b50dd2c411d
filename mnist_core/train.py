"""The training loop: Adam, cross-entropy, batches drawn from shuffled in-memory tensors.

The loop reports through one callback, so the command line's progress bar and the
dashboard's live curves watch the same thing, and it checks a stop flag between
batches, so a user can cancel without losing anything but the run.

For speed the model runs in channels-last memory layout, which oneDNN's convolutions
prefer, and under bfloat16 autocast where the hardware has bfloat16 arithmetic; weights,
optimizer state and the loss stay in float32, so accuracy is unchanged (bench/RESULTS.md
has the gains). On a GPU nothing in a batch waits for the GPU: batches are augmented
there, and the running loss is read back only when a report needs it.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F

from . import settings
from .data import MNIST, augment, outliers
from .model import CNN, ModelConfig
from .settings import Interval, Setting, setting

TRAIN_IMAGES = 60000  # MNIST's training set, from which the validation split is held out


@dataclass
class TrainConfig:
    """How to train. A field's ``presets`` are the presets that change it; the rest keep its default."""

    epochs: int = setting(
        3,
        "Epochs",
        "passes over the training set",
        low=1,
        high=1000,
        presets={"quick": 1, "default": 8, "best": 15},
        search={"quick": Interval(1, 3), "default": Interval(3, 10), "best": Interval(8, 20)},
        stops=Interval(1, 30),
    )
    batch_size: int = setting(
        128,
        "Batch size",
        "images per optimizer step",
        low=1,
        high=60000,
        search={"quick": (128, 256, 512), "default": (64, 128, 256), "best": (64, 128, 256)},
        stops=(32, 64, 128, 256, 512),
    )
    # The quick preset's one epoch trains best at a higher one-cycle peak (bench/RESULTS.md, "Quick preset at lr 1e-2").
    lr: float = setting(
        3e-3,
        "Learning rate",
        "Adam learning rate (the peak, for onecycle)",
        above=0.0,
        high=10.0,
        presets={"quick": 1e-2},
        search={"quick": Interval(1e-3, 2e-2), "default": Interval(1e-3, 1e-2), "best": Interval(1e-3, 6e-3)},
        log=True,
        stops=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
    )
    schedule: Literal["onecycle", "cosine", "constant"] = setting(
        "onecycle", "Schedule", "learning-rate schedule", rare=True
    )
    weight_decay: float = setting(0.0, "Weight decay", "Adam weight decay", low=0.0, presets={"best": 1e-5}, rare=True)
    # Every preset smooths: it adds a little accuracy at no cost.
    label_smoothing: float = setting(
        0.0,
        "Label smoothing",
        "cross-entropy label smoothing",
        low=0.0,
        below=1.0,
        presets={"quick": 0.1, "default": 0.1, "best": 0.1},
        rare=True,
    )
    # The default and best presets augment, so their models also read digits people draw.
    augment: bool = setting(
        False,
        "Augmentation",
        "random rotation, shift, scale and stroke thickness",
        presets={"default": True, "best": True},
        search={"quick": (False, True), "default": (False, True), "best": (False, True)},
    )
    # MNIST's test set is clean, and a model that ends on clean digits at the schedule's lowest rates scores
    # higher on it (bench/RESULTS.md, "Best preset: the last 2 epochs clean").
    clean_epochs: int = setting(
        0,
        "Clean epochs",
        "the last this many epochs train without augmentation",
        low=0,
        high=1000,
        presets={"best": 2},
        rare=True,
    )
    outlier_exposure: float = setting(
        0.0,
        "Outlier exposure",
        "weight of the loss that teaches non-digits (scribbles, digit pairs) to look like none; 0 is off",
        low=0.0,
        high=10.0,
        rare=True,
    )
    # The best preset's many epochs draw their curves well from fewer images: the rest are worth more as training.
    val_size: int = setting(
        5000,
        "Validation images",
        "training images held out for validation curves",
        low=0,
        high=30000,
        presets={"best": 1000},
        rare=True,
    )
    train_size: int = setting(
        0,
        "Training images",
        "train on only this many images (0: all not held out): a faster look, small sweeps",
        low=0,
        high=60000,
        stops=(1000, 2000, 5000, 10000, 20000, 0),
        zero="all",
        whole="images_per_epoch",
    )
    # A class experiment (Zhang et al., 2017): the network can still learn the training set by heart, never digits.
    shuffle_labels: bool = setting(
        False,
        "Shuffle labels",
        "train on the labels shuffled among the training images (validation keeps its own)",
        rare=True,
    )
    seed: int = setting(0, "Seed", "random seed; same seed, same model", low=0, high=2**32 - 1)
    device: str = setting("auto", "Device", "auto (CUDA, then MPS, then the CPU), cpu, cuda or mps", rare=True)

    def __post_init__(self) -> None:
        settings.check(self)

    @property
    def images_per_epoch(self) -> int:
        """The training images one epoch goes through: MNIST's 60,000 less the validation split, or train_size."""
        rest = TRAIN_IMAGES - self.val_size
        return min(rest, self.train_size) if self.train_size else rest

    @property
    def augmented_epochs(self) -> int:
        """How many epochs, from the first, train on augmented images: the rest are clean."""
        return max(self.epochs - self.clean_epochs, 0) if self.augment else 0

    def to_dict(self) -> dict:
        return asdict(self)


# Quick is above 99% in one epoch, so a sweep tries many settings; default is the committed model; best is as
# accurate as two conv layers get, in minutes on a CPU. Each setting declares its value in each of them.
PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    name: (settings.preset(ModelConfig, name), settings.preset(TrainConfig, name))
    for name in ("quick", "default", "best")
}


def run_settings() -> list[Setting]:
    """Every setting of a run, the training's then the model's (of the classes the presets are made of)."""
    model, train = PRESETS["quick"]
    return [*settings.declared(type(train)), *settings.declared(type(model))]


def preset_values(preset: str) -> dict[str, Any]:
    """Every setting's value in ``preset``, by name."""
    model, train = PRESETS[preset]
    return {**model.to_dict(), **train.to_dict()}


@dataclass
class Progress:
    """One report from the loop: after a batch (``kind="batch"``) and after every epoch (``kind="epoch"``).

    On the CPU every batch is reported; on an accelerator at most every ``REPORT_INTERVAL_S``
    and at each epoch's last batch (see ``Meter``). A batch report that carries ``val_loss``
    is a check within the epoch (``checks_per_epoch``).
    """

    kind: Literal["batch", "epoch"]
    epoch: int  # 1-based
    epochs: int
    batch: int  # 1-based, within the epoch
    batches: int
    loss: float  # running mean over the epoch so far
    accuracy: float  # running training accuracy over the epoch so far
    images_per_sec: float
    eta_s: float
    val_loss: float | None = None  # on epoch events, and on the batch events of a check within the epoch
    val_accuracy: float | None = None
    watch: list[list[float]] | None = None  # epoch events of a run given ``watch`` images: their 10 probabilities
    # Wherever there is a validation, the same measure on the first ``CHECK_IMAGES`` training images: ``loss`` and
    # ``accuracy`` above are a running mean over the epoch's batches, augmented and smoothed where the settings say.
    train_loss: float | None = None
    train_accuracy: float | None = None


@dataclass
class TrainResult:
    model: CNN
    history: list[dict] = field(default_factory=list)  # one dict per epoch: the epoch Progress as a dict
    seconds: float = 0.0


class TrainingCancelled(Exception):
    """Raised from inside the loop when ``should_stop`` said so; nothing is saved."""


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@functools.cache
def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 where the device computes in it natively, else None (float32 throughout).

    On a CPU without bfloat16 instructions autocast would emulate it and run slower
    than float32, so it is only turned on where oneDNN reports native support. The
    answer cannot change while the process runs, so each device is asked once.
    """
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device) -> torch.autocast:
    dtype = autocast_dtype(device)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def _sum_dtype(device: torch.device) -> torch.dtype:
    """float64 for sums kept on the device, so they equal Python's float sums; MPS has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


class _TrainingData(NamedTuple):
    """The training images where the model runs, the training split as rows of them, and the validation split."""

    images: torch.Tensor
    labels: torch.Tensor
    rows: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor


def _training_data(data: MNIST, config: TrainConfig, device: torch.device) -> _TrainingData:
    """Batches are gathered through ``rows``: on the CPU nothing is copied, and an accelerator holds one copy."""
    images, labels = data.train_images.to(device), data.train_labels.to(device)
    train_index, val_index = (index.to(device) for index in data.validation_indices(config.val_size, config.seed))
    if config.train_size:
        train_index = train_index[: config.train_size]
    if config.shuffle_labels:  # each training image gets another's label; the shared dataset stays as it is
        labels = labels.clone()
        order = torch.randperm(len(train_index), generator=torch.Generator().manual_seed(config.seed))
        labels[train_index] = labels[train_index[order.to(device)]]
    return _TrainingData(images, labels, train_index, images[val_index], labels[val_index])


def _make_optimizer(model: CNN, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    # The fused update is one kernel per weight instead of a dozen small ops (bench/RESULTS.md). Building any
    # torch.optim optimizer imports torch._dynamo (torch 2.14), fused or not: nothing here avoids that import.
    return torch.optim.Adam(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=device.type in ("cpu", "cuda")
    )


def _make_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _batch(
    train_data: _TrainingData, index: torch.Tensor, epoch: int, config: TrainConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch's images and labels, augmented in the epochs that are, and the non-digits that go with it.

    Outlier exposure makes as many non-digits as half the batch (``data.outliers``); without it
    there are none (zero rows). Everything is made on the device the batch is on.
    """
    x, y = train_data.images[index], train_data.labels[index]
    if epoch <= config.augmented_epochs:
        x = augment(x, generator, y)
    odd = outliers(x[: len(x) // 2], generator) if config.outlier_exposure else x[:0]
    return x, y, odd


def train_step(
    model: CNN,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
    y: torch.Tensor,
    odd: torch.Tensor,
    config: TrainConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One update; returns the loss and the digits' logits, left on the device."""
    with autocast(x.device):
        logits = model(torch.cat([x, odd]) if len(odd) else x)
    logits, odd_logits = logits[: len(y)], logits[len(y) :]
    loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
    if len(odd):  # cross-entropy to the uniform distribution on the outliers (Hendrycks et al., 2019)
        loss = loss - config.outlier_exposure * odd_logits.float().log_softmax(dim=1).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss, logits


REPORT_INTERVAL_S = 0.1  # on an accelerator, the least time between two batch reports


class Meter:
    """The running loss, accuracy and speed that reports carry.

    The sums stay on the device and are read only for a report: reading a GPU tensor waits
    for every queued batch, so there a batch is reported at most every ``interval`` seconds
    (and at each epoch's last batch). On the CPU the numbers are already at hand (interval 0).
    """

    epoch: int
    count: int  # images so far in this epoch
    loss_sum: torch.Tensor
    correct: torch.Tensor

    def __init__(self, device: torch.device, epochs: int, batches: int, images: int, interval: float) -> None:
        self.device, self.epochs, self.batches, self.images, self.interval = device, epochs, batches, images, interval
        self.started = self.reported = time.perf_counter()

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.count = epoch, 0
        self.loss_sum = torch.zeros((), dtype=_sum_dtype(self.device), device=self.device)
        self.correct = torch.zeros((), dtype=torch.int64, device=self.device)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss_sum += loss.detach().to(self.loss_sum.dtype) * len(labels)
        self.correct += (logits.argmax(1) == labels).sum()
        self.count += len(labels)

    def due(self, batch: int) -> bool:
        return batch == self.batches or time.perf_counter() - self.reported >= self.interval

    def report(
        self,
        kind: Literal["batch", "epoch"],
        batch: int,
        val_loss: float | None = None,
        val_accuracy: float | None = None,
        watch: list[list[float]] | None = None,
        train_loss: float | None = None,
        train_accuracy: float | None = None,
    ) -> Progress:
        loss, accuracy = self.loss_sum.item() / self.count, self.correct.item() / self.count
        self.reported = time.perf_counter()
        rate = ((self.epoch - 1) * self.images + self.count) / (self.reported - self.started)
        remaining = (self.epochs - self.epoch + 1) * self.images - self.count
        return Progress(
            kind,
            self.epoch,
            self.epochs,
            batch,
            self.batches,
            loss,
            accuracy,
            rate,
            remaining / rate,
            val_loss,
            val_accuracy,
            watch,
            train_loss,
            train_accuracy,
        )


# A one-epoch run would otherwise draw its validation curve as one point at the very end: runs of few epochs are
# also checked within each epoch, on the first ``CHECK_IMAGES`` validation images, so a Quick run has a curve.
CHECKS_PER_RUN = 4
CHECK_IMAGES = 1000  # validation images of a check within an epoch, and training images of every check


def checks_per_epoch(epochs: int) -> int:
    """Validations in each epoch, the one at its end included: ``CHECKS_PER_RUN`` over the run, at least one each."""
    return max(1, CHECKS_PER_RUN // epochs)


def check_batches(batches: int, epochs: int) -> set[int]:
    """The batches (1-based) after which a check within the epoch runs: evenly spaced, the last batch left out."""
    checks = checks_per_epoch(epochs)
    return {round(batches * k / checks) for k in range(1, checks)} - {0, batches}


@torch.inference_mode()
def _validate(model: CNN, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> tuple[float, float]:
    """Loss and accuracy as a test would measure them: evaluation mode, images as they are, labels unsmoothed."""
    training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=_sum_dtype(device), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    # Small chunks, so the widest model's activations stay small next to the model itself.
    for start in range(0, len(labels), 256):
        x, y = images[start : start + 256].to(device), labels[start : start + 256].to(device)
        with autocast(device):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").to(loss_sum.dtype)
        correct += (logits.argmax(1) == y).sum()
    model.train(training)
    return loss_sum.item() / max(len(labels), 1), correct.item() / max(len(labels), 1)


@torch.inference_mode()
def _watch(model: CNN, images: torch.Tensor | None, device: torch.device) -> list[list[float]] | None:
    """The watched images' probabilities, rounded to 4 places: enough for a chart, and small in a checkpoint."""
    if images is None:
        return None
    model.eval()
    probabilities = torch.softmax(model(images.to(device)).float(), dim=1).cpu()
    return probabilities.mul(1e4).round().div(1e4).tolist()


BATCH_NORM_IMAGES = 20000  # training digits that re-estimate batch norm's statistics after outlier exposure


@torch.no_grad()
def _digit_batch_norm(model: CNN, digits: torch.Tensor, device: torch.device) -> None:
    """Batch norm's running statistics measured again on digits alone.

    Under outlier exposure every batch is a third non-digits, so the statistics kept
    during training describe that mixture, and real digits are then normalised wrongly
    (bench/RESULTS.md has what this is worth on the test set).
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the batches below
    model.train()
    for batch in digits.split(500):
        model(batch.to(device))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()


def train(
    model_config: ModelConfig,
    config: TrainConfig,
    data: MNIST,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    watch: torch.Tensor | None = None,
) -> TrainResult:
    """Train a fresh CNN on MNIST's training set (less the validation split); same seed, same model.

    ``watch`` (normalized images, M x 1 x 28 x 28) are predicted after every epoch, into
    the epoch's report and history, so one can see them flip from wrong to right.
    """
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    generator = torch.Generator(device).manual_seed(config.seed)  # shuffles, augments and draws non-digits
    train_data = _training_data(data, config, device)
    model = CNN(model_config).to(device).to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(model, config, device)
    batches = math.ceil(len(train_data.rows) / config.batch_size)
    scheduler = _make_schedule(optimizer, config, batches * config.epochs)
    interval = 0.0 if device.type == "cpu" else REPORT_INTERVAL_S
    meter = Meter(device, config.epochs, batches, len(train_data.rows), interval)
    result = TrainResult(model=model)
    # Training images measured as validation is, so the two curves compare (see ``Progress.train_loss``).
    fixed = train_data.rows[:CHECK_IMAGES]
    check_images, check_labels = train_data.images[fixed], train_data.labels[fixed]
    within = check_batches(batches, config.epochs)

    for epoch in range(1, config.epochs + 1):
        model.train()
        meter.start_epoch(epoch)
        order = train_data.rows[torch.randperm(len(train_data.rows), generator=generator, device=device)]
        for batch, index in enumerate(order.split(config.batch_size), start=1):
            if should_stop is not None and should_stop():
                raise TrainingCancelled(f"cancelled in epoch {epoch}, batch {batch}")
            x, y, odd = _batch(train_data, index, epoch, config, generator)
            loss, logits = train_step(model, optimizer, scheduler, x, y, odd, config)
            meter.add(loss, logits, y)
            if on_progress is not None and batch in within and len(train_data.val_labels):
                val = _validate(
                    model, train_data.val_images[:CHECK_IMAGES], train_data.val_labels[:CHECK_IMAGES], device
                )
                same_way = _validate(model, check_images, check_labels, device)
                on_progress(meter.report("batch", batch, *val, None, *same_way))
            elif on_progress is not None and meter.due(batch):
                on_progress(meter.report("batch", batch))

        val_loss, val_accuracy = _validate(model, train_data.val_images, train_data.val_labels, device)
        report = meter.report(
            "epoch",
            batches,
            val_loss,
            val_accuracy,
            _watch(model, watch, device),
            *_validate(model, check_images, check_labels, device),
        )
        result.history.append(asdict(report))
        if on_progress is not None:
            on_progress(report)

    if config.outlier_exposure:
        _digit_batch_norm(model, train_data.images[train_data.rows[:BATCH_NORM_IMAGES]], device)
    result.seconds = time.perf_counter() - meter.started
    # Back to the plain layout, so checkpoints and callers see an ordinary CPU model.
    result.model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return result
