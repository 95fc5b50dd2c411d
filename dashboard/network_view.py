"""The Network page's pictures: every stage of one drawing, and one filter at one position of its input.

The numbers come from ``mnist_core.network`` and are cached per model (by content) and drawing, so moving
the position slider or picking another channel redraws pictures, never runs the model again.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
import torch.nn.functional as F

import common
from explain_view import tiles
from mnist_core import network
from mnist_core.checkpoints import Checkpoint
from mnist_core.network import Slide, Stage

RED = np.array([218, 54, 51], np.uint8)


@st.cache_data(max_entries=32, show_spinner=False, hash_funcs=common.BY_CONTENT)
def stages(checkpoint: Checkpoint, image: np.ndarray) -> list[Stage]:
    """Every stage of the drawing (a batch of one)."""
    return network.stages(checkpoint.model, torch.from_numpy(image).reshape(1, 1, 28, 28))


@st.cache_data(max_entries=256, show_spinner=False, hash_funcs=common.BY_CONTENT)
def slide(checkpoint: Checkpoint, image: np.ndarray, conv: int, channel: int, row: int, col: int) -> Slide:
    return network.slide(checkpoint.model, torch.from_numpy(image).reshape(1, 28, 28), conv, channel, row, col)


def picture(stage: Stage) -> np.ndarray:
    """A stage as one grey picture: maps as a sheet of channels, a vector as a grid of cells, row by row."""
    values = stage.values[0]
    if values.ndim == 1:  # the units as a square grid of cells, row by row
        columns = max(1, round(len(values) ** 0.5))
        grid = F.pad(values.clamp(min=0), (0, -len(values) % columns)).reshape(1, -1, columns)
        return tiles(grid, columns=1, scale=max(4, 112 // columns))
    columns = max(1, min(8, round((values.shape[0] / 2) ** 0.5)))
    shown = (values + 1) / 2 if stage.kind == "input" else values
    return tiles(shown, columns=columns, scale=max(1, 56 // values.shape[-1] // columns))


def bars(values: torch.Tensor, percent: bool) -> go.Figure:
    """The ten logits or probabilities, digit 0 on top."""
    figure = go.Figure(
        go.Bar(
            x=values.tolist(),
            y=[str(d) for d in range(10)],
            orientation="h",
            marker_color=["#1f77b4" if d == int(values.argmax()) else "#c7d3e0" for d in range(10)],
            hovertemplate="digit %{y}: %{x:" + (".1%" if percent else ".2f") + "}<extra></extra>",
        )
    )
    figure.update_layout(
        height=300,
        margin=dict(l=0, r=0, t=0, b=0),
        yaxis=dict(autorange="reversed", type="category"),
        xaxis=dict(tickformat=".0%" if percent else None, range=[0, 1] if percent else None),
    )
    return figure


def signed(values: torch.Tensor, scale: int) -> np.ndarray:
    """A small (k, k) array as RGB: red positive, blue negative, white zero."""
    v = (values / values.abs().max().clamp(min=1e-12)).numpy()
    rgb = np.ones((*v.shape, 3))
    rgb[..., 1] = 1 - np.abs(v)
    rgb[..., 0] = np.where(v < 0, 1 - np.abs(v), 1)
    rgb[..., 2] = np.where(v > 0, 1 - np.abs(v), 1)
    return common.enlarge((rgb * 255).round().astype(np.uint8), scale)


def boxed(grey: torch.Tensor, row: int, col: int, size: int, scale: int) -> np.ndarray:
    """A (H, W) map in grey (scaled to its largest value), enlarged, with a red box of ``size`` from (row, col)."""
    shown = (grey / grey.abs().max().clamp(min=1e-12)).clamp(min=0)
    rgb = np.repeat(common.enlarge((shown * 255).round().byte().numpy(), scale)[:, :, None], 3, axis=2)
    top, left = row * scale, col * scale
    bottom, right = min(top + size * scale, rgb.shape[0]) - 1, min(left + size * scale, rgb.shape[1]) - 1
    top, left = max(top, 0), max(left, 0)
    rgb[top, left : right + 1] = rgb[bottom, left : right + 1] = RED
    rgb[top : bottom + 1, left] = rgb[top : bottom + 1, right] = RED
    return rgb
