"""Sample sets: saving from two sessions at once, listing, relabelling, deleting, and zips in and out."""

from __future__ import annotations

import io
import threading
import zipfile

import numpy as np
import pytest
import torch
from custom_digits import draw_digit
from PIL import Image

from mnist_core import samples
from mnist_core.places import samples_dir
from mnist_core.samples import SampleError, delete, export_zip, import_zip, read_set, relabel, save_sample, set_dir


def digit_pixels(digit: int) -> np.ndarray:
    """A 28x28 as the model sees it: a digit drawn on a canvas, made MNIST-like."""
    from mnist_core.preprocess import preprocess

    return preprocess(draw_digit(digit)).digits[0].steps["28x28"]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_set_lives_under_the_samples_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_SAMPLES", str(tmp_path))
    assert samples_dir() == tmp_path
    assert set_dir("mine") == tmp_path / "mine"
    for bad in ("../up", "", ".hidden", "a/b", "x" * 65):
        with pytest.raises(SampleError):
            set_dir(bad)


def test_saved_samples_read_back_in_the_imagefolder_layout(tmp_path):
    pixels = digit_pixels(7)
    crop = np.full((40, 30), 200, np.uint8)
    sample = save_sample(tmp_path, 7, pixels, crop)
    assert sample.path.parent == tmp_path / "7" and sample.path.suffix == ".png"
    assert np.array_equal(np.asarray(Image.open(sample.path)), pixels)
    assert sample.crop.parent == tmp_path.parent / ".crops" / tmp_path.name and sample.crop.is_file()
    found = read_set(tmp_path)
    assert found.samples == [sample] and found.skipped == [] and found.labels.tolist() == [7]
    assert torch.equal(found.images[0, 0], torch.from_numpy(pixels).float() / 127.5 - 1)
    assert found.counts()[7] == 1
    with pytest.raises(SampleError):
        save_sample(tmp_path, 10, pixels)
    with pytest.raises(SampleError):
        save_sample(tmp_path, 3, np.zeros((20, 20), np.uint8))


def test_two_sessions_saving_at_once_keep_every_sample(tmp_path):
    pixels = digit_pixels(1)
    saved = []

    def session() -> None:
        for _ in range(20):
            saved.append(save_sample(tmp_path, 1, pixels, pixels))

    threads = [threading.Thread(target=session) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({s.path for s in saved}) == 40
    assert len(read_set(tmp_path)) == 40
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".partial")]


def test_relabel_and_delete(tmp_path):
    sample = save_sample(tmp_path, 1, digit_pixels(7), digit_pixels(7))
    moved = relabel(sample, 7)
    assert moved.path == tmp_path / "7" / sample.path.name and not sample.path.exists()
    assert moved.crop == sample.crop  # the crop is filed by name, not by digit
    assert read_set(tmp_path).labels.tolist() == [7]
    delete(moved)
    assert not moved.path.exists() and not moved.crop.exists()
    delete(moved)  # already gone, say by another session: nothing to do
    with pytest.raises(SampleError):
        relabel(moved, 3)


def test_bad_files_are_skipped_with_a_message(tmp_path):
    save_sample(tmp_path, 2, digit_pixels(2))
    (tmp_path / "2" / "notes.png").write_bytes(b"not an image at all")
    (tmp_path / "2" / "readme.txt").write_text("hello")
    (tmp_path / "twelve").mkdir()
    (tmp_path / "3").mkdir()
    bomb = Image.new("1", (10_000, 5_000))  # 50 megapixels: a bomb for the decoder, a few kB on disk
    (tmp_path / "3" / "bomb.png").write_bytes(png(bomb))
    # A hand-filled set: a picture of a digit, dark on light, any size, is read as the model would read it.
    (tmp_path / "3" / "photo.png").write_bytes(png(draw_digit(3, ink=0, paper=255)))
    found = read_set(tmp_path)
    assert found.labels.tolist() == [2, 3]
    text = "\n".join(found.skipped)
    assert "2/notes.png: the file is not an image" in text
    assert "2/readme.txt: not an image file" in text
    assert "twelve: not a digit's folder" in text
    assert "3/bomb.png: the image is too large" in text
    assert len(found.skipped) == 4
    assert len(read_set(tmp_path / "missing")) == 0


def test_zip_round_trip_and_hostile_entries(tmp_path):
    source, target = tmp_path / "a", tmp_path / "b"
    for digit in (0, 4, 4):
        save_sample(source, digit, digit_pixels(digit))
    data = export_zip(source)
    names = sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert [n.split("/")[:2] for n in names] == [["a", "0"], ["a", "4"], ["a", "4"]]

    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("../../5/escape.png", png(Image.fromarray(digit_pixels(5))))
        archive.writestr("/etc/5/absolute.png", png(Image.fromarray(digit_pixels(5))))
        archive.writestr("a/x/wrong-folder.png", png(Image.fromarray(digit_pixels(5))))
        archive.writestr("a/6/broken.png", b"\x89PNG\r\n\x1a\n garbage")
        archive.writestr("a/6/bomb.png", png(Image.new("1", (10_000, 5_000))), zipfile.ZIP_DEFLATED)
        archive.writestr("a/6/big.png", b"\0" * (samples.MAX_BYTES + 1), zipfile.ZIP_DEFLATED)
        archive.writestr("a/6/fine.png", png(Image.fromarray(digit_pixels(6))))
    added, skipped = import_zip(buffer.getvalue(), target)
    assert sorted(s.digit for s in added) == [0, 4, 4, 6]
    assert sorted(read_set(target).labels.tolist()) == [0, 4, 4, 6]
    assert len(skipped) == 6 and all(isinstance(m, str) for m in skipped)
    assert not (tmp_path / "5").exists() and not list(tmp_path.parent.glob("5"))
    with pytest.raises(SampleError):
        import_zip(b"not a zip", target)
