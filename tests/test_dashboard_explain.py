"""The explanation views under AppTest: Draw's Why panel, Evaluate's maps and calibration, the Map, replay."""

import io
import json
import multiprocessing

import numpy as np
import photo_digits
import pytest
import streamlit as st
import torch
from dashboard_helpers import button, open_page, run_until, texts, tiny_settings
from PIL import Image

from mnist_core import projection
from mnist_core.checkpoints import load_checkpoint
from mnist_core.watch import DRAWING


def upload_test_image(at, mnist, index: int) -> None:
    pixels = ((mnist.test_images[index, 0] + 1) * 127.5).byte().numpy()
    buffer = io.BytesIO()
    Image.fromarray(255 - np.kron(pixels, np.ones((8, 8), np.uint8))).save(buffer, format="PNG")
    at.file_uploader[0].upload("digit.png", buffer.getvalue(), "image/png").run()
    assert not at.exception, at.exception


def captions(at) -> list[str]:
    """The captions of the page's images, in order."""
    return [image.proto.imgs[0].caption for image in at.image if image.proto.imgs]


def test_why_panel_explains_the_prediction_or_any_digit_asked_about(folder, mnist):
    at = open_page("3_Draw.py")
    digit = int(mnist.test_labels[0])
    upload_test_image(at, mnist, 0)
    assert "Why?" in [s.value for s in at.subheader]
    assert f"Integrated gradients for {digit}" in captions(at)
    assert f"**Why {digit}**" in texts(at)
    other = (digit + 1) % 10
    at.pills(key="why_target").set_value(other).run()
    assert f"Integrated gradients for {other}" in captions(at)
    assert f"**Why not {other}?** (it said {digit})" in texts(at)
    at.segmented_control(key="why_method").set_value("grad-cam").run()
    assert f"Grad-CAM for {other}" in captions(at)
    against = (other + 1) % 10
    at.pills(key="why_against").set_value(against).run()
    assert f"Grad-CAM: {other} and not {against}" in captions(at)
    assert f"**Why {other} and not {against}?**" in texts(at)
    assert any(c.startswith("Conv layer 1: 32 maps") for c in captions(at))
    assert isinstance(at.session_state["last_drawing"], torch.Tensor)  # kept for the Train page and the Map


@pytest.mark.slow  # a page under AppTest: seconds
def test_every_reading_is_explained_a_number_digit_by_digit_and_a_smiley_refused(folder, mnist):
    at = open_page("3_Draw.py")
    pixels = ((mnist.test_images[:2, 0] + 1) * 127.5).byte().numpy()
    number = 255 - np.kron(np.concatenate([pixels[0], np.zeros((28, 8), np.uint8), pixels[1]], 1), np.ones((8, 8)))
    buffer = io.BytesIO()
    Image.fromarray(number.astype(np.uint8)).save(buffer, format="PNG")
    at.file_uploader[0].upload("number.png", buffer.getvalue(), "image/png").run()
    first, second = (int(d) for d in mnist.test_labels[:2])
    assert {f"Integrated gradients for {first}", f"Integrated gradients for {second}"} <= set(captions(at))
    assert f"**{first}**" in texts(at) and f"**{second}**" in texts(at)

    smiley = photo_digits.smiley()
    buffer = io.BytesIO()
    smiley.save(buffer, format="PNG")
    at.file_uploader[0].upload("smiley.png", buffer.getvalue(), "image/png").run()
    assert not at.exception, at.exception
    assert "not a digit (closest:" in texts(at) and "Refused: its last conv layer's features lie" in texts(at)
    assert any(c.startswith("Integrated gradients for ") for c in captions(at))


@pytest.mark.slow
def test_evaluate_shows_calibration_and_why_an_error_was_made(folder, default_evaluation):
    result = default_evaluation
    at = open_page("2_Evaluate.py")
    assert "Calibration" in [h.value for h in at.header]
    charts = {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    titles = [spec["layout"].get("title", {}).get("text", "") for spec in charts.values()]
    assert f"Reliability · ECE {result.reliability(bins=10)['ece']:.2%}" in titles
    index = int(result.error_indices[0])
    at.selectbox(key="order").set_value("index").run()  # the first error is the one in the detail
    true, said = int(result.labels[index]), int(result.predictions[index])
    assert at.subheader[-1].value == f"Test image #{index}"
    assert {f"Why it said {said}", f"What supports {true}"} <= set(captions(at))


@pytest.fixture
def stop_background_maps():
    """The Map starts UMAP in a daemon process; end the ones this test started, so later tests keep both cores."""
    before = set(multiprocessing.active_children())
    yield
    projection._waiting.clear()  # the maps this test queued behind others
    for child in set(multiprocessing.active_children()) - before:
        child.terminate()
        child.join(timeout=10)
    st.cache_resource.clear()  # the Map's cached job for this model is a stopped one now


@pytest.mark.slow
def test_map_shows_pca_at_once_and_the_drawing_as_a_point(folder, mnist, stop_background_maps):
    at = open_page("3_Draw.py")
    upload_test_image(at, mnist, 0)
    projection.project_in_background(np.zeros((300, 4), np.float32), "umap")  # another model's map, made first
    at.switch_page("pages/5_Map.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Map of the test set"
    assert "UMAP waits its turn: this server makes one map at a time" in texts(at)
    [chart] = at.get("plotly_chart")
    spec = json.loads(chart.proto.spec)
    assert spec["layout"]["title"]["text"] in ("PCA of the penultimate layer", "UMAP of the penultimate layer")
    # One hover picture per point (coordinates are packed binary in the spec).
    points = sum(len(trace["text"]) for trace in spec["data"] if trace["name"] != "your drawing")
    assert points == 10000
    [star] = [trace for trace in spec["data"] if trace["name"] == "your drawing"]
    assert star["text"] == ["your drawing"]
    assert "Click a dot, or drag a lasso" in texts(at)


@pytest.mark.slow
def test_a_run_watches_the_drawing_and_is_replayed(folder, mnist):
    at = open_page("1_Train.py")
    at.session_state["last_drawing"] = mnist.test_images[0]
    tiny_settings(at, "watched", epochs=2)
    button(at, "Start training").click().run()
    run_until(at, lambda at: at.success)
    assert "Watch it learn: replay a run" in [h.value for h in at.header]
    assert at.selectbox(key="replay_run").value == "watched"
    assert at.slider(key="replay_epoch-watched").value == 2
    assert any(c.startswith("yours: ") for c in captions(at))
    assert load_checkpoint(folder / "watched.pt").watch["labels"][-1] == DRAWING
    at.slider(key="replay_epoch-watched").set_value(1).run()
    assert not at.exception, at.exception
