"""Export an exported generator (``.safetensors``) to ONNX, and to OpenVINO IR.

The ONNX graph takes ``image`` (N×C×H×W float32, in the generator's value range) of any height and
width and returns ``translated`` of the same size: the padding to the network's stride multiple
and the crop back are part of the graph, as in ``ImageGenerator.forward``. The toolkit's metadata
(family, architecture, info, the SHA-256 of the source file) is stored in the model's
``metadata_props``, so the file describes itself as the ``.safetensors`` does.

One limit of the graph: reflection padding needs the image to be larger than the padding, which
holds from ``size_multiple / 2`` pixels on; ``backends`` pads smaller images by edge replication
first, as the torch network does.
"""

from __future__ import annotations

import io as bytes_io
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic_write
from ..errors import CheckpointError
from ..io import file_sha256, load_network, read_metadata
from .optional import require

ONNX_FORMAT = "i2i-network-onnx"
OPSET = 17
INPUT, OUTPUT = "image", "translated"


class PaddedGraph(nn.Module):
    """A generator's ``forward`` written so that tracing keeps the padding dynamic: the pad amounts
    are computed from the traced input shape (no branch on them), reflection always."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.multiple = generator.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        pad_h, pad_w = (-h) % self.multiple, (-w) % self.multiple
        top, left = pad_h // 2, pad_w // 2
        padded = F.pad(x, (left, pad_w - left, top, pad_h - top), mode="reflect")
        return self.generator.body(padded)[..., top : top + h, left : left + w]


def onnx_metadata(source: Path, meta: dict[str, Any], generator: nn.Module) -> dict[str, str]:
    """The strings stored in the ONNX model's ``metadata_props``."""
    return {
        "format": ONNX_FORMAT,
        "family": meta["family"],
        "architecture": json.dumps(meta["architecture"], sort_keys=True),
        "info": json.dumps(meta["info"], sort_keys=True),
        "value_range": json.dumps(meta["info"].get("value_range", [-1, 1])),
        "size_multiple": str(generator.size_multiple),
        "source_file": source.name,
        "source_sha256": file_sha256(source),
    }


def export_onnx(source: str | Path, out: str | Path, opset: int = OPSET) -> Path:
    """Write the generator of exported file ``source`` as an ONNX model at ``out``."""
    onnx = require("onnx", "ONNX export")
    source, out = Path(source), Path(out)
    if opset < OPSET:
        raise CheckpointError(f"ONNX opset {opset} is too old; {OPSET} or newer is needed")
    generator, meta = _load_image_generator(source)
    model = onnx.load_from_string(_trace(generator, meta, opset))
    for key, value in onnx_metadata(source, meta, generator).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = f"i2i generator '{meta['architecture'].get('name')}' exported from {source.name}"
    onnx.checker.check_model(model)
    atomic_write(out, lambda tmp: onnx.save(model, str(tmp)))
    return out


def _load_image_generator(source: Path) -> tuple[nn.Module, dict[str, Any]]:
    meta = read_metadata(source)
    if meta["family"] != "generator":
        raise CheckpointError(f"{source} holds a {meta['family']}; only image-to-image generators export to ONNX")
    generator, meta = load_network(source)
    return generator, meta


def _trace(generator: nn.Module, meta: dict[str, Any], opset: int) -> bytes:
    channels = int(meta["architecture"].get("in_channels", 3))
    side = generator.size_multiple * max(1, -(-64 // generator.size_multiple))  # a multiple, at least 64
    example = torch.zeros(1, channels, side, side)
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = bytes_io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on shape arithmetic, which stays dynamic here
        torch.onnx.export(
            PaddedGraph(generator).eval(),
            (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: axes, OUTPUT: axes},
        )
    return buffer.getvalue()


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The toolkit's metadata of an exported ONNX model, decoded like ``translate.io.read_metadata``."""
    onnx = require("onnx", "Reading ONNX metadata")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise CheckpointError(f"{path} is not an ONNX model: {exc}") from None
    props = {entry.key: entry.value for entry in model.metadata_props}
    if props.get("format") != ONNX_FORMAT:
        raise CheckpointError(
            f"{path} is an ONNX model but not an exported i2i generator (no '{ONNX_FORMAT}' metadata)"
        )
    return _decode(props)


def _decode(props: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = dict(props)
    for key in ("architecture", "info", "value_range"):
        decoded[key] = json.loads(props[key])
    decoded["size_multiple"] = int(props["size_multiple"])
    return decoded


def read_openvino_metadata(path: str | Path) -> dict[str, Any]:
    """The toolkit's metadata of an OpenVINO IR model written by ``export_openvino``."""
    ov = require("openvino", "Reading OpenVINO metadata")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"OpenVINO model not found: {path}")
    try:
        model = ov.Core().read_model(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path} is not an OpenVINO IR model: {str(exc).strip().splitlines()[0]}") from None
    if not model.has_rt_info(["i2i", "format"]):
        raise CheckpointError(f"{path} is an OpenVINO model but not an exported i2i generator (no i2i metadata)")
    keys = ("format", "family", "architecture", "info", "value_range", "size_multiple", "source_file", "source_sha256")
    return _decode({key: model.get_rt_info(["i2i", key]).astype(str) for key in keys})


def read_graph_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported ONNX (``.onnx``) or OpenVINO IR (``.xml``) generator."""
    return read_openvino_metadata(path) if Path(path).suffix == ".xml" else read_onnx_metadata(path)


def export_openvino(source: str | Path, out: str | Path) -> Path:
    """Write OpenVINO IR (``out`` = ``NAME.xml`` beside ``NAME.bin``) from an exported generator
    (``.safetensors``) or an ONNX model exported by ``export_onnx``; the metadata goes into the
    model's runtime info under ``i2i``."""
    ov = require("openvino", "OpenVINO export")
    source, out = Path(source), Path(out)
    if out.suffix != ".xml":
        raise CheckpointError(f"an OpenVINO IR model is written as NAME.xml (+ NAME.bin), not {out.name}")
    with tempfile.TemporaryDirectory(prefix="i2i-openvino-") as scratch:
        onnx_path = source if source.suffix == ".onnx" else export_onnx(source, Path(scratch) / "model.onnx")
        metadata = read_onnx_metadata(onnx_path)
        model = ov.convert_model(str(onnx_path))
        for key, value in metadata.items():
            model.set_rt_info(value if isinstance(value, str) else json.dumps(value), ["i2i", key])
        _save_pair(ov, model, out)
    return out


def _save_pair(ov, model, out: Path) -> None:
    """Save .xml and .bin in a scratch folder beside ``out``, then rename both: never half a pair."""
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=out.stem + ".", suffix=".tmp", dir=out.parent))
    try:
        ov.save_model(model, str(scratch / out.name), compress_to_fp16=False)
        os.replace(scratch / out.with_suffix(".bin").name, out.with_suffix(".bin"))
        os.replace(scratch / out.name, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
