"""The Teach page in-process: the gallery by digit, relabel and delete, a zip's bad entries skipped with a message."""

from __future__ import annotations

import io
import zipfile

from dashboard_helpers import button, open_page, texts
from PIL import Image
from test_samples import digit_pixels, png

from mnist_core.samples import read_set, save_sample


def test_the_gallery_relabels_deletes_and_imports_a_zip_skipping_bad_entries(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_SAMPLES", str(tmp_path / "samples"))
    mine = tmp_path / "samples" / "mine"
    first, second = save_sample(mine, 1, digit_pixels(7)), save_sample(mine, 3, digit_pixels(3))
    (mine / "3" / "junk.png").write_bytes(b"junk")
    at = open_page("6_Teach.py")
    assert "2 samples" in texts(at) and [t.label for t in at.tabs][:4] == ["0 (0)", "1 (1)", "2 (0)", "3 (1)"]
    assert "3/junk.png: the file is not an image" in "\n".join(t.value for t in at.text)

    at.selectbox(key=f"label-{first.name}").set_value(7).run()
    assert sorted(read_set(mine).labels.tolist()) == [3, 7]
    at.button(key=f"delete-{second.name}").click().run()
    assert read_set(mine).labels.tolist() == [7] and not at.exception

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        two = png(Image.fromarray(digit_pixels(2)))
        z.writestr("set/2/two.png", two)
        z.writestr("../2/escape.png", two)
        z.writestr("set/2/broken.png", b"not an image")
    at.file_uploader(key="zip").upload("set.zip", archive.getvalue(), "application/zip").run()
    assert not at.exception, at.exception
    assert "Added 1 samples from the zip." in texts(at)
    skipped = "\n".join(t.value for t in at.text)
    assert "../2/escape.png: not in a digit's folder" in skipped and "set/2/broken.png" in skipped
    assert sorted(read_set(mine).labels.tolist()) == [2, 7]
    assert not button(at, "Teach").disabled
