"""Our cv_bridge replacement: exact round trips, clear errors, and costs bounded
before any work (decompression bombs, forged headers, absurd audio chunks)."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from anyref_ros.nodes import conversions
from anyref_ros.nodes.conversions import (
    AUDIO_MAX_RATE,
    AUDIO_MIN_RATE,
    ENCODINGS,
    MAX_AUDIO_CHANNELS,
    ConversionError,
    audio_to_numpy,
    compressed_size,
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


NAN32 = np.array([0.5, np.nan], "<f4").tobytes()
INF32 = np.array([np.inf, 0.5, -np.inf], "<f4").tobytes()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(encoding="mp3", sample_rate=16000, channels=1, data=b"\0" * 4), "unsupported audio encoding 'mp3'"),
        (dict(encoding="", sample_rate=16000, channels=1, data=b"\0" * 4), "unsupported audio encoding ''"),
        (dict(encoding="s16le", sample_rate=16000, channels=2, data=b"\0" * 6), "expected a non-zero multiple of 4"),
        (dict(encoding="s16le", sample_rate=16000, channels=1, data=b"\0" * 3), "multiple of 2"),
        (dict(encoding="f32le", sample_rate=16000, channels=1, data=b"\0" * 6), "multiple of 4"),
        (dict(encoding="f32le", sample_rate=16000, channels=3, data=b"\0" * 16), "multiple of 12"),
        (dict(encoding="f32le", sample_rate=0, channels=1, data=b"\0" * 4), r"sample_rate 0 Hz is outside .*\[1000, 384000\]"),
        (dict(encoding="f32le", sample_rate=1, channels=1, data=b"\0" * 4), "sample_rate 1 Hz is outside"),
        (dict(encoding="f32le", sample_rate=999, channels=1, data=b"\0" * 4), "sample_rate 999 Hz"),
        (dict(encoding="f32le", sample_rate=384001, channels=1, data=b"\0" * 4), "sample_rate 384001 Hz"),
        (dict(encoding="f32le", sample_rate=2**32 - 1, channels=1, data=b"\0" * 4), "sample_rate 4294967295 Hz"),
        (dict(encoding="f32le", sample_rate=16000, channels=0, data=b"\0" * 4), r"channels 0 is outside .*\[1, 64\]"),
        (dict(encoding="f32le", sample_rate=16000, channels=65, data=b"\0" * 4 * 65), "channels 65"),
        (dict(encoding="s16le", sample_rate=16000, channels=1000, data=b"\0" * 2000), "channels 1000"),
        (dict(encoding="s16le", sample_rate=16000, channels=2**16 - 1, data=b"\0" * 4), "channels 65535"),
        (dict(encoding="f32le", sample_rate=16000, channels=1, data=b""), "non-zero multiple"),
        (dict(encoding="s16le", sample_rate=1000, channels=1, data=b"\0" * 2 * 60001), r"above the limit of 60 s"),
        (dict(encoding="f32le", sample_rate=16000, channels=1, data=NAN32), "1 NaN or infinite"),
        (dict(encoding="f32le", sample_rate=16000, channels=1, data=INF32), "2 NaN or infinite"),
    ],
)
def test_bad_audio(kwargs, match):
    with pytest.raises(ConversionError, match=match):
        audio_to_numpy(AudioChunk(**kwargs))


def test_audio_limits_are_inclusive_and_adjustable(monkeypatch):
    for rate in (AUDIO_MIN_RATE, AUDIO_MAX_RATE):
        samples, got = audio_to_numpy(AudioChunk(encoding="s16le", sample_rate=rate, channels=1, data=b"\0\0"))
        assert got == rate and samples.shape == (1, 1)
    wide = AudioChunk(encoding="s16le", sample_rate=16000, channels=MAX_AUDIO_CHANNELS, data=b"\0" * 2 * MAX_AUDIO_CHANNELS)
    assert audio_to_numpy(wide)[0].shape == (1, MAX_AUDIO_CHANNELS)
    one_minute = AudioChunk(encoding="s16le", sample_rate=1000, channels=1, data=b"\0" * 2 * 60000)
    assert audio_to_numpy(one_minute)[0].shape == (60000, 1)
    with pytest.raises(ConversionError, match="above the limit of 10 s"):
        audio_to_numpy(one_minute, max_seconds=10.0)
    # The byte cap holds whatever the rate: checked before any sample is converted.
    monkeypatch.setattr(conversions, "MAX_AUDIO_BYTES", 1000)
    with pytest.raises(ConversionError, match="1000 bytes; send shorter chunks"):
        audio_to_numpy(AudioChunk(encoding="s16le", sample_rate=48000, channels=1, data=b"\0" * 1002))


# --- compressed images: only jpeg/png, size checked before decoding -----------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid 8-bit grey PNG of ``width`` x ``height`` zeros, built without
    holding the image: one deflate block of rows, ended by a full flush, is
    repeated (a full flush resets the compressor, so each repeat compresses
    to the same bytes). 20000 x 20000 gives a ~390 KB file that decodes to
    400 MB grey / 1.2 GB RGB."""
    row = b"\0" * (1 + width)  # filter byte + pixels
    rows_per_block = max(1, (1 << 20) // len(row))
    block = row * rows_per_block
    comp = zlib.compressobj(9)
    first = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    piece = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    assert first[2:] == piece  # zlib header + the same block
    blocks, rest = divmod(height, rows_per_block)
    adler = 1
    for _ in range(blocks):
        adler = zlib.adler32(block, adler)
    adler = zlib.adler32(row * rest, adler)
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    last = raw.compress(row * rest) + raw.flush()
    idat = first[:2] + piece * blocks + last + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIG + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


PNG_SIG = b"\x89PNG\r\n\x1a\n"


def forged_png(width: int, height: int) -> bytes:
    """~70 bytes: an IHDR claiming ``width`` x ``height`` RGB and a token IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIG + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 10)) + _png_chunk(b"IEND", b"")


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if anything reaches cv2.imdecode."""
    import cv2

    def refuse(*args, **kwargs):
        raise AssertionError("cv2.imdecode was called")

    monkeypatch.setattr(cv2, "imdecode", refuse)


def test_png_bomb_is_refused_from_its_header(no_decoding):
    bomb = png_of_zeros(20000, 20000)
    assert len(bomb) < 500_000
    msg = CompressedImage(format="png", data=bomb)
    assert compressed_size(msg) == (20000, 20000)
    tracemalloc.start()
    try:
        with pytest.raises(ConversionError, match="20000x20000 = 400000000 pixels, above the limit of 12582912"):
            compressed_to_rgb(msg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing image-sized was allocated


def test_small_png_of_zeros_helper_decodes():
    rgb = compressed_to_rgb(CompressedImage(format="png", data=png_of_zeros(300, 200)))
    assert rgb.shape == (200, 300, 3) and not rgb.any()


def test_forged_header_is_refused_and_opencv_errors_are_wrapped():
    forged = forged_png(40000, 40000)
    assert len(forged) < 80
    msg = CompressedImage(format="png", data=forged)
    with pytest.raises(ConversionError, match="40000x40000"):
        compressed_to_rgb(msg)
    # Past our limit, OpenCV's own size check raises cv2.error: it must come out as ConversionError.
    with pytest.raises(ConversionError, match="cannot decode png image \\(40000x40000"):
        compressed_to_rgb(msg, max_pixels=2**40)
    with pytest.raises(ConversionError, match="cannot decode png"):
        compressed_to_rgb(CompressedImage(format="png", data=forged_png(8, 8)))  # IDAT too short


def test_max_pixels_is_the_callers():
    png = rgb_to_compressed(random_array("rgb8", 30, 40), "png")
    assert compressed_to_rgb(png, max_pixels=1200).shape == (30, 40, 3)
    with pytest.raises(ConversionError, match="40x30 = 1200 pixels, above the limit of 1199"):
        compressed_to_rgb(png, max_pixels=1199)


def _jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    return bytes(rgb_to_compressed(rgb, "jpeg", quality=quality).data)


def test_one_pixel_png_and_jpeg():
    px = np.array([[[10, 200, 30]]], np.uint8)
    np.testing.assert_array_equal(compressed_to_rgb(rgb_to_compressed(px, "png")), px)
    got = compressed_to_rgb(CompressedImage(format="jpeg", data=_jpeg(px)))
    assert got.shape == (1, 1, 3) and np.abs(got.astype(int) - px).max() < 12


@pytest.mark.parametrize(
    "fmt",
    ["png", "PNG", "rgb8; png compressed bgr8", "bgr8; png compressed bgr8", "mono8; png compressed ", ""],
)
def test_png_format_strings(fmt):
    rgb = random_array("rgb8", 5, 6)
    data = rgb_to_compressed(rgb, "png").data
    out = compressed_to_rgb(CompressedImage(format=fmt, data=data))
    assert out.flags.c_contiguous and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "rgb8; jpeg compressed bgr8", "bgr8; jpeg compressed bgr8", ""])
def test_jpeg_format_strings(fmt):
    smooth = np.zeros((24, 32, 3), np.uint8)
    smooth[:, :, 0] = np.linspace(0, 255, 32, dtype=np.uint8)
    smooth[:, :, 2] = 90
    out = compressed_to_rgb(CompressedImage(format=fmt, data=_jpeg(smooth)))
    assert out.shape == (24, 32, 3) and np.abs(out.astype(int) - smooth).mean() < 3


def test_pixels_stored_as_rgb_are_not_swapped():
    """'... compressed rgb8': the encoder was handed RGB, so the file holds it as is."""
    import cv2

    rgb = random_array("rgb8", 4, 5)
    raw = cv2.imencode(".png", rgb)[1].tobytes()  # no BGR swap before encoding
    np.testing.assert_array_equal(compressed_to_rgb(CompressedImage(format="rgb8; png compressed rgb8", data=raw)), rgb)


def test_grey_png_becomes_rgb():
    import cv2

    grey = random_array("mono8", 6, 7)
    out = compressed_to_rgb(CompressedImage(format="mono8; png compressed ", data=cv2.imencode(".png", grey)[1].tobytes()))
    np.testing.assert_array_equal(out, np.stack([grey] * 3, axis=2))


@pytest.mark.parametrize("ext", ["tiff", "bmp", "webp"])
def test_other_codecs_are_refused(ext, no_decoding):
    import cv2

    data = cv2.imencode("." + ext, np.zeros((4, 5, 3), np.uint8))[1].tobytes()
    with pytest.raises(ConversionError, match=f"format '{ext}' is not supported; send jpeg or png"):
        compressed_to_rgb(CompressedImage(format=ext, data=data))
    with pytest.raises(ConversionError, match="not supported"):
        compressed_to_rgb(CompressedImage(format=f"rgb8; {ext} compressed bgr8", data=data))
    # The magic bytes decide when the format field lies or is empty.
    for fmt in ("jpeg", "png", ""):
        with pytest.raises(ConversionError, match="neither a PNG signature nor a JPEG start-of-image"):
            compressed_to_rgb(CompressedImage(format=fmt, data=data))


def test_format_must_match_the_data(no_decoding):
    png = bytes(rgb_to_compressed(random_array("rgb8", 4, 4), "png").data)
    with pytest.raises(ConversionError, match="format says jpeg .* but the data is png"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=png))
    with pytest.raises(ConversionError, match="format says png .* but the data is jpeg"):
        compressed_to_rgb(CompressedImage(format="png", data=_jpeg(random_array("rgb8", 4, 4))))
    with pytest.raises(ConversionError, match="compressedDepth"):
        compressed_to_rgb(CompressedImage(format="16UC1; compressedDepth png", data=png))


def test_garbage_and_empty_data(no_decoding):
    with pytest.raises(ConversionError, match="neither a PNG signature nor a JPEG"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"not a jpeg"))
    with pytest.raises(ConversionError, match="neither"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=RNG.integers(0, 256, 5000, dtype=np.uint8).tobytes()))
    with pytest.raises(ConversionError, match="no data"):
        compressed_to_rgb(CompressedImage(format="jpeg"))
    with pytest.raises(ConversionError, match="png data is truncated"):
        compressed_to_rgb(CompressedImage(format="png", data=PNG_SIG + b"\0\0\0\x0dIHDR"))
    with pytest.raises(ConversionError, match="does not start with an IHDR"):
        compressed_to_rgb(CompressedImage(format="png", data=PNG_SIG + _png_chunk(b"tEXt", b"k\0" + b"v" * 20)))


def test_truncated_jpeg():
    data = _jpeg(random_array("rgb8", 40, 50))
    sos = data.index(b"\xff\xda")
    for cut in (len(data) // 2, len(data) - 2, sos + 4):
        with pytest.raises(ConversionError, match="cannot decode jpeg image \\(50x40"):
            compressed_to_rgb(CompressedImage(format="jpeg", data=data[:cut]))
    with pytest.raises(ConversionError, match="ends before its frame header"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=data[:30]))
    with pytest.raises(ConversionError, match="ends before its frame header"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"\xff\xd8"))


def test_jpeg_header_walk():
    data = _jpeg(random_array("rgb8", 40, 50))
    # An extra APP1 segment and fill bytes before the frame header are skipped.
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 300) + b"x" * 300
    padded = data[:2] + app1 + b"\xff\xff" + data[2:]
    msg = CompressedImage(format="jpeg", data=padded)
    assert compressed_size(msg) == (50, 40)
    assert compressed_to_rgb(msg).shape == (40, 50, 3)
    # A frame header whose height is 0 (height given later in a DNL marker) is refused.
    sof = data.index(b"\xff\xc0")
    no_height = data[: sof + 5] + b"\0\0" + data[sof + 7:]
    with pytest.raises(ConversionError, match="height 0"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=no_height))
    # Scan data before any frame header, a broken marker, a zero-length segment.
    with pytest.raises(ConversionError, match="no frame header"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xda\0\x08" + b"\0" * 20))
    with pytest.raises(ConversionError, match="expected a marker at byte 2"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"\xff\xd8\x00\x01" + b"\0" * 20))
    with pytest.raises(ConversionError, match="segment length 0"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0\0\0" + b"\0" * 20))


def test_huge_claimed_raw_image_fails_fast():
    for w, h in ((2**32 - 1, 2**32 - 1), (100000, 100000)):
        msg = Image(height=h, width=w, encoding="rgb8", step=2**32 - 1, data=b"\0" * 12)
        with pytest.raises(ConversionError, match="smaller than one row|truncated"):
            image_to_numpy(msg)
    msg = Image(height=2**32 - 1, width=1, encoding="mono8", step=1, data=b"\0" * 12)
    with pytest.raises(ConversionError, match="has 12 bytes but height\\*step"):
        image_to_rgb(msg)
    ok = numpy_to_image(random_array("rgb8", 7, 11), "rgb8")
    assert image_to_rgb(ok, max_pixels=77).shape == (7, 11, 3)
    with pytest.raises(ConversionError, match="11x7 = 77 pixels, above the limit of 76"):
        image_to_rgb(ok, max_pixels=76)


@pytest.mark.parametrize("samples, rate", [
    (np.array([np.nan, 0.5], np.float32), 16000),
    (np.array([np.inf, 0.5], np.float32), 16000),
    (np.zeros(4, np.float32), 0),
    (np.zeros(4, np.float32), 2**32),
    (np.zeros((4, 65), np.float32), 16000),
])
def test_numpy_to_audio_refuses_what_audio_to_numpy_would_refuse(samples, rate):
    from anyref_ros.nodes.conversions import numpy_to_audio

    for encoding in ("s16le", "f32le"):
        with pytest.raises(ConversionError):
            numpy_to_audio(samples, rate, encoding)
