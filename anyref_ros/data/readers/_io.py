"""File helpers shared by the readers; every failure names the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def load_json_object(path: Path, required: tuple[str, ...]) -> dict[str, Any]:
    """Load a JSON object that must have the keys ``required`` (ValueError otherwise)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(data, dict) or any(k not in data for k in required):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: expected a JSON object with keys {list(required)}, found {found}")
    return data


def load_rgb(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB image from ``path`` (any Pillow format)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read image ({exc})") from exc


def load_label_png(path: Path) -> np.ndarray:
    """H x W integer array of a single-channel label PNG (palette indices or grey
    levels; an RGB file is read as its first channel)."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read mask image ({exc})") from exc
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr.astype(np.int64)


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else ValueError naming ``what`` it should hold."""
    if not path.is_dir():
        raise ValueError(f"{path}: expected a folder of {what}")
    return path
