"""Fine-tuning a trained model on a user's own digits, without forgetting MNIST.

A few dozen samples alone would pull the model towards them and away from everything
else, so every batch mixes them with MNIST training digits (an eighth samples, the rest
MNIST), both augmented (``data.augment``) so that each sample is seen in many shapes
rather than learnt by heart. Only the classifier learns, at a small rate decaying to
zero: the conv layers keep the strokes MNIST taught them to see, and batch norm its
statistics, while what the model makes of those strokes moves as far as the samples
need. The samples' accuracy is measured the honest way, on samples not trained on:
k-fold over the set, each fold read by a model fine-tuned on the others.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from .data import MNIST, augment
from .evaluate import Evaluation, evaluate
from .inference import forward_batches
from .model import CNN
from .ood import fit_digit_score
from .places import release, reserve
from .samples import SampleSet
from .train import Meter, Progress, TrainConfig, TrainingCancelled, train_step

EPOCHS = 3
STEPS_PER_EPOCH = 20
# An eighth of each batch is samples, and only the classifier learns: with a quarter, or with the conv layers
# learning too, MNIST lost 0.1-0.2 points (bench/RESULTS.md, "Fine-tuning").
SAMPLES_PER_BATCH = 16
MNIST_PER_BATCH = 112
BATCH = SAMPLES_PER_BATCH + MNIST_PER_BATCH
LR = 2e-4
FOLDS = 3
# What the training queue expects a fine-tune to take before it starts, in seconds: training (its k-fold included),
# and evaluating (the base's digit score is kept) and saving (bench/RESULTS.md; bench/finetune.py measures the whole).
EXPECTED_SECONDS = (5.0, 1.5)


@dataclass
class Result:
    """What ``finetune_checkpoint`` made: the new checkpoint and the figures its ``--json`` line reports."""

    checkpoint: Checkpoint
    samples: int
    seconds: float
    mnist_accuracy: dict[str, float]  # before, after
    samples_accuracy: dict[str, float | str | None]  # before, after (None: too few samples for k-fold), method

    def summary(self) -> dict:
        return {
            "checkpoint": str(self.checkpoint.path),
            "samples": self.samples,
            "seconds": self.seconds,
            "mnist_accuracy": self.mnist_accuracy,
            "samples_accuracy": self.samples_accuracy,
        }


def _stage(on_progress: Callable[[Progress], None] | None, stage: int, stages: int) -> Callable[[Progress], None]:
    """Reports of one of several fine-tunes run in a row, numbered as epochs of the whole, so one bar covers all."""

    def report(p: Progress) -> None:
        if on_progress is not None:
            on_progress(replace(p, epoch=stage * p.epochs + p.epoch, epochs=stages * p.epochs))

    return report


def _freeze_batch_norm(model: CNN) -> None:
    """Batch norm in eval mode: its statistics stay MNIST's, which a batch a quarter samples would shift."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()


def finetune(
    model: CNN,
    images: torch.Tensor,
    labels: torch.Tensor,
    data: MNIST,
    rows: torch.Tensor,
    epochs: int = EPOCHS,
    seed: int = 0,
    label_smoothing: float = 0.0,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[CNN, list[dict]]:
    """A copy of ``model`` trained on ``images``/``labels`` (normalized, as ``samples.SampleSet`` holds them)
    mixed with MNIST's training images at ``rows``; and its history, one entry per epoch. Same seed, same model."""
    if not len(labels):
        raise ValueError("there are no samples to learn from")
    with torch.random.fork_rng():  # dropout draws from the global generator: seeded here, the caller's untouched
        torch.manual_seed(seed)
        return _finetune(model, images, labels, data, rows, epochs, seed, label_smoothing, on_progress, should_stop)


def _finetune(
    model: CNN,
    images: torch.Tensor,
    labels: torch.Tensor,
    data: MNIST,
    rows: torch.Tensor,
    epochs: int,
    seed: int,
    label_smoothing: float,
    on_progress: Callable[[Progress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> tuple[CNN, list[dict]]:
    generator = torch.Generator().manual_seed(seed)
    tuned = copy.deepcopy(model).train().to(memory_format=torch.channels_last)  # as train.train runs it
    _freeze_batch_norm(tuned)
    tuned.features.requires_grad_(False)  # the strokes MNIST taught it to see stay; how it reads them changes
    optimizer = torch.optim.Adam(tuned.classifier.parameters(), lr=LR)
    total = epochs * STEPS_PER_EPOCH
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    config = TrainConfig(label_smoothing=label_smoothing)  # what train_step reads: no outlier exposure here
    meter = Meter(torch.device("cpu"), epochs, STEPS_PER_EPOCH, STEPS_PER_EPOCH * BATCH, interval=0.0)
    history = []
    for epoch in range(1, epochs + 1):
        meter.start_epoch(epoch)
        for step in range(1, STEPS_PER_EPOCH + 1):
            if should_stop is not None and should_stop():
                raise TrainingCancelled(f"cancelled in epoch {epoch}, batch {step}")
            mine = torch.randint(len(labels), (SAMPLES_PER_BATCH,), generator=generator)
            theirs = rows[torch.randint(len(rows), (MNIST_PER_BATCH,), generator=generator)]
            x = torch.cat([augment(images[mine], generator), augment(data.train_images[theirs], generator)])
            y = torch.cat([labels[mine], data.train_labels[theirs]])
            x = x.contiguous(memory_format=torch.channels_last)
            meter.add(*train_step(tuned, optimizer, schedule, x, y, x[:0], config), y)
            if on_progress is not None:
                on_progress(meter.report("batch", step))
        report = meter.report("epoch", STEPS_PER_EPOCH)
        history.append(asdict(report))
        if on_progress is not None:
            on_progress(report)
    return tuned.to(memory_format=torch.contiguous_format).eval(), history


@torch.inference_mode()
def _before_and_after(base: CNN, tuned: CNN, data: MNIST) -> tuple[Evaluation, Evaluation]:
    """Both models on MNIST's test set. Only the classifier learnt, so the conv layers' maps are the same for
    both: each batch goes through them once, and through each model's classifier."""
    before, after = [], []
    for maps, logits in forward_batches(base, data.test_images):
        before.append(logits)
        after.append(tuned.classifier(maps).float())
    labels = data.test_labels.cpu()
    return (
        Evaluation(labels, torch.cat(before).softmax(dim=1)),
        Evaluation(labels, torch.cat(after).softmax(dim=1)),
    )


def folds(labels: torch.Tensor, k: int, seed: int) -> list[torch.Tensor]:
    """``k`` disjoint index sets covering the samples, each digit spread evenly over them."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    order = order[torch.argsort(labels[order], stable=True)]  # by digit, shuffled within each
    return [order[i::k] for i in range(k)]


def kfold_accuracy(
    model: CNN,
    samples: SampleSet,
    data: MNIST,
    rows: torch.Tensor,
    k: int = FOLDS,
    epochs: int = EPOCHS,
    label_smoothing: float = 0.0,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> float:
    """The share of samples read right by a model fine-tuned on the other folds: accuracy on samples not trained
    on. Progress is reported as the first ``k`` of ``k + 1`` stages (the last is the fine-tune on them all)."""
    right = 0
    for stage, held_out in enumerate(folds(samples.labels, k, seed=0)):
        keep = torch.ones(len(samples.labels), dtype=torch.bool)
        keep[held_out] = False
        tuned, _ = finetune(
            model,
            samples.images[keep],
            samples.labels[keep],
            data,
            rows,
            epochs,
            stage,
            label_smoothing,
            _stage(on_progress, stage, k + 1),
            should_stop,
        )
        held = evaluate(tuned, samples.images[held_out], samples.labels[held_out])
        right += int(held.predictions.eq(held.labels).sum())
    return right / len(samples.labels)


def finetune_checkpoint(
    base: Checkpoint,
    samples: SampleSet,
    set_name: str,
    data: MNIST,
    out: Path | str,
    epochs: int = EPOCHS,
    overwrite: bool = False,
    reserved: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Result:
    """Fine-tune ``base`` on ``samples`` (the set called ``set_name``) and save the model to ``out``.

    First the samples' accuracy on samples not trained on (k-fold, ``FOLDS`` folds when the
    set has that many samples, else skipped); then the fine-tune on them all, the MNIST test
    accuracy before and after, the "not a digit" score (the base's, whose conv layers the new
    model shares; fitted only where the base has none), and the checkpoint, saved as ``runs``
    saves a run: the base's settings, its history followed by the fine-tune's epochs (each
    naming the set and its size), and ``tags`` saying the same. ``out`` is reserved for the
    while (``places.reserve``) unless the caller holds it.
    """
    if not len(samples):
        raise ValueError(f"the set {set_name} has no samples to learn from")
    out = Path(out)
    if not reserved:
        reserve(out, overwrite)
    try:
        started = time.perf_counter()
        config = base.train_config
        rows = data.validation_indices(config.val_size, config.seed)[0]
        k = FOLDS if len(samples) >= FOLDS else 0
        kfold = (
            kfold_accuracy(base.model, samples, data, rows, k, epochs, config.label_smoothing, on_progress, should_stop)
            if k
            else None
        )
        model, history = finetune(
            base.model,
            samples.images,
            samples.labels,
            data,
            rows,
            epochs,
            k,
            config.label_smoothing,
            _stage(on_progress, k, k + 1),
            should_stop,
        )
        before, after = _before_and_after(base.model, model, data)
        # The score reads only the last conv maps, which did not change: the base's is the new model's.
        score = base.digit_score or fit_digit_score(model, data, config.val_size, config.seed).to_dict()
        done = len(base.history)
        about = {"set": set_name, "samples": len(samples)}
        history = [{**h, "epoch": done + h["epoch"], "epochs": done + epochs, "finetune": about} for h in history]
        seconds = time.perf_counter() - started
        metrics = {
            **base.metrics,
            "test_accuracy": after.accuracy,
            "test_errors": len(after.error_indices),
            "train_seconds": seconds,
        }
        tags = {"finetuned_from": base.name, "samples_set": set_name, "samples": len(samples)}
        save_checkpoint(
            out,
            model,
            config,
            metrics,
            [*base.history, *history],
            data.sha256,
            overwrite,
            tags,
            digit_score=score,
        )
    finally:
        if not reserved:
            release(out)

    return Result(
        load_checkpoint(out),
        len(samples),
        seconds,
        {"before": before.accuracy, "after": after.accuracy},
        {"before": evaluate(base.model, samples.images, samples.labels).accuracy, "after": kfold, "method": "k-fold"},
    )
