"""``python -m mnist_core fetch | train | finetune | evaluate | predict | explain | embed | compare | sweep | export``.

Exit status: 0 on success, 2 on a user error (one line on stderr says what is
wrong), 130 when training is interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

import numpy as np
import torch
from tqdm import tqdm

from . import settings
from .checkpoints import Checkpoint, CheckpointError, load_checkpoint, store_digit_score
from .data import MNIST, DataError, fetch, load_mnist
from .evaluate import Evaluation
from .explain import METHODS, RECOMMENDED
from .files import write_atomically
from .images import FORMAT_NAMES, ImageError
from .inference import forward_batches
from .model import ModelConfig
from .places import checkpoint_dir, data_root, default_checkpoint, release, reserve, reserve_new_run
from .runs import run_training
from .train import PRESETS, Progress, TrainConfig, TrainingCancelled, pick_device, preset_values, run_settings
from .watch import watch_panel

if TYPE_CHECKING:
    import optuna


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
        help=f"data folder holding MNIST/raw (default: $MNIST_ROOT or {data_root()})",
    )


def _add_checkpoint(parser: argparse.ArgumentParser, option: bool = False) -> None:
    """The model to use: a positional argument, or ``--checkpoint`` where image files come first."""
    help = f"checkpoint file or sweep trial STUDY:TRIAL (default: {default_checkpoint()})"
    if option:
        parser.add_argument("--checkpoint", type=Path, default=None, help=help)
    else:
        parser.add_argument("checkpoint", nargs="?", type=Path, default=None, help=help)
    _add_trial_source(parser)


def _add_trial_source(parser: argparse.ArgumentParser) -> None:
    """Where a trial reference ``STUDY:TRIAL`` is looked up (see ``trials``)."""
    parser.add_argument(
        "--storage",
        default=os.environ.get("MNIST_SWEEP_STORAGE"),
        help="the sweep storage a STUDY:TRIAL reference is looked up in (default: $MNIST_SWEEP_STORAGE, else "
        "the journal in the checkpoints folder)",
    )
    parser.add_argument(
        "--artifacts",
        default=os.environ.get("MNIST_SWEEP_ARTIFACTS"),
        help="the shared folder a sweep uploaded its checkpoints to (default: $MNIST_SWEEP_ARTIFACTS)",
    )


def _resolve_trials(args: argparse.Namespace) -> None:
    """Replace each trial reference among the models a command was given by its checkpoint, fetched once."""
    from .trials import fetch, is_reference

    for name in ("checkpoint", "a", "b"):
        value = getattr(args, name, None)
        if isinstance(value, Path) and is_reference(str(value)):
            setattr(args, name, fetch(str(value), args.storage, args.artifacts))


def _add_out(parser: argparse.ArgumentParser, help: str, required: bool = False) -> None:
    parser.add_argument("--out", type=Path, required=required, default=None, help=help)
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _check_out(args: argparse.Namespace) -> None:
    """Refuse ``--out`` before any work: an existing file (unless ``--overwrite``), or anything but a file."""
    out: Path | None = args.out
    if out is None or not (out.exists() or out.is_symlink()):
        return
    if not out.is_file():
        raise UserError(f"{out} exists and is not a file; choose another --out")
    if not args.overwrite:
        raise UserError(f"{out} already exists; add --overwrite to replace it, or choose another --out")


def _write_out(args: argparse.Namespace, data: bytes) -> None:
    """Write ``--out`` whole or not at all; without ``--overwrite`` a file that appeared meanwhile is kept."""
    try:
        write_atomically(args.out, data, args.overwrite)
    except FileExistsError:
        raise UserError(f"{args.out} already exists; add --overwrite to replace it, or choose another --out") from None
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected on/off, got {text!r}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, not {text!r}")
    return value


def _seconds(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text!r}")
    return value


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, as its declaration says; unset flags keep the preset's value."""
    quick = preset_values("quick")
    for s in run_settings():
        values = s.bounds() or ("on or off" if s.base is bool else "")
        help = f"{s.help}{'; ' + values if values else ''} (quick preset: {quick[s.name]})"
        parser.add_argument(
            f"--{s.name.replace('_', '-')}",
            type=_bool if s.base is bool else _finite if s.base is float else s.base,
            choices=s.choices or None,
            default=None,
            help=help.replace("%", "%%"),  # argparse formats help with %
        )


def _epochs(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 1-100, not {value}")
    return value


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

    p = commands.add_parser(
        "finetune",
        help="teach a model a handwriting: fine-tune it on a folder of samples, mixed with MNIST",
        description="Fine-tune a checkpoint on a sample set (DIR/<digit>/<name>.png, the layout torchvision's "
        "ImageFolder reads) mixed with MNIST training digits, and save the new model. The samples' accuracy "
        "is measured on samples not trained on (3-fold over the set).",
    )
    _add_checkpoint(p)
    p.add_argument("--samples", type=Path, required=True, help="the sample set's folder: DIR/<digit>/<name>.png")
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    p.add_argument("--epochs", type=_epochs, default=None, help="fine-tuning epochs, 1-100 (default: 3)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--json",
        action="store_true",
        help='end with one JSON line: "checkpoint", "samples", "seconds", "mnist_accuracy" and "samples_accuracy" '
        '(each "before" and "after")',
    )
    _add_root(p)

    p = commands.add_parser("evaluate", help="test-set accuracy, per-class metrics and confusion matrix")
    _add_checkpoint(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    _add_root(p)

    p = commands.add_parser("predict", help="read digits and numbers from image files")
    p.add_argument("images", nargs="+", type=Path, help=f"image files ({FORMAT_NAMES})")
    _add_checkpoint(p, option=True)
    p.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object per image, one per line: "number", "digit" (when exactly one), '
        '"digits" with boxes, "lines" (each line\'s number, top to bottom)',
    )

    p = commands.add_parser("export", help="write a checkpoint as ONNX or TorchScript, for other runtimes")
    _add_checkpoint(p)
    p.add_argument(
        "--format",
        choices=("onnx", "torchscript"),
        default="onnx",
        help="onnx (onnxruntime, browsers, phones) or torchscript (libtorch); default: onnx",
    )
    _add_out(p, "file to write, e.g. model.onnx", required=True)

    p = commands.add_parser("compare", help="what run B fixed and broke relative to run A on the test set")
    p.add_argument("a", type=Path, help="checkpoint (or sweep trial STUDY:TRIAL) of run A, the baseline")
    p.add_argument("b", type=Path, help="checkpoint (or sweep trial STUDY:TRIAL) of run B")
    _add_trial_source(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    _add_root(p)

    p = commands.add_parser(
        "sweep",
        help="search hyperparameters with Optuna; every finished trial is a run",
        description="Search hyperparameters around a preset with Optuna. A setting flag (say --epochs 2) "
        "fixes that setting in every trial; the others are searched.",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=20,
        help="finished (complete or pruned) trials the study should have, all workers together (default: 20)",
    )
    p.add_argument("--timeout", type=_seconds, default=None, help="start no new trial after this many seconds")
    p.add_argument("--study", default="sweep", help="study name; the same name resumes or joins it (default: sweep)")
    p.add_argument(
        "--storage",
        default=os.environ.get("MNIST_SWEEP_STORAGE"),
        help="journal:PATH (Optuna's journal file) or a database URL such as sqlite:///sweeps.db or "
        "postgresql://user@host/db; workers given the same storage share the study "
        f"(default: $MNIST_SWEEP_STORAGE, else journal:{checkpoint_dir()}/sweeps.journal)",
    )
    p.add_argument(
        "--artifacts",
        default=os.environ.get("MNIST_SWEEP_ARTIFACTS"),
        help="a folder every worker can reach: each finished trial's checkpoint is uploaded there, so any "
        "machine can use it as STUDY:TRIAL (default: $MNIST_SWEEP_ARTIFACTS)",
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        default=10,
        help="with a database storage, seconds between a running trial's heartbeats; a trial silent for three is "
        "taken as dead, failed and run again by another worker (default: 10)",
    )
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default="quick", help="search around this preset (default: quick)"
    )
    _add_config_flags(p)  # each one given fixes that setting in every trial instead of searching it
    p.add_argument("--json", action="store_true", help="end with one JSON line: the best trial and every trial")
    _add_root(p)

    p = commands.add_parser("explain", help="which pixels made the model say its digit (an attribution map)")
    p.add_argument("image", type=Path, help="image file of a digit or a number (PNG, JPEG, GIF, BMP, ...)")
    _add_checkpoint(p, option=True)
    p.add_argument(
        "--method",
        choices=list(METHODS),
        default=RECOMMENDED,
        help=f"attribution method (default: {RECOMMENDED})",
    )
    p.add_argument(
        "--target", type=int, choices=range(10), default=None, help="digit to explain (default: the predicted one)"
    )
    p.add_argument(
        "--against", type=int, choices=range(10), default=None, help="why the target and not this digit (a contrast)"
    )
    _add_out(p, "write the maps over the 28x28 inputs as a PNG here")
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"path", "number", "digit", "target", "against", "method", "map", "digits", "error"}',
    )

    p = commands.add_parser("embed", help="a 2-D map of the test images from the model's penultimate layer (CSV)")
    _add_checkpoint(p)
    p.add_argument(
        "--method", choices=["pca", "umap"], default="pca", help="pca (instant) or umap (slower; default: pca)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the projection; same seed, same map")
    _add_out(p, "CSV file to write (default: standard output)")
    _add_root(p)

    p = commands.add_parser(
        "refit", help='fit a checkpoint\'s "not a digit" score again and store it in the file, all else kept'
    )
    _add_checkpoint(p)
    _add_root(p)

    for name, command in commands.choices.items():
        command.set_defaults(run=COMMANDS[name])
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


def _given(args: argparse.Namespace) -> dict:
    """The settings given as flags."""
    return {s.name: getattr(args, s.name) for s in run_settings() if getattr(args, s.name) is not None}


def cmd_train(args: argparse.Namespace) -> None:
    (base_model, base_train), given = PRESETS[args.preset], _given(args)
    try:
        model_config, train_config = settings.apply(base_model, given), settings.apply(base_train, given)
    except ValueError as exc:
        raise UserError(str(exc)) from None
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
        model_config,
        train_config,
        data,
        out,
        on_progress,
        overwrite=args.overwrite,
        reserved=True,
        watch=watch_panel(data),
    )
    bar.close()
    m = checkpoint.metrics
    print(
        f"test accuracy {m['test_accuracy']:.2%} ({m['test_errors']} errors), trained in {m['train_seconds']:.1f} s, "
        f"{m['parameters']:,} parameters; saved {out}"
    )


def cmd_finetune(args: argparse.Namespace) -> None:
    from .finetune import EPOCHS, finetune_checkpoint
    from .samples import read_set

    base = load_checkpoint(args.checkpoint)
    if not args.samples.is_dir():
        raise UserError(f"{args.samples}: not a folder of samples (DIR/<digit>/<name>.png)")
    samples = read_set(args.samples)
    for message in samples.skipped:
        print(f"skipped {message}", file=sys.stderr)
    if not len(samples):
        raise UserError(f"{args.samples}: no samples to learn from (DIR/<digit>/<name>.png)")
    out = reserve(args.out, args.overwrite)
    try:
        data = load_mnist(args.root)
        bar = tqdm(total=1.0, unit="run", dynamic_ncols=True, bar_format="{l_bar}{bar}| {elapsed}<{remaining}")

        def on_progress(p: Progress) -> None:
            bar.update(((p.epoch - 1) * p.batches + p.batch) / (p.epochs * p.batches) - bar.n)

        epochs = args.epochs or EPOCHS
        result = finetune_checkpoint(
            base, samples, args.samples.name, data, out, epochs, args.overwrite, True, on_progress
        )
        bar.close()
    finally:
        release(out)
    accuracy, mine = result.mnist_accuracy, result.samples_accuracy
    held_out = f"{mine['after']:.1%}" if isinstance(mine["after"], float) else "not measured (under 3 samples)"
    print(
        f"fine-tuned {base.name} on {result.samples} samples in {result.seconds:.1f} s: MNIST test accuracy "
        f"{accuracy['before']:.2%} -> {accuracy['after']:.2%}; samples {mine['before']:.1%} -> {held_out} "
        f"(on samples not trained on, 3-fold); saved {out}"
    )
    if args.json:
        print(json.dumps(result.summary()))


def _measure(checkpoint: Checkpoint, data: MNIST) -> tuple[Evaluation, float | None]:
    """The model on the test set, and the share of its digits that the "not a digit" score would refuse (None
    without a score). One forward pass gives both: the score reads the maps the logits come from, so a second pass
    would only repeat work (bench/RESULTS.md has the times)."""
    from .predict import digit_score

    score = digit_score(checkpoint)
    logits, refused = [], []
    for maps, batch_logits in forward_batches(checkpoint.model, data.test_images):  # maps are never all held
        logits.append(batch_logits)
        if score is not None:
            refused.append(~score.is_digit(maps))
    result = Evaluation(labels=data.test_labels, probabilities=torch.cat(logits).softmax(dim=1))
    return result, float(torch.cat(refused).float().mean()) if refused else None


def cmd_evaluate(args: argparse.Namespace) -> None:
    checkpoint = load_checkpoint(args.checkpoint)
    data = load_mnist(args.root)
    result, rejected = _measure(checkpoint, data)
    recorded = result.wrong_record(checkpoint.metrics)
    if recorded is not None:
        print(
            f"warning: {_shown(checkpoint.path)}: its file records {recorded:.2%} test accuracy, "
            f"but it scores {result.accuracy:.2%} on the {len(result.labels):,} test images",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps({**result.summary(), "rejected": rejected}, allow_nan=False))
        return
    print(
        f"{checkpoint.path}: accuracy {result.accuracy:.2%} on {len(result.labels):,} test images, "
        f"{len(result.error_indices)} errors"
    )
    if rejected is not None:
        print(f"{rejected:.2%} of the test digits would be refused as not a digit")
    print()
    print("digit  precision  recall     f1  support")
    for row in result.per_class():
        print(
            f"{row['digit']:>5}  {row['precision']:>9.4f}  {row['recall']:>6.4f}  {row['f1']:.4f}  {row['support']:>7}"
        )
    print("\nconfusion matrix (rows: true digit, columns: predicted)")
    print("     " + "".join(f"{d:>6}" for d in range(10)))
    for d, row in enumerate(result.confusion.tolist()):
        print(f"{d:>5}" + "".join(f"{n:>6}" for n in row))


def _shown(path: Path) -> str:
    """A file name as text that can always be printed: bytes that are not UTF-8 are shown as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _record(path: Path, checkpoint: Checkpoint) -> dict:
    """One image's JSON record. It has the same fields whatever the image held, null where one does not apply,
    so a script reads every record the same way; "error" says why no number was read."""
    from .predict import predict  # imports OpenCV: only for this command, so the others start without it

    nothing: dict[str, object] = {"digit": None, "number": None, "probabilities": None, "digits": [], "lines": []}
    try:
        [prediction] = predict([path], checkpoint)
    except ImageError as exc:
        return {"path": _shown(path), **nothing, "error": str(exc)}
    if not all(math.isfinite(p) for r in prediction.digits for p in r.probabilities):  # a broken model's NaN
        error = "the model's output is not a number (NaN); is the checkpoint damaged?"
        return {"path": _shown(path), **nothing, "error": error}
    return {
        "path": _shown(path),
        "digit": prediction.digit,
        "number": prediction.number,
        "probabilities": prediction.probabilities,
        "digits": [{"digit": r.digit, "probabilities": r.probabilities, "box": list(r.box)} for r in prediction.digits],
        "lines": prediction.lines,
        "error": prediction.error,
    }


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import NOT_A_DIGIT

    checkpoint = load_checkpoint(args.checkpoint)
    failed = False
    if not args.json:
        print(f"{'image':<40} number  confidence")
    for path in args.images:
        record = _record(path, checkpoint)
        failed = failed or record["error"] is not None
        if args.json:
            print(json.dumps(record, allow_nan=False), flush=True)
            continue
        name = f"{record['path']!s:<40}"
        digits = cast(list[dict], record["digits"])
        if record["error"] == NOT_A_DIGIT and digits:
            closest = digits[0]
            print(f"{name} -       not a digit (closest: {closest['digit']}, {max(closest['probabilities']):.1%})")
        elif record["error"] is not None:
            print(f"{name} -       {record['error']}")
        else:
            sure = min(max(d["probabilities"]) for d in digits)
            print(f"{name} {record['number']!s:<7} {sure:.1%}")
    return 2 if failed else 0


def cmd_export(args: argparse.Namespace) -> None:
    from .export import exported, run_exported  # onnx and its exporter load only for this command

    _check_out(args)
    model = load_checkpoint(args.checkpoint).model
    _write_out(args, exported(model, args.format))
    out = args.out
    # The file is checked by its own runtime against the checkpoint, on random inputs in the model's range.
    images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        expected = model(images).softmax(dim=1).numpy()
    difference = float(abs(run_exported(out, images, args.format) - expected).max())
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {args.format}); input (N, 1, 28, 28) in [-1, 1], "
        f"output 10 probabilities; largest difference from the checkpoint on 64 inputs: {difference:.1e}"
    )


def cmd_compare(args: argparse.Namespace) -> None:
    from .compare import compare, settings_diff

    a, b = load_checkpoint(args.a), load_checkpoint(args.b)
    data = load_mnist(args.root)
    comparison = compare(a, b, data.test_images, data.test_labels)
    diff = settings_diff([a, b])
    if args.json:
        print(json.dumps({"a": str(args.a), "b": str(args.b), **comparison.summary(), "settings_diff": diff}))
        return
    summary = comparison.summary()
    print(f"A {args.a}: accuracy {summary['accuracy']['a']:.2%}")
    print(f"B {args.b}: accuracy {summary['accuracy']['b']:.2%}")
    print(f"agreement {summary['agreement']:.2%} of {len(comparison.a.labels):,} test images")
    for label, indices in (
        ("fixed (A wrong, B right)", summary["fixed"]),
        ("broken (A right, B wrong)", summary["broken"]),
    ):
        shown = ", ".join(map(str, indices[:20])) + (", ..." if len(indices) > 20 else "")
        print(f"{label}: {len(indices)}" + (f": {shown}" if indices else ""))
    print("settings that differ:" if diff else "settings: identical")
    for field, (value_a, value_b) in diff.items():
        print(f"  {field}: {value_a} -> {value_b}")


def describe_trial(trial: optuna.trial.FrozenTrial) -> str:
    """One line for a finished trial, as ``sweep`` prints it when the trial ends."""
    from optuna.trial import TrialState

    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    if trial.state == TrialState.COMPLETE:
        outcome = f"val accuracy {trial.value:.2%}, test {trial.user_attrs['test_accuracy']:.2%}"
    elif trial.state == TrialState.PRUNED and trial.value is not None:
        outcome = f"pruned at val accuracy {trial.value:.2%}"  # Optuna keeps the last value reported
    else:
        outcome = trial.state.name.lower()
    return f"trial {trial.number}: {outcome} ({params})"


def cmd_sweep(args: argparse.Namespace) -> None:
    import optuna

    from .sweep import SweepError, run_sweep, summary

    # One line per trial, printed below; a trial's error ends the command in one line, without Optuna's traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    fixed = _given(args)

    def on_trial(trial: optuna.trial.FrozenTrial) -> None:
        print(describe_trial(trial), flush=True)

    # SIGTERM (a service stopped, a worker's machine shut down) cancels the trial in flight at its next batch, which
    # Optuna marks failed, and ends the command as Ctrl-C does. An exception raised by the signal handler itself
    # could land anywhere: in Optuna's bookkeeping, or in a finalizer that swallows it and lets the sweep go on.
    interrupted = False

    def terminated(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGTERM, terminated)
    if args.heartbeat < 1:
        raise UserError(f"--heartbeat must be 1 second or more, not {args.heartbeat}")

    try:
        study = run_sweep(
            args.trials,
            lambda: load_mnist(args.root),
            checkpoint_dir(),
            study_name=args.study,
            storage=args.storage,
            preset=args.preset,
            fixed=fixed,
            timeout=args.timeout,
            on_trial=on_trial,
            heartbeat=args.heartbeat,
            artifacts=args.artifacts,
            should_stop=lambda: interrupted,
        )
    except SweepError as exc:
        raise UserError(str(exc)) from None
    except TrainingCancelled:
        raise KeyboardInterrupt from None
    if interrupted:  # between two trials
        raise KeyboardInterrupt
    result = summary(study)
    if args.json:
        print(json.dumps(result))
    elif result["best"] is not None:
        best = result["best"]
        print(f"best: trial {best['trial']}, val accuracy {best['value']:.2%}, {best['checkpoint']}")


def cmd_explain(args: argparse.Namespace) -> int:
    """A map for each digit read (the closest digit's, for a piece that is not one), as ``predict`` reads them."""
    from PIL import Image

    from .explain import attribute, distance_to_digits, overlay
    from .predict import NOT_A_DIGIT, predict

    _check_out(args)
    checkpoint = load_checkpoint(args.checkpoint)
    [prediction] = predict([args.image], checkpoint)
    readings = prediction.digits
    if not readings:
        raise UserError(f"{args.image}: {prediction.error}")
    images = torch.stack([r.image for r in readings])
    targets = [r.digit if args.target is None else args.target for r in readings]
    against = None if args.against is None else [args.against] * len(readings)
    maps = attribute(checkpoint.model, images, targets, args.method, against=against)
    refused = distance_to_digits(checkpoint, images) if any(not r.is_digit for r in readings) else None
    records = []
    for i, reading in enumerate(readings):
        record = {"digit": reading.digit, "is_digit": reading.is_digit, "probabilities": reading.probabilities}
        record |= {"target": targets[i], "against": args.against, "map": maps[i].tolist()}
        if refused is not None and not reading.is_digit:
            record |= {"distance": round(float(refused[0][i]), 3), "threshold": round(refused[1], 3)}
        records.append(record)
    if args.out is not None:
        picture = io.BytesIO()
        pictures = [overlay(r.image, m, scale=10) for r, m in zip(readings, maps)]
        Image.fromarray(np.concatenate(pictures, axis=1)).save(picture, format="PNG")
        _write_out(args, picture.getvalue())
    if args.json:
        single = records[0] if len(records) == 1 else {}
        print(
            json.dumps(
                {
                    "path": str(args.image),
                    "number": prediction.number,
                    "digit": prediction.digit,
                    "target": single.get("target"),
                    "against": args.against,
                    "method": args.method,
                    "map": single.get("map"),
                    "digits": records,
                    "error": prediction.error,
                }
            )
        )
        return 2 if prediction.error else 0
    said = "not a digit" if prediction.error == NOT_A_DIGIT else f"{'number' if len(readings) > 1 else 'digit'} "
    print(f"{args.image}: {said}{prediction.number or ''}" + (f"; maps written to {args.out}" if args.out else ""))
    for record, attribution in zip(records, maps):
        target, total = record["target"], attribution.abs().sum().item() or 1.0
        question = f"{target} and not {args.against}" if args.against is not None else f"{target}"
        closest = (
            ""
            if record["is_digit"] or "distance" not in record
            else f" (closest; distance to training digits {record['distance']}, threshold {record['threshold']})"
        )
        print(
            f"  {record['digit']}{closest}: {args.method} map for {question}: "
            f"{attribution.clamp(min=0).sum().item() / total:.0%} of its weight supports {target}"
        )
    return 2 if prediction.error else 0


def cmd_embed(args: argparse.Namespace) -> None:
    import csv

    from .embed import hidden_layer
    from .projection import project

    _check_out(args)
    checkpoint = load_checkpoint(args.checkpoint)
    data = load_mnist(args.root)
    hidden, predictions = [], []  # one pass gives both the map's features and the predictions
    for maps, logits in forward_batches(checkpoint.model, data.test_images):
        hidden.append(hidden_layer(checkpoint.model, maps))
        predictions += logits.argmax(dim=1).tolist()
    points = project(np.concatenate(hidden), args.method, args.seed)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["index", "x", "y", "label", "prediction"])
    for index, ((x, y), label) in enumerate(zip(points.tolist(), data.test_labels.tolist())):
        writer.writerow([index, f"{x:.5g}", f"{y:.5g}", label, predictions[index]])
    if args.out is None:
        sys.stdout.write(table.getvalue())
        return
    _write_out(args, table.getvalue().encode())
    print(f"{len(points):,} test images mapped by {args.method}; written to {args.out}")


def cmd_refit(args: argparse.Namespace) -> None:
    from .ood import fit_digit_score

    checkpoint = load_checkpoint(args.checkpoint)
    data = load_mnist(args.root)
    config = checkpoint.train_config
    score = fit_digit_score(checkpoint.model, data, config.val_size, config.seed)
    store_digit_score(checkpoint.path, score.to_dict())
    _, refused = _measure(load_checkpoint(checkpoint.path), data)  # read back: what predict will use
    print(f"stored a new digit score in {checkpoint.path}: {refused:.2%} of the test digits would be refused")


# What each command runs; build_parser gives every subcommand its entry, so a command without one fails at once.
COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {
    "fetch": cmd_fetch,
    "train": cmd_train,
    "finetune": cmd_finetune,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "export": cmd_export,
    "compare": cmd_compare,
    "sweep": cmd_sweep,
    "explain": cmd_explain,
    "embed": cmd_embed,
    "refit": cmd_refit,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _resolve_trials(args)
        return args.run(args) or 0
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


def run() -> NoReturn:
    """The command's entry point (``python -m mnist_core``, ``mnist-lab``): main, then exit at once.

    Freezing the heap spares the interpreter's exit a last garbage collection over every
    object torch created, a noticeable share of a quick training run (bench/RESULTS.md).
    """
    code = main()
    gc.freeze()
    sys.exit(code)
