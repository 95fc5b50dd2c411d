"""The sequence reader for touching digits: CTC decoding, digits parted where they were read, the shipped weights."""

import numpy as np
import pytest
import torch
from custom_digits import draw_digit

from mnist_core import sequence
from mnist_core.checkpoints import load_checkpoint
from mnist_core.places import shipped_model
from mnist_core.predict import _judged
from mnist_core.sequence import BLANK, LABELS, UNKNOWN, Read, cuts, decode


def _frames(labels: list[int]) -> torch.Tensor:
    frames = torch.zeros(len(labels), LABELS)
    frames[torch.arange(len(labels)), torch.tensor(labels)] = 5.0
    return frames


def test_decoding_collapses_repeats_and_drops_blanks_keeping_each_runs_frames():
    # "3 3" apart by a blank is two 3s; "5 5" in a row is one 5; a "?" is kept as read.
    frames = _frames([BLANK, 4, 4, BLANK, 4, 6, 6, BLANK, UNKNOWN, BLANK])
    assert decode(frames) == [(4, 1, 2), (4, 4, 4), (6, 5, 6), (UNKNOWN, 8, 8)]
    assert decode(_frames([BLANK] * 6)) == []


def test_digits_are_parted_at_the_faintest_column_between_where_they_were_read():
    columns = np.full(60, 10.0)
    columns[33] = 1.0  # where two digits touch, just after the second was read: little ink
    columns[50] = 0.0  # far from it: not taken
    assert cuts([10.0, 30.0], columns) == [0, 33, 60]
    assert cuts([10.0], columns) == [0, 60]
    bounds = cuts([5.0, 20.0, 35.0, 50.0], np.ones(60))
    assert bounds[0] == 0 and bounds[-1] == 60 and bounds == sorted(set(bounds))


@pytest.mark.parametrize(("pair", "apart"), [("42", 110), ("08", 120)])
def test_the_shipped_reader_reads_two_touching_digits_and_parts_them_between(pair, apart):
    first, second = (
        np.asarray(draw_digit(int(d), size=(400, 300), top_left=(60 + i * apart, 60), height=180, pen=14))
        for i, d in enumerate(pair)
    )
    ink = np.maximum(first, second)  # light on black, as preprocessing gives it; the two touch
    rows, cols = np.nonzero(ink)
    piece = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    reads = sequence.read(sequence.reader(), piece)
    assert "".join(str(r.digit) for r in reads) == pair
    (a0, a1), (b0, b1) = (r.columns for r in reads)
    assert a0 == 0 and a1 == b0 and b1 == piece.shape[1] and 0.3 <= a1 / b1 <= 0.6
    assert all(abs(sum(r.probabilities) - 1) < 1e-5 for r in reads)


def test_a_piece_the_reader_parted_is_judged_whole_and_a_lone_read_by_both():
    """Digits 0-1 are one piece the reader parted, digit 2 a piece of its own it read, digit 3 one it did not."""

    def sure(digit: int, other: int = 0, share: float = 0.0) -> list[float]:
        p = np.full(10, 0.01)
        p[other] += share
        p[digit] = 1 - p.sum() + p[digit]
        return p.tolist()

    reads = [Read(4, sure(4), (0, 10)), Read(2, sure(2), (10, 20)), Read(7, sure(7, 1, 0.3), (0, 9)), None]
    classifier = [sure(9), sure(3), sure(1, 7, 0.05), sure(5)]  # it saw the cuts, bits of their neighbours in them
    judged = _judged(classifier, [3.0, 0.5, 0.0, 0.0], 2.0, reads, [range(0, 2)])
    # The parted piece is the reader's; the lone read is both's (7: 0.6 x 0.06, 1: 0.31 x 0.87).
    assert [(int(np.argmax(p)), ok) for p, ok in judged] == [(4, True), (2, True), (1, True), (5, True)]
    # The first cut alone fails the score, the piece's mean passes; higher, the whole piece is "?".
    judged = _judged(classifier, [4.5, 0.5, 0.0, 2.5], 2.0, reads, [range(0, 2)])
    assert [ok for _, ok in judged] == [False, False, True, False]
    # A "?" anywhere in the piece makes all of it "?"; a lone read's "?" only itself.
    unknown = [Read(-1, sure(4), (0, 10)), reads[1], Read(-1, sure(7), (0, 9)), None]
    assert [ok for _, ok in _judged(classifier, [0.0] * 4, 2.0, unknown, [range(0, 2)])] == [False, False, False, True]


@pytest.mark.slow  # draws 1,680 glyphs
def test_the_pen_digits_are_every_digit_made_as_a_picture_is_and_read_by_the_digit_model():
    images, labels = sequence.pen_digits()
    assert images.shape == (len(labels), 1, 28, 28) and images.min() == -1 and images.max() == 1
    assert labels.bincount().tolist() == [len(labels) // 10] * 10
    with torch.no_grad():
        read = load_checkpoint(shipped_model()).model(images).argmax(dim=1)
    assert (read == labels).float().mean() >= 0.95  # each labelled as what it shows
