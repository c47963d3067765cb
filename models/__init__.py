"""Model zoo and ONNX handling: export zoo models, load and check any ONNX file."""

from .export import ExportResult, export, list_models
from .onnx_model import OnnxModel, load_onnx

__all__ = ["ExportResult", "OnnxModel", "export", "list_models", "load_onnx"]
