"""Model zoo and ONNX handling: export zoo models, load and check any ONNX file."""

from .exporter import ExportResult, ZooModel, export, list_models
from .onnx_model import OnnxModel, load_onnx

__all__ = ["ExportResult", "OnnxModel", "ZooModel", "export", "list_models", "load_onnx"]
