import json
import os
import signal
import subprocess
import sys
import time

import pytest
from synthetic_mnist import synthetic_mnist

from mnist_core.checkpoints import list_checkpoints
from mnist_core.data import MNIST
from mnist_core.model import ModelConfig
from mnist_core.runs import RUN_LOG, read_runs, run_training
from mnist_core.train import TrainConfig, TrainingCancelled

TINY_MODEL = ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16, dropout=0.0)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=100, val_size=200)

pytestmark = pytest.mark.slow  # every test here trains a model


@pytest.fixture(scope="module")
def small() -> MNIST:
    return synthetic_mnist(1200, 300)


def test_a_finished_run_is_saved_evaluated_and_logged(tmp_path, small):
    checkpoint = run_training(TINY_MODEL, TINY_TRAIN, small, tmp_path / "ok.pt")
    assert checkpoint.metrics["test_errors"] == round((1 - checkpoint.metrics["test_accuracy"]) * 300)
    assert checkpoint.dataset_sha256 == small.sha256 and len(checkpoint.history) == 1
    [run] = read_runs(tmp_path)
    assert run["name"] == "ok" and run["status"] == "finished"
    assert run["metrics"]["test_accuracy"] == checkpoint.metrics["test_accuracy"]
    assert run["train_config"]["batch_size"] == 100
    assert checkpoint.metrics["device"] == "cpu" and checkpoint.metrics["cpu_cores"] >= 1  # the time's machine


def test_cancel_and_crash_leave_no_checkpoint_and_say_what_happened(tmp_path, small):
    with pytest.raises(TrainingCancelled):
        run_training(TINY_MODEL, TINY_TRAIN, small, tmp_path / "stopped.pt", should_stop=lambda: True)

    def explode(progress):
        if progress.batch == 3:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        run_training(TINY_MODEL, TINY_TRAIN, small, tmp_path / "crashed.pt", on_progress=explode)
    assert sorted(p.name for p in tmp_path.iterdir()) == [RUN_LOG]
    runs = {r["name"]: r for r in read_runs(tmp_path)}
    assert runs["stopped"]["status"] == "cancelled"
    assert runs["crashed"]["status"] == "failed" and "disk on fire" in runs["crashed"]["error"]

    run_training(TINY_MODEL, TINY_TRAIN, small, tmp_path / "crashed.pt")  # the name is free again, the next run works
    assert {r["name"]: r["status"] for r in read_runs(tmp_path)} == {"stopped": "cancelled", "crashed": "finished"}


def test_a_killed_training_process_shows_as_interrupted(tmp_path):
    out = tmp_path / "killed.pt"
    process = subprocess.Popen(
        [sys.executable, "-m", "mnist_core", "train", "--epochs", "20", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    log = tmp_path / RUN_LOG
    deadline = time.monotonic() + 60
    while not (log.exists() and "running" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    [run] = read_runs(tmp_path)
    assert run["status"] == "interrupted" and run["pid"] == process.pid
    assert not out.exists() and list_checkpoints(tmp_path) == []


def test_damaged_log_lines_are_skipped(tmp_path, small):
    run_training(TINY_MODEL, TINY_TRAIN, small, tmp_path / "a.pt")
    with open(tmp_path / RUN_LOG, "a") as f:
        f.write('{"name": "half-writ')
    with open(tmp_path / RUN_LOG, "a") as f:
        f.write("\n" + json.dumps({"name": "b", "status": "running", "started": "9999", "pid": os.getpid()}) + "\n")
    assert [(r["name"], r["status"]) for r in read_runs(tmp_path)] == [("b", "running"), ("a", "finished")]
