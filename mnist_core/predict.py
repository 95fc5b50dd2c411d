"""Read digits from images: preprocess each one, then a single forward pass for the batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from .checkpoints import Checkpoint, default_checkpoint, load_checkpoint
from .images import ImageError, ImageSource
from .preprocess import preprocess


@dataclass
class Prediction:
    digit: int | None  # None when no digit was found
    probabilities: list[float] | None  # 10 floats summing to 1; None when no digit was found
    image: torch.Tensor | None  # the (1, 28, 28) model input
    steps: dict[str, np.ndarray]  # preprocessing's images, for display


@lru_cache(maxsize=8)
def _load_model(path: Path, mtime_ns: int) -> nn.Module:
    """Loading costs more than predicting, so models are kept; the file's mtime is part of the key,
    so a checkpoint retrained under the same name is read again."""
    return load_checkpoint(path).model


def _model(checkpoint: str | Path | Checkpoint | None) -> nn.Module:
    if isinstance(checkpoint, Checkpoint):
        return checkpoint.model
    path = Path(checkpoint or default_checkpoint()).resolve()
    mtime_ns = path.stat().st_mtime_ns if path.is_file() else 0  # a missing file fails in load_checkpoint
    return _load_model(path, mtime_ns)


def predict(
    images: ImageSource | Sequence[ImageSource], checkpoint: str | Path | Checkpoint | None = None
) -> list[Prediction]:
    """One Prediction per image, in order; ``images`` is one image or a list or tuple of them.

    An image may be anything ``preprocess`` accepts. One in which no digit is found gets
    a Prediction with digit None rather than a guess. An image that cannot be read at
    all raises ImageError (for a list, the message says which one), and a bad checkpoint
    raises CheckpointError. ``checkpoint`` None means the default model.
    """
    model = _model(checkpoint)
    batch = list(images) if isinstance(images, (list, tuple)) else [cast(ImageSource, images)]
    prepared = []
    for number, image in enumerate(batch, start=1):
        try:
            prepared.append(preprocess(image))
        except ImageError as exc:
            if len(batch) == 1:
                raise
            raise ImageError(f"image {number}: {exc}") from exc

    found = [p.tensor for p in prepared if p.tensor is not None]
    probabilities: Iterator[list[float]] = iter([])
    if found:
        with torch.inference_mode():
            probabilities = iter(model(torch.stack(found)).softmax(dim=1).tolist())

    predictions = []
    for p in prepared:
        if p.found:
            probs = next(probabilities)
            predictions.append(Prediction(int(np.argmax(probs)), probs, p.tensor, p.steps))
        else:
            predictions.append(Prediction(None, None, None, p.steps))
    return predictions
