"""The sweep journal, damaged and large: a torn tail set aside, foreign files refused, viewers that never write.

Journals here are written by Optuna itself (trials added, not trained), so each test takes
milliseconds; a full disk is simulated by cutting the file mid-line.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from dashboard_helpers import open_page, texts
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from mnist_core.cli import main
from mnist_core.journal import TORN_SUFFIX, read_journal, torn
from mnist_core.studies import SweepError, open_storage, view_storage
from mnist_core.sweep import summary

REPO = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-3, 1.0, log=True),
    "batch_size": IntDistribution(16, 4096),
    "dropout": FloatDistribution(0.0, 0.5),
    "augment": CategoricalDistribution([False, True]),
}


def finished_trial(number: int) -> optuna.trial.FrozenTrial:
    params = {"lr": 0.01 + number % 7 / 100, "batch_size": 16 + number, "dropout": 0.1, "augment": number % 2 == 0}
    return optuna.trial.create_trial(
        params=params,
        distributions=DISTRIBUTIONS,
        value=0.9 + number % 10 / 1000,
        intermediate_values={1: 0.8, 2: 0.9},
        user_attrs={"checkpoint": f"/nowhere/s-trial-{number}.pt", "test_accuracy": 0.9, "worker": "host:1"},
    )


def write_journal(path, trials: int, study: str = "s") -> None:
    """A study of ``trials`` finished trials, one journal line each, written in one append (one fsync)."""
    storage = open_storage(f"journal:{path}", path.parent)
    created = optuna.create_study(storage=storage, study_name=study, direction="maximize")
    created.set_user_attr("preset", "quick")
    created.add_trial(finished_trial(0))
    *head, line = path.read_text().splitlines(keepends=True)
    path.write_text("".join(head) + line * trials)


def sweep(path, trials: int, study: str = "s") -> int:
    """The `sweep` command on the journal, asking for no more trials than it has: it trains nothing."""
    return main(["sweep", "--trials", str(trials), "--study", study, "--storage", f"journal:{path}"])


def test_a_journal_torn_by_a_full_disk_keeps_every_trial_before_the_tear(tmp_path, caplog):
    journal = tmp_path / "sweeps.journal"
    write_journal(journal, 40)
    whole = journal.read_bytes()
    journal.write_bytes(whole[:8192])  # the disk filled here, mid-line
    kept = whole[:8192].count(b"\n")  # lines whole before the tear: the study, its preset and the trials
    # Viewing reads the whole lines and writes nothing.
    storage = view_storage(f"journal:{journal}", tmp_path)
    assert len(storage.get_all_trials(0)) == kept - 2 and journal.read_bytes() == whole[:8192]
    # The next sweep appends to the cut line, as Optuna alone would; the page now calls the journal torn.
    journal.write_bytes(whole[:8192] + whole.splitlines(keepends=True)[-1])
    assert torn(journal)

    assert sweep(journal, kept - 2) == 0  # the command repairs, sees the trials asked for there, and ends
    assert "moved aside" in caplog.text
    end = whole.rindex(b"\n", 0, 8192) + 1
    assert journal.read_bytes().startswith(whole[:end])  # then Optuna's line for opening the study
    assert (tmp_path / f"sweeps.journal{TORN_SUFFIX}").read_bytes() == whole[end:8192] + whole.splitlines()[-1] + b"\n"
    result = summary(optuna.load_study(study_name="s", storage=open_storage(f"journal:{journal}", tmp_path)))
    assert result["done"] == kept - 2 and not torn(journal)
    assert view_storage(f"journal:{journal}", tmp_path).get_all_trials(0)[-1].number == kept - 3  # the page re-reads


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"op_code": 99, "worker_id": "w"}\n', "is not a journal Optuna"),  # another Optuna version's
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not an Optuna journal"),
        (b"[1, 2]\n", "is not an Optuna journal"),
        (b'{"a": 1}\n', "is not a journal Optuna"),
    ],
)
def test_another_versions_journal_or_any_other_file_is_refused_in_one_line(tmp_path, capsys, content, why):
    journal = tmp_path / "sweeps.journal"
    journal.write_bytes(content)
    with pytest.raises(SweepError, match=why):
        view_storage(f"journal:{journal}", tmp_path)
    assert sweep(journal, 1) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and why in err and err.count("\n") == 1
    assert journal.read_bytes() == content  # left as it was


def test_timeout_nan_and_negative_are_refused(capsys):
    for value in ("nan", "-1", "inf"):
        with pytest.raises(SystemExit) as exit:
            main(["sweep", "--timeout", value])
        assert exit.value.code == 2 and "--timeout" in capsys.readouterr().err


def test_reading_a_study_again_costs_what_changed(tmp_path):
    journal = tmp_path / "big.journal"
    write_journal(journal, 3000)
    assert read_journal(tmp_path / "none.journal") is None and not (tmp_path / "none.journal").exists()
    storage = view_storage(f"journal:{journal}", tmp_path)
    assert len(storage.get_all_trials(0)) == 3000
    start = time.perf_counter()
    again = view_storage(f"journal:{journal}", tmp_path)
    result = summary(optuna.load_study(study_name="s", storage=again))
    assert not torn(journal)  # what the page also asks on every rerun
    assert time.perf_counter() - start <= 0.1 and result["done"] == 3000
    with journal.open("a") as f:  # another worker finishes one more
        f.write(json.dumps(json.loads(journal.read_text().splitlines()[-1])) + "\n")
    assert len(view_storage(f"journal:{journal}", tmp_path).get_all_trials(0)) == 3001


@pytest.mark.slow  # no training, but page runs
def test_the_train_page_redraws_a_large_study_from_its_caches_and_sends_one_bounded_figure(folder, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "dashboard"))
    import sweep_view  # the module the page imports

    monkeypatch.setattr(sweep_view, "LINES", 20)  # as with 300 of thousands, in a study that is quick to draw
    write_journal(folder / "sweeps.journal", 30)
    at = open_page("1_Train.py")
    at.selectbox(key="sweep_study").set_value("s").run()
    made = []
    monkeypatch.setattr(sweep_view, "summary", lambda study: made.append(study) or summary(study))
    at.button_group(key="sweep_figure").set_value("Parallel coordinates").run()
    assert not at.exception and not made  # nothing changed: the table and the figures come from the caches
    sent = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    shown = [figure for figure in sent if "Parallel" in figure["layout"]["title"]["text"]]
    assert len(shown) == 1 and len(shown[0]["data"]) == 20 + 1  # a line per trial, and the colour bar
    assert not any("Optimization History" in figure["layout"]["title"]["text"] for figure in sent)  # one at a time
    assert "The 20 best of the 30 completed trials." in texts(at)
    with (folder / "sweeps.journal").open("a") as f:  # another worker finishes one more
        f.write((folder / "sweeps.journal").read_text().splitlines()[-1] + "\n")
    at.run()
    assert len(made) == 1 and "Study **s**: 31 trial(s) done, 0 running." in texts(at)


@pytest.mark.slow  # no training, but 6 s of page runs: more than the fast tier can spare
def test_the_train_page_on_a_torn_journal_or_a_foreign_file_keeps_working_and_writes_nothing(folder):
    journal = folder / "sweeps.journal"
    at = open_page("1_Train.py")
    assert not at.exception and not journal.exists()  # looking created no journal
    write_journal(journal, 5)
    with journal.open("ab") as f:
        f.write(b'{"op_code":4,"worker_id":"w","study_id":0,"datetime_st\n{"op_code":4}\n')
    at.run()
    assert not at.exception and "The end of sweeps.journal is torn" in texts(at)
    assert "s" in at.selectbox(key="sweep_study").options
    at.selectbox(key="sweep_study").set_value("s").run()
    assert "Study **s**: 5 trial(s) done, 0 running." in texts(at)
    assert "Run history" in [h.value for h in at.header]  # the rest of the page is drawn
    before = journal.read_bytes()
    journal.write_bytes(b"\x00garbage\n")
    at.run()
    assert not at.exception and "is not an Optuna journal" in texts(at) and journal.read_bytes() == b"\x00garbage\n"
    assert before != b"\x00garbage"


@pytest.mark.slow  # a process of its own: 3 s of imports
def test_a_trial_that_fails_ends_the_command_in_one_line_without_optunas_traceback(tmp_path):
    (tmp_path / "a-file").touch()  # the checkpoints "folder" is a file: the first trial cannot reserve its name
    command = [sys.executable, "-m", "mnist_core", "sweep", "--trials", "1", "--storage", f"journal:{tmp_path / 'j'}"]
    env = {**os.environ, "MNIST_CHECKPOINTS": str(tmp_path / "a-file")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"error: cannot use {tmp_path / 'a-file' / 'sweep-trial-0.pt'}: Not a directory"
    ]
