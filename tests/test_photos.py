"""What people really bring, read by the default model: photos, whole numbers, and things that are not digits.

The set is generated (photo_digits.py) by a different recipe than custom_digits.py. The
issue's targets are photos of one digit 97%, whole numbers exactly right 90%, non-digits
flagged 80% and MNIST test digits refused at most 1%, all asserted for the committed model;
numbers whose digits touch are asserted at what the sequence reader reaches, short of the 85% asked.
"""

from collections import defaultdict

import numpy as np
import pytest
from custom_digits import draw_digit
from photo_digits import canvases, non_digits, numbers, pages, photos, shadowed, tight_crops
from PIL import Image

from mnist_core.checkpoints import load_checkpoint
from mnist_core.places import default_checkpoint
from mnist_core.predict import NO_DIGIT, NOT_A_DIGIT, TOO_MANY_LINES, predict
from mnist_core.preprocess import preprocess


def _accuracy(samples, predictions) -> float:
    return float(np.mean([p.number == s.label for s, p in zip(samples, predictions)]))


@pytest.mark.slow
def test_photos_of_one_digit():
    samples = photos(60)
    predictions = predict([s.image for s in samples])
    by_ink = defaultdict(list)
    for s, p in zip(samples, predictions):
        by_ink[s.kind].append(p.number == s.label)
    assert _accuracy(samples, predictions) >= 0.97, {k: np.mean(v) for k, v in by_ink.items()}
    assert all(p.digit == int(p.number) for p in predictions if p.number and len(p.number) == 1)


@pytest.mark.slow
def test_photos_under_a_shadow_edge_sharp_to_very_soft():
    """Developed on seeds 11 and 50-52; asserted on another."""
    samples = shadowed(40, seed=60)
    predictions = predict([s.image for s in samples])
    assert _accuracy(samples, predictions) >= 0.97, [(s.label, p.number) for s, p in zip(samples, predictions)]


@pytest.mark.slow
def test_digits_cropped_close_and_mnist_28x28_are_read_as_with_a_margin():
    samples = tight_crops(90, seed=20)
    predictions = predict([s.image for s in samples])
    by_kind = defaultdict(list)
    for s, p in zip(samples, predictions):
        by_kind[s.kind].append(p.number == s.label)
    assert _accuracy(samples, predictions) >= 0.95, {k: np.mean(v) for k, v in by_kind.items()}
    assert np.mean([p.error is not None for p in predictions]) <= 0.03


def test_canvas_drawings_including_flagged_ones_and_open_fours():
    samples = canvases(60)
    assert _accuracy(samples, predict([s.image for s in samples])) >= 0.97


@pytest.mark.slow
def test_whole_numbers_are_read_left_to_right():
    samples = numbers(50)
    predictions = predict([s.image for s in samples])
    assert _accuracy(samples, predictions) >= 0.9
    for s, p in zip(samples, predictions):
        assert p.digit is None or len(p.digits) == 1
        if p.number == s.label:
            lefts = [r.box[0] for r in p.digits]
            assert lefts == sorted(lefts)
            assert all(
                0 <= r.box[0] < r.box[2] <= s.image.width and 0 <= r.box[1] < r.box[3] <= s.image.height
                for r in p.digits
            )


@pytest.mark.slow
def test_touching_and_overlapping_digits_are_read_one_by_one_with_a_box_each():
    """Digits that touch or overlap by up to a third of a width, read by the sequence reader, on a seed not
    developed on; the digits apart are test_whole_numbers_are_read_left_to_right's. The issue asks 85%: not met
    yet. Cut by columns alone, or with each of the reader's cuts judged on its own by the "not a digit" score,
    far fewer were read right (bench/photos.py prints the first; bench/RESULTS.md has each one's share)."""
    samples = numbers(16, seed=31, gap=(-0.2, 0.0))
    predictions = predict([s.image for s in samples])
    assert _accuracy(samples, predictions) >= 7 / 16, [(s.label, p.number) for s, p in zip(samples, predictions)]
    for s, p in zip(samples, predictions):
        if p.number == s.label:
            boxes = [r.box for r in p.digits]
            assert len(boxes) == len(s.label) and [b[0] for b in boxes] == sorted(b[0] for b in boxes)
            assert all(0 <= x0 < x1 <= s.image.width and 0 <= y0 < y1 <= s.image.height for x0, y0, x1, y1 in boxes)


@pytest.mark.slow
def test_lines_are_read_top_to_bottom_and_no_number_is_cut_short_silently():
    samples = pages(10, seed=43, lines=(2, 5))
    predictions = predict([s.image for s in samples])
    counted = [len(p.lines) == len(s.label.split()) for s, p in zip(samples, predictions)]
    assert np.mean(counted) >= 0.9
    read = [a == b for s, p, ok in zip(samples, predictions, counted) if ok for a, b in zip(p.lines, s.label.split())]
    assert np.mean(read) >= 0.85
    for p in predictions:
        assert p.number == " ".join(p.lines) and [r.line for r in p.digits] == sorted(r.line for r in p.digits)
        middles = [np.mean([(r.box[1] + r.box[3]) / 2 for r in p.digits if r.line == k]) for k in range(len(p.lines))]
        assert middles == sorted(middles)  # top to bottom

    long = pages(8, seed=44, lines=(1, 1), digits=(10, 16))  # one line of 10 to 16 digits
    predictions = predict([s.image for s in long])
    assert np.mean([len(p.number or "") == len(s.label) for s, p in zip(long, predictions)]) >= 0.85

    crowded = pages(3, seed=45, lines=(6, 9))  # more lines than are read: said so, never some of them
    assert [p.error for p in predict([s.image for s in crowded])] == [TOO_MANY_LINES] * 3


@pytest.mark.slow
def test_non_digits_are_flagged_not_guessed():
    samples = non_digits(45)
    predictions = predict([s.image for s in samples])
    flagged = [p.error in (NOT_A_DIGIT, NO_DIGIT) or "?" in (p.number or "") for p in predictions]
    assert np.mean(flagged) >= 0.8
    for p in predictions:
        if p.error == NOT_A_DIGIT:
            assert p.digit is None and p.number is None
            if len(p.digits) == 1:
                assert p.probabilities == p.digits[0].probabilities  # the closest digit is still given


def test_a_digit_in_two_strokes_stays_one_digit_and_touching_digits_are_split():
    four = Image.new("L", (400, 300), 255)
    strokes = draw_digit(4, size=(400, 300), top_left=(150, 60), height=180, pen=12, ink=0, paper=255)
    four.paste(strokes)
    assert len(preprocess(four).digits) == 1

    pair = Image.new("L", (400, 300), 255)
    zero = draw_digit(0, size=(400, 300), top_left=(60, 60), height=180, pen=14, ink=0, paper=255)
    eight = draw_digit(0, size=(400, 300), top_left=(185, 60), height=180, pen=14, ink=0, paper=255)
    pair = Image.fromarray(np.minimum(np.asarray(zero), np.asarray(eight)))
    result = preprocess(pair)
    assert len(result.digits) == 2  # the two 0s touch: one piece of ink, cut where it is thinnest
    assert [d.box[0] < 200 for d in result.digits] == [True, False]


def test_boxes_are_in_the_pixels_of_a_big_photo():
    sample = photos(4)[3]  # every tenth photo, from the fourth, is 8-12 megapixels
    assert sample.image.width * sample.image.height > 8e6
    [prediction] = predict(sample.image)
    assert prediction.size == sample.image.size
    x0, y0, x1, y1 = prediction.digits[0].box
    assert x1 - x0 > 0.1 * sample.image.width and y1 - y0 > 0.2 * sample.image.height


@pytest.mark.slow
def test_at_most_one_percent_of_mnist_test_digits_are_refused(mnist):
    from mnist_core.inference import features_and_logits
    from mnist_core.predict import digit_score

    checkpoint = load_checkpoint(default_checkpoint())
    score = digit_score(checkpoint)
    assert checkpoint.digit_score is not None  # stored with the committed model, not fitted on demand
    refused = (~score.is_digit(features_and_logits(checkpoint.model, mnist.test_images)[0])).float().mean()
    assert refused <= 0.01
