"""Many users drawing at once: concurrent predictions must all arrive, and match the one-at-a-time answers."""

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mnist_core.data import to_pixels
from mnist_core.predict import predict

THREADS = 8
SECONDS = 3.0


def canvas_drawings(mnist, n: int) -> list[np.ndarray]:
    """MNIST test digits blown up to 280x280 RGBA, white on transparent, like the Draw page's canvas."""
    pixels = to_pixels(mnist.test_images[:n])
    big = pixels.repeat(10, axis=1).repeat(10, axis=2)
    rgba = np.zeros((n, 280, 280, 4), dtype=np.uint8)
    rgba[..., :3], rgba[..., 3] = 255, big
    return list(rgba)


def test_concurrent_predictions_all_arrive_and_equal_the_sequential_answers(mnist, capsys):
    drawings = canvas_drawings(mnist, 24)
    expected = [(p.digit, p.probabilities) for p in (predict([d])[0] for d in drawings)]

    def worker(offset: int) -> list[tuple[int, tuple]]:
        answers, i, stop = [], offset, time.monotonic() + SECONDS
        while time.monotonic() < stop:
            prediction = predict([drawings[i % len(drawings)]])[0]
            answers.append((i % len(drawings), (prediction.digit, prediction.probabilities)))
            i += 1
        return answers

    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        results = [answer for answers in pool.map(worker, range(THREADS)) for answer in answers]
    elapsed = time.monotonic() - started

    assert len(results) >= THREADS  # every thread got at least one answer back
    for index, (digit, probabilities) in results:
        assert digit == expected[index][0]
        assert probabilities == pytest.approx(expected[index][1], abs=1e-5)
    with capsys.disabled():
        print(
            f"\nload test: {len(results)} predictions from {THREADS} threads in {elapsed:.1f} s "
            f"= {len(results) / elapsed:.0f} predictions/s"
        )
