"""Input checks and pre-processing (numpy in, torch tensors out).

* CLIP: resize to ``image_size``² (no centre crop, as AnyRef; LISA's shortest
  side + centre crop with ``center_crop=True``), scale to [0, 1], CLIP mean/std.
* SAM: ``ResizeLongestSide(image_size)``'s size rule and bilinear filter, mean/std
  in 0..255 units, zero pad bottom/right to a square; the resized size is kept
  for un-padding. Both image resizes let PIL reduce large frames by a box
  filter first (``reducing_gap=3``: pixels within 2/255 of a plain resize,
  2-3x faster on a 720p frame).
* Masks: the decoder's low-resolution logits go to the image's size in SAM's
  two bilinear steps: ``postprocess_masks`` (torch, differentiable, for
  training) and ``masks_at_size`` (OpenCV, thresholded, for inference).
* Exemplar / region: optional mask (black background), crop to the box
  trimmed 1 px per side, then the CLIP path.
* Audio: mono mix, resample to 16 kHz (``anyref_ros.audio.signal.resample``,
  rates 8..192 kHz), ``num_clips`` evenly spaced clips of ``clip_seconds``,
  Kaldi fbank (128 bins, 25/10 ms, hanning, HTK), pad/cut to
  ``target_length`` frames, normalise with the ImageBind mean/std.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..audio.signal import MAX_INPUT_SECONDS, resample
from .config import AudioConfig, SamConfig, VisionConfig

Box = Tuple[int, int, int, int]

#: Sample rates (Hz) ``check_audio`` accepts; others are refused before any work.
AUDIO_MIN_RATE = 8000
AUDIO_MAX_RATE = 192000
#: PIL's reducing_gap for the encoders' resizes (see the module docstring).
REDUCING_GAP = 3.0


# ------------------------------------------------------------------ checks
def check_image(image, name: str = "image") -> np.ndarray:
    """``image`` must be an HxWx3 uint8 RGB array with H, W > 0."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name}: expected an HxWx3 uint8 numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected shape HxWx3 (RGB), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8 (0..255 RGB), got {image.dtype}")
    return np.ascontiguousarray(image)


def check_mask(mask, shape: Tuple[int, int], name: str = "exemplar_mask") -> np.ndarray:
    """``mask`` must be an HxW bool array matching ``shape`` with some True pixel."""
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{name}: expected an HxW bool numpy array, got {type(mask).__name__}")
    if mask.dtype != np.bool_:
        raise ValueError(f"{name}: expected dtype bool, got {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (the exemplar's HxW), got {mask.shape}")
    if not mask.any():
        raise ValueError(f"{name}: expected at least one True pixel, the mask is empty")
    return mask


def check_box(box, shape: Tuple[int, int]) -> Box:
    """``box`` = (x_min, y_min, x_max, y_max) pixels inside an image of ``shape``."""
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        raise ValueError(f"box: expected 4 numbers (x_min, y_min, x_max, y_max), got {box!r}") from None
    if len(values) != 4 or not all(np.isfinite(values)):
        raise ValueError(f"box: expected 4 finite numbers (x_min, y_min, x_max, y_max), got {box!r}")
    h, w = shape
    x0, y0, x1, y1 = values
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(
            f"box: expected 0 <= x_min < x_max <= {w} and 0 <= y_min < y_max <= {h} "
            f"(inside the {w}x{h} image), got {tuple(box)}")
    return (int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))


# ------------------------------------------------------------------- CLIP
def clip_pixels(image: np.ndarray, cfg: VisionConfig) -> torch.Tensor:
    """(1, 3, S, S) float tensor for the CLIP vision tower."""
    from PIL import Image

    pil = Image.fromarray(image)
    size = cfg.image_size
    if cfg.center_crop:
        w, h = pil.size
        scale = size / min(w, h)
        pil = pil.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC,
                         reducing_gap=REDUCING_GAP)
        w, h = pil.size
        left, top = (w - size) // 2, (h - size) // 2
        pil = pil.crop((left, top, left + size, top + size))
    else:
        pil = pil.resize((size, size), Image.BICUBIC, reducing_gap=REDUCING_GAP)
    x = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(cfg.mean).view(3, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def crop_reference(image: np.ndarray, box: Optional[Box] = None,
                   mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Exemplar/region crop: mask to a black background (if given), crop to
    ``box`` (default: the mask's box, or the whole image) trimmed 1 px per
    side where the crop stays at least 1 px wide."""
    if mask is not None:
        image = image * mask[..., None].astype(image.dtype)
        if box is None:
            ys, xs = np.nonzero(mask)
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    if box is None:
        return image
    x0, y0, x1, y1 = box
    if x1 - x0 > 2:
        x0, x1 = x0 + 1, x1 - 1
    if y1 - y0 > 2:
        y0, y1 = y0 + 1, y1 - 1
    return np.ascontiguousarray(image[y0:y1, x0:x1])


# -------------------------------------------------------------------- SAM
def sam_pixels(image: np.ndarray, cfg: SamConfig) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """((1, 3, S, S) padded tensor, resized (h, w)) for the SAM image encoder."""
    from PIL import Image
    from segment_anything.utils.transforms import ResizeLongestSide

    h, w = ResizeLongestSide.get_preprocess_shape(image.shape[0], image.shape[1], cfg.image_size)
    resized = np.array(Image.fromarray(image).resize((w, h), Image.BILINEAR, reducing_gap=REDUCING_GAP))
    # normalised in place inside the zero-padded square: one float buffer, no temporaries
    out = torch.zeros(1, 3, cfg.image_size, cfg.image_size)
    view = out[0, :, :h, :w]
    view.copy_(torch.from_numpy(resized).permute(2, 0, 1))
    view.sub_(torch.tensor(cfg.pixel_mean).view(3, 1, 1)).div_(torch.tensor(cfg.pixel_std).view(3, 1, 1))
    return out, (h, w)


def postprocess_masks(low_res: torch.Tensor, sam_size: int, resized: Tuple[int, int],
                      original: Tuple[int, int]) -> torch.Tensor:
    """Mask logits (N, 1, h, w) -> (N, H, W) logits at the original size."""
    x = F.interpolate(low_res.float(), (sam_size, sam_size), mode="bilinear", align_corners=False)
    x = x[..., : resized[0], : resized[1]]
    x = F.interpolate(x, tuple(original), mode="bilinear", align_corners=False)
    return x[:, 0]


def masks_at_size(low_res: torch.Tensor, sam_size: int, resized: Tuple[int, int],
                  original: Tuple[int, int], threshold: float) -> np.ndarray:
    """Mask logits (N, 1, h, w) -> (N, H, W) bool masks at the original size.

    The same two bilinear steps as ``postprocess_masks`` (SAM's: upscale to
    ``sam_size``, crop to ``resized``, resize to ``original``; the models are
    trained with them), done by OpenCV on the CPU without autograd and
    thresholded in place: a few milliseconds for a 720p mask instead of
    tens. One bilinear step instead of two is not the same: it leaves
    masks a few pixels larger (toy exemplar cIoU 0.990 -> 0.979)."""
    import cv2

    logits = low_res.detach().float().cpu().numpy()
    height, width = int(original[0]), int(original[1])
    rh, rw = int(resized[0]), int(resized[1])
    out = np.empty((logits.shape[0], height, width), dtype=bool)
    for i in range(logits.shape[0]):
        square = cv2.resize(logits[i, 0], (sam_size, sam_size), interpolation=cv2.INTER_LINEAR)
        full = cv2.resize(np.ascontiguousarray(square[:rh, :rw]), (width, height), interpolation=cv2.INTER_LINEAR)
        np.greater(full, threshold, out=out[i])
    return out


# ------------------------------------------------------------------ audio
def check_audio(audio, sample_rate, cfg: AudioConfig) -> np.ndarray:
    """Mono float32 samples from (N,) or (N, channels) float input."""
    if not isinstance(audio, np.ndarray):
        raise ValueError(f"audio: expected a float32 numpy array (samples, or samples x channels), "
                         f"got {type(audio).__name__}")
    if audio.dtype not in (np.float32, np.float64):
        raise ValueError(f"audio: expected float32 samples in [-1, 1], got dtype {audio.dtype}")
    if audio.ndim not in (1, 2):
        raise ValueError(f"audio: expected shape (samples,) or (samples, channels), got {audio.shape}")
    if sample_rate is None:
        raise ValueError("sample_rate: expected the audio's sample rate in Hz (e.g. 16000), got None")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate: expected a positive integer (Hz), got {sample_rate!r}")
    if not AUDIO_MIN_RATE <= sample_rate <= AUDIO_MAX_RATE:
        raise ValueError(f"sample_rate: {int(sample_rate)} Hz is outside the accepted range "
                         f"[{AUDIO_MIN_RATE}, {AUDIO_MAX_RATE}] Hz; resample the audio (16000 Hz is native)")
    if sample_rate != cfg.sample_rate and audio.shape[0] > MAX_INPUT_SECONDS * sample_rate:
        raise ValueError(f"audio: {audio.shape[0] / sample_rate:.1f} s at {int(sample_rate)} Hz is longer than "
                         f"the {MAX_INPUT_SECONDS:g} s that can be resampled; send a shorter clip or "
                         f"{cfg.sample_rate} Hz audio")
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio: expected finite samples, found NaN or infinity")
    seconds = audio.shape[0] / float(sample_rate)
    if seconds < cfg.min_seconds:
        raise ValueError(f"audio: expected at least {cfg.min_seconds} s of sound, got {seconds * 1000:.1f} ms "
                         f"({audio.shape[0]} samples at {sample_rate} Hz)")
    return audio.astype(np.float32)


def audio_clips(audio: np.ndarray, sample_rate: int, cfg: AudioConfig) -> torch.Tensor:
    """(1, num_clips, 1, num_mel_bins, target_length) normalised fbanks."""
    if sample_rate != cfg.sample_rate:
        # Fixed-taps windowed sinc: cost independent of gcd(sample_rate, 16000).
        audio = resample(np.asarray(audio, dtype=np.float32), int(sample_rate), cfg.sample_rate)
    wave = torch.from_numpy(audio).unsqueeze(0)
    duration = wave.shape[1] / cfg.sample_rate
    last_start = max(duration - cfg.clip_seconds, 0.0)
    step = last_start / (cfg.num_clips - 1) if cfg.num_clips > 1 else 0.0
    clips = []
    for i in range(cfg.num_clips):
        start = i * step
        a = int(start * cfg.sample_rate)
        b = int((start + cfg.clip_seconds) * cfg.sample_rate)
        clips.append(_fbank(wave[:, a:b], cfg))
    return torch.stack(clips).unsqueeze(0)


def _fbank(wave: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    from torchaudio.compliance import kaldi

    wave = wave - wave.mean()
    min_samples = int(0.025 * cfg.sample_rate)
    if wave.shape[1] < min_samples:  # at least one 25 ms frame
        wave = F.pad(wave, (0, min_samples - wave.shape[1]))
    feats = kaldi.fbank(wave, htk_compat=True, sample_frequency=cfg.sample_rate, use_energy=False,
                        window_type="hanning", num_mel_bins=cfg.num_mel_bins, dither=0.0,
                        frame_length=25, frame_shift=10)
    feats = feats.transpose(0, 1)  # (mel, frames)
    missing = cfg.target_length - feats.shape[1]
    feats = F.pad(feats, (0, missing)) if missing > 0 else feats[:, : cfg.target_length]
    return ((feats - cfg.mean) / cfg.std).unsqueeze(0)


def mask_box(mask: np.ndarray) -> Optional[Box]:
    """(x_min, y_min, x_max, y_max) of a bool mask (exclusive max), None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))  # two projections: cheaper than np.nonzero of every pixel
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]: rows[-1] + 1].any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def pool_reference(features: torch.Tensor, grid: int, num: int) -> torch.Tensor:
    """(P, D) patch features on a ``grid``x``grid`` layout -> (num, D): average
    each patch row, then pool the rows into ``num`` horizontal bands."""
    rows = features.reshape(grid, grid, -1).mean(dim=1)  # (grid, D)
    return F.adaptive_avg_pool1d(rows.t().unsqueeze(0), num)[0].t()
