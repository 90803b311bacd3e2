"""Colours shared by the timeline plot and the overlay video, so a class looks the same in both."""

from __future__ import annotations

from wildaffect.labels import EXPR_NAMES

#: One RGB colour (0-255) per expression class, in ``EXPR_NAMES`` order (matplotlib's tab10).
EXPR_COLOURS_RGB: dict[str, tuple[int, int, int]] = dict(
    zip(
        EXPR_NAMES,
        (
            (127, 127, 127),
            (214, 39, 40),
            (140, 86, 75),
            (148, 103, 189),
            (255, 127, 14),
            (31, 119, 180),
            (44, 160, 44),
            (188, 189, 34),
        ),
        strict=True,
    )
)
#: Face box in the overlay: a white line on a black outline, visible on any background
#: (a green box vanishes on the CREMA-D green screen).
BOX_RGB: tuple[int, int, int] = (255, 255, 255)
BOX_OUTLINE_RGB: tuple[int, int, int] = (0, 0, 0)


def expr_colour_float(name: str) -> tuple[float, float, float]:
    """Matplotlib colour (0-1 floats) of an expression class."""
    r, g, b = EXPR_COLOURS_RGB[name]
    return (r / 255, g / 255, b / 255)
