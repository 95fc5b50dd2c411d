"""Every dashboard page under Streamlit's AppTest: it renders, and its widgets change what it shows.

Each test points the app at a temporary checkpoint folder holding a copy of the
committed default model, so runs started here never touch the repository.
"""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from dashboard_helpers import button, open_page, run_until, texts, tiny_settings
from PIL import Image

from mnist_core.checkpoints import load_checkpoint
from mnist_core.data import to_pixels
from mnist_core.runs import read_runs
from mnist_core.train import PRESETS

REPO = Path(__file__).resolve().parent.parent
HOME = str(REPO / "dashboard" / "Home.py")


def test_home_shows_the_model_card_and_the_dataset(folder, mnist):  # MNIST on disk: the accuracy is measured
    at = open_page()
    model = load_checkpoint(folder / "default.pt")
    assert at.title[0].value == "MNIST lab"
    assert at.subheader[0].value == "default"
    assert at.metric[0].value == f"{model.metrics['test_accuracy']:.2%}"
    assert at.metric[1].value == f"{model.model.num_parameters:,}"
    assert "device" not in model.metrics and not at.metric[2].delta  # an older file: the time alone
    assert "Start by drawing a digit" in texts(at) and at.button(key="start").label == "Draw a digit"
    samples = at.image[0].value
    at.number_input[0].set_value(1).run()
    assert at.image[0].value != samples


def test_home_works_before_mnist_is_downloaded(folder, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path_factory.mktemp("no-data")))
    at = open_page()
    assert "MNIST is not on this machine yet" in texts(at)
    assert button(at, "Download MNIST") and not at.image  # nothing fetched until asked
    recorded = load_checkpoint(folder / "default.pt").metrics["test_accuracy"]
    assert at.metric[0].value == f"{recorded:.2%} (recorded)"  # the card needs no data, and says it cannot measure


def test_a_broken_checkpoint_is_listed_and_the_app_keeps_working(folder):
    (folder / "broken.pt").write_bytes(b"not a checkpoint")
    at = open_page("2_Evaluate.py")
    assert at.sidebar.expander[0].label == "1 unreadable checkpoint(s)"
    assert "broken.pt" in "\n".join(c.value for c in at.sidebar.caption)
    assert len(at.selectbox(key="model_picker").options) == 1  # default only


@pytest.mark.slow
def test_evaluate_shows_metrics_filters_errors_and_inspects_an_image(folder, default_evaluation):
    result = default_evaluation
    labels, predictions = result.labels.numpy(), result.predictions.numpy()
    at = open_page("2_Evaluate.py")
    assert at.metric[0].value == f"{result.accuracy:.2%}"
    assert at.metric[1].value == f"{len(result.error_indices):,} of 10,000"

    at.selectbox(key="true_filter").set_value(5).run()
    wrong_fives = np.flatnonzero((labels == 5) & (predictions != 5))
    assert f"{len(wrong_fives)} image(s)" in texts(at)
    figures = [json.loads(chart.proto.spec)["data"] for chart in at.get("plotly_chart")]
    [grid] = [data[1] for data in figures if len(data) > 1 and "customdata" in data[1]]  # the images' click targets
    assert grid["customdata"] == result.select(5).tolist()[:24] and set(grid["customdata"]) <= set(wrong_fives)
    assert at.subheader[-1].value == f"Test image #{grid['customdata'][0]}"  # the detail shows an image in view

    at.toggle(key="gallery").set_value(True).run()
    assert f"{(labels == 5).sum()} image(s)" in texts(at)
    at.selectbox(key="predicted_filter").set_value(3).run()
    assert f"{((labels == 5) & (predictions == 3)).sum()} image(s)" in texts(at)


def test_each_session_has_its_own_active_model(folder):
    shutil.copy(folder / "default.pt", folder / "copy.pt")
    first, second = open_page(), open_page()
    first.selectbox(key="model_picker").set_value("copy").run()
    first.switch_page("pages/2_Evaluate.py").run()
    assert "**copy**" in texts(first)
    second.switch_page("pages/2_Evaluate.py").run()
    assert "**default**" in texts(second)


def test_train_presets_fill_the_settings_and_change_the_estimate(folder):
    at = open_page("1_Train.py")
    assert at.slider(key="epochs").value == PRESETS["quick"][1].epochs
    estimate = [m.value for m in at.markdown if m.value.startswith("**Takes")]
    at.selectbox(key="preset").set_value("best").run()
    assert at.slider(key="epochs").value == 15 and at.select_slider(key="conv1_channels").value == 64
    assert "The last 2 epoch(s) see the images as they are." in [c.value for c in at.caption]
    at.switch_page("Home.py").run()
    at.switch_page("pages/1_Train.py").run()
    assert at.slider(key="epochs").value == 15  # the settings survive a visit to another page
    assert [m.value for m in at.markdown if m.value.startswith("**Takes")] != estimate


@pytest.mark.slow
def test_a_run_started_on_the_page_finishes_and_joins_the_history(folder):
    at = open_page("1_Train.py")
    tiny_settings(at, "tiny")
    assert "1 epoch(s) × 2 batches of 512 (1,000 images)" in texts(at)  # what the estimate is for
    button(at, "Start training").click().run()
    run_until(at, lambda at: at.success)
    assert "**tiny** saved: test accuracy" in at.success[0].value
    assert {r["name"]: r for r in read_runs(folder)}["tiny"]["train_config"]["train_size"] == 1000
    history = at.dataframe[0].value
    assert history.loc[history.name == "tiny", "status"].tolist() == ["finished"]
    assert history.loc[history.name == "tiny", "conv1_channels"].tolist() == ["4"]  # as settings_view.show words it
    assert history.loc[history.name == "tiny", "train_size"].tolist() == ["1,000"]

    button(at, "Make it the active model").click().run()
    assert at.selectbox(key="model_picker").value == "tiny"


@pytest.mark.slow
def test_a_second_session_waits_in_the_queue_and_cancel_leaves_no_checkpoint(folder):
    first, second = open_page("1_Train.py"), open_page("1_Train.py")
    tiny_settings(first, "long", epochs=30, images=0)
    button(first, "Start training").click().run()
    run_until(first, lambda at: "epoch 1/30" in str([p.proto for p in at.get("progress")]))
    first.switch_page("pages/3_Draw.py").run()
    first.switch_page("pages/1_Train.py").run()
    assert "**long** · epoch" in str([p.proto for p in first.get("progress")])  # still training, shown again

    second.run()
    assert "**long** (another session's) · epoch" in texts(second)
    tiny_settings(second, "waiting")
    button(second, "Start training").click().run()
    assert "**waiting** is queued behind long" in texts(second)

    button(first, "Cancel").click().run()
    run_until(first, lambda at: at.warning)
    assert "**long** was cancelled; nothing was saved." in texts(first)
    assert not (folder / "long.pt").exists()

    run_until(second, lambda at: at.success)
    assert {r["name"]: r["status"] for r in read_runs(folder)} == {"long": "cancelled", "waiting": "finished"}


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_draw_starts_empty_and_reads_an_uploaded_digit(folder, mnist):
    at = open_page("3_Draw.py")
    assert "No digit found" in texts(at)
    digit = int(mnist.test_labels[0])
    pixels = to_pixels(mnist.test_images[:1])[0]
    at.file_uploader[0].upload("digit.png", png(255 - np.kron(pixels, np.ones((8, 8), np.uint8))), "image/png").run()
    assert not at.exception, at.exception
    assert f"data-testid='predicted-digit'>{digit}</div>" in texts(at)
    assert "% sure" in texts(at) and len(at.get("plotly_chart")) == 2  # the picture with its box, the probabilities


def test_draw_reports_a_file_that_is_not_an_image(folder):
    at = open_page("3_Draw.py")
    at.file_uploader[0].upload("digit.png", b"this is not a picture", "image/png").run()
    assert not at.exception, at.exception
    assert "cannot be read as an image" in at.error[0].value


def test_an_empty_checkpoint_folder_still_offers_the_default_model(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_CHECKPOINTS", str(tmp_path))
    at = open_page()
    picker = at.selectbox(key="model_picker")
    assert picker.value == "default" and len(picker.options) == 1  # the model shipped with the package
    assert at.subheader[0].value == "default"
