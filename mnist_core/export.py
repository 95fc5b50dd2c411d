"""A checkpoint as a file other runtimes read: ONNX (onnxruntime, browsers, phones) or TorchScript (C++ libtorch).

The exported model takes what the CNN takes, a batch of any size of normalized images
``(N, 1, 28, 28)`` float32 in [-1, 1] with the ink white on black, and returns the ten
probabilities per image, softmax included, so a user of the file needs nothing of
this package but the preprocessing. The model is copied before export, so a model the
caller shares (the dashboard's cached one) is never touched.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from .files import write_atomically
from .model import CNN

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[Format, ...] = ("onnx", "torchscript")
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"


def _with_softmax(model: CNN) -> nn.Module:
    return nn.Sequential(copy.deepcopy(model).cpu().eval(), nn.Softmax(dim=1)).eval()


def onnx_bytes(model: CNN) -> bytes:
    """The model as an ONNX file in memory, through PyTorch's current (torch.export-based) exporter."""
    example = torch.zeros(2, 1, 28, 28)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), torch.inference_mode(False):
        warnings.simplefilter("ignore")  # the exporter narrates each of its passes
        program = torch.onnx.export(
            _with_softmax(model),
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    assert program is not None  # dynamo=True always returns the program
    return program.model_proto.SerializeToString()


def torchscript_bytes(model: CNN) -> bytes:
    """The model as a TorchScript archive in memory, for libtorch (C++) deployments that still read it.

    PyTorch marks TorchScript deprecated in favour of torch.export; its warnings say so
    on every call, and are silenced here because the format was asked for by name.
    """
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.trace(_with_softmax(model), torch.zeros(2, 1, 28, 28)), buffer)
    return buffer.getvalue()


def exported(model: CNN, format: Format = "onnx") -> bytes:
    """The model as a file's bytes in ``format``."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    return onnx_bytes(model) if format == "onnx" else torchscript_bytes(model)


def export_model(model: CNN, out: Path | str, format: Format = "onnx") -> Path:
    """Write the model to ``out`` in ``format``; the file appears whole or not at all."""
    return write_atomically(Path(out), exported(model, format))


def run_exported(path: Path | str, images: np.ndarray | torch.Tensor, format: Format = "onnx") -> np.ndarray:
    """Probabilities (N, 10) from an exported file, run by its own runtime: how a user of the file would see them."""
    batch = torch.as_tensor(images, dtype=torch.float32)
    if format == "torchscript":
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path)).eval()(batch).numpy()
    import onnxruntime  # only needed here: exporting and the rest of the package work without it

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0]
