"""The cost model behind the training estimate: shape, calibration on the history, the CPU a niced run gets, and
the time left during a run."""

import itertools
import os
import threading
import time

import pytest
import torch

from mnist_core import cost, jobs
from mnist_core.cost import (
    SPEED_BOUNDS,
    CpuShare,
    Estimate,
    averaged,
    estimate,
    finished_images,
    machine_speed,
    sharing,
    slowdown,
    steps_per_epoch,
)
from mnist_core.jobs import TRAINING_NICENESS, Job, TrainingQueue
from mnist_core.model import ModelConfig
from mnist_core.settings import Interval
from mnist_core.sweep import SAMPLED_TRIALS, sampled_trials, search_space, typical_trial
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
    quick, default, best = (estimate(*PRESETS[name], slowed=1).total for name in ("quick", "default", "best"))
    assert quick < default < best
    model, train = PRESETS["quick"]
    twice = TrainConfig(**{**train.to_dict(), "epochs": 2 * train.epochs})
    once = estimate(model, train, slowed=1).training
    assert estimate(model, twice, slowed=1).training == pytest.approx(2 * once, 0.2)
    augmented = TrainConfig(**{**train.to_dict(), "epochs": 4, "augment": True})
    half_clean = TrainConfig(**{**augmented.to_dict(), "clean_epochs": 2})
    costs = [estimate(model, c, slowed=1).training for c in (augmented, half_clean, twice)]
    assert costs[0] > costs[1] > costs[2] * 2  # 2 epochs less augmentation; twice has 2 epochs, none augmented
    fewer = TrainConfig(**{**train.to_dict(), "train_size": 5000})
    assert estimate(model, fewer, slowed=1).training < estimate(model, train, slowed=1).training / 5
    small_batches = estimate(TINY, TrainConfig(epochs=1, batch_size=32), slowed=1).training
    # Per-step overhead: 16 times the steps. 1.7x the time where the CPU trains in float32, 2.1x in bfloat16.
    assert small_batches > 1.5 * estimate(TINY, TrainConfig(epochs=1, batch_size=512), slowed=1).training


def test_a_finished_run_calibrates_the_machine_speed():
    model, train = PRESETS["quick"]
    twice_as_slow = finished(model, train, 2 * estimate(model, train, slowed=1).training)
    runs = [{"status": "failed", "metrics": {}}, twice_as_slow]
    assert machine_speed(runs, model, train) == pytest.approx(2.0)
    for other in ("default", "best"):
        assert estimate(*PRESETS[other], runs, slowed=1).total == pytest.approx(
            2 * estimate(*PRESETS[other], slowed=1).total
        )


def test_small_runs_in_the_history_do_not_inflate_large_estimates():
    """The bug this replaced: two tiny runs made the best preset's estimate 2311 min."""
    tiny = TrainConfig(epochs=1, batch_size=512)
    runs = [finished(TINY, tiny, 60.0), finished(TINY, tiny, 55.0)]  # on a very busy machine
    best = estimate(*PRESETS["best"], slowed=1).total
    assert best <= estimate(*PRESETS["best"], runs, slowed=1).total <= SPEED_BOUNDS[1] * best * (1 + 1e-12)


def test_a_busy_machine_is_told_apart_from_a_slow_one():
    model, train = PRESETS["quick"]
    idle = estimate(model, train, slowed=1).total
    cores = os.cpu_count() or 1
    assert estimate(model, train, slowed=2).total == pytest.approx(2 * idle)  # half the machine is taken
    # logged before runs logged their slowdown: the load average then, taken as a fair share
    busy_then = {**finished(model, train, 3 * estimate(model, train, slowed=1).training), "load": 2.0 * cores}
    assert machine_speed([busy_then], model, train) == pytest.approx(1.0)  # three times slower at 2 per core: normal
    assert estimate(model, train, [busy_then], slowed=1).total == pytest.approx(idle)


def test_a_damaged_history_is_ignored():
    runs = [
        {"status": "finished", "metrics": "oops"},
        {"status": "finished", "metrics": {"train_seconds": "12"}},
        {"status": "finished", "metrics": {"train_seconds": 10.0}, "model_config": {"conv9": 1}},
        {"status": "finished", "metrics": {"train_seconds": 10.0}, "model_config": {}, "train_config": {"epochs": 0}},
    ]
    assert machine_speed(runs, TINY, TrainConfig()) == 1.0


def test_an_epoch_takes_one_step_per_batch_the_last_one_short():
    assert steps_per_epoch(TrainConfig(batch_size=256, val_size=5000)) == 215  # 55,000 images
    assert steps_per_epoch(TrainConfig(batch_size=300, train_size=1000)) == 4
    assert steps_per_epoch(TrainConfig(batch_size=250, train_size=1000)) == 4


def test_a_measured_speed_replaces_the_history_and_the_load_and_travels_with_the_estimate():
    model, train = PRESETS["quick"]
    measured = estimate(model, train, slowed=100.0, speed=3.0)
    assert measured.speed == 3.0 and measured.total == pytest.approx(3 * estimate(model, train, slowed=1).total)


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
    trial = forecast.training + forecast.finishing  # one training process runs them all: it starts once
    assert forecast.work == pytest.approx(trial)
    sweep = Job("sweep s", model, train, None, estimate=forecast, kind="sweep", units=6)
    assert sweep.remaining_seconds() == pytest.approx(forecast.loading + 6 * trial)  # before it starts: the forecast
    assert forecast.repeated(6) == pytest.approx(forecast.loading + 6 * trial)
    four = forecast.repeated(4)
    sweep.status, sweep.started = "running", time.time() - four / 2  # four trials pruned early, in half the time
    for _ in range(4):
        sweep.unit_done()
    assert sweep.pace == pytest.approx(0.5, rel=0.01)
    assert sweep.remaining_seconds() == pytest.approx(0.5 * 2 * trial, rel=0.01)  # the next one has not reported


def test_a_sweeps_trial_is_forecast_as_the_mean_of_trials_drawn_from_its_search_space(tmp_path):
    drawn = sampled_trials("quick")
    assert len(drawn) == SAMPLED_TRIALS and drawn == sampled_trials("quick")  # the same trials every time
    assert len({repr(trial) for trial in drawn}) == SAMPLED_TRIALS
    for name, space in search_space("quick").items():
        values = [getattr(model, name, getattr(train, name, None)) for model, train in drawn]
        if isinstance(space, Interval):
            assert all(space.low <= v <= space.high for v in values) and len(set(values)) > 1, name
        else:
            assert set(values) <= set(space) and len(set(values)) > 1, name
    assert {train.epochs for _, train in sampled_trials("quick", {"epochs": 1})} == {1}  # what the sweep fixes

    typical = typical_trial("quick")
    forecast = estimate(*typical, speed=2.0)
    mean = averaged(forecast, typical, drawn)
    assert mean.loading == forecast.loading and mean.speed == forecast.speed
    for stage in ("training", "finishing"):
        each = [getattr(estimate(*trial, speed=2.0), stage) for trial in drawn]
        assert getattr(mean, stage) == pytest.approx(sum(each) / len(each))
    # A trial's cost grows with the product of the widths it draws: the quick space's mean is above its preset's.
    assert mean.training > 1.1 * forecast.training
    assert averaged(forecast, typical, [typical]) == forecast

    sweep = TrainingQueue(tmp_path).forecast_sweep("quick", None, None)  # the page's: scaled by the machine now
    assert sweep.training / sweep.loading == pytest.approx(mean.training / mean.loading)
    assert sweep.repeated(3) == pytest.approx(sweep.loading + 3 * (sweep.training + sweep.finishing))


def test_a_sweeps_total_moves_smoothly_when_a_trial_ends(monkeypatch):
    """Its pace follows the trial in flight as it goes, not only trials once finished: measuring finished ones alone
    moved the total by up to 0.82 of the sweep's time between two readings (bench/RESULTS.md)."""
    clock = timed(monkeypatch)
    model, train = PRESETS["quick"]
    sweep = Job("sweep s", model, train, None, estimate=Estimate(10.0, 100.0, 10.0), kind="sweep", units=3)
    sweep.status, sweep.started = "running", clock["now"]
    totals = []

    def read(seconds: float) -> None:
        clock["now"] += seconds
        totals.append(clock["now"] - sweep.started + sweep.remaining_seconds())

    for _ in range(2):  # each of two trials twice as fast as the typical trial forecast: 5 s to start, 50 s, 5 s to end
        read(5.0)
        for batch in range(1, 101):
            clock["now"] += 0.5
            sweep.add(Progress("batch", 1, 1, batch, 100, 0.5, 0.9, 1000.0, 10.0))
            read(0.0)
        sweep.add(Progress("epoch", 1, 1, 100, 100, 0.5, 0.9, 1000.0, 0.0, 0.1, 0.98))
        read(5.0)
        sweep.unit_done()
        read(0.0)
    assert max(abs(b - a) for a, b in itertools.pairwise(totals)) < 0.06 * 360  # the forecast total: 3 x 120 s
    assert totals[-1] == pytest.approx(120 + 0.5 * 120, rel=0.1)  # two trials done, the third at their pace


def test_a_run_that_just_ended_says_how_fast_the_machine_is_now(tmp_path):
    model, train = PRESETS["quick"]
    forecast = estimate(model, train, speed=2.0)
    queue = TrainingQueue(tmp_path)
    assert queue.measured_speed(model, train) is None  # nothing measured yet: the history and the machine's load say
    ended = Job("a", model, train, tmp_path / "a.pt", estimate=forecast, status="finished")
    ended.started, ended.ended = time.time() - 3 * forecast.total, time.time()  # three times the forecast
    queue._jobs.append(ended)
    assert queue.measured_speed(model, train) == pytest.approx(6.0, rel=0.01)
    assert queue.measured_speed(model, train, within_s=0.0) is None  # too long ago to stand for now
    assert queue.forecast(model, train, None).total == pytest.approx(3 * forecast.total, rel=0.01)
    # Another size: the machine's state carries over by the ratio the history sees between the two sizes.
    best = PRESETS["best"]
    history = [finished(*best, 2 * estimate(*best, slowed=1).training), finished(model, train, 1.0)]
    history[1]["metrics"]["train_seconds"] = estimate(model, train, slowed=1).training  # as modelled
    assert queue.measured_speed(*best, history) == pytest.approx(12.0, rel=0.01)  # twice the quick's ratio, now


def test_a_niced_run_gets_less_than_a_fair_share_beside_ordinary_work():
    """The bug this fixed: the estimate assumed a fair share, where training runs niced (bench/RESULTS.md)."""
    fair = sharing(os.cpu_count() or 1)  # what the old estimate assumed beside one busy process per core
    beside_ordinary = slowdown(2.0, 0.0, TRAINING_NICENESS, cores=2)
    assert beside_ordinary == pytest.approx(1 + 1.25**TRAINING_NICENESS) and beside_ordinary > 1.9 * fair
    assert slowdown(0.0, 2.0, TRAINING_NICENESS, cores=2) == pytest.approx(2.0)  # beside niced work: a fair share
    assert slowdown(2.0, 0.0, 0, cores=2) == pytest.approx(2.0)  # an ordinary process beside ordinary work
    assert slowdown(0.0, 0.0, TRAINING_NICENESS) == 1.0
    assert slowdown(0.0, 2.0, 10, cores=2, niced_at=5) == pytest.approx(1 + 1.25**5)  # all niced, 5 levels apart


def test_fewer_threads_than_cores_take_the_free_cores_first():
    """Two busy processes on two cores: one niced thread shares a core with one of them (a quarter of it); beside
    one, it has the other core to itself. The cost of one thread against two is the thread factor, apart."""
    beside_one_each = 1 + 1.25**TRAINING_NICENESS
    assert slowdown(2.0, 0.0, TRAINING_NICENESS, cores=2, threads=1) == pytest.approx(beside_one_each)
    assert slowdown(1.0, 0.0, TRAINING_NICENESS, cores=2, threads=1) == 1.0
    assert slowdown(1.0, 0.0, TRAINING_NICENESS, cores=2, threads=2) == pytest.approx(1 + beside_one_each / 2 - 0.5)
    assert slowdown(4.0, 0.0, TRAINING_NICENESS, cores=2, threads=1) == pytest.approx(1 + 2 * 1.25**TRAINING_NICENESS)
    assert cost.thread_factor(1, cores=2) == cost.THREAD_SPEEDUP and cost.thread_factor(2, cores=2) == 1.0
    assert cost.thread_factor(2, cores=8) == pytest.approx(cost.THREAD_SPEEDUP**2)


def test_a_training_process_gets_the_cores_left_free(monkeypatch):
    monkeypatch.setattr(cost.os, "cpu_count", lambda: 2)
    for busy, threads in (((0.0, 0.0), 2), ((0.6, 0.0), 2), ((0.5, 0.3), 1), ((2.0, 0.0), 1), ((5.0, 1.0), 1)):
        monkeypatch.setattr(cost, "busy_cores", lambda since=0.0, busy=busy: busy)
        assert cost.training_threads(most=2) == threads
        assert cost.training_threads(most=1) == 1  # never more than the process may use


def test_the_slowdown_a_run_met_is_what_the_other_processes_left_it(monkeypatch):
    clock = {"now": 100.0, "cpu": (50.0, 20.0), "own": 3.0}
    monkeypatch.setattr(cost.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(cost, "_cpu_times", lambda: clock["cpu"])
    monkeypatch.setattr(cost, "_own_seconds", lambda: clock["own"])
    monkeypatch.setattr(cost.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cost, "_niceness", lambda: 0)  # an ordinary process, whoever runs the tests
    share = CpuShare()
    # 10 s: the machine spent 15 s at nice 0 and 5 s niced, 4 of those this (ordinary) process's own
    clock.update(now=110.0, cpu=(65.0, 25.0), own=7.0)
    assert share.others() == pytest.approx((1.1, 0.5))
    assert share.met() == pytest.approx(2 / (2 - 1.6))  # the others took 1.6 of 2 cores
    assert share.met(threads=1) == pytest.approx(1 / (2 - 1.6))  # one thread had what they left, 0.4 of a core
    clock.update(now=120.0, cpu=(68.0, 21.0), own=12.0)  # 20 s: the others took 0.5 of a core
    assert share.met(threads=1) == 1.0 and share.met() == pytest.approx(2 / 1.5)  # one thread had a free core


def test_the_forecast_slows_a_niced_run_by_what_the_machine_is_busy_with_now(tmp_path, monkeypatch):
    model, train = PRESETS["quick"]
    monkeypatch.setattr(cost.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(jobs.torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(cost, "busy_cores", lambda since=0.0: (2.0, 0.0))  # two ordinary processes spinning
    monkeypatch.setattr(cost, "_niceness", lambda: 0)  # the server at the ordinary priority
    forecast = TrainingQueue(tmp_path).forecast(model, train, None)
    on_one_thread = slowdown(2.0, 0.0, TRAINING_NICENESS, threads=1) * cost.THREAD_SPEEDUP  # as the run will
    assert forecast.speed == pytest.approx(on_one_thread)
    assert forecast.total == pytest.approx(forecast.speed * estimate(model, train, slowed=1).total)
    monkeypatch.setattr(cost, "busy_cores", lambda since=0.0: (0.0, 0.0))
    assert TrainingQueue(tmp_path).forecast(model, train, None).speed == 1.0  # idle: both cores, no slowdown


def test_runs_of_a_similar_size_calibrate_first_each_divided_by_the_slowdown_it_met():
    best, quick = PRESETS["best"], PRESETS["quick"]
    small = (TINY, TrainConfig(epochs=1, batch_size=32))
    runs = [
        {**finished(*quick, 12 * estimate(*quick, slowed=1).training), "slowdown": 4.0},  # 3x modelled, at 4x load
        finished(*best, estimate(*best, slowed=1).training),  # as modelled, on an idle machine
        finished(*quick, 3 * estimate(*quick, slowed=1).training),
    ]
    assert machine_speed(runs, *best) == pytest.approx(1.0)  # the old median of all three said 3
    assert machine_speed(runs, *quick) == pytest.approx(3.0)
    assert machine_speed(runs, *small) == pytest.approx(3.0)  # small batches cost per image about what quick's do
    assert machine_speed(runs, *PRESETS["default"]) == pytest.approx(3.0)  # none similar: the median of all
    again = [
        finished(*quick, 0.7 * estimate(*quick, slowed=1).training),
        finished(*small, 2 * estimate(*small, slowed=1).training),
    ]
    assert machine_speed(again, *quick) == pytest.approx(0.7)  # a run of the very same settings speaks first
    assert machine_speed(again, *small) == pytest.approx(2.0)  # and for the other, its own
    on_one = [{**finished(*quick, cost.thread_factor(1) * estimate(*quick, slowed=1).training), "threads": 1}]
    assert machine_speed(on_one, *quick) == pytest.approx(1.0)  # slower by its one thread, not by the machine


def test_training_in_bfloat16_is_forecast_faster_where_the_cpu_computes_it_natively(monkeypatch):
    """The constants are float32's; where training runs in bfloat16 its arithmetic is faster, not the rest of a run
    (the start, the per-step overhead, the float32 forward passes at the end)."""
    model, train = PRESETS["default"]
    monkeypatch.setattr(cost, "autocast_dtype", lambda device: None)
    float32 = estimate(model, train, slowed=1)
    monkeypatch.setattr(cost, "autocast_dtype", lambda device: torch.bfloat16)
    bfloat16 = estimate(model, train, slowed=1)
    assert (bfloat16.loading, bfloat16.finishing) == (float32.loading, float32.finishing)
    assert float32.training / cost.BFLOAT16_SPEEDUP < bfloat16.training < float32.training / 1.3


def test_the_end_of_a_run_fits_the_digit_score_too():
    model, train = PRESETS["quick"]
    assert finished_images(train) == 10000 + 10000 + 5000  # test set, references, held-out digits
    without = TrainConfig(**{**train.to_dict(), "val_size": 0})  # the test set stands in for the held-out digits
    assert estimate(model, without, slowed=1).finishing > estimate(model, train, slowed=1).finishing


def timed(monkeypatch) -> dict:
    clock = {"now": 1000.0}
    monkeypatch.setattr(jobs.time, "time", lambda: clock["now"])
    return clock


def test_the_time_left_measures_the_training_loop_apart_from_a_slow_start(monkeypatch):
    clock = timed(monkeypatch)
    model, train = PRESETS["quick"]
    job = Job("a", model, train, None, estimate=Estimate(10.0, 100.0, 10.0))
    job.status, job.started = "running", clock["now"]
    clock["now"] += 4.0
    assert 4.0 + job.remaining_seconds() == pytest.approx(120.0)  # still starting: the forecast total, unmoved
    clock["now"] += 26.0  # the start took three times its forecast
    assert job.remaining_seconds() == pytest.approx(110.0)  # the loop and the end still to come
    job.add(Progress("batch", 1, 1, 1, 100, 0.5, 0.9, 1000.0, 10.0))
    assert job.remaining_seconds() == pytest.approx(0.99 * 100 + 10.0)  # no jump at the first report
    clock["now"] += 20.0  # the first steps of a new process run slow: they are not the loop's pace
    job.add(Progress("batch", 1, 1, 10, 100, 0.5, 0.9, 1000.0, 10.0))
    assert job.remaining_seconds() == pytest.approx(0.9 * 100 + 10.0)
    clock["now"] += 40.0  # then the loop ran at its forecast pace
    job.add(Progress("batch", 1, 1, 50, 100, 0.5, 0.9, 1000.0, 10.0))
    assert job.pace == pytest.approx(1.0)  # the old pace, over the start and the first steps too, said 1.5
    assert job.remaining_seconds() == pytest.approx(50.0 + 10.0)
    clock["now"] += 50.0
    job.add(Progress("epoch", 1, 1, 100, 100, 0.5, 0.9, 1000.0, 0.0, 0.1, 0.98))
    assert job.phase == "evaluating" and job.remaining_seconds() == pytest.approx(10.0)  # the end, still whole
    clock["now"] += 4.0
    assert job.remaining_seconds() == pytest.approx(6.0)


def test_a_new_run_is_forecast_to_take_what_the_run_in_flight_is_expected_to_take(tmp_path, monkeypatch):
    clock = timed(monkeypatch)
    model, train = PRESETS["quick"]
    queue = TrainingQueue(tmp_path)
    job = Job("a", model, train, tmp_path / "a.pt", estimate=estimate(model, train, slowed=2.0))
    queue._jobs.append(job)
    job.status, job.started = "running", clock["now"]
    clock["now"] += 1.0
    assert queue.forecast(model, train, None).total == pytest.approx(job.estimate.total)  # starting: its forecast
    for batch, seconds in ((1, 5.0), (10, 10.0), (200, 30.0)):  # a quick start, then a slow loop
        clock["now"] += seconds
        job.add(Progress("batch", 1, 1, batch, 430, 0.5, 0.9, 1000.0, 10.0))
        in_flight = clock["now"] - job.started + job.remaining_seconds()
        assert queue.forecast(model, train, None).total == pytest.approx(in_flight)


def test_a_quick_start_does_not_make_the_time_left_start_low(monkeypatch):
    clock = timed(monkeypatch)
    model, train = PRESETS["quick"]
    job = Job("a", model, train, None, estimate=Estimate(30.0, 100.0, 10.0))
    job.status, job.started = "running", clock["now"]
    clock["now"] += 5.0  # started in a sixth of its forecast
    job.add(Progress("batch", 1, 1, 1, 100, 0.5, 0.9, 1000.0, 10.0))
    assert 5.0 + job.remaining_seconds() == pytest.approx(140.0)  # the total shown before the run, not 114 s
    for batch in range(10, 101, 10):  # then the loop at twice its forecast pace: the measure phases in
        clock["now"] += 20.0 if batch > 10 else 18.0
        job.add(Progress("batch", 1, 1, batch, 100, 0.5, 0.9, 1000.0, 10.0))
        total = clock["now"] - job.started + job.remaining_seconds()
        assert 140.0 <= total <= 5.0 + 18.0 + 2 * 100.0 * 0.9 + 2 * 10.0 + 1e-6
    assert total == pytest.approx(5.0 + 18.0 + 2 * 90.0 + 2 * 10.0)  # measured: the end forecast at the same pace


def test_a_just_ended_run_of_a_similar_size_speaks_before_a_newer_one_of_another(tmp_path):
    queue = TrainingQueue(tmp_path)
    for (model, train), took in ((PRESETS["quick"], 3.0), (PRESETS["best"], 1.0)):  # the best preset ended last
        forecast = estimate(model, train, speed=1.0)
        job = Job("a", model, train, tmp_path / "a.pt", estimate=forecast, status="finished")
        job.started, job.ended = time.time() - took * forecast.total, time.time()
        queue._jobs.append(job)
    small = (TINY, TrainConfig(epochs=1, batch_size=32))  # about the quick preset's cost per image
    assert queue.measured_speed(*small) == pytest.approx(3.0, rel=0.01)
    assert queue.measured_speed(*PRESETS["default"]) == pytest.approx(1.0, rel=0.01)  # none similar: the newest


def test_the_first_look_at_the_machine_watches_for_a_moment_and_later_ones_never_wait(monkeypatch):
    slept = []
    monkeypatch.setattr(cost.time, "sleep", slept.append)
    monkeypatch.setattr(cost, "_watcher", threading.current_thread())  # as if watching already: no thread in a test
    monkeypatch.setattr(cost, "_looks", ())
    cost.busy_cores()
    assert slept == [cost.SAMPLE_S] and len(cost._looks) == 1  # kept as a look
    cost.busy_cores()
    assert slept == [cost.SAMPLE_S]
    cost.busy_cores(since=time.time() + 1.0)  # every look began before: a moment from now again
    assert slept == [cost.SAMPLE_S] * 2


def test_busy_cores_watches_the_machine_from_its_first_call_on(monkeypatch):
    monkeypatch.setattr(cost, "_watcher", None)
    monkeypatch.setattr(cost, "WATCH_S", 0.02)
    monkeypatch.setattr(cost, "_looks", ())
    monkeypatch.setattr(cost, "_watched", False)
    assert not cost.watched()  # no look of a whole second yet: a page asks again (the Train page's estimate)
    cost.busy_cores()
    assert cost._watcher is not None and cost._watcher.is_alive() and cost._watcher.daemon
    deadline = time.monotonic() + 5.0
    while len(cost._looks) < cost.WATCH_LOOKS and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(cost._looks) == cost.WATCH_LOOKS  # the newest looks, no more
    assert cost.watched()
    monkeypatch.setattr(cost, "WATCH_S", 1.0)  # the watcher goes on, at its usual pace


@pytest.mark.parametrize(
    ("looks", "load_average", "busy"),
    [
        ([(1.0, 0.0)] * 10, 1.1, (1.0, 0.0)),  # one process spinning for a while
        # a run that just ended, a page loading in the browser and a click: the work that lasted is the least
        ([(2.0, 0.0)] * 5 + [(0.1, 0.0), (1.5, 0.0), (1.2, 0.0), (0.9, 0.1), (0.3, 0.0)], 1.1, (0.1, 0.0)),
        ([(1.2, 0.3)], 0.3, (0.24, 0.06)),  # work the last minute did not have is taken to pass
        ([(1.2, 0.3)] * 9, 0.3, (0.24, 0.06)),  # unless every look of a whole window saw it:
        ([(2.0, 0.0)] * 10, 1.3, (2.0, 0.0)),  # two processes started a minute ago, the load average behind them
        ([(1.5, 0.5)] * 10, 4.0, (3.0, 1.0)),  # saturated: the load average counts the work that waits too
    ],
)
def test_the_busy_cores_are_the_work_that_lasts(monkeypatch, looks, load_average, busy):
    monkeypatch.setattr(cost, "_watcher", threading.current_thread())
    monkeypatch.setattr(cost, "_looks", tuple(enumerate(looks)))  # one a second
    monkeypatch.setattr(cost.os, "getloadavg", lambda: (load_average, 0.0, 0.0))
    monkeypatch.setattr(cost.os, "cpu_count", lambda: 2)
    assert cost.busy_cores() == pytest.approx(busy)


def test_the_busy_cores_since_a_queues_last_run_ended_leave_that_run_out(monkeypatch):
    monkeypatch.setattr(cost, "_watcher", threading.current_thread())
    monkeypatch.setattr(cost.time, "sleep", lambda _: None)
    monkeypatch.setattr(cost.CpuShare, "others", lambda self: (0.1, 0.0))  # a quiet machine from now on
    monkeypatch.setattr(cost.os, "getloadavg", lambda: (2.0, 0.0, 0.0))
    monkeypatch.setattr(cost.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cost, "_looks", tuple(enumerate([(1.6, 0.4)] * 10)))  # the queue's run on both cores
    assert cost.busy_cores() == pytest.approx((1.6, 0.4)) and cost.training_threads(2) == 1
    assert cost.busy_cores(since=10) == pytest.approx((0.1, 0.0)) and cost.training_threads(2, since=10) == 2
