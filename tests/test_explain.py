"""Attribution maps that would fail if they were wrong: on the ink, tied to the weights, tied to the class.

The sanity checks follow Adebayo et al. (2018), "Sanity Checks for Saliency Maps": a map
that survives randomizing the weights explains the input, not the model.
"""

import json
from collections.abc import Sequence

import numpy as np
import photo_digits
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mnist_core import explain
from mnist_core.checkpoints import load_checkpoint
from mnist_core.cli import main
from mnist_core.inference import predict_probabilities
from mnist_core.model import CNN

DEFAULT = load_checkpoint()


@pytest.fixture(scope="module")
def sample(mnist):
    """Two of each digit from the test set (the first ones), with their labels."""
    labels = mnist.test_labels
    index = torch.cat([(labels == d).nonzero().flatten()[:2] for d in range(10)])
    return mnist.test_images[index], labels[index]


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each pair of maps (N, 28, 28)."""
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-12)


def tiered(methods: Sequence[str]) -> list:
    """Integrated gradients and occlusion cost seconds over a batch: in the slow tier (the others are under a
    second)."""
    return [
        pytest.param(m, marks=pytest.mark.slow) if m in ("integrated-gradients", "occlusion") else m for m in methods
    ]


@pytest.mark.parametrize("method", tiered(["integrated-gradients", "occlusion", "grad-cam"]))
def test_the_map_of_a_digit_lies_on_and_near_its_ink(sample, method):
    images, labels = sample
    maps = explain.attribute(DEFAULT.model, images, labels, method)
    assert maps.shape == (len(images), 28, 28)
    ink = (images[:, 0] > -0.5).float()
    # The ink and 2 pixels around it; Grad-CAM's cells are 2 pixels wide (14x14, brought up to 28x28): 3 for it.
    margin = 3 if method == "grad-cam" else 2
    near = F.max_pool2d(ink[:, None], 2 * margin + 1, stride=1, padding=margin)[:, 0] > 0
    share = (maps.abs() * near).sum((1, 2)) / maps.abs().sum((1, 2))
    area = near.float().mean((1, 2))
    # Most of the weight is on or near the ink, well above the share of the picture that is.
    assert share.mean() > 0.5 and (share > area).float().mean() >= 0.75, (share, area)


@pytest.mark.parametrize("method", tiered(explain.METHODS))
def test_randomizing_the_weights_changes_the_map(sample, method):
    images, labels = sample
    torch.manual_seed(0)
    untrained = CNN(DEFAULT.model_config).eval()
    trained_maps = explain.attribute(DEFAULT.model, images, labels, method)
    random_maps = explain.attribute(untrained, images, labels, method)
    assert correlation(trained_maps, random_maps).mean() < 0.3
    assert explain.rank_correlation(trained_maps, random_maps).mean() < 0.5  # Adebayo et al.'s Spearman


def test_rank_correlation_is_spearmans():
    a = torch.arange(784.0).reshape(1, 28, 28)
    assert explain.rank_correlation(a, a.pow(3)).item() == pytest.approx(1.0)  # any increasing function: ranks agree
    assert explain.rank_correlation(a, -a).item() == pytest.approx(-1.0)
    assert explain.rank_correlation(a, torch.zeros(1, 28, 28)).item() == 0.0  # a Grad-CAM that found nothing


@pytest.fixture(scope="module")
def clean_fours(mnist):
    """The four 4s of the first 50 the model is surest of."""
    fours = (mnist.test_labels == 4).nonzero().flatten()[:50]
    sure = predict_probabilities(DEFAULT.model, mnist.test_images[fours])[:, 4].argsort(descending=True)
    return mnist.test_images[fours[sure[:4]]]


@pytest.mark.parametrize("method", tiered(explain.METHODS))
def test_why_4_and_not_9_differs_from_why_4(clean_fours, method):
    fours, nines = torch.full((4,), 4), torch.full((4,), 9)
    why = explain.attribute(DEFAULT.model, clean_fours, fours, method)
    why_not = explain.attribute(DEFAULT.model, clean_fours, fours, method, against=nines)
    torch.testing.assert_close(why_not, why - explain.attribute(DEFAULT.model, clean_fours, nines, method))
    # The 9's own evidence, subtracted, shows: the contrast is another picture (an identical one would be 1).
    assert explain.rank_correlation(why, why_not).mean() < 0.8 if method != "grad-cam" else True
    assert correlation(why, why_not).mean() < (0.8 if method != "grad-cam" else 0.999)
    assert (why_not - why).abs().sum((1, 2)).min() > 0.05 * why.abs().sum((1, 2)).min()


@pytest.mark.parametrize("method", tiered(explain.METHODS))
def test_erasing_what_the_map_ranks_first_lowers_the_class_faster_than_random_ink(sample, method):
    images, labels = sample
    faithful, random = explain.faithfulness(DEFAULT.model, images, labels, method)
    assert faithful < random - 0.05, (faithful, random)
    curves = explain.deletion(DEFAULT.model, images, labels, None)
    assert curves.shape == (len(images), 11)
    assert (curves[:, 0] > 0.5).all() and curves[:, -1].mean() < 0.3  # all ink erased: no digit left to see


def test_grad_cam_for_the_predicted_class_differs_from_the_runner_up(sample):
    images, _ = sample
    ranked = predict_probabilities(load_checkpoint().model, images).argsort(1, descending=True)
    best = explain.attribute(DEFAULT.model, images, ranked[:, 0], "grad-cam")
    second = explain.attribute(DEFAULT.model, images, ranked[:, 1], "grad-cam")
    assert correlation(best, second).mean() < 0.2
    assert (best - second).abs().sum((1, 2)).min() > 0


def test_maps_are_batched_and_independent_of_the_batch(sample):
    images, labels = sample
    for method in explain.METHODS:
        together = explain.attribute(DEFAULT.model, images[:3], labels[:3], method)
        alone = explain.attribute(DEFAULT.model, images[2:3], labels[2:3], method)
        torch.testing.assert_close(together[2:3], alone, atol=1e-4, rtol=1e-3)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        explain.attribute(DEFAULT.model, torch.zeros(1, 1, 28, 28), [0], "lime")
    with pytest.raises(ValueError, match=r"expected images \(N, 1, 28, 28\)"):
        explain.attribute(DEFAULT.model, torch.zeros(2, 1, 28, 28), [0], "saliency")


def test_activations_and_filters_have_the_layers_shapes(sample):
    images, _ = sample
    config = DEFAULT.model_config
    first, second = explain.activations(DEFAULT.model, images[:2])
    assert first.shape == (2, config.conv1_channels, 28, 28) and second.shape == (2, config.conv2_channels, 14, 14)
    assert first.min() >= 0 and second.min() >= 0  # after the ReLU
    assert (first[0] != first[1]).any()  # each image its own activations
    filters = explain.first_layer_filters(DEFAULT.model)
    assert filters.shape == (config.conv1_channels, config.kernel_size, config.kernel_size)
    torch.testing.assert_close(filters, DEFAULT.model.features[0][0].weight[:, 0])


def test_overlay_colours_support_red_and_opposition_blue():
    image = -torch.ones(1, 28, 28)
    attribution = torch.zeros(28, 28)
    attribution[3, 4], attribution[10, 10] = 2.0, -1.0
    rgb = explain.overlay(image, attribution, scale=2)
    assert rgb.shape == (56, 56, 3) and rgb.dtype == np.uint8
    red, blue, plain = rgb[6, 8], rgb[20, 20], rgb[0, 0]
    assert red[0] > 200 and red[2] < 60
    assert blue[2] > red[2] and blue[0] < red[0]
    assert plain[0] == plain[1] == plain[2]  # no map: just the grey picture


def test_cli_explain_writes_the_map_as_json_and_png(capsys, tmp_path, mnist):
    threes = (mnist.test_labels == 3).nonzero().flatten()[:50]  # a plain 3: the one the model is surest of
    index = int(threes[predict_probabilities(load_checkpoint().model, mnist.test_images[threes])[:, 3].argmax()])
    pixels = ((mnist.test_images[index, 0] + 1) * 127.5).round().byte().numpy()
    Image.fromarray(pixels).save(tmp_path / "three.png")
    out = tmp_path / "map.png"
    code = main(
        ["explain", str(tmp_path / "three.png"), "--method", "grad-cam", "--target", "8", "--out", str(out), "--json"]
    )
    record = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (record["path"], record["digit"], record["target"], record["method"]) == (
        str(tmp_path / "three.png"),
        3,
        8,
        "grad-cam",
    )
    assert np.array(record["map"]).shape == (28, 28)
    assert Image.open(out).size == (280, 280)


def test_cli_explain_refuses_a_blank_image(capsys, tmp_path):
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    assert main(["explain", str(tmp_path / "blank.png")]) == 2
    assert "no digit found" in capsys.readouterr().err


def test_cli_explain_why_4_and_not_9_and_a_number_digit_by_digit(capsys, tmp_path, clean_fours):
    pixels = ((clean_fours[0, 0] + 1) * 127.5).round().byte().numpy()
    Image.fromarray(pixels).save(tmp_path / "four.png")
    Image.fromarray(np.concatenate([pixels, pixels], axis=1)).save(tmp_path / "44.png")
    assert main(["explain", str(tmp_path / "four.png"), "--method", "saliency", "--json"]) == 0
    why = json.loads(capsys.readouterr().out)
    assert main(["explain", str(tmp_path / "four.png"), "--method", "saliency", "--against", "9", "--json"]) == 0
    why_not = json.loads(capsys.readouterr().out)
    assert (why["target"], why["against"], why_not["target"], why_not["against"]) == (4, None, 4, 9)
    assert explain.rank_correlation(torch.tensor([why["map"]]), torch.tensor([why_not["map"]])).item() < 0.9
    out = tmp_path / "maps.png"
    assert main(["explain", str(tmp_path / "44.png"), "--method", "grad-cam", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "number 44" in printed and printed.count("grad-cam map for 4") == 2
    assert Image.open(out).size == (560, 280)  # each digit's map, side by side


def test_cli_explain_says_why_a_smiley_is_not_a_digit(capsys, tmp_path):
    smiley = photo_digits.smiley()
    smiley.save(tmp_path / "smiley.png")
    assert main(["explain", str(tmp_path / "smiley.png"), "--method", "grad-cam", "--json"]) == 2
    record = json.loads(capsys.readouterr().out)
    assert record["error"] == "not a digit" and record["digit"] is None  # as predict says it
    [closest] = record["digits"]
    assert not closest["is_digit"] and closest["distance"] > closest["threshold"]
    assert closest["target"] == int(np.argmax(closest["probabilities"])) and np.array(closest["map"]).shape == (28, 28)
