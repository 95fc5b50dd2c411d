"""The Home page's ONNX download, in a real browser: the file it gives runs under onnxruntime like the model."""

import numpy as np
import pytest
import torch
from dashboard_helpers import expect_local_icon, screenshot
from playwright.sync_api import expect

from mnist_core.checkpoints import load_checkpoint
from mnist_core.export import run_exported

pytestmark = pytest.mark.browser


def test_home_downloads_the_active_model_as_onnx(server, page, tmp_path):
    url, folder = server
    page.goto(url)
    expect_local_icon(page)
    expect(page.get_by_text("Twelve training images of each digit")).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()  # drawn without a network, as every page is
    button = page.get_by_role("button", name="Download as ONNX")
    expect(button).to_be_visible()
    screenshot(page, "home-onnx")
    with page.expect_download(timeout=120_000) as download:
        button.click()
    assert download.value.suggested_filename == "default.onnx"
    path = tmp_path / "default.onnx"
    download.value.save_as(path)

    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        expected = load_checkpoint(folder / "default.pt").model(images).softmax(dim=1).numpy()
    np.testing.assert_allclose(run_exported(path, images), expected, atol=1e-4)
