"""A server-wide training queue: one worker thread runs training jobs one at a time.

The dashboard serves many browser tabs from one process on a couple of CPU cores.
Two trainings at once would each run at half speed and fight over memory, so every
request goes through one queue: a job waits until the one ahead of it ends. The job
object is what a page watches: its status, every progress report (for live curves),
and the error of a failed run. Jobs live in the server process, not in a browser
session, so training carries on while the user looks at other pages.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from .checkpoints import Checkpoint, CheckpointError, checkpoint_path, new_run_name
from .data import MNIST, load_mnist
from .model import ModelConfig
from .runs import run_training
from .train import Progress, TrainConfig, TrainingCancelled
from .watch import WatchPanel, watch_panel

Status = Literal["queued", "running", "finished", "cancelled", "failed"]

# Training throughput in multiply-accumulates per second: the quick preset's ~7 s on a 2-core
# CPU. Only used until a finished run gives this machine's own figure.
DEFAULT_MACS_PER_SECOND = 1.4e11


@dataclass(eq=False)  # a job is itself, whatever its fields say
class Job:
    """One training request, from the queue to its checkpoint (or its error)."""

    name: str
    model_config: ModelConfig
    train_config: TrainConfig
    path: Path
    status: Status = "queued"
    events: list[Progress] = field(default_factory=list)  # appended by the worker, read by pages
    error: str = ""
    checkpoint: Checkpoint | None = None
    drawing: torch.Tensor | None = None  # the user's drawing (1, 28, 28), watched with the test panel
    watch: WatchPanel | None = None  # set when the job starts: the images whose predictions each epoch records
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.status in ("finished", "cancelled", "failed")

    @property
    def latest(self) -> Progress | None:
        return self.events[-1] if self.events else None

    def epochs(self) -> list[Progress]:
        """The end-of-epoch reports, which carry the validation metrics."""
        return [e for e in list(self.events) if e.kind == "epoch"]

    def cancel(self) -> None:
        """Ask the job to stop: a queued job never starts, a running one stops before its next batch."""
        self._stop.set()


class TrainingQueue:
    """Runs submitted jobs one after another in a single background thread.

    ``load_data`` is called in the worker, once per job, so a page that submits a
    job never waits for MNIST to load; pass a cached loader to share one copy.
    """

    def __init__(self, directory: Path | str, load_data: Callable[[], MNIST] = load_mnist) -> None:
        self.directory = Path(directory)
        self._load_data = load_data
        self._pending: queue.Queue[Job] = queue.Queue()
        self._jobs: list[Job] = []
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def submit(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        name: str | None = None,
        drawing: torch.Tensor | None = None,
    ) -> Job:
        """Queue a run; ``name`` (user-typed, validated) defaults to a fresh ``run-<date>-<time>``.

        Every job watches the test panel of ``watch.watch_panel`` learn, and ``drawing`` with it if given.

        Raises ``CheckpointError`` for an invalid name or one already taken by a
        checkpoint or by a job that has not finished yet.
        """
        with self._lock:
            taken = {job.name for job in self._jobs if not job.done}
            path = checkpoint_path(name or new_run_name(self.directory, taken), self.directory)
            if path.exists() or path.stem in taken:
                raise CheckpointError(f"{path.stem} is already taken; choose another run name")
            job = Job(path.stem, model_config, train_config, path, drawing=drawing)
            self._jobs.append(job)
            self._pending.put(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="training-queue", daemon=True)
                self._worker.start()
        return job

    def jobs(self) -> list[Job]:
        """Every job this server has been given, oldest first."""
        with self._lock:
            return list(self._jobs)

    def running(self) -> Job | None:
        return next((job for job in self.jobs() if job.status == "running"), None)

    def ahead_of(self, job: Job) -> list[Job]:
        """The unfinished jobs that will run before ``job``: what a queued user is waiting for."""
        jobs = self.jobs()
        return [j for j in jobs[: jobs.index(job)] if not j.done] if job in jobs else []

    def _work(self) -> None:
        while True:
            self._run(self._pending.get())

    def _run(self, job: Job) -> None:
        if job._stop.is_set():
            job.status = "cancelled"
            return
        job.status = "running"
        try:
            data = self._load_data()
            job.watch = watch_panel(data, job.drawing)
            job.checkpoint = run_training(
                job.model_config,
                job.train_config,
                data,
                job.path,
                on_progress=job.events.append,
                should_stop=job._stop.is_set,
                watch=job.watch,
            )
        except TrainingCancelled:
            job.status = "cancelled"
        except Exception as exc:  # the worker must survive any failure to run the next job
            job.error = f"{type(exc).__name__}: {exc}"
            job.status = "failed"
        else:
            job.status = "finished"


def multiply_accumulates(config: ModelConfig) -> int:
    """Multiply-accumulates of one forward pass for one image: what training time scales with."""
    k2 = config.kernel_size**2
    return (
        28 * 28 * k2 * config.conv1_channels
        + 14 * 14 * k2 * config.conv1_channels * config.conv2_channels
        + 7 * 7 * config.conv2_channels * config.hidden_units
        + config.hidden_units * 10
    )


def estimate_seconds(model_config: ModelConfig, train_config: TrainConfig, runs: list[dict] | None = None) -> float:
    """A rough training time, calibrated on the newest finished run in ``runs`` (see ``runs.read_runs``).

    Training costs about three forward passes per image (forward, and backward for
    inputs and weights), so time is that work divided by the machine's throughput.
    """
    macs_per_second = DEFAULT_MACS_PER_SECOND
    for run in runs or []:
        seconds = (run.get("metrics") or {}).get("train_seconds")
        if run.get("status") != "finished" or not seconds:
            continue
        try:
            done = TrainConfig(**run["train_config"])
            work = 3 * multiply_accumulates(ModelConfig(**run["model_config"])) * done.epochs * (60000 - done.val_size)
        except (KeyError, TypeError, ValueError):  # a line written by another version
            continue
        macs_per_second = work / seconds
        break
    images = train_config.epochs * (60000 - train_config.val_size)
    return 3 * multiply_accumulates(model_config) * images / macs_per_second
