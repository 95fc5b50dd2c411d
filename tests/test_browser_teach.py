"""Teaching the model a handwriting, as a user does: correct five readings on the Draw page, find them in the
Teach page's gallery, press Teach, and the new model reads the number right.

Screenshots land in artifacts/screenshots/ (teach-*.png).
"""

import re

import pytest
from dashboard_helpers import screenshot, wait_for_rerun
from playwright.sync_api import expect
from writer import number_picture

pytestmark = pytest.mark.browser

NUMBER = "01060"  # this hand's slashed zeros and long-flagged ones are what the default model misreads


def test_correct_five_readings_teach_and_the_new_model_reads_them(server, page, tmp_path):
    url, folder = server
    number_picture(NUMBER, seed=1).save(tmp_path / "number.png")
    page.goto(f"{url}/Draw")
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(tmp_path / "number.png")
    expect(page.get_by_test_id("predicted-number")).not_to_have_text(NUMBER)
    wait_for_rerun(page)
    screenshot(page, "teach-draw-before")
    for place, digit in enumerate(NUMBER):
        page.locator(f"[class*='st-key-fix-{place}-'] button", has_text=re.compile(f"^{digit}$")).click()
        expect(page.get_by_text("saved as")).to_have_count(place + 1)
    wait_for_rerun(page)
    screenshot(page, "teach-draw-corrected")
    assert sorted(p.parent.name for p in (folder.parent / "samples" / "mine").glob("*/*.png")) == sorted(NUMBER)

    page.get_by_role("link", name="Teach").click()
    expect(page.get_by_text("5 samples", exact=True)).to_be_visible()
    expect(page.get_by_role("tab", name="0 (3)")).to_be_visible()
    expect(page.get_by_role("tab", name="1 (1)")).to_be_visible()
    wait_for_rerun(page)
    screenshot(page, "teach-gallery")
    page.get_by_role("button", name="Teach").click()
    expect(page.get_by_text(re.compile(r"taught-\S+ is ready"))).to_be_visible(timeout=180_000)
    expect(page.get_by_text(re.compile(r"Fixed: wrong before, right now: [1-5]"))).to_be_visible()
    expect(page.get_by_text("Broken: 0")).to_be_visible()
    expect(page.get_by_text("MNIST test accuracy")).to_be_visible()
    screenshot(page, "teach-after")

    page.get_by_role("button", name=re.compile(r"Use taught-")).click()
    wait_for_rerun(page)
    page.get_by_role("link", name="Draw").click()
    expect(page.get_by_text("No digit found")).to_be_visible()  # the Draw page, not the Teach page's zip upload
    wait_for_rerun(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(tmp_path / "number.png")
    expect(page.get_by_test_id("predicted-number")).to_have_text(NUMBER)
    expect(page.get_by_text("saved as")).to_have_count(5)  # the same readings are not offered twice
    screenshot(page, "teach-draw-after")
