"""predict(): preprocessing plus one batched forward pass, with the default model or any checkpoint."""

import os

import pytest
import torch
from custom_digits import draw_digit

from mnist_core.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from mnist_core.images import ImageError
from mnist_core.model import CNN, ModelConfig
from mnist_core.places import default_checkpoint
from mnist_core.predict import predict
from mnist_core.train import TrainConfig

BLANK = draw_digit(0, height=0, pen=0)


@pytest.fixture(scope="module")
def digits():
    return [draw_digit(label) for label in range(10)]


def test_reads_drawn_digits_with_the_default_model(digits):
    predictions = predict(digits)
    assert [p.digit for p in predictions] == list(range(10))
    for p in predictions:
        assert len(p.probabilities) == 10
        assert sum(p.probabilities) == pytest.approx(1, abs=1e-5)
        assert p.probabilities[p.digit] == max(p.probabilities)
        assert p.image.shape == (1, 28, 28)
        assert "28x28" in p.steps


def test_no_digit_gives_none_not_a_guess(digits):
    blank, seven = predict([BLANK, digits[7]])
    assert blank.digit is None and blank.probabilities is None and blank.image is None
    assert "grayscale" in blank.steps
    assert seven.digit == 7


def test_a_batch_gives_what_single_images_give(digits):
    batch = predict([digits[3], BLANK, digits[8]])
    singles = [predict(image)[0] for image in (digits[3], BLANK, digits[8])]
    assert [p.digit for p in batch] == [p.digit for p in singles] == [3, None, 8]
    for b, s in zip(batch, singles):
        if s.probabilities is not None:
            assert b.probabilities == pytest.approx(s.probabilities, abs=1e-5)


def test_unreadable_image_raises_image_error(digits):
    with pytest.raises(ImageError, match="not an image"):
        predict(b"not an image")
    with pytest.raises(ImageError, match="image 2: the file is empty"):
        predict([digits[1], b"", digits[2]])


def test_checkpoint_by_path_or_object_matches_the_default(digits):
    default = predict(digits[5])[0].probabilities
    assert predict(digits[5], default_checkpoint())[0].probabilities == pytest.approx(default)
    assert predict(digits[5], str(default_checkpoint()))[0].probabilities == pytest.approx(default)
    assert predict(digits[5], load_checkpoint(default_checkpoint()))[0].probabilities == pytest.approx(default)


def test_a_checkpoint_rewritten_in_place_is_read_again(tmp_path, digits):
    path = tmp_path / "model.pt"

    def save(seed: int) -> None:
        torch.manual_seed(seed)
        save_checkpoint(
            path,
            CNN(ModelConfig(conv1_channels=4, conv2_channels=4, hidden_units=8)).eval(),
            TrainConfig(),
            {},
            [],
            "",
            overwrite=True,
        )

    save(0)
    first = predict(digits[4], path)[0].probabilities
    assert predict(digits[4], path)[0].probabilities == first
    save(1)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later mtime, even on coarse clocks
    assert predict(digits[4], path)[0].probabilities != pytest.approx(first)


def test_missing_checkpoint_raises_checkpoint_error(tmp_path, digits):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        predict(digits[0], tmp_path / "missing.pt")
