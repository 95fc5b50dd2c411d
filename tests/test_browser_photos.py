"""The Draw page in Chromium with what people bring: a phone photo of a digit, a photo of a number, a letter.

Screenshots land in artifacts/screenshots/ (draw-photo, draw-number, draw-lines, draw-letter).
"""

import pytest
from custom_digits import draw_digit
from dashboard_helpers import screenshot, wait_for_rerun
from photo_digits import _letter, _on_page, _photograph, numbers, photos
from PIL import Image
from playwright.sync_api import expect

from mnist_core.predict import predict

pytestmark = pytest.mark.browser


def _letter_photo(tmp_path):
    import numpy as np

    rng = np.random.default_rng(5)
    image = _photograph(_on_page([_letter("K", 300, rng)], rng, (900, 800), 0), rng, "ballpoint black", 1.0)
    path = tmp_path / "letter.jpg"
    image.save(path)
    return path


def test_photo_number_and_letter_on_the_draw_page(server, page, tmp_path):
    url, _ = server
    photo = photos(4)[3]  # a 3, and 8-12 megapixels
    # A number that mnist_core reads right (test_photos measures how often): here the page must show it.
    number = next(s for s in numbers(10) if len(s.label) >= 3 and predict(s.image)[0].number == s.label)
    photo.image.save(tmp_path / "photo.jpg")
    number.image.save(tmp_path / "number.jpg")

    page.goto(f"{url}/Draw")
    expect(page.get_by_text("No digit found")).to_be_visible()
    uploader = page.locator("[data-testid='stFileUploaderDropzoneInput']")

    uploader.set_input_files(tmp_path / "photo.jpg")
    expect(page.locator("[data-testid='predicted-digit']")).to_have_text(photo.label)
    expect(page.get_by_text("Reading photo.jpg")).to_be_visible()
    expect(page.locator("canvas.upper-canvas")).to_have_count(0)  # the canvas gives way: no strokes ignored
    expect(page.get_by_role("button", name="Add files")).to_be_hidden()  # one picture is read, so one is taken
    wait_for_rerun(page)
    screenshot(page, "draw-photo")

    uploader.set_input_files(tmp_path / "number.jpg")
    expect(page.locator("[data-testid='predicted-number']")).to_have_text(number.label)
    wait_for_rerun(page)
    screenshot(page, "draw-number")

    date = Image.new("L", (760, 560), 255)  # two lines: each read on its own, top to bottom
    for row, text in enumerate(("0612", "2026")):
        for i, d in enumerate(text):
            digit = draw_digit(int(d), size=(170, 240), top_left=(30, 30), height=180, pen=14)
            date.paste(0, (40 + 175 * i, 20 + 280 * row), digit)
    date.save(tmp_path / "date.png")
    uploader.set_input_files(tmp_path / "date.png")
    expect(page.locator("[data-testid='predicted-number']")).to_have_text("06122026")  # text without the break
    assert page.locator("[data-testid='predicted-number']").inner_text() == "0612\n2026"
    wait_for_rerun(page)
    screenshot(page, "draw-lines")

    uploader.set_input_files(_letter_photo(tmp_path))
    expect(page.get_by_text("This does not look like a digit")).to_be_visible()
    expect(page.get_by_text("The closest digit is")).to_be_visible()
    wait_for_rerun(page)
    screenshot(page, "draw-letter")
