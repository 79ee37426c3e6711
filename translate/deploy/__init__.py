"""Shipping generators outside PyTorch: ONNX and OpenVINO IR export (``onnx_export``) and one
small interface to run a generator on an N×C×H×W batch with torch, ONNX Runtime or OpenVINO
(``backends``). ONNX, ONNX Runtime and OpenVINO are optional: ``pip install 'i2i-translate[deploy]'``.
"""

from .backends import (
    BACKENDS,
    PRECISIONS,
    Runner,
    available_backends,
    channels_of,
    describe_timings,
    generator_metadata,
    measure,
    open_runner,
    open_runners,
)
from .onnx_export import export_onnx, export_openvino, read_graph_metadata, read_onnx_metadata, read_openvino_metadata

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "Runner",
    "available_backends",
    "channels_of",
    "describe_timings",
    "export_onnx",
    "export_openvino",
    "generator_metadata",
    "measure",
    "open_runner",
    "open_runners",
    "read_graph_metadata",
    "read_onnx_metadata",
    "read_openvino_metadata",
]
