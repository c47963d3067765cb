"""Circuits: rewrite, settings search and calibration, compile, SRS, keys, the circuit cache."""

from .compiler import CompileResult, compile
from .package import CircuitPackage, load

__all__ = ["CircuitPackage", "CompileResult", "compile", "load"]
