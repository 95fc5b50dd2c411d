"""Watch it learn: the panel, its per-epoch predictions in the history, and its replay from the checkpoint."""

import time

import pytest
import torch

from mnist_core.data import MNIST
from mnist_core.inference import predict_probabilities
from mnist_core.jobs import TrainingQueue
from mnist_core.model import ModelConfig
from mnist_core.train import TrainConfig
from mnist_core.watch import DRAWING, WatchPanel, watch_panel

TINY = ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16, dropout=0.0)


def test_the_panel_has_a_typical_and_a_hard_image_of_each_digit(mnist):
    panel = watch_panel(mnist)
    assert panel.labels == [d for d in range(10) for _ in range(2)]
    assert panel.images.shape == (20, 1, 28, 28)
    for digit in range(10):
        mean = mnist.test_images[mnist.test_labels == digit].flatten(1).mean(0)
        typical, hard = (panel.images[2 * digit + k].flatten() for k in range(2))
        assert (typical - mean).norm() < (hard - mean).norm()
    torch.testing.assert_close(watch_panel(mnist).images, panel.images)  # the same images for every run


def test_a_drawing_joins_the_panel_and_survives_the_checkpoint_format(mnist):
    drawing = mnist.train_images[0]
    panel = watch_panel(mnist, drawing)
    assert panel.labels[-1] == DRAWING and len(panel.labels) == 21
    back = WatchPanel.from_payload(panel.to_payload())
    assert back.labels == panel.labels
    torch.testing.assert_close(back.images, panel.images, atol=1 / 127.5, rtol=0)  # stored as 0-255 bytes


@pytest.mark.slow
def test_a_job_records_the_panels_predictions_every_epoch_for_replay(tmp_path, mnist):
    small = MNIST(mnist.train_images[:2000], mnist.train_labels[:2000], mnist.test_images, mnist.test_labels, "x")
    drawing = mnist.test_images[1]
    job = TrainingQueue(tmp_path, data=small).submit(
        TINY, TrainConfig(epochs=2, batch_size=100, val_size=200), name="watched", drawing=drawing
    )
    deadline = time.monotonic() + 120
    while not job.done:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job.status == "finished", job.error
    assert [e.watch is not None for e in job.events] == [e.kind == "epoch" for e in job.events]

    checkpoint = job.checkpoint
    assert checkpoint is not None
    panel = WatchPanel.from_payload(checkpoint.watch)
    assert panel.labels == [*(d for d in range(10) for _ in range(2)), DRAWING]
    epochs = [torch.tensor(h["watch"]) for h in checkpoint.history]
    assert len(epochs) == 2 and all(e.shape == (21, 10) for e in epochs)
    assert not torch.equal(epochs[0], epochs[1])  # the model changed between epochs
    # The last epoch's record is what the saved model says about the saved images.
    torch.testing.assert_close(epochs[1], predict_probabilities(checkpoint.model, panel.images), atol=0.02, rtol=0)
