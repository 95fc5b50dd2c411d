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
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from .data import MNIST, augment, outliers
from .model import CNN, ModelConfig

TRAIN_IMAGES = 60000  # MNIST's training set, from which the validation split is held out

SCHEDULES = ("onecycle", "cosine", "constant")


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-3
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = False
    # The last this many epochs see the images as they are. MNIST's test set is clean, and a model that
    # ends on clean digits at the schedule's lowest rates scores higher on it (best preset, seed 0:
    # 99.52% augmented to the end, 99.63% with the last 2 epochs clean).
    clean_epochs: int = 0
    outlier_exposure: float = 0.0  # weight of the loss that pushes non-digits (data.outliers) to uniform; 0 is off
    val_size: int = 5000  # held out of the 60,000 training images for the curves
    train_size: int = 0  # train on only this many of the rest (0: all of them): a faster look, small sweeps
    seed: int = 0
    device: str = "auto"  # "auto" picks CUDA, then MPS, then the CPU

    def __post_init__(self) -> None:
        if not 1 <= self.epochs <= 1000:
            raise ValueError(f"epochs must be between 1 and 1000, got {self.epochs}")
        if not 1 <= self.batch_size <= 60000:
            raise ValueError(f"batch_size must be between 1 and 60000, got {self.batch_size}")
        if not 0 < self.lr <= 10:
            raise ValueError(f"lr must be in (0, 10], got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not all(math.isfinite(v) for v in (self.lr, self.weight_decay, self.label_smoothing)):
            raise ValueError("lr, weight_decay and label_smoothing must be finite numbers")
        if self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise ValueError("weight_decay must be >= 0 and label_smoothing in [0, 1)")
        if not 0 <= self.outlier_exposure <= 10 or not math.isfinite(self.outlier_exposure):
            raise ValueError(f"outlier_exposure must be between 0 and 10, got {self.outlier_exposure}")
        if not 0 <= self.clean_epochs <= 1000:
            raise ValueError(f"clean_epochs must be between 0 and 1000, got {self.clean_epochs}")
        if not 0 <= self.val_size <= 30000:
            raise ValueError(f"val_size must be between 0 and 30000, got {self.val_size}")
        if not 0 <= self.train_size <= 60000:
            raise ValueError(f"train_size must be between 0 and 60000, got {self.train_size}")

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


PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    # Above 99% in one epoch: half the time of the two epochs it replaced, so a sweep tries twice as
    # many settings. One epoch is too few for dropout to pay; label smoothing and the one-cycle peak of
    # 1e-2 were each measured better (bench/RESULTS.md).
    "quick": (
        ModelConfig(conv1_channels=16, conv2_channels=32, hidden_units=128, dropout=0.0),
        TrainConfig(epochs=1, batch_size=128, lr=1e-2, label_smoothing=0.1),
    ),
    # The committed default: augmented, so it also reads digits people draw.
    "default": (
        ModelConfig(conv1_channels=32, conv2_channels=64, hidden_units=128, dropout=0.25),
        TrainConfig(epochs=8, batch_size=128, lr=3e-3, augment=True, label_smoothing=0.1),
    ),
    # As accurate as two conv layers get. It holds out only 1,000 images for the curves: the other
    # 4,000 are worth more as training data. Its last 2 epochs are clean (see TrainConfig.clean_epochs).
    "best": (
        ModelConfig(conv1_channels=64, conv2_channels=128, hidden_units=256, dropout=0.3),
        TrainConfig(
            epochs=15,
            batch_size=128,
            lr=3e-3,
            augment=True,
            clean_epochs=2,
            label_smoothing=0.1,
            weight_decay=1e-5,
            val_size=1000,
        ),
    ),
}


@dataclass
class Progress:
    """One report from the loop: after a batch (``kind="batch"``) and after every epoch (``kind="epoch"``).

    On the CPU every batch is reported; on an accelerator at most every ``REPORT_INTERVAL_S``
    and at each epoch's last batch (see ``_Meter``).
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
    val_loss: float | None = None  # only on epoch events
    val_accuracy: float | None = None
    watch: list[list[float]] | None = None  # epoch events of a run given ``watch`` images: their 10 probabilities


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


def _autocast(device: torch.device) -> torch.autocast:
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


def _train_step(
    model: CNN,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
    y: torch.Tensor,
    odd: torch.Tensor,
    config: TrainConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One update; returns the loss and the digits' logits, left on the device."""
    with _autocast(x.device):
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


class _Meter:
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
        )


@torch.inference_mode()
def _validate(model: CNN, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> tuple[float, float]:
    model.eval()
    loss_sum = torch.zeros((), dtype=_sum_dtype(device), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    # Small chunks, so the widest model's activations stay small next to the model itself.
    for start in range(0, len(labels), 256):
        x, y = images[start : start + 256].to(device), labels[start : start + 256].to(device)
        with _autocast(device):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").to(loss_sum.dtype)
        correct += (logits.argmax(1) == y).sum()
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
    meter = _Meter(device, config.epochs, batches, len(train_data.rows), interval)
    result = TrainResult(model=model)

    for epoch in range(1, config.epochs + 1):
        model.train()
        meter.start_epoch(epoch)
        order = train_data.rows[torch.randperm(len(train_data.rows), generator=generator, device=device)]
        for batch, index in enumerate(order.split(config.batch_size), start=1):
            if should_stop is not None and should_stop():
                raise TrainingCancelled(f"cancelled in epoch {epoch}, batch {batch}")
            x, y, odd = _batch(train_data, index, epoch, config, generator)
            loss, logits = _train_step(model, optimizer, scheduler, x, y, odd, config)
            meter.add(loss, logits, y)
            if on_progress is not None and meter.due(batch):
                on_progress(meter.report("batch", batch))

        val_loss, val_accuracy = _validate(model, train_data.val_images, train_data.val_labels, device)
        report = meter.report("epoch", batches, val_loss, val_accuracy, _watch(model, watch, device))
        result.history.append(asdict(report))
        if on_progress is not None:
            on_progress(report)

    if config.outlier_exposure:
        _digit_batch_norm(model, train_data.images[train_data.rows[:BATCH_NORM_IMAGES]], device)
    result.seconds = time.perf_counter() - meter.started
    # Back to the plain layout, so checkpoints and callers see an ordinary CPU model.
    result.model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return result
