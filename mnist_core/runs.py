"""A training run from settings to saved checkpoint, and a log of every run, including the ones that failed.

The log (``runs.jsonl`` beside the checkpoints) is appended one JSON line at a time:
a "running" line when a run starts and a "finished", "cancelled" or "failed" line
when it ends. A run whose process was killed never writes its last line; it is
reported as "interrupted" once that process is gone, so the history always says
what happened and never shows a checkpoint that was not completely written.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch

from .checkpoints import (
    METRIC_CHECKS,
    Checkpoint,
    check_free_space,
    field_problem,
    load_checkpoint,
    save_checkpoint,
)
from .cost import CpuShare
from .data import MNIST
from .evaluate import evaluate
from .files import FileRefused, read_bounded
from .model import ModelConfig
from .ood import fit_digit_score
from .places import process_alive, release, reserve
from .train import Progress, TrainConfig, TrainingCancelled, pick_device, run_settings, train
from .watch import WatchPanel

RUN_LOG = "runs.jsonl"
_log_lock = threading.Lock()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def hardware(device_setting: str) -> dict:
    """What a run trains on, for its card beside the training time: the device's name, and the CPU cores when it
    is the CPU (a time means little without the machine it was taken on)."""
    device = pick_device(device_setting)
    if device.type == "cuda":
        return {"device": torch.cuda.get_device_name(device)}
    if device.type == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return {"device": "cpu", "cpu_cores": cores}
    return {"device": device.type}


def _log(directory: Path, entry: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with _log_lock, open(directory / RUN_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def run_training(
    model_config: ModelConfig,
    train_config: TrainConfig,
    data: MNIST,
    path: Path | str,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    overwrite: bool = False,
    reserved: bool = False,
    tags: dict | None = None,
    watch: WatchPanel | None = None,
) -> Checkpoint:
    """Train, evaluate on the test set, save to ``path`` and log the run; return the saved checkpoint.

    ``path`` is reserved (``places.reserve``) for the run's length, unless the caller
    already holds it (``reserved``: the caller reserved it, and releases it). Everything that
    can be checked is checked before training: the name, the file it would replace, the
    disk space. Raises ``TrainingCancelled`` when ``should_stop`` fired, and re-raises
    whatever else went wrong; either way no checkpoint file is left behind and the log says so.
    ``tags`` (say, a sweep's study and trial number) go into the log and the checkpoint; ``watch``,
    a panel predicted after every epoch (``train.train``), is saved with the checkpoint for replay.
    """
    path = Path(path)
    if not reserved:
        reserve(path, overwrite)
    try:
        check_free_space(path, model_config)
        return _run(model_config, train_config, data, path, on_progress, should_stop, overwrite, tags, watch)
    finally:
        if not reserved:
            release(path)


def _run(
    model_config: ModelConfig,
    train_config: TrainConfig,
    data: MNIST,
    path: Path,
    on_progress: Callable[[Progress], None] | None,
    should_stop: Callable[[], bool] | None,
    overwrite: bool,
    tags: dict | None,
    watch: WatchPanel | None,
) -> Checkpoint:
    directory, name = path.parent, path.stem
    _log(
        directory,
        {
            "name": name,
            "status": "running",
            "started": _now(),
            "pid": os.getpid(),
            "load": os.getloadavg()[0],  # how busy the machine was: the cost model separates it from its speed
            "model_config": model_config.to_dict(),
            "train_config": train_config.to_dict(),
            **({"tags": tags} if tags else {}),
        },
    )
    share = CpuShare()  # what the rest of the machine leaves this run: the history divides its time by it
    threads = torch.get_num_threads()  # and by what training on fewer threads than cores costs (``cost.thread_factor``)
    try:
        result = train(
            model_config, train_config, data, on_progress, should_stop, watch.images if watch is not None else None
        )
        test = evaluate(result.model, data.test_images, data.test_labels)
        metrics = {
            "test_accuracy": test.accuracy,
            "test_errors": len(test.error_indices),
            "val_accuracy": result.history[-1]["val_accuracy"],
            "train_seconds": result.seconds,
            "parameters": result.model.num_parameters,
            **hardware(train_config.device),
        }
        score = fit_digit_score(result.model, data, train_config.val_size, train_config.seed)
        save_checkpoint(
            path,
            result.model,
            train_config,
            metrics,
            result.history,
            data.sha256,
            overwrite,
            tags,
            watch=watch.to_payload() if watch is not None else None,
            digit_score=score.to_dict(),
        )
    except TrainingCancelled as exc:
        _log(directory, {"name": name, "status": "cancelled", "ended": _now(), "error": str(exc)})
        raise
    except BaseException as exc:  # KeyboardInterrupt included: the log must still say the run ended
        error = f"{type(exc).__name__}: {exc}"
        if path.exists():  # a failed --overwrite: what the history lists must match the folder
            error += f" (the earlier {path.name} is unchanged)"
        _log(directory, {"name": name, "status": "failed", "ended": _now(), "error": error})
        raise
    ended = {"status": "finished", "ended": _now(), "metrics": metrics, "slowdown": share.met(threads)}
    _log(directory, {"name": name, **ended, "threads": threads})
    return load_checkpoint(path)


STATUSES = ("running", "finished", "cancelled", "failed")
# Each known field of a log line and what it must be; lines written by other versions may carry more.
_TEXT = (lambda v: isinstance(v, str), "text")
_DICT = (lambda v: isinstance(v, dict), "a dict")
LINE_CHECKS = {
    "name": (lambda v: isinstance(v, str) and v != "", "a non-empty text"),
    "status": (lambda v: v in STATUSES, f"one of {', '.join(STATUSES)}"),
    "started": _TEXT,
    "ended": _TEXT,
    "error": _TEXT,
    "pid": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "model_config": _DICT,
    "train_config": _DICT,
    "metrics": _DICT,
}
MAX_LOG_BYTES = 16 * 2**20  # about 30,000 runs; older lines beyond that are not read


def _parse_line(line: bytes) -> tuple[dict | None, str | None]:
    """The log entry on this line, or why it cannot be used."""
    try:
        entry = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except (ValueError, RecursionError):  # JSON errors, 5,000-digit numbers, arrays nested 100,000 deep
        return None, "not a JSON record (a line cut short by a killed process?)"
    if not isinstance(entry, dict) or "name" not in entry:
        return None, "not a run record"
    problem = field_problem(entry, LINE_CHECKS, "the record") or field_problem(
        entry.get("metrics", {}), METRIC_CHECKS, "metrics"
    )
    return (None, problem) if problem else (entry, None)


def scan_runs(directory: Path | str) -> tuple[list[dict], list[str]]:
    """Every logged run, newest first, merged from its lines; and one message per log line that was skipped.

    Every line is checked (UTF-8, JSON, the type of each known field), so a damaged or
    hand-edited log costs its bad lines, never the page that shows the history.
    """
    log = Path(directory) / RUN_LOG
    if not os.path.lexists(log):
        return [], []
    try:
        content = read_bounded(log, MAX_LOG_BYTES, keep_end=True)
    except FileRefused as exc:
        return [], [str(exc)]
    skipped = []
    lines = content.split(b"\n")
    if len(content) == MAX_LOG_BYTES:  # the log is longer: its first line here is cut
        lines = lines[1:]
        skipped.append(f"{RUN_LOG}: only the newest {MAX_LOG_BYTES // 2**20} MB of the log were read")
    runs: dict[str, dict] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        entry, problem = _parse_line(line)
        if entry is None:
            skipped.append(f"{RUN_LOG} line {number}: {problem}")
            continue
        if entry.get("status") == "running":
            runs.pop(entry["name"], None)  # the name was reused after an earlier failure: a new run
        runs.setdefault(entry["name"], {}).update(entry)
    for run in runs.values():
        if run.get("status") == "running" and not process_alive(run.get("pid")):
            run["status"] = "interrupted"
            run["error"] = "the training process stopped before the run ended"
    return sorted(runs.values(), key=lambda r: r.get("started", ""), reverse=True), skipped


def read_runs(directory: Path | str) -> list[dict]:
    """Every logged run, newest first: its settings, status, end time, metrics or error, merged from its lines."""
    return scan_runs(directory)[0]


def log_not_started(path: Path | str, model_config: ModelConfig, train_config: TrainConfig, reason: str) -> None:
    """Log a queued run that ended before it began (cancelled, or dropped), so the history shows it too."""
    path = Path(path)
    _log(
        path.parent,
        {
            "name": path.stem,
            "status": "cancelled",
            "started": _now(),
            "ended": _now(),
            "model_config": model_config.to_dict(),
            "train_config": train_config.to_dict(),
            "error": reason,
        },
    )


def history_rows(runs: list[dict], active: str | None = None) -> list[dict]:
    """One row per run for a table: who it is, how it ended, its results, then its settings, then any error.

    Every declared setting is a column named for it, the rarely changed ones last.

    Values are ``None`` where a run has none (a cancelled run has no accuracy); a line
    damaged in any way still gives a row, with what could be read.
    """

    def section(run: dict, key: str) -> dict:
        value = run.get(key)
        return value if isinstance(value, dict) else {}

    def number(value: object) -> float | None:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    columns = sorted(run_settings(), key=lambda s: s.rare)
    rows = []
    for run in runs:
        metrics, values = section(run, "metrics"), {**section(run, "model_config"), **section(run, "train_config")}
        rows.append(
            {
                "active": str(run.get("name")) == active,
                "name": str(run.get("name", "")),
                "status": str(run.get("status", "unknown")),
                "test accuracy": number(metrics.get("test_accuracy")),
                "val accuracy": number(metrics.get("val_accuracy")),
                "seconds": number(metrics.get("train_seconds")),
                "started": str(run.get("started", "")).replace("T", " ")[:19],
                **{s.name: values.get(s.name) for s in columns},
                "error": str(run.get("error") or ""),
            }
        )
    return rows
