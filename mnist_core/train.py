"""The training loop: Adam, cross-entropy, batches drawn from shuffled in-memory tensors.

The loop reports through one callback, so the command line's progress bar and the
dashboard's live curves watch the same thing, and it checks a stop flag between
batches, so a user can cancel without losing anything but the run.

Speed (measured in ``bench/``): the model runs in channels-last memory layout, which
oneDNN's convolutions prefer (about 1.3x on a 2-core CPU), and under bfloat16 autocast
where the hardware has bfloat16 arithmetic (about 1.8x more); weights, optimizer state
and the loss stay in float32, so accuracy is unchanged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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
    """One report from the loop: after every batch (``kind="batch"``) and every epoch (``kind="epoch"``)."""

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


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 where the device computes in it natively, else None (float32 throughout).

    On a CPU without bfloat16 instructions autocast would emulate it and run slower
    than float32, so it is only turned on where oneDNN reports native support.
    """
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _autocast(device: torch.device) -> torch.autocast:
    dtype = autocast_dtype(device)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


@torch.inference_mode()
def _validate(model: CNN, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> tuple[float, float]:
    model.eval()
    loss_sum, correct = 0.0, 0
    # Small chunks: a 2,000-image chunk held 0.4 GB per activation for the best preset's model.
    for start in range(0, len(labels), 256):
        x, y = images[start : start + 256].to(device), labels[start : start + 256].to(device)
        with _autocast(device):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    return loss_sum / max(len(labels), 1), correct / max(len(labels), 1)


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
    during training describe that mixture, and real digits are then normalised wrongly:
    the default preset with outlier exposure 0.5 measured 98.38% on the MNIST test set
    as trained and 99.32% once its statistics came from 20,000 training digits.
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
    generator = torch.Generator().manual_seed(config.seed)
    device = pick_device(config.device)
    train_index, val_index = data.validation_indices(config.val_size, config.seed)
    if config.train_size:
        train_index = train_index[: config.train_size]
    val_x, val_y = data.train_images[val_index], data.train_labels[val_index]
    if device.type == "cpu":  # batches are gathered from the full set, so nothing is copied
        train_x, train_y = data.train_images, data.train_labels
    else:  # only the training split goes to the accelerator
        train_x, train_y = data.train_images[train_index].to(device), data.train_labels[train_index].to(device)
        train_index = torch.arange(len(train_index), device=device)

    model = CNN(model_config).to(device).to(memory_format=torch.channels_last)
    # The fused update is one kernel per weight instead of a dozen small ops: on a 2-core CPU a step of
    # the quick preset's model took 1.3-1.9 ms instead of 5.9-7.4 (a tenth of its training time).
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=device.type in ("cpu", "cuda")
    )
    batches = math.ceil(len(train_index) / config.batch_size)
    total_steps = batches * config.epochs
    scheduler: torch.optim.lr_scheduler.LRScheduler
    if config.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    elif config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    result = TrainResult(model=model)
    started = time.perf_counter()
    seen = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = train_index[torch.randperm(len(train_index), generator=generator).to(device)]
        loss_sum, correct, count = 0.0, 0, 0
        for batch in range(1, batches + 1):
            if should_stop is not None and should_stop():
                raise TrainingCancelled(f"cancelled in epoch {epoch}, batch {batch}")
            index = order[(batch - 1) * config.batch_size : batch * config.batch_size]
            x, y = train_x[index], train_y[index]
            if epoch <= config.augmented_epochs:
                x = augment(x.cpu(), generator, y.cpu()).to(device)
            odd = outliers(x[: len(x) // 2].cpu(), generator).to(device) if config.outlier_exposure else x[:0]
            with _autocast(device):
                logits = model(torch.cat([x, odd]) if len(odd) else x)
            logits, odd_logits = logits[: len(y)], logits[len(y) :]
            loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            if len(odd):  # cross-entropy to the uniform distribution on the outliers (Hendrycks et al., 2019)
                loss = loss - config.outlier_exposure * odd_logits.float().log_softmax(dim=1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()

            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
            seen += len(y)
            elapsed = time.perf_counter() - started
            rate = seen / elapsed
            if on_progress is not None:
                remaining = (config.epochs - epoch) * len(train_index) + len(train_index) - count
                on_progress(
                    Progress(
                        "batch",
                        epoch,
                        config.epochs,
                        batch,
                        batches,
                        loss_sum / count,
                        correct / count,
                        rate,
                        remaining / rate,
                    )
                )

        val_loss, val_accuracy = _validate(model, val_x, val_y, device)
        elapsed = time.perf_counter() - started
        report = Progress(
            "epoch",
            epoch,
            config.epochs,
            batches,
            batches,
            loss_sum / count,
            correct / count,
            seen / elapsed,
            (config.epochs - epoch) * len(train_index) / (seen / elapsed),
            val_loss,
            val_accuracy,
            _watch(model, watch, device),
        )
        result.history.append(asdict(report))
        if on_progress is not None:
            on_progress(report)

    if config.outlier_exposure:
        _digit_batch_norm(model, train_x[train_index[:BATCH_NORM_IMAGES]], device)
    result.seconds = time.perf_counter() - started
    # Back to the plain layout, so checkpoints and callers see an ordinary CPU model.
    result.model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return result
