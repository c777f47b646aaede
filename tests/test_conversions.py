"""Our cv_bridge replacement: exact round trips and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from anyref_ros.nodes.conversions import (
    ENCODINGS,
    ConversionError,
    audio_to_numpy,
    compressed_to_rgb,
    depth_to_metres,
    image_to_mask,
    image_to_numpy,
    image_to_rgb,
    is_empty_image,
    mask_to_image,
    numpy_to_audio,
    numpy_to_image,
    rgb_to_compressed,
)
from anyref_ros.msg import AudioChunk

RNG = np.random.default_rng(1234)


def random_array(encoding: str, height: int = 7, width: int = 11) -> np.ndarray:
    enc = ENCODINGS[encoding]
    shape = (height, width) if enc.channels == 1 else (height, width, enc.channels)
    if enc.dtype.kind == "f":
        return RNG.standard_normal(shape).astype(enc.dtype)
    return RNG.integers(0, np.iinfo(enc.dtype).max + 1, size=shape, dtype=enc.dtype)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("pad", [0, 3, 8])
@pytest.mark.parametrize("big", [False, True])
def test_image_round_trip_exact(encoding, pad, big):
    arr = random_array(encoding)
    enc = ENCODINGS[encoding]
    row = arr.shape[1] * enc.channels * enc.dtype.itemsize
    msg = numpy_to_image(arr, encoding, step=row + pad, is_bigendian=big)
    assert msg.step == row + pad and len(msg.data) == msg.height * msg.step
    assert bool(msg.is_bigendian) == big
    back = image_to_numpy(msg)
    assert back.dtype == enc.dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


def test_big_endian_mono16_bytes_are_big_endian():
    arr = np.array([[0x0102, 0xA0B0]], dtype=np.uint16)
    msg = numpy_to_image(arr, "mono16", is_bigendian=True)
    assert bytes(msg.data) == b"\x01\x02\xa0\xb0"
    # A message written by a big-endian camera driver, with 2 bytes of row padding.
    foreign = Image(height=1, width=2, encoding="mono16", is_bigendian=1, step=6, data=b"\x01\x02\xa0\xb0\xff\xff")
    np.testing.assert_array_equal(image_to_numpy(foreign), arr)


def test_odd_step_for_16_bit_rows():
    arr = random_array("16UC1", 3, 4)
    msg = numpy_to_image(arr, "16UC1", step=9)  # rows not 2-byte aligned
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


@pytest.mark.parametrize(
    "encoding,expected",
    [
        ("rgb8", lambda a: a),
        ("bgr8", lambda a: a[:, :, ::-1]),
        ("rgba8", lambda a: a[:, :, :3]),
        ("bgra8", lambda a: a[:, :, 2::-1]),
        ("mono8", lambda a: np.stack([a] * 3, axis=2)),
        ("mono16", lambda a: np.stack([(a >> 8).astype(np.uint8)] * 3, axis=2)),
    ],
)
def test_image_to_rgb(encoding, expected):
    arr = random_array(encoding)
    rgb = image_to_rgb(numpy_to_image(arr, encoding, step=arr.shape[1] * arr.itemsize * (arr.shape[2] if arr.ndim == 3 else 1) + 5))
    assert rgb.shape == (7, 11, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, expected(arr))


def test_depth_units():
    mm = np.array([[0, 1000, 2500]], dtype=np.uint16)
    d = depth_to_metres(numpy_to_image(mm, "16UC1"))
    assert np.isnan(d[0, 0]) and d[0, 1] == pytest.approx(1.0) and d[0, 2] == pytest.approx(2.5)
    m = np.array([[np.nan, 0.0, 1.25]], dtype=np.float32)
    d = depth_to_metres(numpy_to_image(m, "32FC1"))
    assert np.isnan(d[0, 0]) and np.isnan(d[0, 1]) and d[0, 2] == pytest.approx(1.25)
    with pytest.raises(ConversionError, match="depth image encoding"):
        depth_to_metres(numpy_to_image(random_array("rgb8"), "rgb8"))
    with pytest.raises(ConversionError, match="depth encoding"):
        image_to_rgb(numpy_to_image(mm, "16UC1"))


def test_mask_round_trip():
    mask = RNG.random((9, 13)) > 0.5
    msg = mask_to_image(mask)
    assert msg.encoding == "mono8" and set(np.unique(image_to_numpy(msg))) <= {0, 255}
    np.testing.assert_array_equal(image_to_mask(msg), mask)


def test_compressed_png_is_lossless_and_jpeg_is_close():
    rgb = random_array("rgb8", 32, 40)
    png = rgb_to_compressed(rgb, "png")
    assert isinstance(png, CompressedImage) and "png" in png.format
    np.testing.assert_array_equal(compressed_to_rgb(png), rgb)
    smooth = np.zeros((32, 40, 3), np.uint8)
    smooth[:, :, 0] = np.linspace(0, 255, 40, dtype=np.uint8)
    jpg = compressed_to_rgb(rgb_to_compressed(smooth, "jpeg", quality=95))
    assert np.abs(jpg.astype(int) - smooth).mean() < 3


def test_empty_image_detection():
    assert is_empty_image(Image())
    assert not is_empty_image(numpy_to_image(random_array("rgb8"), "rgb8"))


@pytest.mark.parametrize(
    "msg,match",
    [
        (Image(height=2, width=2, encoding="yuv422", step=4, data=b"\0" * 8), "unsupported image encoding 'yuv422'"),
        (Image(height=4, width=4, encoding="rgb8", step=12, data=b"\0" * 20), "has 20 bytes but height\\*step = 4\\*12 = 48"),
        (Image(height=2, width=4, encoding="rgb8", step=8, data=b"\0" * 16), "step 8 is smaller than one row"),
        (Image(height=0, width=4, encoding="rgb8", step=12, data=b""), "zero side"),
        (Image(), "unsupported image encoding ''"),
    ],
)
def test_malformed_images_raise_clear_errors(msg, match):
    with pytest.raises(ConversionError, match=match):
        image_to_numpy(msg)
    assert issubclass(ConversionError, ValueError)


def test_numpy_to_image_rejects_wrong_arrays():
    with pytest.raises(ConversionError, match="needs dtype uint8"):
        numpy_to_image(np.zeros((2, 2, 3), np.float32), "rgb8")
    with pytest.raises(ConversionError, match="shape \\(H, W, 3\\)"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "rgb8")


def test_bad_compressed_data():
    with pytest.raises(ConversionError, match="cannot decode"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"not a jpeg"))
    with pytest.raises(ConversionError, match="no data"):
        compressed_to_rgb(CompressedImage(format="jpeg"))


def test_audio_round_trips():
    ints = RNG.integers(-32768, 32768, size=(100, 2), dtype=np.int16)
    msg = numpy_to_audio(ints.astype(np.float32) / 32768.0, 16000, "s16le")
    assert msg.channels == 2 and msg.sample_rate == 16000 and len(msg.data) == 400
    samples, rate = audio_to_numpy(msg)
    assert rate == 16000
    np.testing.assert_array_equal(np.round(samples * 32768.0).astype(np.int16), ints)
    floats = RNG.uniform(-1, 1, size=50).astype(np.float32)
    samples, _ = audio_to_numpy(numpy_to_audio(floats, 48000, "f32le"))
    np.testing.assert_array_equal(samples[:, 0], floats)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(encoding="mp3", sample_rate=16000, channels=1, data=b"\0" * 4), "unsupported audio encoding 'mp3'"),
        (dict(encoding="s16le", sample_rate=16000, channels=2, data=b"\0" * 6), "expected a non-zero multiple of 4"),
        (dict(encoding="f32le", sample_rate=0, channels=1, data=b"\0" * 4), "sample_rate must be > 0"),
        (dict(encoding="f32le", sample_rate=16000, channels=1, data=b""), "non-zero multiple"),
    ],
)
def test_bad_audio(kwargs, match):
    with pytest.raises(ConversionError, match=match):
        audio_to_numpy(AudioChunk(**kwargs))
