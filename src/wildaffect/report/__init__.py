"""Rendering of per-frame predictions: timeline plot (PNG), overlay video (MP4), terminal summary.

Independent of how the predictions were made: everything here takes the prediction table
(:mod:`wildaffect.report.table`) and, for the overlay, the face geometry of each frame.
"""

from wildaffect.report.overlay import write_overlay
from wildaffect.report.summary import summarise
from wildaffect.report.timeline import plot_timeline

__all__ = ["plot_timeline", "summarise", "write_overlay"]
