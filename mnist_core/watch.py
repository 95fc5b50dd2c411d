"""Watch it learn: a fixed panel of images whose predictions are recorded after every epoch.

Two test images per digit, one typical and one hard, and optionally the user's own
drawing. Training asks the model about them at the end of each epoch (``train.train``'s
``watch``), the answers go into the epoch's history, and the panel itself is saved in
the checkpoint, so a finished run can be replayed epoch by epoch.

"Hard" is decided without any model, so every run watches the same images: the
typical image is the one nearest its digit's mean image, the hard one sits at the
98th percentile of distance from it (unusual, yet still a clear digit; the farthest
ones are often mislabelled scribbles).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import MNIST, normalize, to_pixels

HARD_PERCENTILE = 0.98
DRAWING = -1  # the label recorded for the user's drawing, whose true digit is unknown


@dataclass
class WatchPanel:
    images: torch.Tensor  # (M, 1, 28, 28), normalized like data.normalize
    labels: list[int]  # true digits; DRAWING for the user's drawing

    def to_payload(self) -> dict:
        """Plain data for a checkpoint: the images as bytes (0-255), which is all they hold."""
        return {"images": torch.from_numpy(to_pixels(self.images)), "labels": list(self.labels)}

    @classmethod
    def from_payload(cls, payload: dict) -> WatchPanel:
        return cls(images=normalize(payload["images"]), labels=list(payload["labels"]))


def watch_panel(data: MNIST, drawing: torch.Tensor | None = None) -> WatchPanel:
    """For each digit its most typical test image and a hard one, in digit order, then ``drawing`` (1, 28, 28)."""
    images, labels = [], []
    for digit in range(10):
        index = (data.test_labels == digit).nonzero().flatten()
        if not len(index):  # a cut-down test set may lack a digit
            continue
        pictures = data.test_images[index].flatten(1)
        distance = (pictures - pictures.mean(0)).norm(dim=1)
        order = distance.argsort()
        for pick in (order[0], order[int(HARD_PERCENTILE * (len(order) - 1))]):
            images.append(data.test_images[index[pick]])
            labels.append(digit)
    if drawing is not None:
        images.append(drawing.reshape(1, 28, 28).float())
        labels.append(DRAWING)
    return WatchPanel(torch.stack(images), labels)
