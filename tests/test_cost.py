"""The cost model behind the training estimate: shape, calibration on the history, and its bounds."""

import pytest

from mnist_core.cost import SPEED_BOUNDS, describe_seconds, estimate, machine_speed
from mnist_core.model import ModelConfig
from mnist_core.train import PRESETS, TrainConfig

TINY = ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16)


def finished(model: ModelConfig, train: TrainConfig, seconds: float) -> dict:
    return {
        "status": "finished",
        "metrics": {"train_seconds": seconds},
        "model_config": model.to_dict(),
        "train_config": train.to_dict(),
    }


def test_cost_grows_with_the_work():
    quick, default, best = (estimate(*PRESETS[name]).total for name in ("quick", "default", "best"))
    assert quick < default < best
    model, train = PRESETS["quick"]
    assert estimate(model, TrainConfig(epochs=4)).training == pytest.approx(2 * estimate(model, train).training, 0.2)
    small_batches = estimate(TINY, TrainConfig(epochs=1, batch_size=32)).training
    assert small_batches > 2 * estimate(TINY, TrainConfig(epochs=1, batch_size=512)).training  # per-step overhead


def test_a_finished_run_calibrates_the_machine_speed():
    model, train = PRESETS["quick"]
    twice_as_slow = finished(model, train, 2 * estimate(model, train).training)
    runs = [{"status": "failed", "metrics": {}}, twice_as_slow]
    assert machine_speed(runs) == pytest.approx(2.0)
    for other in ("default", "best"):
        assert estimate(*PRESETS[other], runs).total == pytest.approx(2 * estimate(*PRESETS[other]).total)


def test_small_runs_in_the_history_do_not_inflate_large_estimates():
    """The bug this replaced: two tiny runs made the best preset's estimate 2311 min."""
    tiny = TrainConfig(epochs=1, batch_size=512)
    runs = [finished(TINY, tiny, 60.0), finished(TINY, tiny, 55.0)]  # on a very busy machine
    best = estimate(*PRESETS["best"]).total
    assert best <= estimate(*PRESETS["best"], runs).total <= SPEED_BOUNDS[1] * best


def test_a_damaged_history_is_ignored():
    runs = [
        {"status": "finished", "metrics": "oops"},
        {"status": "finished", "metrics": {"train_seconds": "12"}},
        {"status": "finished", "metrics": {"train_seconds": 10.0}, "model_config": {"conv9": 1}},
        {"status": "finished", "metrics": {"train_seconds": 10.0}, "model_config": {}, "train_config": {"epochs": 0}},
    ]
    assert machine_speed(runs) == 1.0


def test_durations_read_as_people_say_them():
    assert [describe_seconds(s) for s in (2, 42, 200, 5400)] == [
        "about 5 s",
        "about 40 s",
        "about 3 min",
        "about 1 h 30 min",
    ]
