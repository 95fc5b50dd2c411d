"""The font files that generated test images are drawn with, by full path, and the Debian package of each.

Drawing with "whichever of these fonts exist" made the images, and so the results,
depend on the machine. Every file named here is required: ``.ci/run`` installs the
packages, and a test that draws without one fails, naming the file and its package.
"""

from __future__ import annotations

from functools import cache

import pytest
from PIL import ImageFont

DEJAVU = "/usr/share/fonts/truetype/dejavu"
LIBERATION = "/usr/share/fonts/truetype/liberation"
FREEFONT = "/usr/share/fonts/truetype/freefont"
PACKAGES = {
    f"{DEJAVU}/DejaVuSans.ttf": "fonts-dejavu-core",
    f"{DEJAVU}/DejaVuSans-Bold.ttf": "fonts-dejavu-core",
    f"{DEJAVU}/DejaVuSans-Oblique.ttf": "fonts-dejavu-extra",
    f"{DEJAVU}/DejaVuSerif.ttf": "fonts-dejavu-core",
    f"{DEJAVU}/DejaVuSerif-Bold.ttf": "fonts-dejavu-core",
    f"{LIBERATION}/LiberationSans-Regular.ttf": "fonts-liberation",
    f"{LIBERATION}/LiberationSans-Bold.ttf": "fonts-liberation",
    f"{LIBERATION}/LiberationSerif-Regular.ttf": "fonts-liberation",
    f"{LIBERATION}/LiberationSansNarrow-Regular.ttf": "fonts-liberation",
    f"{FREEFONT}/FreeSans.ttf": "fonts-freefont-ttf",
    f"{FREEFONT}/FreeSerif.ttf": "fonts-freefont-ttf",
    f"{FREEFONT}/FreeSerifItalic.ttf": "fonts-freefont-ttf",
}


@cache
def font(path: str, size: int) -> ImageFont.FreeTypeFont:
    """The font in ``path`` (a key of PACKAGES) at ``size`` pixels; fails the test if the file is missing."""
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        pytest.fail(f"{path} is missing: install the Debian package {PACKAGES[path]} (.ci/run does)", pytrace=False)
