"""The Train and Evaluate pages tell the truth: a run is found again after a reload, any session sees and
can cancel the queue, a damaged run log is survived, and the error explorer always shows what it says.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from dashboard_helpers import button, open_page, reloaded, run_until, texts, tiny_settings
from streamlit.testing.v1 import AppTest

from mnist_core.checkpoints import load_checkpoint
from mnist_core.runs import read_runs


def progress_texts(at: AppTest) -> str:
    return str([p.proto for p in at.get("progress")])


@pytest.mark.slow
def test_a_reloaded_tab_finds_its_run_and_any_session_can_cancel_a_queued_one(folder):
    first, second = open_page("1_Train.py"), open_page("1_Train.py")
    tiny_settings(first, "long", epochs=30, images=0)
    button(first, "Start training").click().run()
    assert button(first, "Start training").disabled  # in the very rerun that started it
    assert first.query_params["run"] == ["long"] or first.query_params["run"] == "long"
    run_until(first, lambda at: "**long** · epoch 1/30" in progress_texts(at))

    tiny_settings(second, "waiting")
    button(second, "Start training").click().run()
    assert "**waiting** is queued behind long: number 2 in line, starts in about" in texts(second)
    assert "**long** (another session's) · epoch" in texts(second)  # others see its progress too

    first.run()
    assert "**waiting** (another session's) · waiting, number 2 in line · starts in about" in texts(first)
    button_of = {b.key: b for b in first.button}
    button_of["cancel-waiting"].click().run()  # cancelled from the session that did not start it
    second.run()
    assert "**waiting** was cancelled" in texts(second) and not button(second, "Start training").disabled
    assert {r["name"]: r["status"] for r in read_runs(folder)}["waiting"] == "cancelled"
    assert "waiting" in second.dataframe[0].value["name"].tolist()  # in the run history at once

    again = reloaded("long")
    assert "Your run: long" in texts(again) and "**long** · epoch" in progress_texts(again)
    assert not button(again, "Cancel").disabled
    button(again, "Cancel").click().run()
    run_until(again, lambda at: at.warning)
    assert "**long** was cancelled" in texts(again) and "epoch" not in progress_texts(again)  # no stale bar
    assert not (folder / "long.pt").exists()


def test_a_damaged_run_log_does_not_take_the_train_page_down(folder):
    lines = [
        '{"name": "good", "status": "finished", "started": "2026-01-01T00:00:00", "metrics": {"test_accuracy": 0.99}}',
        "\x00\x01 not json",
        '{"name": "odd", "status": "finished", "metrics": "none", "train_config": [1, 2], "model_config": 7}',
        '{"name": "cut", "status": "fin',
    ]
    Path(folder, "runs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    at = open_page("1_Train.py")
    table = at.dataframe[0].value
    assert set(table["name"]) == {"good"}  # lines of the wrong shape are skipped, and said so
    assert any(e.label.startswith("3 damaged line(s) of the run log") for e in at.expander)
    assert table.loc[table.name == "good", "test accuracy"].tolist() == [0.99]
    assert "**Takes about" in texts(at)


def test_the_model_picker_tells_runs_apart(folder):
    at = open_page()
    shown = at.selectbox(key="model_picker").format_func("default")
    model = load_checkpoint(folder / "default.pt")
    assert f"conv {model.model_config.conv1_channels}→{model.model_config.conv2_channels}" in shown


@pytest.mark.slow
def test_the_explorer_says_what_an_empty_cell_means_and_follows_filters(folder, default_evaluation):
    result = default_evaluation
    confusion = result.confusion.numpy()
    wrong = confusion - np.diag(np.diag(confusion))
    true, predicted = np.argwhere((confusion == 0) & (wrong.sum(1, keepdims=True) > 0))[0]  # a row with errors
    at = open_page("2_Evaluate.py")
    at.selectbox(key="true_filter").set_value(int(true)).run()
    first_page = int(result.select(int(true)).numpy()[0])
    assert at.subheader[-1].value == f"Test image #{first_page}"  # the detail follows the filter
    at.selectbox(key="predicted_filter").set_value(int(predicted)).run()
    assert f"never read a true {true} as a {predicted}" in texts(at)
    assert "All predictions" not in texts(at)  # no advice that would lead to nothing

    at.selectbox(key="predicted_filter").set_value(int(true)).run()
    right = len(result.select(int(true), int(true), correct_too=True))
    assert f"Switch on 'All predictions' to see the {right:,} images it gets right." in texts(at)


def test_the_matrix_shows_counts_or_row_percentages(folder):
    at = open_page("2_Evaluate.py")
    matrix = at.get("plotly_chart")[0]
    assert "%" not in str(json.loads(matrix.proto.spec)["data"][0]["text"])
    at.segmented_control(key="matrix_view").set_value("% of each row").run()
    cells = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["text"]
    assert [c for c in cells if c] and all(c.endswith("%") for c in cells if c)


@pytest.mark.slow
def test_the_sidebar_shows_what_a_model_scores_not_what_its_file_claims(folder):
    from mnist_core.checkpoints import save_checkpoint
    from mnist_core.model import CNN, ModelConfig
    from mnist_core.train import TrainConfig

    torch.manual_seed(0)  # finite random weights that claim to be excellent
    model = CNN(ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16))
    save_checkpoint(folder / "liar.pt", model, TrainConfig(), {"test_accuracy": 0.9952}, [], "")
    at = open_page()
    assert not at.sidebar.warning  # the default model scores what it records
    at.selectbox(key="model_picker").set_value("liar").run()
    warning = str(at.sidebar.warning[0].value)
    assert "**liar**: its file records 99.52% test accuracy, but it scores" in warning
    label = at.selectbox(key="model_picker").format_func("liar")
    assert label.startswith("liar · ") and "99.52%" not in label
    card = {m.label: m.value for m in at.metric}
    assert card["Test accuracy"] != "99.52%" and float(card["Test accuracy"].rstrip("%")) < 50
