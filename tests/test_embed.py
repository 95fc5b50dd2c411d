"""The map of the test set: deterministic for a seed, and neighbours on the map mostly share a digit."""

import csv
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mnist_core import embed, projection
from mnist_core.checkpoints import load_checkpoint
from mnist_core.cli import main

DEFAULT = load_checkpoint()


@pytest.fixture(scope="module")
def features(mnist):
    """Penultimate-layer features and labels of the first 2,000 test images."""
    return embed.penultimate(DEFAULT.model, mnist.test_images[:2000]), mnist.test_labels[:2000].numpy()


def test_features_are_the_hidden_layer(features):
    values, _ = features
    assert values.shape == (2000, DEFAULT.model_config.hidden_units)
    assert values.min() >= 0  # after the ReLU


def test_pca_map_is_deterministic_and_keeps_digits_together(features):
    values, labels = features
    points = projection.project(values, "pca")
    assert points.shape == (2000, 2)
    np.testing.assert_array_equal(points, projection.project(values, "pca"))
    agreement = projection.neighbour_agreement(points, labels)
    shuffled = projection.neighbour_agreement(points, np.random.default_rng(0).permutation(labels))
    assert agreement > 0.75 and shuffled < 0.2, (agreement, shuffled)


@pytest.fixture
def torch_threads_kept():
    """UMAP leaves the process's OpenMP thread count at 2, which torch shares: put back what the suite chose."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow  # umap-learn's numba code compiles on first use: tens of seconds
def test_umap_map_is_deterministic_for_a_seed_and_keeps_digits_together(features, torch_threads_kept):
    values, labels = features[0][:1000], features[1][:1000]
    points = projection.project(values, "umap", seed=3)
    np.testing.assert_array_equal(points, projection.project(values, "umap", seed=3))
    assert projection.neighbour_agreement(points, labels) > 0.9


def test_a_new_image_lands_among_its_nearest_neighbours(features):
    values, _ = features
    points = projection.project(values, "pca")
    spot = projection.place(values[[7]], values, points)
    nearest = np.argsort(((values - values[7]) ** 2).sum(1))[:10]
    np.testing.assert_allclose(spot[0], points[nearest].mean(0), rtol=1e-5)
    assert np.linalg.norm(spot[0] - points[7]) < np.linalg.norm(points - points[7], axis=1).mean()


def test_unknown_method_is_refused(features):
    with pytest.raises(ValueError, match="method must be one of pca, umap"):
        projection.project(features[0], "tsne")


@pytest.mark.slow  # the whole test set
def test_cli_embed_writes_one_row_per_test_image(capsys, tmp_path, mnist):
    out = tmp_path / "points.csv"
    assert main(["embed", "--method", "pca", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["index", "x", "y", "label", "prediction"]
    assert len(rows) == 10000 and [int(r["index"]) for r in rows[:3]] == [0, 1, 2]
    assert [int(r["label"]) for r in rows[:20]] == mnist.test_labels[:20].tolist()
    wrong = sum(r["label"] != r["prediction"] for r in rows)
    assert wrong == DEFAULT.metrics["test_errors"]
    assert "10,000 test images mapped by pca" in capsys.readouterr().out


def test_projections_run_in_the_background_one_at_a_time_and_report_failures(features):
    """Seven sessions on seven models once ran eight UMAP processes at once: now each waits its turn, told its
    place in line."""
    values, _ = features
    job = projection.project_in_background(values[:300], "pca")
    broken = projection.project_in_background(values[:300], "tsne")
    assert (job.ahead, broken.ahead) == (0, 1) and job.started and broken.process is None and not broken.started
    deadline = time.monotonic() + 120
    while not (job.done() and broken.done()):
        assert time.monotonic() < deadline
        assert sum(j.process is not None and j.process.is_alive() for j in (job, broken)) <= 1
        time.sleep(0.1)
    assert broken.started >= job.started and broken.ahead == 0
    assert job.error is None
    np.testing.assert_array_equal(job.points, projection.project(values[:300], "pca"))
    assert broken.points is None and "method must be one of" in broken.error


def test_a_background_map_imports_no_torch():
    """Its process imports only the projection module: torch would cost it seconds and hundreds of megabytes."""
    code = "import sys, mnist_core.projection; print(sorted({'torch', 'mnist_core.embed'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no nice values on this system")
def test_a_background_map_yields_the_cpu(features):
    job = projection.project_in_background(features[0][:300], "umap")  # seconds of numba compiling: time to look
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    deadline = time.monotonic() + 60
    while job.process is None:  # its turn comes when an earlier test's projection process has ended
        assert time.monotonic() < deadline and not job.done()
        time.sleep(0.05)
    try:
        while os.getpriority(os.PRIO_PROCESS, job.process.pid) != min(mine + projection.BACKGROUND_NICENESS, 19):
            assert time.monotonic() < deadline and not job.done(), "the map's process kept the server's priority"
            time.sleep(0.05)
    finally:
        job.process.kill()
        job.process.join()
