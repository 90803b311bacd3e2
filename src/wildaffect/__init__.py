"""wildaffect: per-frame Action Units, expression and valence/arousal from face and voice.

Importing the package is cheap: torch, transformers and mediapipe are imported by the
modules that use them, never here.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wildaffect")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
