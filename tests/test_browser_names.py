"""Names are text, never markup: injection strings as checkpoint file names, an uploaded file's name and a study
name, on every page that shows them, in Chromium. No request leaves the machine (conftest's ``page``)."""

import io
import shutil

import pytest
from dashboard_helpers import choose, screenshot, wait_for_rerun
from PIL import Image
from playwright.sync_api import Page, expect

from mnist_core.places import default_checkpoint

pytestmark = pytest.mark.browser

# What the issue sent: an image and a link from a host, a coloured alert, HTML (a file name cannot hold "/").
MODEL = "![t](https:example.com) [here](https:example.com) :red[**ALERT**] <img src=https:example.com>"
BROKEN = "[here](https:example.com) ![t](https:example.com)"
UPLOAD = "<b>x</b> ![t](https://example.com/x.png).png"
STUDY = "<b>x</b> :red[**ALERT**] [here](https://example.com)"


def shown(page: Page) -> str:
    """The page's text as a reader sees it (the word joiners that keep bare links from becoming links are
    invisible), once the script has finished."""
    wait_for_rerun(page)
    return page.locator("[data-testid=stApp]").inner_text().replace("\u2060", "")


def no_markup_from(page: Page) -> None:
    """Nothing on the page was made from a name: no image, link or colour pointing at the injected host."""
    made = "img[src*='example'], a[href*='example']:not([href^='#']), [data-testid=stMain] span[style*=red]"
    assert not page.locator(made).count()


def test_injected_names_are_shown_as_typed_on_every_page(server, page):
    url, folder = server
    shutil.copy(default_checkpoint(), folder / f"{MODEL}.pt")
    (folder / f"{BROKEN}.pt").write_bytes(b"")
    try:
        page.goto(url)
        choose(page, "Active model", MODEL[:20])
        expect(page.locator("h3", has_text="ALERT")).to_be_visible()  # the model's card
        page.get_by_text("unreadable checkpoint(s)").click()
        text = shown(page)
        assert MODEL in text and f"{BROKEN}.pt" in text
        no_markup_from(page)
        screenshot(page, "names-home")

        page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Draw").click()
        expect(page.get_by_text("reads it each time you lift the pen")).to_be_visible()
        assert f"{MODEL} reads it" in shown(page)
        image = io.BytesIO()
        Image.new("L", (64, 64), 255).save(image, "PNG")
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
            {"name": UPLOAD, "mimeType": "image/png", "buffer": image.getvalue()}
        )
        expect(page.get_by_text("remove the file to draw again")).to_be_visible()
        assert f"Reading {UPLOAD}" in shown(page)
        no_markup_from(page)
        screenshot(page, "names-draw")

        page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Compare").click()
        expect(page.get_by_text("Learning curves")).to_be_visible()
        legend = page.locator(".legendtext").first
        expect(legend).to_contain_text("<img src=https:example.com> (validation)")  # Plotly's labels too
        assert f"A · {MODEL}" in shown(page)
        no_markup_from(page)
        screenshot(page, "names-compare")

        page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Train").click()
        page.get_by_role("combobox", name="Study").fill(STUDY)
        page.get_by_role("combobox", name="Study").press("Enter")
        wait_for_rerun(page)
        page.get_by_role("button", name="Start sweep").click()
        expect(page.get_by_text("sweep <b>x</b>").first).to_be_visible()
        assert f"sweep {STUDY}" in shown(page)
        no_markup_from(page)
        screenshot(page, "names-train")
    finally:
        (folder / f"{MODEL}.pt").unlink()
        (folder / f"{BROKEN}.pt").unlink()
