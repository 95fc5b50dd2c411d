"""A server-wide training queue: jobs run one at a time, each in a training process of its own.

The dashboard serves many browser tabs from one process on a couple of CPU cores.
Two trainings at once would each run at half speed and fight over memory, so every
request goes through one queue: a job waits until the one ahead of it ends. The job
object is what a page watches: its status, every progress report (for live curves),
and the error of a failed run. Jobs live in the server process, not in a browser
session, so training carries on while the user looks at other pages.

The training itself runs in a child process at a lower priority than the server, which
only relays its reports to the job: a heavy run never takes the CPU from the pages'
reruns, and a run that crashes, or is killed, fails its job and never the server.
"""

from __future__ import annotations

import functools
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Literal

import torch

from . import processes
from .checkpoints import Checkpoint, load_checkpoint
from .cost import Estimate, averaged, estimate, machine_speed, similar, slowdown_now, training_threads
from .data import MNIST, load_mnist
from .finetune import EXPECTED_SECONDS, finetune_checkpoint
from .model import ModelConfig
from .places import checkpoint_path, release, reserve, reserve_new_run
from .runs import log_not_started, run_training
from .samples import read_set
from .sweep import FINISHED, run_sweep, sampled_trials, typical_trial
from .train import Progress, TrainConfig, TrainingCancelled
from .watch import WatchPanel, watch_panel

Status = Literal["queued", "running", "finished", "cancelled", "failed"]
# What a page says a job is doing: its status, with "running" split into the steps a user waits through.
Phase = Literal["queued", "loading", "training", "evaluating", "finished", "cancelled", "failed"]

MAX_WAITING = 4  # queued jobs, beyond the running one: a bound on how long a new request can wait
ABANDON_AFTER_S = 600.0  # a queued job without a heartbeat for this long is dropped when its turn comes
# The training process yields the CPU to the pages' reruns: at the server's own priority a Quick run took a core
# from every drawing session (bench/class_load.py). UMAP's process (projection.BACKGROUND_NICENESS) comes after
# training.
TRAINING_NICENESS = 5
POLL_S = 0.2  # how often the server looks for a Cancel while the training process is silent
# Imported once by the fork server that starts the training processes, so that no run pays for them: this module,
# and torch._dynamo, which building any torch.optim optimizer imports (seconds, see train._make_optimizer).
PRELOAD = [__name__, "torch._dynamo"]

# A job's work, run in the training process: it trains on the data, reports as ``report(kind, value)`` (see
# ``_train_in_child``) and returns the checkpoint it saved, if any. It is sent to that process, so it is picklable:
# a module-level function, or a ``functools.partial`` of one.
Report = Callable[[str, object], None]
Task = Callable[[MNIST, Report, Callable[[], bool]], Path | None]
RECENT_S = 300.0  # how long a finished run's measured speed stands for the machine's (``measured_speed``)
# The first steps of each new shape in a process run several times slower than the rest: a run's pace is measured
# after them, and the cost model counts them in its start (``cost.STARTING_SECONDS``).
WARMUP_STEPS = 10
# The part of a run's loop over which its measured pace takes over from the forecast: up to the first validation
# within a one-epoch run (``train.checks_per_epoch``), a pause that a shorter measure would take for the pace.
PHASE_IN = 0.25


class QueueFull(RuntimeError):
    """The queue already holds ``MAX_WAITING`` waiting jobs; the message says so in the user's terms."""


@dataclass(eq=False)  # a job is itself, whatever its fields say
class Job:
    """One training request, from the queue to its checkpoint (or its error).

    ``status`` changes only under the job's lock, so a Cancel clicked in one session
    and the worker picking the job up never both win: a queued job that is cancelled
    is cancelled at once (and logged), and is never started.
    """

    name: str
    model_config: ModelConfig
    train_config: TrainConfig
    path: Path
    status: Status = "queued"
    events: list[Progress] = field(default_factory=list)  # appended by the worker, read by pages
    error: str = ""
    checkpoint: Checkpoint | None = None
    estimate: Estimate | None = None  # the cost model's forecast when the job was submitted
    started: float | None = None  # when the worker took it (time.time)
    ended: float | None = None
    last_heartbeat: float = field(default_factory=time.time)  # refreshed by its owner: see ``heartbeat``
    watch: WatchPanel | None = None  # set when the job starts: the images whose predictions each epoch records
    kind: Literal["run", "sweep", "teach"] = "run"  # a run's queue logs it if it never starts; the others log their own
    task: Task | None = field(default=None, repr=False)
    pid: int | None = None  # the training process, while it runs
    # Work made of several runs (a sweep's trials): how many there are and how many are done, so progress and
    # time left cover the whole of it. ``unit_done`` is the work's to call.
    units: int = 1
    units_done: int = 0
    _unit_mark: int = field(default=0, repr=False)  # len(events) when the last unit ended
    _unit_ended: float | None = field(default=None, repr=False)  # when (time.time)
    _loop_mark: tuple[float, float] | None = field(default=None, repr=False)  # whence the pace of the run in flight
    # is measured (``add``): when, and how much of its loop was done then
    _reported: float | None = field(default=None, repr=False)  # when the latest report came
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> bool:
        return self.status in ("finished", "cancelled", "failed")

    @property
    def latest(self) -> Progress | None:
        return self.events[-1] if self.events else None

    @property
    def phase(self) -> Phase:
        """``running`` told apart: loading data, in the training loop, or evaluating and saving after it."""
        if self.status != "running":
            return self.status
        latest = self.latest
        if latest is None:
            return "loading"
        if latest.kind == "epoch" and latest.epoch == latest.epochs:
            return "evaluating"
        return "training"

    @property
    def in_flight(self) -> float:
        """How much of the training loop of the run in flight is done, 0..1 (1 once it is evaluating)."""
        p = self.latest if len(self.events) > self._unit_mark else None
        return 0.0 if p is None else self._done(p)

    @property
    def fraction(self) -> float:
        """How much of the job is done, 0..1: of its one run, or of all its units (a sweep's trials)."""
        if self.status == "finished":
            return 1.0
        return min(1.0, (self.units_done + self.in_flight) / self.units)

    def unit_done(self) -> None:
        """One of the work's runs ended: progress and time left move on to the next."""
        self.units_done += 1
        self._unit_mark, self._unit_ended, self._loop_mark = len(self.events), time.time(), None

    @property
    def cancel_requested(self) -> bool:
        return self._stop.is_set()

    def epochs(self) -> list[Progress]:
        """The end-of-epoch reports, which carry the validation metrics."""
        return [e for e in list(self.events) if e.kind == "epoch"]

    def heartbeat(self) -> None:
        """Called by whoever owns the job, as long as it still wants it (``TrainingQueue``'s ``abandon_after_s``)."""
        self.last_heartbeat = time.time()

    def _forecast(self) -> Estimate:
        return self.estimate or estimate(self.model_config, self.train_config, slowed=1.0)

    def add(self, progress: Progress) -> None:
        """A report from the training process, timed: the one after a run's first ``WARMUP_STEPS`` steps marks where
        its loop runs at its pace, measured apart from the time the run took to start (``pace``)."""
        now, done = time.time(), self._done(progress)
        if self._loop_mark is None and done * progress.epochs * progress.batches >= WARMUP_STEPS:
            self._loop_mark = (now, done)
        self._reported = now
        self.events.append(progress)

    @staticmethod
    def _done(p: Progress) -> float:
        if p.kind == "epoch" and p.epoch == p.epochs:
            return 1.0
        return ((p.epoch - 1) * p.batches + p.batch) / (p.epochs * p.batches)

    @property
    def pace(self) -> float:
        """Measured over forecast time so far: above 1, the job runs slower than forecast (1 before any measure).

        A run is measured on its training loop after its first steps (``add``; reports not
        timed, on its time since it started), phased in over ``PHASE_IN`` of the loop, so the
        figure moves smoothly from the forecast to the measure instead of jumping with the
        first noisy batches; work of several runs (a sweep) as ``_sweep_pace`` says.
        """
        if self.started is None:
            return 1.0
        forecast, now = self._forecast(), self.ended or time.time()
        if self.status == "finished" and self.units == 1:
            return (now - self.started) / forecast.total
        if self.units > 1:
            return self._sweep_pace()
        measured, weight = self._measured()
        return weight * measured + (1 - weight)

    def _sweep_pace(self) -> float:
        """A sweep's pace: its time so far over the forecast work done, the finished trials' and, once past its
        first steps, the trial in flight's up to its last report; phased in over two trials' worth of work.

        Its trials differ from the mean one forecast (and some are pruned), so no one trial
        sets it; counting only finished ones moved the total by up to 0.82 of the sweep's time
        when a trial ended (bench/RESULTS.md).
        """
        forecast = self._forecast()
        done, until = forecast.repeated(self.units_done), self._unit_ended  # until is None before a trial ends
        in_flight = self._loop_mark is not None and self._reported is not None
        if in_flight and (until is None or (self._reported or 0.0) > until):
            done, until = done + self.in_flight * forecast.training, self._reported
        if until is None or self.started is None or done <= 0:
            return 1.0
        x = min(1.0, done / (2 * forecast.total))
        weight = x * x * (3 - 2 * x)
        return weight * (until - self.started) / done + (1 - weight)

    def _measured(self) -> tuple[float, float]:
        """The run in flight's measured pace, and how far it has taken over from the forecast (0..1, ``PHASE_IN``)."""
        forecast, now, done = self._forecast(), time.time(), self.in_flight
        if self._reported is None:  # reports not timed (added straight to the events): measured from the start
            expected, elapsed = forecast.loading + done * forecast.training, now - (self.started or now)
        elif self._loop_mark is None:  # starting, or its first steps: the forecast stands
            return 1.0, 0.0
        else:
            since, first = self._loop_mark
            done, expected = done - first, (done - first) * forecast.training
            elapsed = (self._reported if done + first >= 1 else now) - since  # the loop, up to its end
        if expected <= 0 or done <= 0:
            return 1.0, 0.0
        x = min(1.0, done / PHASE_IN)
        return elapsed / expected, x * x * (3 - 2 * x)  # eased in and out: the first few steps' measure is noisy

    @property
    def speed(self) -> float:
        """This machine's measured speed against the cost model's constants (``cost.Estimate.speed``), as this job
        runs: what a new run's estimate is scaled by, so that a new run of the same settings is forecast to take what
        this one is now expected to take in all (its time so far and its time left)."""
        forecast = self._forecast()
        if self.started is None or self.units > 1:
            return forecast.speed * self.pace
        took = (self.ended or time.time()) - self.started + self.remaining_seconds()
        return forecast.speed * took / forecast.total

    def remaining_seconds(self) -> float:
        """Seconds until the job ends: the forecast, scaled by the pace measured so far (``pace``)."""
        if self.done:
            return 0.0
        forecast, pace = self._forecast(), self.pace
        left = max(0, self.units - self.units_done)
        if self.started is None:
            return forecast.repeated(left)
        elapsed = time.time() - self.started
        if self.phase == "loading" and self.units_done == 0:  # what is left of the start, then the whole work
            return max(0.0, forecast.loading - elapsed) + left * forecast.work
        if self.units > 1:  # the trial in flight, then the rest (a sweep's process starts once)
            ahead = (1 - self.in_flight) * forecast.training + forecast.finishing
            return pace * (ahead + (left - 1) * forecast.work)
        if self.phase == "evaluating":  # the end's forecast, less the time since the loop's last report
            if self._reported is None:
                return max(0.0, forecast.total * pace - elapsed)
            return max(0.0, forecast.finishing * pace - (time.time() - self._reported))
        # Until the loop is measured, the run's total stays the forecast shown before it (or, once past that, what
        # is left of the work at the forecast pace); then the measure takes over as it accumulates.
        measured, weight = self._measured()
        ahead = (1 - self.in_flight) * forecast.training + forecast.finishing
        return max(0.0, weight * measured * ahead + (1 - weight) * max(forecast.total - elapsed, ahead))

    def cancel(self) -> None:
        """Stop the job: a queued one is cancelled now and never starts, a running one stops before its next batch."""
        self._stop.set()
        with self._lock:
            if self.status != "queued":
                return
            self._not_started("while waiting in the queue")
            self.status, self.ended = "cancelled", time.time()

    def _begin(self, abandon_after_s: float) -> bool:
        """The worker's side of ``cancel``: start the job unless it was cancelled or abandoned meanwhile."""
        with self._lock:
            if self.status != "queued":
                return False
            if time.time() - self.last_heartbeat <= abandon_after_s:
                self.status, self.started = "running", time.time()
                return True
            self.error = f"abandoned: no heartbeat from its owner for {abandon_after_s:.0f} s before its turn"
            self._not_started(self.error)
            self.status, self.ended = "cancelled", time.time()
            return False

    def _not_started(self, reason: str) -> None:
        """A run that ends before it began gives its name back and still appears in the run log, before it is
        marked done: whoever sees it done finds it in the log."""
        release(self.path)  # a sweep's path is the folder, which it never reserved: nothing happens
        if self.kind == "run":
            log_not_started(self.path, self.model_config, self.train_config, reason)


class TrainingQueue:
    """Runs submitted jobs one after another, each in a training process, from a single background thread.

    ``data`` is MNIST, or a function that loads it; either is sent to the training process
    (so a function must be picklable: a module-level one), where it is loaded once per job,
    so neither the server nor a page waits for it. At most ``max_waiting`` jobs wait behind the
    running one, and a waiting job whose owner stopped calling ``Job.heartbeat`` for
    ``abandon_after_s`` is dropped when its turn comes instead of running for nobody.
    """

    def __init__(
        self,
        directory: Path | str,
        data: MNIST | Callable[[], MNIST] = load_mnist,
        max_waiting: int = MAX_WAITING,
        abandon_after_s: float = ABANDON_AFTER_S,
    ) -> None:
        self.directory = Path(directory)
        self.max_waiting = max_waiting
        self.abandon_after_s = abandon_after_s
        self._data = data
        self._pending: queue.Queue[Job] = queue.Queue()
        self._jobs: list[Job] = []
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def submit(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        name: str | None = None,
        history: list[dict] | None = None,
        prefix: str = "run",
        drawing: torch.Tensor | None = None,
        forecast: Estimate | None = None,
    ) -> Job:
        """Queue a run; ``name`` (user-typed, validated) defaults to a fresh ``<prefix>-<date>-<time>``.

        Every job watches the test panel of ``watch.watch_panel`` learn, and ``drawing`` with it if given.
        ``forecast`` is the job's time estimate (the one the page showed); without it ``history``
        (``runs.read_runs``) calibrates one. Raises
        ``CheckpointError`` for an invalid name or one already taken by a checkpoint or
        by a job that has not finished yet, and ``QueueFull`` when too many jobs wait.
        """
        forecast = forecast or self.forecast(model_config, train_config, history)
        with self._lock:
            self._check_room()
            # Reserved until the job ends, so no other job, session or process can take the name.
            path = reserve(checkpoint_path(name, self.directory)) if name else reserve_new_run(self.directory, prefix)
            task = functools.partial(_train, model_config, train_config, path, drawing)
            job = Job(path.stem, model_config, train_config, path, estimate=forecast, task=task)
            self._enqueue(job)
        return job

    def submit_sweep(
        self,
        study: str,
        trials: int,
        storage: str | None = None,
        preset: str = "quick",
        fixed: dict | None = None,
        artifacts: str | None = None,
        units: int | None = None,
        forecast: Estimate | None = None,
    ) -> Job:
        """Queue a sweep (``sweep.run_sweep`` into this queue's folder) as the job ``sweep <study>``, with the same
        status, events and cancel as a run; ``units`` is how many trials it has left to run (default ``trials``),
        so progress and time left cover all of them; ``forecast`` is one trial's (``forecast_sweep``, as the page
        showed it)."""
        model_config, train_config = typical_trial(preset, fixed)
        forecast = forecast or self.forecast_sweep(preset, fixed, None)
        task = functools.partial(_sweep, trials, self.directory, study, storage, preset, fixed, artifacts)
        with self._lock:
            self._check_room()
            job = Job(
                f"sweep {study}", model_config, train_config, self.directory, estimate=forecast, kind="sweep", task=task
            )
            job.units = max(1, trials if units is None else units)
            self._enqueue(job)
        return job

    def submit_finetune(self, base: Checkpoint, samples: Path | str) -> Job:
        """Queue teaching ``base`` the sample set in the folder ``samples`` (``finetune.finetune_checkpoint``),
        saved as a fresh ``taught-<date>-<time>``; the set is read when the job starts, with what it holds then."""
        with self._lock:
            self._check_room()
            path = reserve_new_run(self.directory, "taught")
            task = functools.partial(_teach, base, Path(samples), path)
            forecast = Estimate(1.0, *EXPECTED_SECONDS)
            job = Job(path.stem, base.model_config, base.train_config, path, estimate=forecast, kind="teach", task=task)
            self._enqueue(job)
        return job

    def _check_room(self) -> None:
        if sum(job.status == "queued" for job in self._jobs) >= self.max_waiting:
            raise QueueFull(f"{self.max_waiting} runs are already waiting; start yours when one of them has begun")

    def _enqueue(self, job: Job) -> None:
        """Add a job (holding the lock) and start the worker on the first one."""
        self._jobs.append(job)
        self._pending.put(job)
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="training-queue", daemon=True)
            self._worker.start()

    def jobs(self) -> list[Job]:
        """Every job this server has been given, oldest first."""
        with self._lock:
            return list(self._jobs)

    def find(self, name: str) -> Job | None:
        """The newest job called ``name``: how a reloaded page finds the run it started."""
        return next((job for job in reversed(self.jobs()) if job.name == name), None)

    def running(self) -> Job | None:
        return next((job for job in self.jobs() if job.status == "running"), None)

    def measured_speed(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        history: list[dict] | None = None,
        within_s: float = RECENT_S,
    ) -> float | None:
        """This machine's speed now for a run of these settings, as training last measured it (``Job.speed``): the
        running job's, else that of the newest run of a similar size (``cost.similar``), else of any size, that
        finished in the last ``within_s`` seconds; None when none says how fast the machine is now.

        A run of another size measured the machine's load, not the cost model's error at
        this size: its speed is carried over by the ratio the history ``history``
        (``runs.read_runs``) sees between the two sizes (``cost.machine_speed``).
        """
        running = self.running()  # its forecast's speed until it measures its own
        measured = [running] if running is not None and running.kind != "teach" else []
        measured += [
            j
            for j in reversed(self.jobs())
            if j.status == "finished" and j.units == 1 and j.kind == "run" and time.time() - (j.ended or 0) < within_s
        ]
        if not measured:
            return None
        like = [j for j in measured[1:] if similar((j.model_config, j.train_config), (model_config, train_config))]
        job = measured[0] if running in measured or not like else like[0]
        if (job.model_config, job.train_config) == (model_config, train_config):
            return job.speed
        return (
            job.speed
            * machine_speed(history, model_config, train_config)
            / machine_speed(history, job.model_config, job.train_config)
        )

    def forecast(self, model_config: ModelConfig, train_config: TrainConfig, history: list[dict] | None) -> Estimate:
        """What a new run of these settings takes on this machine now: the speed training measures now
        (``measured_speed``), else the history ``history`` (``runs.read_runs``) slowed by the work on the machine, as
        a training process, niced and on the threads the other work leaves it, meets it (``cost.slowdown``)."""
        speed = self.measured_speed(model_config, train_config, history)
        since = self.quiet_since()
        threads = training_threads(torch.get_num_threads(), since=since)  # what a run started now trains on
        slowed = slowdown_now(TRAINING_NICENESS, threads, since)
        return estimate(model_config, train_config, history, slowed=slowed, speed=speed, threads=threads)

    def forecast_sweep(self, preset: str, fixed: dict | None, history: list[dict] | None) -> Estimate:
        """One trial of a sweep around ``preset``, on average over its search space (``cost.averaged`` over
        ``sweep.sampled_trials``), with the sweep's start: ``Estimate.repeated`` gives the whole sweep's."""
        typical = typical_trial(preset, fixed)
        return averaged(self.forecast(*typical, history), typical, sampled_trials(preset, fixed))

    def quiet_since(self) -> float:
        """When this queue's last training process ended: what the machine did before was this queue's own work,
        which the next run does not meet (``cost.busy_cores``)."""
        return max((job.ended or 0.0 for job in self.jobs() if job.done), default=0.0)

    def active(self) -> list[Job]:
        """The running job and the waiting ones, in the order they run: what every session sees."""
        return [job for job in self.jobs() if not job.done]

    def ahead_of(self, job: Job) -> list[Job]:
        """The unfinished jobs that will run before ``job``: what a queued user is waiting for."""
        jobs = self.jobs()
        return [j for j in jobs[: jobs.index(job)] if not j.done] if job in jobs else []

    def starts_in(self, job: Job) -> float:
        """Seconds until ``job`` starts: what is left of the running job plus the estimates of those between."""
        return sum(j.remaining_seconds() for j in self.ahead_of(job))

    def _work(self) -> None:
        while True:
            self._run(self._pending.get())

    def _run(self, job: Job) -> None:
        if not job._begin(self.abandon_after_s):
            return
        try:
            outcome, detail = self._in_child(job)
            if outcome == "finished" and isinstance(detail, Path):
                job.checkpoint = load_checkpoint(detail)
        except Exception as exc:  # the worker must survive any failure to run the next job
            outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            release(job.path)
        job.error = detail if outcome == "failed" and isinstance(detail, str) else ""
        job.status = outcome
        job.ended = time.time()

    def _in_child(self, job: Job) -> tuple[Status, object]:
        """Run the job's task in a training process, relaying its reports to the job; its outcome and the detail
        sent with it (the checkpoint's path, an error), or a failure if the process died without one."""
        context = processes.context(PRELOAD)
        stop = context.Event()
        reports, sender = context.Pipe(duplex=False)
        threads = training_threads(torch.get_num_threads(), since=self.quiet_since())
        child = context.Process(
            target=_train_in_child,
            args=(job.task, self._data, sender, stop, threads),
            name=f"training {job.name}",
            daemon=True,
        )
        processes.start(child)
        sender.close()  # the child holds its own end: once it exits, reading says so
        job.pid = child.pid
        try:
            while True:
                if job.cancel_requested:
                    stop.set()
                if not reports.poll(POLL_S):
                    continue
                try:
                    kind, value = reports.recv()
                except EOFError:
                    child.join()
                    return "failed", f"the training process stopped without a result ({_exit(child.exitcode)})"
                if kind == "progress":
                    job.add(value)
                elif kind == "watch":
                    job.watch = value
                elif kind == "unit":
                    job.unit_done()
                else:
                    child.join()
                    return kind, value
        finally:
            reports.close()
            job.pid = None


def _exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _train_in_child(
    task: Task, data: MNIST | Callable[[], MNIST], reports: Connection, stop: Event, threads: int
) -> None:
    """The training process: niced, on ``threads`` threads (``cost.training_threads``), it runs ``task`` and sends
    the server ``(kind, value)`` pairs: "watch" (the panel), "progress" (a ``train.Progress``), "unit" (a sweep's
    trial ended), then its outcome: "finished" (the checkpoint's path or None), "cancelled" or "failed" (the
    error)."""
    if hasattr(os, "nice"):
        os.nice(TRAINING_NICENESS)
    torch.set_num_threads(threads)

    def report(kind: str, value: object) -> None:
        reports.send((kind, value))

    try:
        path = task(data() if callable(data) else data, report, stop.is_set)
    except TrainingCancelled:
        report("cancelled", None)
    except Exception as exc:
        report("failed", f"{type(exc).__name__}: {exc}")
    else:
        report("finished", path)


def _train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    path: Path,
    drawing: torch.Tensor | None,
    data: MNIST,
    report: Report,
    should_stop: Callable[[], bool],
) -> Path:
    """A run's task: the test panel (and ``drawing``) watched as it learns; its checkpoint saved to ``path``."""
    watch = watch_panel(data, drawing)
    report("watch", watch)
    progress: Callable[[Progress], None] = functools.partial(report, "progress")
    run_training(model_config, train_config, data, path, progress, should_stop, reserved=True, watch=watch)
    return path


def _teach(
    base: Checkpoint, samples: Path, path: Path, data: MNIST, report: Report, should_stop: Callable[[], bool]
) -> Path:
    """A fine-tune's task: the sample set as it is now, taught to ``base``, saved to ``path``."""
    progress: Callable[[Progress], None] = functools.partial(report, "progress")
    finetune_checkpoint(
        base, read_set(samples), samples.name, data, path, reserved=True, on_progress=progress, should_stop=should_stop
    )
    return path


def _sweep(
    trials: int,
    directory: Path,
    study: str,
    storage: str | None,
    preset: str,
    fixed: dict | None,
    artifacts: str | None,
    data: MNIST,
    report: Report,
    should_stop: Callable[[], bool],
) -> None:
    """A sweep's task: ``sweep.run_sweep``, each finished trial reported as a "unit" done."""
    run_sweep(
        trials,
        data,
        directory,
        study,
        storage,
        preset=preset,
        fixed=fixed,
        on_progress=functools.partial(report, "progress"),
        on_trial=lambda trial: report("unit", None) if trial.state in FINISHED else None,
        should_stop=should_stop,
        artifacts=artifacts,
    )
    if should_stop():  # stopped between two trials: the sweep did not finish
        raise TrainingCancelled("stopped between trials")
