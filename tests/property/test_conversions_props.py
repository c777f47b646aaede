"""Properties of anyref_ros.nodes.conversions on any message a sender could build.

For every input, valid or garbage: the conversion returns exactly what the
message encodes (checked against a byte-by-byte reference written here, not
with the code under test) or raises ConversionError, never another exception;
and its memory use is bounded by the bytes actually received (or by the
pixel limit for compressed images), never by a size the message merely claims.

Profiles (conftest.py): ``ci`` by default; ``ANYREF_HYPOTHESIS_PROFILE=long``
for ten times the examples with random seeds.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from propsupport import (UINT32_MAX, VALID_FORMATS, as_array, audio_chunks, examples, forged_compressed, formats,
                         jpeg_header, memory_bound, png_bomb, png_header, raw_images, reference_decode, reference_rgb,
                         same_pixels, valid_images)
from sensor_msgs.msg import CompressedImage, Image

from anyref_ros.nodes import conversions as conv

MiB = 1 << 20


def decode_or_error(fn, *args, **kwargs):
    """fn's result, or None when it raised ConversionError (any other exception propagates)."""
    try:
        return fn(*args, **kwargs)
    except conv.ConversionError as exc:
        assert str(exc), "a ConversionError must say what is wrong"
        return None


# ------------------------------------------------------------ raw images
@examples(300)
@given(msg=st.one_of(raw_images(), valid_images()))
def test_image_to_numpy_is_exact_or_refuses(msg):
    want = reference_decode(msg)
    with memory_bound(8 * len(msg.data) + MiB):
        got = decode_or_error(conv.image_to_numpy, msg)
    if want is None:
        assert got is None, f"accepted a malformed image: {msg.encoding!r} {msg.width}x{msg.height} step {msg.step}"
    else:
        assert got is not None, "refused a well-formed image"
        assert same_pixels(got, want)


@examples(300)
@given(msg=st.one_of(raw_images(), valid_images()))
def test_image_to_rgb_is_exact_or_refuses(msg):
    want = reference_rgb(msg)
    with memory_bound(8 * len(msg.data) + MiB):
        got = decode_or_error(conv.image_to_rgb, msg)
    if want is None:
        assert got is None
    else:
        assert got is not None, "refused a well-formed colour image"
        assert got.dtype == np.uint8 and got.flags.c_contiguous and same_pixels(got, want)


@examples(100)
@given(msg=valid_images(), limit=st.integers(1, 600))
def test_max_pixels_refuses_only_what_is_above_it(msg, limit):
    got = decode_or_error(conv.image_to_numpy, msg, max_pixels=limit)
    assert (got is None) == (msg.width * msg.height > limit)


@pytest.mark.parametrize("side", [2**16, 2**31 - 1, 2**31, UINT32_MAX])
def test_claimed_huge_image_costs_nothing(side):
    msg = Image(height=side, width=side, step=UINT32_MAX, encoding="rgb8")
    msg.data = bytes(64)
    with memory_bound(MiB):
        assert decode_or_error(conv.image_to_rgb, msg) is None
        assert decode_or_error(conv.depth_to_metres, Image(height=side, width=3, step=6, encoding="16UC1",
                                                           data=bytes(12))) is None


# ------------------------------------------------------------------ depth
@examples(200)
@given(msg=st.one_of(valid_images(["16UC1", "32FC1"]), valid_images(), raw_images()),
       unit=st.floats(1e-6, 1e6))
def test_depth_to_metres_marks_invalid_pixels_nan(msg, unit):
    with memory_bound(16 * len(msg.data) + MiB):
        got = decode_or_error(conv.depth_to_metres, msg, unit)
    raw = reference_decode(msg) if msg.encoding in conv.DEPTH_ENCODINGS else None
    if raw is None:
        assert got is None
        return
    assert got is not None and got.dtype == np.float32 and got.shape == raw.shape
    if msg.encoding == "16UC1":
        invalid = raw == 0
        want = raw.astype(np.float64) * unit / 1000.0
    else:
        invalid = ~np.isfinite(raw) | (raw <= 0)
        want = raw.astype(np.float64)
    assert np.array_equal(np.isnan(got), invalid)
    assert np.allclose(got[~invalid], want[~invalid], rtol=1e-6, atol=0)
    assert np.isfinite(got[~invalid]).all() and (got[~invalid] > 0).all()


# -------------------------------------------------------------- compressed
def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return buf.tobytes()


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return buf.tobytes()


@examples(100)
@given(data=st.binary(max_size=2048), fmt=formats)
def test_compressed_random_bytes_refused(data, fmt):
    msg = CompressedImage(format=fmt)
    msg.data = data
    with memory_bound(4 * MiB):
        got = decode_or_error(conv.compressed_to_rgb, msg)
    assert got is None or (got.ndim == 3 and got.shape[2] == 3 and got.dtype == np.uint8)


@examples(300)
@given(msg=forged_compressed())
def test_compressed_forged_headers_bounded_by_max_pixels(msg):
    limit = 1 << 20  # 1 Mpx = 3 MiB of RGB
    with memory_bound(8 * MiB, rss_bytes=64 * MiB):
        got = decode_or_error(conv.compressed_to_rgb, msg, max_pixels=limit)
    if got is not None:
        assert got.ndim == 3 and got.shape[2] == 3 and got.dtype == np.uint8
        assert got.shape[0] * got.shape[1] <= limit


@examples(60)
@given(h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
       fmt=st.sampled_from([f for f in VALID_FORMATS if "png" in f.lower() or f == ""]))
def test_compressed_png_round_trip_is_exact(h, w, seed, fmt):
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    msg = CompressedImage(format=fmt)
    msg.data = _png(rgb)
    got = decode_or_error(conv.compressed_to_rgb, msg)
    assert got is not None, f"refused a valid png with format {fmt!r}"
    assert got.shape == (h, w, 3) and np.array_equal(got, rgb)


@examples(40)
@given(h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
       fmt=st.sampled_from(["jpeg", "jpg", "", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8"]))
def test_compressed_jpeg_round_trip_has_the_size(h, w, seed, fmt):
    rgb = np.full((h, w, 3), np.random.default_rng(seed).integers(0, 256, 3, dtype=np.uint8))
    msg = CompressedImage(format=fmt)
    msg.data = _jpeg(rgb)
    got = decode_or_error(conv.compressed_to_rgb, msg)
    assert got is not None, f"refused a valid jpeg with format {fmt!r}"
    assert got.shape == (h, w, 3)
    assert np.abs(got.astype(int) - rgb.astype(int)).max() <= 8  # flat colour: jpeg is near exact, in RGB order


@examples(50)
@given(data=st.binary(min_size=1, max_size=300), cut=st.integers(0, 10_000))
def test_compressed_corrupt_tail_of_a_real_png(data, cut):
    good = _png(np.zeros((32, 32, 3), np.uint8) + 90)
    cut = cut % len(good)
    msg = CompressedImage(format="png")
    msg.data = good[:cut] + data
    got = decode_or_error(conv.compressed_to_rgb, msg)
    assert got is None or got.shape == (32, 32, 3)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb(8000, 8000)  # 64 Mpx: ~70 KB that would decode to 183 MiB of RGB


def test_png_bomb_refused_before_decoding(bomb):
    msg = CompressedImage(format="png")
    msg.data = bomb
    assert len(bomb) < 1 * MiB
    with memory_bound(4 * MiB, rss_bytes=32 * MiB):
        assert decode_or_error(conv.compressed_to_rgb, msg) is None


@pytest.mark.parametrize("width,height", [(65535, 65535), (65535, 1), (1, 65535), (20000, 20000)])
def test_jpeg_header_bomb_refused_before_decoding(width, height):
    msg = CompressedImage(format="jpeg")
    msg.data = jpeg_header(width, height) + bytes(100)
    with memory_bound(MiB, rss_bytes=32 * MiB):
        assert decode_or_error(conv.compressed_to_rgb, msg) is None


def test_png_header_bomb_refused_before_decoding():
    msg = CompressedImage(format="png")
    msg.data = png_header(2**31 - 1, 2**31 - 1, 8, 6) + bytes(50)
    with memory_bound(MiB, rss_bytes=32 * MiB):
        assert decode_or_error(conv.compressed_to_rgb, msg) is None


# ------------------------------------------------------------------- audio
def _reference_audio(msg):
    dtype = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}.get(msg.encoding)
    if dtype is None or msg.channels == 0 or msg.sample_rate == 0:
        return None
    frame = dtype.itemsize * msg.channels
    if len(msg.data) == 0 or len(msg.data) % frame:
        return None
    samples = np.frombuffer(bytes(msg.data), dtype).reshape(-1, msg.channels)
    return samples.astype(np.float32) / (np.float32(32768.0) if msg.encoding == "s16le" else np.float32(1.0))


@examples(400)
@given(msg=audio_chunks())
def test_audio_to_numpy_is_exact_or_refuses(msg):
    with memory_bound(8 * len(msg.data) + MiB):
        got = decode_or_error(conv.audio_to_numpy, msg)
    want = _reference_audio(msg)
    if got is None:
        return  # refusing is allowed for any chunk (rate/channel ranges, NaN, length limits)
    assert want is not None, f"accepted a malformed chunk: {msg.encoding!r} {msg.channels} ch {len(msg.data)} bytes"
    samples, rate = got
    assert rate == msg.sample_rate and rate > 0
    assert samples.dtype == np.float32 and samples.shape == want.shape
    assert np.isfinite(samples).all(), "NaN/inf samples must be refused, not passed on"
    assert np.array_equal(samples, want)


@examples(100)
@given(rate=st.sampled_from([8000, 16000, 44100, 48000]), channels=st.integers(1, 8), frames=st.integers(1, 400),
       encoding=st.sampled_from(["s16le", "f32le"]), seed=st.integers(0, 2**32 - 1))
def test_audio_ordinary_chunks_accepted(rate, channels, frames, encoding, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, (frames, channels)).astype(np.float32)
    msg = conv.numpy_to_audio(x, rate, encoding)
    samples, got_rate = conv.audio_to_numpy(msg)
    assert got_rate == rate and samples.shape == (frames, channels)
    assert np.abs(samples - x).max() <= (1.0 / 32768 if encoding == "s16le" else 0.0)


@pytest.mark.parametrize("rate", [1000, 16000, 48000])
def test_audio_too_long_refused_before_conversion(rate):
    """A chunk longer than the limit (60 s at its own rate) is refused before
    any sample is converted."""
    from anyref_ros.msg import AudioChunk

    seconds = getattr(conv, "MAX_AUDIO_SECONDS", 60.0)
    msg = AudioChunk(sample_rate=rate, channels=1, encoding="s16le")
    msg.data = as_array(bytes(2 * (int(rate * seconds) + 1)))
    with memory_bound(MiB):
        assert decode_or_error(conv.audio_to_numpy, msg) is None


@pytest.mark.parametrize("rate", [0, 1, 999, 384001, 2**31, UINT32_MAX])
@pytest.mark.parametrize("channels", [0, 1, 65, 65535])
def test_audio_extreme_rates_and_channels(rate, channels):
    from anyref_ros.msg import AudioChunk

    msg = AudioChunk(sample_rate=rate, channels=channels, encoding="f32le")
    msg.data = as_array(bytes(4 * max(channels, 1) * 10))
    with memory_bound(8 * len(msg.data) + MiB):
        got = decode_or_error(conv.audio_to_numpy, msg)
    assert got is None or (got[1] == rate and got[0].shape == (10, channels))
