"""The training queue: one job at a time, cancellation and failures leave a consistent history."""

import threading
import time

import pytest
from synthetic_mnist import synthetic_mnist

from mnist_core.checkpoints import CheckpointError
from mnist_core.data import MNIST
from mnist_core.jobs import Job, TrainingQueue, estimate_seconds
from mnist_core.model import ModelConfig
from mnist_core.runs import read_runs
from mnist_core.train import TrainConfig

TINY = ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16)


def tiny_train(**changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "batch_size": 64, "val_size": 500, **changes})


@pytest.fixture(scope="module")
def small() -> MNIST:
    """3,000 training and 1,000 test images made on the spot: enough to train, fast enough for every test."""
    return synthetic_mnist(3000, 1000)


def wait(job: Job, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not job.done:
        assert time.monotonic() < deadline, f"{job.name} still {job.status}"
        time.sleep(0.02)


def test_jobs_run_one_at_a_time_in_submission_order(tmp_path, small):
    both_submitted, seen_when_loading = threading.Event(), []

    def load_data() -> MNIST:
        both_submitted.wait(timeout=60)
        seen_when_loading.append([j.status for j in queue.jobs()])
        return small

    queue = TrainingQueue(tmp_path, load_data=load_data)
    first = queue.submit(TINY, tiny_train(), name="first")
    second = queue.submit(TINY, tiny_train(), name="second")
    assert queue.ahead_of(second) == [first]
    both_submitted.set()
    wait(second)
    assert seen_when_loading == [["running", "queued"], ["finished", "running"]]
    assert (first.status, second.status) == ("finished", "finished")
    assert second.checkpoint.path == tmp_path / "second.pt"
    assert second.checkpoint.metrics["test_accuracy"] > 0.5  # chance is 0.1
    assert [e.kind for e in first.events][-1] == "epoch" and first.epochs()[0].val_accuracy is not None
    assert {r["name"]: r["status"] for r in read_runs(tmp_path)} == {"first": "finished", "second": "finished"}


def test_cancel_mid_epoch_leaves_no_checkpoint_and_the_next_run_works(tmp_path, small):
    queue = TrainingQueue(tmp_path, load_data=lambda: small)
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


def test_a_queued_job_cancelled_before_it_starts_never_runs(tmp_path, small):
    queue = TrainingQueue(tmp_path, load_data=lambda: small)
    first = queue.submit(TINY, tiny_train(), name="first")
    skipped = queue.submit(TINY, tiny_train(), name="skipped")
    skipped.cancel()
    wait(first)
    wait(skipped)
    assert skipped.status == "cancelled" and not skipped.events
    assert [r["name"] for r in read_runs(tmp_path)] == ["first"]


def test_a_failing_job_records_its_error_and_the_next_job_works(tmp_path, small):
    broken = MNIST(
        small.train_images, small.train_labels.clone().fill_(10), small.test_images, small.test_labels, small.sha256
    )  # label 10 does not exist: cross-entropy fails inside the first batch
    datasets = iter([broken, small])
    queue = TrainingQueue(tmp_path, load_data=lambda: next(datasets))
    failed = queue.submit(TINY, tiny_train(), name="broken")
    wait(failed)
    assert failed.status == "failed" and "out of bounds" in failed.error
    assert not failed.path.exists()
    assert read_runs(tmp_path)[0]["status"] == "failed" and "out of bounds" in read_runs(tmp_path)[0]["error"]

    fixed = queue.submit(TINY, tiny_train(), name="fixed")
    wait(fixed)
    assert fixed.status == "finished"


def test_submit_rejects_bad_and_taken_names(tmp_path, small):
    queue = TrainingQueue(tmp_path, load_data=lambda: small)
    with pytest.raises(CheckpointError, match="invalid run name"):
        queue.submit(TINY, tiny_train(), name="../escape")
    job = queue.submit(TINY, tiny_train(), name="mine")
    with pytest.raises(CheckpointError, match="already taken"):
        queue.submit(TINY, tiny_train(), name="mine")
    wait(job)
    with pytest.raises(CheckpointError, match="already taken"):
        queue.submit(TINY, tiny_train(), name="mine")


def test_automatic_names_stay_unique_while_jobs_wait(tmp_path, small):
    queue = TrainingQueue(tmp_path, load_data=lambda: small)
    jobs = [queue.submit(TINY, tiny_train()) for _ in range(3)]
    assert len({job.name for job in jobs}) == 3
    for job in jobs:
        wait(job)


def test_estimate_is_calibrated_on_the_newest_finished_run():
    model, train = ModelConfig(), TrainConfig(epochs=2)
    runs = [
        {"status": "failed", "metrics": {}},
        {
            "status": "finished",
            "metrics": {"train_seconds": 40.0},
            "model_config": model.to_dict(),
            "train_config": train.to_dict(),
        },
    ]
    assert estimate_seconds(model, train, runs) == pytest.approx(40.0)
    assert estimate_seconds(model, TrainConfig(epochs=4), runs) == pytest.approx(80.0)
    assert estimate_seconds(model, train) > 0
