"""Draw 68-point landmarks on an image, to check the pipeline by eye (debug images, docs)."""

from __future__ import annotations

import numpy as np

from wildaffect.face.regions import ANATOMICAL_REGIONS, JAW

#: One RGB colour per anatomical region (jaw included) so a swapped group stands out.
_COLOURS = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190),
)


def draw_landmarks68(
    image_rgb: np.ndarray, points_px: np.ndarray, scale: float = 1.0, numbers: bool = True
) -> np.ndarray:
    """A copy of ``image_rgb`` (optionally upscaled) with the 68 points coloured by region.

    points_px: (68, 2) x, y in pixels of ``image_rgb``. With ``numbers`` each point is labelled
    with its iBUG index, which is what makes an ordering mistake visible.
    """
    import cv2

    canvas = np.ascontiguousarray(image_rgb.copy())
    if scale != 1.0:
        canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    drawn = {k: v for k, v in ANATOMICAL_REGIONS.items() if "cheek" not in k and k != "jaw"}
    groups = {"jaw": JAW, **drawn}
    colour_of = {}
    for colour, indices in zip(_COLOURS, groups.values()):
        for index in indices:
            colour_of.setdefault(index, colour)
    radius = max(1, round(2 * scale**0.5))
    for index, (x, y) in enumerate(np.asarray(points_px, dtype=np.float64) * scale):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        centre = (round(x), round(y))
        colour = colour_of.get(index, (255, 255, 255))
        cv2.circle(canvas, centre, radius, colour, -1, lineType=cv2.LINE_AA)
        if numbers:
            cv2.putText(canvas, str(index), (centre[0] + radius + 1, centre[1] - 1),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour, 1, cv2.LINE_AA)
    return canvas
