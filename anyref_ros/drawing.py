"""Pictures of answers: the frame with the mask, its outline, box and text."""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

MASK_COLOUR = (255, 64, 160)  # RGB magenta: stands out on most scenes
TEXT_COLOUR = (255, 255, 255)


def draw_referral(
    rgb: np.ndarray,
    mask: Optional[np.ndarray],
    box: Optional[Sequence[int]] = None,
    lines: Sequence[str] = (),
    colour: tuple[int, int, int] = MASK_COLOUR,
    alpha: float = 0.45,
) -> np.ndarray:
    """A copy of ``rgb`` (HxWx3 uint8) with ``mask`` tinted and outlined,
    ``box`` (x_min, y_min, x_max, y_max inclusive) drawn, and ``lines`` of text
    in a dark band at the top."""
    out = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    if mask is not None and mask.any():
        tint = np.array(colour, np.float32)
        out[mask] = (out[mask] * (1 - alpha) + tint * alpha).astype(np.uint8)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, thickness=max(1, out.shape[0] // 240))
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 255, 0), max(1, out.shape[0] // 320))
    if lines:
        scale = max(0.35, out.shape[0] / 900)
        height = int(22 * scale / 0.5)
        band = min(out.shape[0], height * len(lines) + 4)
        out[:band] = (out[:band] * 0.35).astype(np.uint8)
        for i, text in enumerate(lines):
            y = int(height * (i + 0.8))
            cv2.putText(out, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, 1, cv2.LINE_AA)
    return out
