"""`predict` on numbers, non-digits and awkward file names: valid JSON, the number, the boxes."""

import json
import os

import numpy as np
import pytest
from custom_digits import draw_digit
from photo_digits import _letter
from PIL import Image, ImageDraw

from mnist_core.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path):
    number = Image.new("L", (780, 300), 0)
    for i, d in enumerate("2026"):
        number.paste(draw_digit(int(d), size=(170, 300), top_left=(30, 60), height=180, pen=14), (50 + 175 * i, 0))
    Image.eval(number, lambda v: 255 - v).save(tmp_path / "2026.png")
    date = Image.new("L", (760, 560), 0)  # 0612 above 2026, as a date is written under a day and month
    for row, text in enumerate(("0612", "2026")):
        for i, d in enumerate(text):
            digit = draw_digit(int(d), size=(170, 240), top_left=(30, 30), height=180, pen=14)
            date.paste(digit, (40 + 175 * i, 20 + 280 * row), digit)
    Image.eval(date, lambda v: 255 - v).save(tmp_path / "date.png")
    Image.eval(draw_digit(7, pen=16), lambda v: 255 - v).save(tmp_path / "seven.png")
    letter = _letter("W", 200, np.random.default_rng(0))  # the CLI's format; how many letters are caught: test_photos
    page = Image.new("L", (320, 320), 0)
    page.paste(letter, ((320 - letter.width) // 2, 60))
    Image.eval(page, lambda v: 255 - v).save(tmp_path / "letter.png")
    return tmp_path


def test_predict_json_gives_the_number_digits_and_boxes(capsys, files):
    code, out, _ = run(capsys, "predict", "--json", str(files / "2026.png"), str(files / "seven.png"))
    number, seven = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert number["number"] == "2026" and number["digit"] is None
    assert [d["digit"] for d in number["digits"]] == [2, 0, 2, 6]
    lefts = [d["box"][0] for d in number["digits"]]
    assert lefts == sorted(lefts) and all(
        len(d["box"]) == 4 and len(d["probabilities"]) == 10 for d in number["digits"]
    )
    assert seven["digit"] == 7 and seven["number"] == "7" and len(seven["probabilities"]) == 10
    assert number["lines"] == ["2026"] and seven["lines"] == ["7"]


def test_predict_json_reads_two_lines_top_to_bottom(capsys, files):
    code, out, _ = run(capsys, "predict", "--json", str(files / "date.png"))
    record = json.loads(out)
    assert code == 0
    assert record["lines"] == ["0612", "2026"] and record["number"] == "0612 2026"
    tops = [d["box"][1] for d in record["digits"]]
    assert max(tops[:4]) < min(tops[4:])  # the first line's digits first


def test_predict_reports_a_letter_as_not_a_digit(capsys, files):
    code, out, _ = run(capsys, "predict", "--json", str(files / "letter.png"))
    record = json.loads(out)
    assert code == 2
    assert record["digit"] is None and record["number"] is None and record["error"] == "not a digit"
    assert len(record["probabilities"]) == 10  # the closest digit is still there

    code, out, _ = run(capsys, "predict", str(files / "letter.png"), str(files / "2026.png"))
    assert "not a digit (closest:" in out and " 2026 " in out


def test_predict_json_gives_the_same_fields_for_every_kind_of_reading(capsys, files):
    pieces = Image.open(files / "letter.png")
    ImageDraw.Draw(pieces).rectangle((155, 0, 165, 320), fill=255)  # the W cut in two: a non-digit of two pieces
    pieces.save(files / "two-pieces.png")
    names = ("seven.png", "2026.png", "letter.png", "two-pieces.png")
    code, out, _ = run(capsys, "predict", "--json", *(str(files / name) for name in names))
    seven, number, letter, two_pieces = [json.loads(line) for line in out.splitlines()]
    assert code == 2
    assert len(two_pieces["digits"]) == 2 and two_pieces["error"] == "not a digit"
    assert two_pieces["probabilities"] is None and two_pieces["number"] is None  # no single closest digit
    fields = ["path", "digit", "number", "probabilities", "digits", "lines", "error"]
    assert [list(record) for record in (seven, number, letter, two_pieces)] == [fields] * 4


def test_file_names_that_are_not_utf8_are_printed(capsys, files):
    odd = os.fsdecode(bytes(files) + b"/caf\xe9.png")  # Latin-1 bytes: not UTF-8
    Image.open(files / "seven.png").save(odd)
    code, out, _ = run(capsys, "predict", odd)
    out.encode("utf-8")  # printable: no lone surrogates left in the text
    assert code == 0 and "caf\\xe9.png" in out
    code, out, _ = run(capsys, "predict", "--json", odd)
    assert json.loads(out)["path"].endswith("caf\\xe9.png")
