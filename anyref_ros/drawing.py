"""Pictures of answers that a person can read at a glance.

A found object keeps its own colours: it gets an outline (a light line with a
dark edge, or the reverse, a few pixels wide, scaled with the image) just
outside the mask, and everything around it is darkened (or lightened, for a
dark object). A "not found" answer dims the whole frame a little and carries
a red banner "not found: <query>"; a mask kept for inspection (an answer
below ``min_score``) gets only a thin dashed line. Every answer shows its
score. Text is drawn with OpenCV's ``putText`` (Unicode from OpenCV 5 on;
ASCII with older versions, where other characters become "?").
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

MASK_COLOUR = (255, 255, 255)  # outline on a darkened surround
DARK_COLOUR = (16, 16, 16)  # outline on a lightened surround, and the outline's edge
TEXT_COLOUR = (255, 255, 255)
BOX_COLOUR = (255, 220, 0)
NOT_FOUND_COLOUR = (200, 30, 30)  # banner of a "not found" answer
CANDIDATE_COLOUR = (255, 255, 255)  # dashed outline of a mask kept below min_score
NOT_FOUND_DIM = 0.75  # brightness kept by a "not found" frame
DARK_OBJECT_LUMA = 60.0  # objects darker than this get a lightened surround
UNICODE_TEXT = int(cv2.__version__.split(".")[0]) >= 5
SEPARATOR = " \u00b7 " if UNICODE_TEXT else " | "


def outline_width(shape: Sequence[int]) -> int:
    """Width in pixels of the answer's outline: 2 px up to VGA, growing with
    the image (3 px at 480 lines, 6 px at 1080)."""
    return max(2, int(round(min(shape[0], shape[1]) / 180)))


def draw_referral(
    rgb: np.ndarray,
    mask: Optional[np.ndarray],
    box: Optional[Sequence[int]] = None,
    lines: Sequence[str] = (),
    colour: Optional[tuple[int, int, int]] = None,
    alpha: float = 0.55,
    *,
    found: Optional[bool] = None,
    score: Optional[float] = None,
    label: Optional[str] = None,
) -> np.ndarray:
    """A copy of ``rgb`` (HxWx3 uint8) showing one answer.

    ``mask`` (HxW bool) is the object: its pixels keep their colours, an
    outline (``colour``, default white with a dark edge, or dark with a light
    edge on a dark object) is drawn just outside it and the rest of the frame
    is darkened (or lightened) by ``alpha`` (0 keeps it). ``box`` (x_min,
    y_min, x_max, y_max inclusive) is drawn a few pixels outside the object.
    ``found`` (default: the mask is not empty) False draws a "not found"
    answer: the frame dimmed a little, a red banner "not found: ``label``",
    and a non-empty mask (kept for inspection) as a thin dashed line only.
    A headline "``label`` · score ``score``" (when either is given) and
    ``lines`` of text go in a band at the top, or at the bottom when the
    object lies under the top band."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = np.ascontiguousarray(rgb, dtype=np.uint8)
    if out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"rgb: expected an HxWx3 uint8 image, got shape {out.shape}")
    h, w = out.shape[:2]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (h, w):
            raise ValueError(f"mask: expected shape {(h, w)}, got {mask.shape}")
    has_mask = mask is not None and bool(mask.any())
    found = has_mask if found is None else bool(found)
    if found and has_mask:
        out = _highlight(out, mask, colour, alpha)
        if box is not None:
            _box(out, box, outline_width(out.shape) + 3)
    else:
        out = (out.astype(np.float32) * NOT_FOUND_DIM).astype(np.uint8)
        if has_mask:
            _dashed_outline(out, mask)
    headline = _headline(found, label, score)
    _text_band(out, headline, list(lines), found, mask if has_mask else None)
    return out


# ------------------------------------------------------------------ internals
def _luma(pixels: np.ndarray) -> np.ndarray:
    return pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114


def _roi(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (slice(max(0, rows[0] - pad), rows[-1] + pad + 1), slice(max(0, cols[0] - pad), cols[-1] + pad + 1))


def _highlight(rgb: np.ndarray, mask: np.ndarray, colour, alpha: float) -> np.ndarray:
    """The object untouched, its surround darkened (lightened for a dark
    object), and a two-tone outline just outside the mask."""
    dark_object = float(_luma(rgb[mask].astype(np.float32)).mean()) < DARK_OBJECT_LUMA
    surround = rgb.astype(np.float32)
    if dark_object:
        surround = 255.0 - (255.0 - surround) * (1.0 - alpha)
    else:
        surround *= 1.0 - alpha
    out = np.where(mask[..., None], rgb, surround.astype(np.uint8))
    line = colour if colour is not None else (DARK_COLOUR if dark_object else MASK_COLOUR)
    edge = MASK_COLOUR if dark_object and colour is None else DARK_COLOUR
    width = outline_width(rgb.shape)
    rows, cols = _roi(mask, width + 2)
    local = mask[rows, cols].astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    inner = cv2.dilate(local, kernel).astype(bool)
    outer = cv2.dilate(local, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 3, 2 * width + 3))).astype(bool)
    view = out[rows, cols]
    view[outer & ~inner] = edge
    view[inner & ~local.astype(bool)] = line
    return out


def _box(out: np.ndarray, box: Sequence[int], pad: int) -> None:
    h, w = out.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
    x1, y1 = min(w - 1, x1 + pad), min(h - 1, y1 + pad)
    cv2.rectangle(out, (x0, y0), (x1, y1), BOX_COLOUR, 1)


def _dashed_outline(out: np.ndarray, mask: np.ndarray) -> None:
    """A thin dashed line on the mask's border: a candidate that was not accepted."""
    dash = 3 * outline_width(out.shape)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    for c in contours:
        points = c[:, 0, :]
        dashes = [points[k:k + dash] for k in range(0, len(points), 2 * dash)]
        cv2.polylines(out, [d.reshape(-1, 1, 2) for d in dashes if len(d) > 1], False, CANDIDATE_COLOUR, 2,
                      cv2.LINE_AA)


def _headline(found: bool, label: Optional[str], score: Optional[float]) -> Optional[str]:
    parts = []
    if not found:
        parts.append(f"not found: {label}" if label else "not found")
    elif label:
        parts.append(label)
    if score is not None:
        parts.append(f"score {float(score):.2f}")
    return SEPARATOR.join(parts) if parts else None


def _fit(text: str, scale: float, thickness: int, width: int) -> str:
    """``text`` on one line, shortened with "..." to fit ``width`` pixels."""
    text = "".join(c if c.isprintable() and (UNICODE_TEXT or ord(c) < 127) else "?" for c in text)
    font = cv2.FONT_HERSHEY_SIMPLEX
    if cv2.getTextSize(text, font, scale, thickness)[0][0] <= width:
        return text
    while text and cv2.getTextSize(text + "...", font, scale, thickness)[0][0] > width:
        text = text[:-1]
    return text + "..."


def _text_band(out: np.ndarray, headline: Optional[str], lines: list[str], found: bool,
               mask: Optional[np.ndarray]) -> None:
    """The headline and ``lines`` on a dark band (the headline of a "not
    found" answer on a red one) at the top, or at the bottom when the object
    lies under the top band and not under the bottom one."""
    if headline is None and not lines:
        return
    h, w = out.shape[:2]
    scale = max(0.35, h / 900)
    big = scale * 1.25
    line_h = int(round(22 * scale / 0.5))
    head_h = int(round(22 * big / 0.5)) if headline is not None else 0
    band = min(h, head_h + line_h * len(lines) + 4)
    top = 0
    if mask is not None and mask[:band].any() and not mask[h - band:].any():
        top = h - band
    region = out[top:top + band]
    keep = mask[top:top + band] if mask is not None and found else None
    dimmed = (region.astype(np.float32) * 0.35).astype(np.uint8)
    region[:] = dimmed if keep is None else np.where(keep[..., None], region, dimmed)
    font = cv2.FONT_HERSHEY_SIMPLEX
    y = top
    if headline is not None:
        if not found:
            region[:head_h] = NOT_FOUND_COLOUR
        thick = max(1, int(round(big * 1.6)))
        text = _fit(headline, big, thick, w - 8)
        cv2.putText(out, text, (4, y + int(head_h * 0.78)), font, big, TEXT_COLOUR, thick, cv2.LINE_AA)
        y += head_h
    for text in lines:
        cv2.putText(out, _fit(text, scale, 1, w - 8), (4, y + int(line_h * 0.8)), font, scale, TEXT_COLOUR, 1,
                    cv2.LINE_AA)
        y += line_h


# The 12 edges of a box between the corners of OrientedBox.corners() (index bits: x, y, z).
BOX_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


def draw_box_3d(out: np.ndarray, corners_px: np.ndarray, colour=BOX_COLOUR) -> np.ndarray:
    """The 12 edges of a 3D box, its 8 corners projected to pixels (8 x 2), drawn into ``out``."""
    width = outline_width(out.shape)
    pts = np.round(corners_px).astype(int)
    for a, b in BOX_EDGES:
        cv2.line(out, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]), colour, width, cv2.LINE_AA)
    return out


def top_view(points_xy: np.ndarray, colours: Optional[np.ndarray], box_xy: np.ndarray, size: int = 480,
             truth_xy: Optional[np.ndarray] = None, title: str = "top view") -> np.ndarray:
    """A picture of points seen from above (x up the picture, y to its left, as a
    robot's base frame), with a box's 4 bottom corners (4 x 2, in order around it)
    and, optionally, a true outline (N x 2), scaled to fit with a 1 cm grid."""
    out = np.full((size, size, 3), 24, np.uint8)
    every = np.concatenate([points_xy, box_xy] + ([truth_xy] if truth_xy is not None else []))
    centre = (every.min(axis=0) + every.max(axis=0)) / 2.0
    span = float(np.max(every.max(axis=0) - every.min(axis=0))) * 1.3 + 1e-3
    scale = size / span

    def px(xy: np.ndarray) -> np.ndarray:  # robot x -> up, robot y -> left
        return np.stack([size / 2 - (xy[:, 1] - centre[1]) * scale, size / 2 - (xy[:, 0] - centre[0]) * scale], axis=1)

    step = 0.01 * scale
    if step >= 4:
        for k in range(int(size / step) + 2):
            v = int(round(size / 2 + (k - int(size / step / 2)) * step))
            cv2.line(out, (v, 0), (v, size - 1), (40, 40, 40), 1)
            cv2.line(out, (0, v), (size - 1, v), (40, 40, 40), 1)
    p = np.round(px(points_xy)).astype(int)
    ok = (p >= 0).all(axis=1) & (p < size).all(axis=1)
    out[p[ok, 1], p[ok, 0]] = colours[ok] if colours is not None else (255, 255, 255)
    if truth_xy is not None:
        cv2.polylines(out, [np.round(px(truth_xy)).astype(np.int32)], True, (40, 255, 40), 1, cv2.LINE_AA)
    cv2.polylines(out, [np.round(px(box_xy)).astype(np.int32)], True, BOX_COLOUR, 2, cv2.LINE_AA)
    cv2.putText(out, title, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, TEXT_COLOUR, 1, cv2.LINE_AA)
    return out
