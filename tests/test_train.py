import pytest
import torch
from synthetic_mnist import synthetic_mnist

import mnist_core.train
from mnist_core.data import MNIST
from mnist_core.evaluate import evaluate
from mnist_core.model import CNN, ModelConfig
from mnist_core.train import (
    CHECK_IMAGES,
    PRESETS,
    REPORT_INTERVAL_S,
    Meter,
    TrainConfig,
    TrainingCancelled,
    _batch,
    _make_optimizer,
    _make_schedule,
    _training_data,
    _validate,
    check_batches,
    checks_per_epoch,
    train,
    train_step,
)

TINY_MODEL = ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16, dropout=0.0)


@pytest.fixture(scope="module")
def small() -> MNIST:
    return synthetic_mnist(2000, 500)


@pytest.mark.slow
def test_one_epoch_of_the_quick_preset_reaches_99_percent(mnist):
    model_config, config = PRESETS["quick"]
    assert config.epochs == 1
    result = train(model_config, config, mnist)
    assert evaluate(result.model, mnist.test_images, mnist.test_labels).accuracy >= 0.99
    assert len(result.history) == 1 and result.history[0]["val_accuracy"] >= 0.97


@pytest.mark.slow
def test_same_seed_same_model_and_other_seed_another(small):
    config = TrainConfig(epochs=1, batch_size=64, val_size=200, seed=7, augment=True, outlier_exposure=0.5)
    first, second = train(TINY_MODEL, config, small), train(TINY_MODEL, config, small)
    other = train(TINY_MODEL, TrainConfig(epochs=1, batch_size=64, val_size=200, seed=8), small).model
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(first.model.classifier[-1].weight, other.classifier[-1].weight)

    def measured(history: list[dict]) -> list[dict]:  # all but the timings
        return [{k: v for k, v in epoch.items() if k not in ("images_per_sec", "eta_s")} for epoch in history]

    assert measured(first.history) == measured(second.history)


@pytest.mark.slow
def test_progress_reports_every_batch_and_epoch(small):
    events = []
    config = TrainConfig(epochs=2, batch_size=300, val_size=200, augment=True, schedule="cosine")
    train(TINY_MODEL, config, small, on_progress=events.append)
    batches = [e for e in events if e.kind == "batch"]
    epochs = [e for e in events if e.kind == "epoch"]
    assert len(batches) == 2 * 6 and [e.epoch for e in epochs] == [1, 2]  # 1800 images / 300
    assert all(e.images_per_sec > 0 and e.eta_s >= 0 for e in events)
    assert batches[-1].eta_s == pytest.approx(0, abs=1e-6)
    assert all(0 <= e.val_accuracy <= 1 and e.val_loss > 0 for e in epochs)
    checks = [e for e in events if e.val_loss is not None]  # a two-epoch run is also checked halfway through each
    where = [(e.kind, e.epoch, e.batch) for e in checks]
    assert where == [("batch", 1, 3), ("epoch", 1, 6), ("batch", 2, 3), ("epoch", 2, 6)]
    assert all(0 <= e.train_accuracy <= 1 and e.train_loss > 0 for e in checks)
    assert all(e.train_loss is None for e in batches if e.val_loss is None)


@pytest.mark.slow
def test_a_short_run_is_checked_within_its_epochs_and_training_measured_as_validation(small):
    assert [checks_per_epoch(n) for n in (1, 2, 3, 8)] == [4, 2, 1, 1]
    assert check_batches(430, 1) == {108, 215, 322} and check_batches(430, 3) == set()
    assert check_batches(2, 1) == {1}  # fewer batches than checks: each batch at most once, never the last
    config = TrainConfig(epochs=1, batch_size=100, train_size=1200, val_size=200, label_smoothing=0.1, augment=True)
    events = []
    result = train(TINY_MODEL, config, small, on_progress=events.append)
    assert [e.batch for e in events if e.val_loss is not None] == [3, 6, 9, 12]
    # The last report's training numbers are the finished model's, on the first CHECK_IMAGES training images as they
    # are and without label smoothing: what validation measures on its own images.
    rows = _training_data(small, config, torch.device("cpu")).rows[:CHECK_IMAGES]
    loss, accuracy = _validate(result.model, small.train_images[rows], small.train_labels[rows], torch.device("cpu"))
    assert (events[-1].train_loss, events[-1].train_accuracy) == pytest.approx((loss, accuracy), abs=2e-3)


def test_the_running_sums_are_read_only_for_a_report_and_an_accelerator_reports_batches_sparingly():
    meter = Meter(torch.device("cpu"), epochs=2, batches=3, images=6, interval=3600.0)
    meter.start_epoch(1)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    for batch, (loss, labels) in enumerate(((1.0, [0, 0]), (0.5, [0, 1])), start=1):
        meter.add(torch.tensor(loss), logits, torch.tensor(labels))
        assert not meter.due(batch)  # an hour has not passed
    assert meter.due(batch=3)  # an epoch's last batch is always reported
    report = meter.report("batch", 2)
    assert (report.loss, report.accuracy) == (0.75, 0.75) and report.eta_s > 0
    meter.start_epoch(2)
    assert meter.count == 0 and meter.loss_sum.item() == 0
    assert Meter(torch.device("cpu"), epochs=1, batches=3, images=6, interval=0.0).due(batch=1)  # the CPU: every batch


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_training_step_on_a_gpu_never_waits_for_it(small):
    """Augmentation, non-digits, the update and the running sums only queue work: any call that would wait
    for the GPU (a read-back, a shape that depends on values, a tensor copied from the host) raises here."""
    device = torch.device("cuda")
    config = TrainConfig(batch_size=64, val_size=200, augment=True, outlier_exposure=0.5)
    data = _training_data(small, config, device)
    model = CNN(TINY_MODEL).to(device).to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(model, config, device)
    scheduler = _make_schedule(optimizer, config, total_steps=10)
    meter = Meter(device, epochs=1, batches=10, images=640, interval=REPORT_INTERVAL_S)
    meter.start_epoch(1)
    generator = torch.Generator(device).manual_seed(0)
    order = data.rows[torch.randperm(len(data.rows), generator=generator, device=device)]
    for step, index in enumerate(order.split(config.batch_size)[:4]):
        torch.cuda.set_sync_debug_mode("error" if step else "default")  # the first step sets things up
        try:
            x, y, odd = _batch(data, index, 1, config, generator)
            meter.add(*train_step(model, optimizer, scheduler, x, y, odd, config), y)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert meter.report("batch", 4).loss > 0


@pytest.mark.slow
def test_should_stop_cancels_between_batches(small):
    seen = []
    with pytest.raises(TrainingCancelled, match="epoch 1, batch 4"):
        train(
            TINY_MODEL,
            TrainConfig(epochs=3, batch_size=100, val_size=200),
            small,
            on_progress=seen.append,
            should_stop=lambda: len(seen) >= 3,
        )
    assert len(seen) == 3


@pytest.mark.parametrize(
    "bad",
    [
        dict(epochs=0),
        dict(batch_size=0),
        dict(lr=0),
        dict(schedule="step"),
        dict(label_smoothing=1.0),
        dict(val_size=-1),
        dict(clean_epochs=-1),
    ],
)
def test_invalid_train_configs_are_refused(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


@pytest.mark.slow
def test_an_epoch_goes_through_what_the_validation_split_leaves_or_train_size(small):
    assert TrainConfig(val_size=5000).images_per_epoch == 55000
    assert TrainConfig(val_size=5000, train_size=1000).images_per_epoch == 1000
    assert TrainConfig(val_size=30000, train_size=40000).images_per_epoch == 30000
    events = []
    train(TINY_MODEL, TrainConfig(batch_size=100, val_size=200, train_size=500), small, on_progress=events.append)
    assert events[-1].batches == 5


@pytest.mark.slow
def test_clean_epochs_end_the_run_on_images_as_they_are(small, monkeypatch):
    augmented_in = []
    real_augment = mnist_core.train.augment

    def counting(images, generator=None, labels=None):
        augmented_in.append(len(seen_epochs))
        return real_augment(images, generator, labels)

    seen_epochs: list[int] = []
    monkeypatch.setattr(mnist_core.train, "augment", counting)
    config = TrainConfig(epochs=3, batch_size=100, val_size=200, train_size=300, augment=True, clean_epochs=2)
    train(TINY_MODEL, config, small, on_progress=lambda e: e.kind == "epoch" and seen_epochs.append(e.epoch))
    assert augmented_in == [0, 0, 0]  # the 3 batches of epoch 1, none after it
    assert config.augmented_epochs == 1
    assert TrainConfig(epochs=3, clean_epochs=5, augment=True).augmented_epochs == 0  # more than the run: all clean
