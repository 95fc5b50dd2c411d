"""The cost model behind the training estimate: shape, calibration on the history, and its bounds."""

import os
import time

import pytest

from mnist_core.cost import SPEED_BOUNDS, estimate, machine_speed, steps_per_epoch
from mnist_core.jobs import Job, TrainingQueue
from mnist_core.model import ModelConfig
from mnist_core.train import PRESETS, Progress, TrainConfig

TINY = ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16)


def finished(model: ModelConfig, train: TrainConfig, seconds: float) -> dict:
    return {
        "status": "finished",
        "metrics": {"train_seconds": seconds},
        "model_config": model.to_dict(),
        "train_config": train.to_dict(),
    }


def test_cost_grows_with_the_work():
    quick, default, best = (estimate(*PRESETS[name], load=0).total for name in ("quick", "default", "best"))
    assert quick < default < best
    model, train = PRESETS["quick"]
    twice = TrainConfig(**{**train.to_dict(), "epochs": 2 * train.epochs})
    assert estimate(model, twice, load=0).training == pytest.approx(2 * estimate(model, train, load=0).training, 0.2)
    augmented = TrainConfig(**{**train.to_dict(), "epochs": 4, "augment": True})
    half_clean = TrainConfig(**{**augmented.to_dict(), "clean_epochs": 2})
    costs = [estimate(model, c, load=0).training for c in (augmented, half_clean, twice)]
    assert costs[0] > costs[1] > costs[2] * 2  # 2 epochs less augmentation; twice has 2 epochs, none augmented
    fewer = TrainConfig(**{**train.to_dict(), "train_size": 5000})
    assert estimate(model, fewer, load=0).training < estimate(model, train, load=0).training / 5
    small_batches = estimate(TINY, TrainConfig(epochs=1, batch_size=32), load=0).training
    assert (
        small_batches > 2 * estimate(TINY, TrainConfig(epochs=1, batch_size=512), load=0).training
    )  # per-step overhead


def test_a_finished_run_calibrates_the_machine_speed():
    model, train = PRESETS["quick"]
    twice_as_slow = finished(model, train, 2 * estimate(model, train, load=0).training)
    runs = [{"status": "failed", "metrics": {}}, twice_as_slow]
    assert machine_speed(runs) == pytest.approx(2.0)
    for other in ("default", "best"):
        assert estimate(*PRESETS[other], runs, load=0).total == pytest.approx(
            2 * estimate(*PRESETS[other], load=0).total
        )


def test_small_runs_in_the_history_do_not_inflate_large_estimates():
    """The bug this replaced: two tiny runs made the best preset's estimate 2311 min."""
    tiny = TrainConfig(epochs=1, batch_size=512)
    runs = [finished(TINY, tiny, 60.0), finished(TINY, tiny, 55.0)]  # on a very busy machine
    best = estimate(*PRESETS["best"], load=0).total
    assert best <= estimate(*PRESETS["best"], runs, load=0).total <= SPEED_BOUNDS[1] * best * (1 + 1e-12)


def test_a_busy_machine_is_told_apart_from_a_slow_one():
    model, train = PRESETS["quick"]
    idle = estimate(model, train, load=0).total
    cores = os.cpu_count() or 1
    assert estimate(model, train, load=cores).total == pytest.approx(2 * idle)  # half the machine is taken
    busy_then = {**finished(model, train, 3 * estimate(model, train, load=0).training), "load": 2.0 * cores}
    assert machine_speed([busy_then]) == pytest.approx(1.0)  # three times slower at a load of 2 per core: normal
    assert estimate(model, train, [busy_then], load=0).total == pytest.approx(idle)


def test_a_damaged_history_is_ignored():
    runs = [
        {"status": "finished", "metrics": "oops"},
        {"status": "finished", "metrics": {"train_seconds": "12"}},
        {"status": "finished", "metrics": {"train_seconds": 10.0}, "model_config": {"conv9": 1}},
        {"status": "finished", "metrics": {"train_seconds": 10.0}, "model_config": {}, "train_config": {"epochs": 0}},
    ]
    assert machine_speed(runs) == 1.0


def test_an_epoch_takes_one_step_per_batch_the_last_one_short():
    assert steps_per_epoch(TrainConfig(batch_size=256, val_size=5000)) == 215  # 55,000 images
    assert steps_per_epoch(TrainConfig(batch_size=300, train_size=1000)) == 4
    assert steps_per_epoch(TrainConfig(batch_size=250, train_size=1000)) == 4


def test_a_measured_speed_replaces_the_history_and_the_load_and_travels_with_the_estimate():
    model, train = PRESETS["quick"]
    measured = estimate(model, train, load=100.0, speed=3.0)
    assert measured.speed == 3.0 and measured.total == pytest.approx(3 * estimate(model, train, load=0).total)


def halfway(job: Job, elapsed: float) -> Job:
    """``job`` started ``elapsed`` seconds ago, halfway through its training loop."""
    job.status, job.started = "running", time.time() - elapsed
    job.events.append(Progress("batch", 1, 1, 50, 100, 0.5, 0.9, 1000.0, 10.0))
    return job


def test_the_time_left_and_a_new_runs_estimate_come_from_the_same_measured_pace():
    model, train = PRESETS["quick"]
    forecast = estimate(model, train, speed=2.0)
    slow = halfway(Job("a", model, train, None, estimate=forecast), 2 * (forecast.loading + forecast.training / 2))
    assert slow.pace == pytest.approx(2.0, rel=0.01)  # twice as slow as forecast so far
    assert slow.speed == pytest.approx(4.0, rel=0.01)
    assert slow.remaining_seconds() == pytest.approx(2 * (forecast.training / 2 + forecast.finishing), rel=0.01)
    again = estimate(model, train, speed=slow.speed)  # what the page says a new run of the same settings takes
    assert again.total == pytest.approx(time.time() - slow.started + slow.remaining_seconds(), rel=0.01)


def test_a_sweeps_time_left_follows_its_finished_trials():
    model, train = PRESETS["quick"]
    forecast = estimate(model, train, speed=1.0)
    sweep = Job("sweep s", model, train, None, estimate=forecast, kind="sweep", units=4)
    assert sweep.remaining_seconds() == pytest.approx(4 * forecast.total)  # before it starts: the forecast
    sweep.status, sweep.started = "running", time.time() - forecast.total  # two trials pruned early, in half the time
    sweep.unit_done()
    sweep.unit_done()
    assert sweep.pace == pytest.approx(0.5, rel=0.01)
    in_flight = forecast.training + forecast.finishing  # started: its loading is done
    assert sweep.remaining_seconds() == pytest.approx(0.5 * (in_flight + forecast.total), rel=0.01)


def test_a_run_that_just_ended_says_how_fast_the_machine_is_now(tmp_path):
    model, train = PRESETS["quick"]
    forecast = estimate(model, train, speed=2.0)
    queue = TrainingQueue(tmp_path)
    assert queue.measured_speed() is None  # nothing measured yet: the page times a few steps instead
    ended = Job("a", model, train, tmp_path / "a.pt", estimate=forecast, status="finished")
    ended.started, ended.ended = time.time() - 3 * forecast.total, time.time()  # three times the forecast
    queue._jobs.append(ended)
    assert queue.measured_speed() == pytest.approx(6.0, rel=0.01)
    assert queue.measured_speed(within_s=0.0) is None  # too long ago to stand for now
    assert queue.measured_speed(model, train.batch_size) == pytest.approx(6.0, rel=0.01)
    assert queue.measured_speed(TINY, train.batch_size) is None  # another model: the history says
