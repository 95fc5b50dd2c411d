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

from .checkpoints import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .data import MNIST
from .evaluate import evaluate
from .model import ModelConfig
from .ood import fit_digit_score
from .train import Progress, TrainConfig, TrainingCancelled, train

RUN_LOG = "runs.jsonl"
_log_lock = threading.Lock()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
) -> Checkpoint:
    """Train, evaluate on the test set, save to ``path`` and log the run; return the saved checkpoint.

    Raises ``TrainingCancelled`` when ``should_stop`` fired, and re-raises whatever
    else went wrong; either way no checkpoint file is left behind and the log says so.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path.name} already exists; choose another run name")
    directory, name = path.parent, path.stem
    _log(
        directory,
        {
            "name": name,
            "status": "running",
            "started": _now(),
            "pid": os.getpid(),
            "model_config": model_config.to_dict(),
            "train_config": train_config.to_dict(),
        },
    )
    try:
        result = train(model_config, train_config, data, on_progress, should_stop)
        test = evaluate(result.model, data.test_images, data.test_labels)
        metrics = {
            "test_accuracy": test.accuracy,
            "test_errors": len(test.error_indices),
            "val_accuracy": result.history[-1]["val_accuracy"],
            "train_seconds": result.seconds,
            "parameters": result.model.num_parameters,
        }
        score = fit_digit_score(result.model, data, train_config.val_size, train_config.seed)
        save_checkpoint(
            path, result.model, train_config, metrics, result.history, data.sha256, overwrite, score.to_dict()
        )
    except TrainingCancelled as exc:
        _log(directory, {"name": name, "status": "cancelled", "ended": _now(), "error": str(exc)})
        raise
    except BaseException as exc:  # KeyboardInterrupt included: the log must still say the run ended
        _log(directory, {"name": name, "status": "failed", "ended": _now(), "error": f"{type(exc).__name__}: {exc}"})
        raise
    _log(directory, {"name": name, "status": "finished", "ended": _now(), "metrics": metrics})
    return load_checkpoint(path)


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_runs(directory: Path | str) -> list[dict]:
    """Every logged run, newest first: its settings, status, end time, metrics or error, merged from its lines."""
    log = Path(directory) / RUN_LOG
    if not log.is_file():
        return []
    runs: dict[str, dict] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a killed process
            continue
        if not isinstance(entry, dict) or "name" not in entry:
            continue
        if entry.get("status") == "running":
            runs.pop(entry["name"], None)  # the name was reused after an earlier failure: a new run
        runs.setdefault(entry["name"], {}).update(entry)
    for run in runs.values():
        if run.get("status") == "running" and not _alive(run.get("pid")):
            run["status"] = "interrupted"
            run["error"] = "the training process stopped before the run ended"
    return sorted(runs.values(), key=lambda r: r.get("started", ""), reverse=True)
