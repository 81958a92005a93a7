"""User-facing errors.

Every error a user can cause (a bad file, an unsupported op, data of the wrong shape)
is an ``FxqError``: its message is one line that names the problem, and the command
line prints it to stderr and exits with code 2. Anything else escaping is a bug in fxq.
"""
from __future__ import annotations


class FxqError(Exception):
    """A problem with what the user gave fxq; the message is one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


class ModelError(FxqError):
    """The model file cannot be read, or does not describe a valid graph."""


class UnsupportedModelError(ModelError):
    """The model is valid ONNX but uses something fxq does not support."""


class DataError(FxqError):
    """Input or calibration data is missing, malformed or does not fit the graph."""
