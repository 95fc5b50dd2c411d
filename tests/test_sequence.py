"""The sequence reader for touching digits: CTC decoding, digits parted where they were read, the shipped weights."""

import numpy as np
import pytest
import torch
from custom_digits import draw_digit

from mnist_core import sequence
from mnist_core.sequence import BLANK, LABELS, UNKNOWN, cuts, decode


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
