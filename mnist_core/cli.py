"""``python -m mnist_core fetch | train | evaluate | predict``.

Exit status: 0 on success, 2 on a user error (one line on stderr says what is
wrong), 130 when training is interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import NoReturn

import torch
from tqdm import tqdm

from .checkpoints import (
    CheckpointError,
    checkpoint_dir,
    default_checkpoint,
    load_checkpoint,
    release,
    reserve,
    reserve_new_run,
)
from .data import DataError, default_root, fetch, load_mnist
from .evaluate import evaluate
from .images import FORMAT_NAMES, ImageError
from .model import ModelConfig
from .predict import predict
from .runs import run_training
from .train import PRESETS, SCHEDULES, Progress, TrainConfig, pick_device


class UserError(Exception):
    """Anything the user can fix: reported as one line on stderr with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is one line on stderr, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help=f"data folder holding MNIST/raw (default: $MNIST_ROOT or {default_root()})",
    )


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected on/off, got {text!r}")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ModelConfig and TrainConfig field; unset flags keep the preset's value."""
    quick_model, quick_train = PRESETS["quick"]
    helps = {
        "conv1_channels": "filters in the first conv layer",
        "conv2_channels": "filters in the second conv layer",
        "kernel_size": "conv kernel size (3, 5 or 7)",
        "hidden_units": "units in the hidden fully connected layer",
        "dropout": "dropout probability before each fully connected layer",
        "batch_norm": "batch norm after each conv (on/off)",
        "epochs": "passes over the training set",
        "batch_size": "images per optimizer step",
        "lr": "Adam learning rate (the peak, for onecycle)",
        "schedule": f"learning-rate schedule: {', '.join(SCHEDULES)}",
        "weight_decay": "Adam weight decay",
        "label_smoothing": "cross-entropy label smoothing",
        "augment": "random rotation, shift, scale and stroke thickness (on/off)",
        "val_size": "training images held out for validation curves",
        "seed": "random seed; same seed, same model",
        "device": "auto, cpu, cuda or mps",
    }
    for config in (quick_model, quick_train):
        for f in dataclasses.fields(config):
            default = getattr(config, f.name)
            kind = _bool if isinstance(default, bool) else type(default)
            parser.add_argument(
                f"--{f.name.replace('_', '-')}",
                type=kind,
                default=None,
                help=f"{helps[f.name]} (quick preset: {default})",
            )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mnist_core", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("fetch", help="download and verify the four MNIST files")
    _add_root(p)

    p = commands.add_parser("train", help="train a CNN and save a checkpoint")
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="starting settings (default: quick)")
    _add_config_flags(p)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"checkpoint file to write (default: {checkpoint_dir()}/run-<date>-<time>.pt)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_root(p)

    p = commands.add_parser("evaluate", help="test-set accuracy, per-class metrics and confusion matrix")
    p.add_argument(
        "checkpoint",
        nargs="?",
        type=Path,
        default=None,
        help=f"checkpoint file (default: {default_checkpoint()})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    _add_root(p)

    p = commands.add_parser("predict", help="read digits from image files")
    p.add_argument("images", nargs="+", type=Path, help=f"image files ({FORMAT_NAMES})")
    p.add_argument("--checkpoint", type=Path, default=None, help=f"checkpoint file (default: {default_checkpoint()})")
    p.add_argument("--json", action="store_true", help="print one JSON object per image, one per line")
    return parser


def cmd_fetch(args: argparse.Namespace) -> None:
    bars: dict[str, tqdm] = {}

    def progress(name: str, done: int, total: int) -> None:
        bar = bars.setdefault(name, tqdm(total=total or None, desc=name, unit="B", unit_scale=True, leave=False))
        bar.update(done - bar.n)

    folder = fetch(args.root, progress)
    for bar in bars.values():
        bar.close()
    print(f"MNIST verified in {folder}")


def cmd_train(args: argparse.Namespace) -> None:
    base_model, base_train = PRESETS[args.preset]

    def overridden(config):
        changes = {
            f.name: getattr(args, f.name) for f in dataclasses.fields(config) if getattr(args, f.name) is not None
        }
        try:
            return dataclasses.replace(config, **changes)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    model_config, train_config = overridden(base_model), overridden(base_train)
    try:
        torch.empty(0, device=pick_device(train_config.device))
    except Exception as exc:  # torch says "no such device" in several exception types
        raise UserError(f"--device {train_config.device} cannot be used here: {str(exc).splitlines()[0]}") from None
    # Reserved before anything else happens, so a second run started in the same second gets another name.
    out = reserve_new_run() if args.out is None else reserve(args.out, args.overwrite)
    try:
        _train(args, model_config, train_config, out)
    finally:
        release(out)


def _train(args: argparse.Namespace, model_config: ModelConfig, train_config: TrainConfig, out: Path) -> None:
    """Training itself, once every setting is checked and ``out`` is reserved."""
    data = load_mnist(args.root)
    bar = tqdm(
        total=train_config.epochs,
        unit="epoch",
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
    )

    def on_progress(p: Progress) -> None:
        bar.set_postfix_str(
            f"epoch {p.epoch} batch {p.batch}/{p.batches} loss {p.loss:.3f} acc {p.accuracy:.2%} "
            f"{p.images_per_sec:,.0f} img/s",
            refresh=False,
        )
        bar.update(p.epoch - 1 + p.batch / p.batches - bar.n)
        if p.kind == "epoch":
            bar.write(
                f"epoch {p.epoch}/{p.epochs}: train loss {p.loss:.4f} acc {p.accuracy:.2%}, "
                f"val loss {p.val_loss:.4f} acc {p.val_accuracy:.2%}"
            )

    checkpoint = run_training(
        model_config, train_config, data, out, on_progress, overwrite=args.overwrite, reserved=True
    )
    bar.close()
    m = checkpoint.metrics
    print(
        f"test accuracy {m['test_accuracy']:.2%} ({m['test_errors']} errors), trained in {m['train_seconds']:.1f} s, "
        f"{m['parameters']:,} parameters; saved {out}"
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    checkpoint = load_checkpoint(args.checkpoint)
    data = load_mnist(args.root)
    result = evaluate(checkpoint.model, data.test_images, data.test_labels)
    if args.json:
        print(json.dumps(result.summary()))
        return
    print(
        f"{checkpoint.path}: accuracy {result.accuracy:.2%} on {len(result.labels):,} test images, "
        f"{len(result.error_indices)} errors\n"
    )
    print("digit  precision  recall     f1  support")
    for row in result.per_class():
        print(
            f"{row['digit']:>5}  {row['precision']:>9.4f}  {row['recall']:>6.4f}  {row['f1']:.4f}  {row['support']:>7}"
        )
    print("\nconfusion matrix (rows: true digit, columns: predicted)")
    print("     " + "".join(f"{d:>6}" for d in range(10)))
    for d, row in enumerate(result.confusion.tolist()):
        print(f"{d:>5}" + "".join(f"{n:>6}" for n in row))


def cmd_predict(args: argparse.Namespace) -> int:
    checkpoint = load_checkpoint(args.checkpoint)
    failed = False
    if not args.json:
        print(f"{'image':<40} digit  confidence")
    for path in args.images:
        try:
            [prediction] = predict([path], checkpoint)
        except ImageError as exc:
            failed = True
            record: dict[str, object] = {"path": str(path), "error": str(exc)}
        else:
            if prediction.digit is None:
                failed = True
                record = {"path": str(path), "digit": None, "error": "no digit found"}
            else:
                record = {"path": str(path), "digit": prediction.digit, "probabilities": prediction.probabilities}
        if args.json:
            print(json.dumps(record), flush=True)
        elif "error" in record:
            print(f"{path!s:<40} -      {record['error']}")
        else:
            print(f"{path!s:<40} {prediction.digit:<6} {max(prediction.probabilities or [0.0]):.1%}")
    return 2 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = {"fetch": cmd_fetch, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}[args.command]
    try:
        return command(args) or 0
    except (UserError, CheckpointError, DataError, ImageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the user named: missing, not a folder, no permission, disk full
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was saved", file=sys.stderr)
        return 130
