"""Circuits: settings and calibration, compile, SRS, keys, and the content-addressed cache."""

from .compile import CompileResult, compile
from .package import CircuitPackage, load

__all__ = ["CircuitPackage", "CompileResult", "compile", "load"]
