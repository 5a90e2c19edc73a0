"""lossdsl: loss functions written as text, compiled with their symbolic gradients to NumPy or JAX."""

from . import objectives
from .analysis import analyze
from .compiled import CompiledLoss, compile, module_source
from .errors import InputError, LossDSLError
from .parser import parse

__all__ = ["CompiledLoss", "InputError", "LossDSLError", "analyze", "compile", "module_source", "objectives", "parse"]
__version__ = "0.1.0"
