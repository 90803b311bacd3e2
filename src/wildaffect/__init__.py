"""wildaffect: per-frame Action Units, expression and valence/arousal from face and voice.

Importing the package is cheap: torch, transformers and mediapipe are imported by the
modules that use them, never here.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wildaffect")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    """``wildaffect.Predictor`` without importing torch at ``import wildaffect``."""
    if name == "Predictor":
        from wildaffect.predict.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'wildaffect' has no attribute {name!r}")
