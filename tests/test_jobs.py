"""The training queue: one job at a time, cancellation and failures leave a consistent history."""

import functools
import os
import signal
import time
from pathlib import Path

import pytest
from synthetic_mnist import synthetic_mnist

from mnist_core import cost, jobs
from mnist_core.checkpoints import CheckpointError
from mnist_core.cost import Estimate
from mnist_core.data import MNIST
from mnist_core.jobs import TRAINING_NICENESS, Job, QueueFull, TrainingQueue
from mnist_core.model import ModelConfig
from mnist_core.runs import read_runs
from mnist_core.train import Progress, TrainConfig

TINY = ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16)


def tiny_train(**changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "batch_size": 64, "val_size": 500, **changes})


@pytest.fixture(scope="module")
def small() -> MNIST:
    """3,000 training and 1,000 test images made on the spot: enough to train, fast enough for every test."""
    return synthetic_mnist(3000, 1000)


def held(release: Path, data: MNIST) -> MNIST:
    """Loads ``data`` once the file ``release`` exists: a job's training process held at its start."""
    while not release.exists():
        time.sleep(0.01)
    return data


def broken_once(marker: Path, data: MNIST) -> MNIST:
    """``data`` with labels that do not exist the first time (cross-entropy fails in the first batch), then as is."""
    if marker.exists():
        return data
    marker.touch()
    return MNIST(
        data.train_images, data.train_labels.clone().fill_(10), data.test_images, data.test_labels, data.sha256
    )


def wait(job: Job, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not job.done:
        assert time.monotonic() < deadline, f"{job.name} still {job.status}"
        time.sleep(0.02)


@pytest.mark.slow
def test_jobs_run_one_at_a_time_in_submission_order(tmp_path, small):
    queue = TrainingQueue(tmp_path, data=functools.partial(held, tmp_path / "go", small))
    first = queue.submit(TINY, tiny_train(), name="first")
    second = queue.submit(TINY, tiny_train(), name="second")
    while first.status != "running":
        time.sleep(0.01)
    assert queue.ahead_of(second) == [first] and second.status == "queued"
    (tmp_path / "go").touch()
    wait(second)
    assert first.started < first.ended <= second.started  # type: ignore[operator]
    assert (first.status, second.status) == ("finished", "finished")
    assert second.checkpoint.path == tmp_path / "second.pt"
    assert second.checkpoint.metrics["test_accuracy"] > 0.5  # chance is 0.1
    assert [e.kind for e in first.events][-1] == "epoch" and first.epochs()[0].val_accuracy is not None
    assert {r["name"]: r["status"] for r in read_runs(tmp_path)} == {"first": "finished", "second": "finished"}


@pytest.mark.slow
def test_cancel_mid_epoch_leaves_no_checkpoint_and_the_next_run_works(tmp_path, small):
    queue = TrainingQueue(tmp_path, data=small)
    job = queue.submit(TINY, tiny_train(batch_size=8), name="stopped")
    while not job.events and not job.done:
        time.sleep(0.005)
    job.cancel()
    wait(job)
    assert job.status == "cancelled"
    assert not any(tmp_path.glob("stopped*")) and not any(tmp_path.glob(".*partial"))
    run = read_runs(tmp_path)[0]
    assert run["status"] == "cancelled" and "cancelled in epoch 1, batch" in run["error"]

    after = queue.submit(TINY, tiny_train())
    wait(after)
    assert after.status == "finished" and after.path.is_file()


@pytest.mark.slow
def test_a_queued_job_cancelled_before_it_starts_never_runs(tmp_path, small):
    queue = TrainingQueue(tmp_path, data=small)
    first = queue.submit(TINY, tiny_train(), name="first")
    skipped = queue.submit(TINY, tiny_train(), name="skipped")
    skipped.cancel()
    wait(first)
    wait(skipped)
    assert skipped.status == "cancelled" and not skipped.events
    assert {r["name"]: r["status"] for r in read_runs(tmp_path)} == {"first": "finished", "skipped": "cancelled"}


@pytest.mark.slow
def test_a_failing_job_records_its_error_and_the_next_job_works(tmp_path, small):
    queue = TrainingQueue(tmp_path, data=functools.partial(broken_once, tmp_path / "broken", small))
    failed = queue.submit(TINY, tiny_train(), name="broken")
    wait(failed)
    assert failed.status == "failed" and "out of bounds" in failed.error
    assert not failed.path.exists()
    assert read_runs(tmp_path)[0]["status"] == "failed" and "out of bounds" in read_runs(tmp_path)[0]["error"]

    fixed = queue.submit(TINY, tiny_train(), name="fixed")
    wait(fixed)
    assert fixed.status == "finished"


@pytest.mark.slow
def test_submit_rejects_bad_and_taken_names(tmp_path, small):
    queue = TrainingQueue(tmp_path, data=small)
    with pytest.raises(CheckpointError, match="invalid run name"):
        queue.submit(TINY, tiny_train(), name="../escape")
    job = queue.submit(TINY, tiny_train(), name="mine")
    with pytest.raises(CheckpointError, match="already taken"):
        queue.submit(TINY, tiny_train(), name="mine")
    wait(job)
    with pytest.raises(CheckpointError, match="already taken"):
        queue.submit(TINY, tiny_train(), name="mine")


@pytest.mark.slow
def test_automatic_names_stay_unique_while_jobs_wait(tmp_path, small):
    queue = TrainingQueue(tmp_path, data=small)
    jobs = [queue.submit(TINY, tiny_train()) for _ in range(3)]
    assert len({job.name for job in jobs}) == 3
    for job in jobs:  # none needs to train
        job.cancel()
        wait(job)


def blocked_queue(tmp_path, small, **options) -> tuple[TrainingQueue, Path]:
    """A queue whose jobs hold the worker (their training process loading data) until the returned file exists."""
    release = tmp_path / "release"
    return TrainingQueue(tmp_path, data=functools.partial(held, release, small), **options), release


@pytest.mark.slow
def test_cancelling_a_queued_job_takes_effect_at_once_and_is_logged(tmp_path, small):
    queue, release = blocked_queue(tmp_path, small)
    first = queue.submit(TINY, tiny_train(), name="first")
    waiting = queue.submit(TINY, tiny_train(), name="waiting")
    assert waiting.phase == "queued" and queue.starts_in(waiting) > 0
    waiting.cancel()  # from any session: the job object is shared
    assert waiting.status == "cancelled" and waiting.done
    assert {r["name"]: r["status"] for r in read_runs(tmp_path)}["waiting"] == "cancelled"
    assert queue.active() == [first]
    release.touch()
    wait(first)
    assert first.status == "finished" and not waiting.events and not waiting.path.exists()


@pytest.mark.slow
def test_the_queue_is_bounded(tmp_path, small):
    queue, release = blocked_queue(tmp_path, small, max_waiting=1)
    running = queue.submit(TINY, tiny_train(), name="running")
    while running.status != "running":
        time.sleep(0.01)
    waiting = queue.submit(TINY, tiny_train(), name="waiting")
    with pytest.raises(QueueFull, match="1 runs are already waiting"):
        queue.submit(TINY, tiny_train(), name="refused")
    assert [job.name for job in queue.active()] == ["running", "waiting"]
    waiting.cancel()
    running.cancel()
    release.touch()
    wait(running)


@pytest.mark.slow
def test_a_queued_job_nobody_watches_is_dropped_when_its_turn_comes(tmp_path, small):
    queue, release = blocked_queue(tmp_path, small, abandon_after_s=60)
    first = queue.submit(TINY, tiny_train(), name="first")
    watched = queue.submit(TINY, tiny_train(), name="watched")
    orphan = queue.submit(TINY, tiny_train(), name="orphan")
    orphan.last_heartbeat -= 120  # its owner (a browser tab) went away two minutes ago
    release.touch()
    wait(orphan)
    wait(watched)
    assert (watched.status, orphan.status) == ("finished", "cancelled")
    assert "no heartbeat from its owner" in orphan.error and not orphan.events
    runs = {r["name"]: r for r in read_runs(tmp_path)}
    assert runs["orphan"]["status"] == "cancelled" and "no heartbeat from its owner" in runs["orphan"]["error"]
    assert first.status == "finished"


@pytest.mark.slow
def test_a_reloaded_page_finds_its_job_by_name(tmp_path, small):
    queue = TrainingQueue(tmp_path, data=small)
    job = queue.submit(TINY, tiny_train(), prefix="custom")
    assert job.name.startswith("custom-") and queue.find(job.name) is job and queue.find("nope") is None
    job.cancel()
    wait(job)


def progress(kind: str, epoch: int, batch: int, epochs: int = 2, batches: int = 10) -> Progress:
    return Progress(kind, epoch, epochs, batch, batches, 0.5, 0.9, 1000.0, 1.0)  # type: ignore[arg-type]


def test_phase_fraction_and_time_left_follow_the_run(tmp_path):
    job = Job("x", TINY, tiny_train(epochs=2), tmp_path / "x.pt", estimate=Estimate(2.0, 100.0, 10.0))
    assert (job.phase, job.fraction, job.remaining_seconds()) == ("queued", 0.0, 112.0)
    job.status, job.started = "running", time.time()
    assert job.phase == "loading" and job.remaining_seconds() == pytest.approx(112.0, abs=1)  # the start's too
    job.events.append(progress("batch", 1, 5))
    assert job.phase == "training" and job.fraction == 0.25
    job.started -= (2.0 + 25.0) * 2  # loading and the first quarter took twice the forecast: so will the rest
    assert job.remaining_seconds() == pytest.approx(2 * (75.0 + 10.0), rel=0.01)
    job.events += [progress("epoch", 1, 10), progress("batch", 2, 10), progress("epoch", 2, 10)]
    assert (job.phase, job.fraction) == ("evaluating", 1.0)
    job.status = "finished"
    assert (job.phase, job.remaining_seconds()) == ("finished", 0.0)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no nice values on this system")
def test_training_runs_in_a_process_of_its_own_that_yields_the_cpu_to_the_pages(tmp_path, small):
    """A Quick run at the server's priority slowed every drawing session: training runs in a child process, niced;
    the server keeps its priority."""
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    queue, release = blocked_queue(tmp_path, small)
    job = queue.submit(TINY, tiny_train(), name="niced")
    deadline = time.monotonic() + 60
    while job.pid is None or os.getpriority(os.PRIO_PROCESS, job.pid) != min(mine + TRAINING_NICENESS, 19):
        assert time.monotonic() < deadline and not job.done, job.error
        time.sleep(0.01)
    assert job.pid != os.getpid()
    release.touch()
    wait(job)
    assert job.status == "finished" and os.getpriority(os.PRIO_PROCESS, 0) == mine


@pytest.mark.slow
def test_a_training_process_trains_on_the_cores_the_other_work_leaves_free(tmp_path, small, monkeypatch):
    """Beside two busy processes on two cores, two niced threads took three times as long as one: the training
    process gets one thread then, and every core on an idle machine; its log line says how many it had."""
    monkeypatch.setattr(cost.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(jobs.torch, "get_num_threads", lambda: 2)  # the tests' own processes run on one
    queue = TrainingQueue(tmp_path, data=small)
    looked_since = []
    for busy, name, threads in (((0.0, 0.0), "idle", 2), ((2.0, 0.0), "busy", 1), ((0.7, 0.3), "half", 1)):
        monkeypatch.setattr(cost, "busy_cores", lambda since, busy=busy: looked_since.append(since) or busy)
        job = queue.submit(TINY, tiny_train(train_size=300), name=name)
        wait(job)
        assert job.status == "finished", job.error
        assert {r["name"]: r for r in read_runs(tmp_path)}[name]["threads"] == threads
    # each looked at the machine since the run before it ended: that run's work was the queue's own
    assert set(looked_since) == {0.0, *(job.ended for job in queue.jobs()[:-1])}


@pytest.mark.slow
def test_a_training_process_killed_mid_run_fails_its_job_and_the_next_job_runs(tmp_path, small):
    queue = TrainingQueue(tmp_path, data=small)
    killed = queue.submit(TINY, tiny_train(batch_size=8), name="killed")
    after = queue.submit(TINY, tiny_train(), name="after")
    while not killed.events:  # its progress arrives from the training process
        assert not killed.done, killed.error
        time.sleep(0.01)
    assert killed.pid is not None and killed.latest.kind == "batch" and killed.phase == "training"
    os.kill(killed.pid, signal.SIGKILL)  # a crash of the process, or the system out of memory
    wait(after)
    assert (killed.status, killed.error) == (
        "failed",
        "the training process stopped without a result (killed by SIGKILL)",
    )
    assert after.status == "finished" and after.checkpoint is not None
    assert not killed.path.exists() and not list(tmp_path.glob(".killed*"))
    assert {r["name"]: r["status"] for r in read_runs(tmp_path)} == {"killed": "interrupted", "after": "finished"}


def test_a_sweep_jobs_fraction_is_that_of_its_trial_in_flight(tmp_path):
    sweep = Job("sweep", TINY, tiny_train(), tmp_path, status="running", kind="sweep")
    sweep.events += [progress("batch", 1, 5), progress("epoch", 2, 10)]
    assert sweep.fraction == 1.0  # the first trial's training is done
    sweep.events.append(progress("batch", 1, 1))  # the next trial's first batch
    assert sweep.fraction == pytest.approx(0.05)


def test_a_sweep_of_several_trials_shows_progress_and_time_left_over_all_of_them(tmp_path):
    queue = TrainingQueue(tmp_path)
    sweep = Job("sweep", TINY, tiny_train(), tmp_path, estimate=Estimate(2.0, 100.0, 10.0), kind="sweep", units=4)
    behind = Job("run", TINY, tiny_train(), tmp_path / "run.pt", estimate=Estimate(2.0, 100.0, 10.0))
    queue._jobs += [sweep, behind]
    # One training process runs all the trials: it starts once, then each trial trains and ends.
    assert sweep.remaining_seconds() == 2.0 + 4 * 110.0 and queue.starts_in(behind) == 2.0 + 4 * 110.0
    sweep.status, sweep.started = "running", time.time()
    sweep.events += [progress("batch", 1, 5)]  # a quarter of the first trial
    assert sweep.fraction == pytest.approx(0.25 / 4)
    assert queue.starts_in(behind) == pytest.approx(75.0 + 10.0 + 3 * 110.0)
    sweep.events += [progress("epoch", 2, 10)]
    sweep.started -= 112.0  # the start and the first trial took the time forecast: the rest are forecast as long
    # (the pace is measured against the clock, so the figures below hold to the time these lines take)
    sweep.unit_done()  # the first trial finished: its last report no longer counts as the trial in flight
    assert sweep.fraction == pytest.approx(1 / 4)
    assert sweep.remaining_seconds() == pytest.approx(3 * 110.0, abs=0.5)  # no second start
    sweep.events += [progress("batch", 2, 5)]  # three quarters of the second
    assert sweep.fraction == pytest.approx(1.75 / 4)
    assert queue.starts_in(behind) == pytest.approx(35.0 + 2 * 110.0, abs=0.5)
