"""The default model reads digits that look nothing like MNIST, thanks to preprocessing.

The set (see custom_digits.py) is canvas drawings and photos of font glyphs and pen
strokes. Resizing straight to 28x28, as most demos do, is the baseline preprocessing has
to beat by far.
"""

from collections import defaultdict

import fonts
import numpy as np
import pytest
import torch
from custom_digits import custom_digits
from PIL import Image

from mnist_core.checkpoints import load_checkpoint
from mnist_core.data import normalize
from mnist_core.places import default_checkpoint
from mnist_core.preprocess import preprocess


@pytest.fixture(scope="module")
def samples():
    return custom_digits()


@pytest.fixture(scope="module")
def model():
    return load_checkpoint(default_checkpoint()).model


def naive(image: Image.Image) -> torch.Tensor:
    """What a typical demo does: grayscale, resize to 28x28, normalize."""
    return normalize(torch.from_numpy(np.array(image.convert("L").resize((28, 28), Image.Resampling.BILINEAR)))[None])[
        0
    ]


@pytest.mark.slow
@torch.inference_mode()
def test_default_model_reads_the_custom_set_with_preprocessing(samples, model):
    labels = torch.tensor([s.label for s in samples])
    prepared = [preprocess(s.image) for s in samples]
    assert all(p.found for p in prepared)
    predicted = model(torch.stack([p.tensor for p in prepared])).argmax(1)
    naive_predicted = model(torch.stack([naive(s.image) for s in samples])).argmax(1)

    accuracy = (predicted == labels).float().mean().item()
    naive_accuracy = (naive_predicted == labels).float().mean().item()
    assert accuracy >= 0.95
    assert naive_accuracy <= accuracy - 0.4

    by_kind = defaultdict(list)
    for sample, correct in zip(samples, (predicted == labels).tolist()):
        by_kind[sample.kind].append(correct)
    for kind, results in by_kind.items():
        assert np.mean(results) >= 0.85, f"{kind}: {np.mean(results):.0%} of {len(results)}"


def test_the_set_is_deterministic_and_varied(samples):
    again = custom_digits(20)
    assert all(np.array_equal(np.asarray(a.image), np.asarray(b.image)) for a, b in zip(samples[:20], again))
    assert not np.array_equal(np.asarray(custom_digits(1, seed=1)[0].image), np.asarray(samples[0].image))
    assert {s.label for s in samples} == set(range(10))
    assert {s.kind for s in samples} == {
        f"{style} {scene}" for style in ("font", "pen") for scene in ("canvas", "transparent", "photo")
    }
    assert {s.image.mode for s in samples} >= {"L", "RGB", "RGBA"}
    assert len({s.image.size for s in samples}) > 50


def test_a_missing_font_fails_naming_the_file_and_its_package(monkeypatch):
    missing = f"{fonts.DEJAVU}/DejaVuMissing.ttf"
    monkeypatch.setitem(fonts.PACKAGES, missing, "fonts-dejavu-core")
    with pytest.raises(pytest.fail.Exception, match=r"DejaVuMissing\.ttf is missing: .* package fonts-dejavu-core"):
        fonts.font(missing, 20)
