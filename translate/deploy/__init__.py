"""Shipping generators outside PyTorch: ONNX and OpenVINO IR export (``onnx_export``) and one
small interface to run a generator on an N×C×H×W batch with torch, ONNX Runtime or OpenVINO
(``backends``). ONNX, ONNX Runtime and OpenVINO are optional: ``pip install 'i2i-translate[deploy]'``.
"""

from .backends import BACKENDS, PRECISIONS, Runner, available_backends, open_runner
from .onnx_export import export_onnx, export_openvino, read_graph_metadata, read_onnx_metadata, read_openvino_metadata

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "Runner",
    "available_backends",
    "export_onnx",
    "export_openvino",
    "open_runner",
    "read_graph_metadata",
    "read_onnx_metadata",
    "read_openvino_metadata",
]
