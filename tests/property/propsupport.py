"""Strategies and checks shared by the property suites (import as
``from propsupport import ...``; see conftest.py for the profiles)."""

from __future__ import annotations

import array
import contextlib
import resource
import struct
import tracemalloc
import zlib
from typing import Iterator, Optional

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

from anyref_ros.nodes import conversions as conv

# ------------------------------------------------------------------ numbers
UINT32_MAX = 2**32 - 1
#: Numbers where size arithmetic tends to break: powers of two, int32/uint32 edges.
EDGE_SIZES = [0, 1, 2, 3, 255, 256, 65535, 65536, 2**31 - 1, 2**31, UINT32_MAX]


def scaled(n: int) -> int:
    """``n`` examples in the ci profile (100 examples), proportionally more in the long one."""
    return max(1, n * settings.default.max_examples // 100)


def examples(n: int):
    """``@examples(n)``: a property run on ``scaled(n)`` examples."""
    return settings(max_examples=scaled(n))


def uint(bits: int, small: int = 48) -> st.SearchStrategy[int]:
    """Unsigned ints of a message field: mostly small, often at the edges, sometimes anything."""
    top = 2**bits - 1
    return st.one_of(st.integers(0, small), st.sampled_from([v for v in EDGE_SIZES if v <= top]),
                     st.integers(0, top))


def garbage_text(max_size: int = 24) -> st.SearchStrategy[str]:
    """Strings a sender might get wrong: case, spaces, NULs, unicode, control characters."""
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def as_array(data: bytes) -> array.array:
    """Message byte fields accept array('B') without a per-element check (bytes are checked one by one)."""
    return array.array("B", data)


# ------------------------------------------------------------------- memory
@contextlib.contextmanager
def memory_bound(python_bytes: int, rss_bytes: Optional[int] = None) -> Iterator[None]:
    """Fail if the block allocates more than ``python_bytes`` at its peak
    through Python/numpy (tracemalloc), or raises the process's resident
    high-water mark by more than ``rss_bytes`` (native code such as OpenCV's
    decoders is invisible to tracemalloc)."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()
    assert peak <= python_bytes, f"peak Python/numpy allocation {peak / 2**20:.1f} MiB > {python_bytes / 2**20:.1f} MiB"
    if rss_bytes is not None:
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
        assert grown <= rss_bytes, f"resident peak grew by {grown / 2**20:.1f} MiB > {rss_bytes / 2**20:.1f} MiB"


# ------------------------------------------------------------------- images
ENCODING_NAMES = sorted(conv.ENCODINGS)
NEAR_MISS_ENCODINGS = ["RGB8", "rgb16", "8UC3", "8UC1", "16SC1", "bayer_rggb8", "yuv422", "", " rgb8", "rgb8\x00",
                       "mono8 ", "32FC3", "64FC1", "rgb8; jpeg compressed bgr8"]
encodings = st.one_of(st.sampled_from(ENCODING_NAMES), st.sampled_from(NEAR_MISS_ENCODINGS), garbage_text())


@st.composite
def raw_images(draw, max_bytes: int = 4096):
    """Any sensor_msgs/Image a sender could produce: every field independent."""
    from sensor_msgs.msg import Image

    msg = Image()
    msg.encoding = draw(encodings)
    msg.height, msg.width, msg.step = draw(uint(32)), draw(uint(32)), draw(uint(32, small=200))
    msg.is_bigendian = draw(st.one_of(st.sampled_from([0, 1]), st.integers(0, 255)))
    msg.data = as_array(draw(st.binary(max_size=max_bytes)))
    return msg


@st.composite
def valid_images(draw, encoding_names=ENCODING_NAMES, max_side: int = 24):
    """A well-formed Image built byte by byte (not with the code under test):
    row padding, either byte order, NaN/inf in float pixels."""
    from sensor_msgs.msg import Image

    name = draw(st.sampled_from(list(encoding_names)))
    enc = conv.ENCODINGS[name]
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    big = draw(st.booleans())
    pad = draw(st.integers(0, 7))
    row_bytes = w * enc.channels * enc.dtype.itemsize
    step = row_bytes + pad
    n = h * w * enc.channels
    if enc.dtype.kind == "f":
        values = draw(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
        pixels = np.array(values, np.float32)
    else:
        raw = draw(st.binary(min_size=n * enc.dtype.itemsize, max_size=n * enc.dtype.itemsize))
        pixels = np.frombuffer(raw, enc.dtype).copy()
    packed = pixels.astype(enc.dtype.newbyteorder(">" if big else "<")).tobytes()
    rows = [packed[r * row_bytes:(r + 1) * row_bytes] + bytes(pad) for r in range(h)]
    msg = Image(height=h, width=w, step=step, encoding=name, is_bigendian=int(big))
    msg.data = as_array(b"".join(rows) + draw(st.binary(max_size=8)))  # trailing bytes are allowed
    return msg


def reference_decode(msg) -> Optional[np.ndarray]:
    """What image_to_numpy must return for ``msg`` (None: it must refuse)."""
    enc = conv.ENCODINGS.get(msg.encoding)
    h, w, step = msg.height, msg.width, msg.step
    if enc is None or h == 0 or w == 0:
        return None
    row_bytes = w * enc.channels * enc.dtype.itemsize
    if step < row_bytes or len(msg.data) < h * step:
        return None
    data = bytes(msg.data)
    rows = b"".join(data[r * step:r * step + row_bytes] for r in range(h))
    dtype = enc.dtype.newbyteorder(">" if msg.is_bigendian else "<")
    arr = np.frombuffer(rows, dtype).astype(enc.dtype).reshape(h, w, enc.channels)
    return arr[:, :, 0] if enc.channels == 1 else arr


def reference_rgb(msg) -> Optional[np.ndarray]:
    """What image_to_rgb must return for ``msg`` (None: it must refuse)."""
    if msg.encoding not in conv.COLOUR_ENCODINGS:
        return None
    arr = reference_decode(msg)
    if arr is None:
        return None
    return {
        "rgb8": lambda a: a,
        "bgr8": lambda a: a[:, :, ::-1],
        "rgba8": lambda a: a[:, :, :3],
        "bgra8": lambda a: a[:, :, [2, 1, 0]],
        "mono8": lambda a: np.repeat(a[:, :, None], 3, axis=2),
        "mono16": lambda a: np.repeat((a >> 8).astype(np.uint8)[:, :, None], 3, axis=2),
    }[msg.encoding](arr)


def same_pixels(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal shape, dtype (byte order aside) and bits (NaN payloads included)."""
    return (got.shape == want.shape and got.dtype.newbyteorder("=") == want.dtype.newbyteorder("=")
            and np.ascontiguousarray(got).astype(want.dtype).tobytes() == np.ascontiguousarray(want).tobytes())


# ------------------------------------------------------------- compressed
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VALID_FORMATS = ["png", "jpeg", "jpg", "", "PNG", " jpeg ", "rgb8; png compressed bgr8", "bgr8; jpeg compressed bgr8",
                 "rgb8; jpeg compressed bgr8", "mono8; png compressed mono8"]
NEAR_MISS_FORMATS = ["bmp", "tiff", "webp", "jp2", "rgb8; compressedDepth png", "16UC1; compressedDepth",
                     "png;", ";", "rgb8;", "exr", "pxm", "gif", "jpeg xl"]
formats = st.one_of(st.sampled_from(VALID_FORMATS), st.sampled_from(NEAR_MISS_FORMATS), garbage_text(40))


def png_chunk(kind: bytes, payload: bytes, crc: Optional[int] = None) -> bytes:
    crc = zlib.crc32(kind + payload) if crc is None else crc
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc & 0xFFFFFFFF)


def png_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 0, interlace: int = 0) -> bytes:
    """PNG signature + IHDR chunk claiming ``width`` x ``height``."""
    return PNG_SIGNATURE + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0,
                                                          interlace))


def png_bomb(width: int, height: int) -> bytes:
    """A complete, valid grey PNG of ``width`` x ``height`` zero pixels: a few
    hundred KB that decode to width * height * 3 bytes of RGB."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    rows_per_block = max(1, (1 << 20) // len(row))
    parts, done = [], 0
    while done < height:
        n = min(rows_per_block, height - done)
        parts.append(comp.compress(row * n))
        done += n
    parts.append(comp.flush())
    return png_header(width, height) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")


def jpeg_header(width: int, height: int, marker: int = 0xC0, extra_segments: bytes = b"") -> bytes:
    """JPEG SOI, optional segments, and a 3-component SOFn claiming ``width`` x ``height``."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"".join(bytes([i, 0x11, 0]) for i in range(1, 4))
    return b"\xff\xd8" + extra_segments + bytes([0xFF, marker]) + struct.pack(">H", len(sof) + 2) + sof


@st.composite
def forged_compressed(draw):
    """CompressedImage messages whose data claims a size (PNG IHDR, JPEG SOFn)
    with garbage, truncated or missing pixel data behind it, under any format string."""
    from sensor_msgs.msg import CompressedImage

    kind = draw(st.sampled_from(["png", "jpeg", "random", "signature_only"]))
    w, h = draw(uint(32 if kind == "png" else 16, small=5000)), draw(uint(32 if kind == "png" else 16, small=5000))
    if kind == "png":
        head = png_header(w, h, draw(st.sampled_from([1, 2, 4, 8, 16, 0, 3, 255])),
                          draw(st.sampled_from([0, 2, 3, 4, 6, 1, 7])), draw(st.sampled_from([0, 1, 2])))
        tail = draw(st.one_of(st.binary(max_size=256),
                              st.builds(lambda b: png_chunk(b"IDAT", zlib.compress(b)), st.binary(max_size=256))))
        data = head + tail
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]  # truncated anywhere
    elif kind == "jpeg":
        app = draw(st.sampled_from([b"", b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
                                    b"\xff\xff\xff\xfe\x00\x04ok", b"\xff\xe1\x00\x02"]))
        data = jpeg_header(w, h, draw(st.sampled_from([0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCF])), app)
        data += draw(st.binary(max_size=256))
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
    elif kind == "signature_only":
        data = draw(st.sampled_from([PNG_SIGNATURE, b"\xff\xd8", b"\xff\xd8\xff",
                                     PNG_SIGNATURE + b"\x00\x00\x00\x0dIHDR"]))
    else:
        data = draw(st.binary(max_size=512))
    msg = CompressedImage()
    msg.format = draw(formats)
    msg.data = as_array(data)
    return msg


# -------------------------------------------------------------------- audio
audio_encodings = st.one_of(st.sampled_from(["s16le", "f32le"]),
                            st.sampled_from(["S16LE", "s16be", "f32be", "s24le", "u8", "mp3", "", "f64le"]),
                            garbage_text())
special_floats = st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1.0, -1.0, 1e30, -1e-45])


@st.composite
def audio_chunks(draw, max_bytes: int = 8192):
    """AudioChunk messages: every field independent; f32 payloads often hold NaN/inf."""
    from anyref_ros.msg import AudioChunk

    msg = AudioChunk()
    msg.sample_rate = draw(st.one_of(st.sampled_from([16000, 48000, 8000, 44100, 999, 1000, 384000, 384001]),
                                     uint(32)))
    msg.channels = draw(st.one_of(st.integers(1, 4), uint(16)))
    msg.encoding = draw(audio_encodings)
    if draw(st.booleans()):
        floats = draw(st.lists(st.one_of(st.floats(-1, 1, width=32), special_floats), max_size=max_bytes // 4))
        data = np.array(floats, "<f4").tobytes()
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
    else:
        data = draw(st.binary(max_size=max_bytes))
    msg.data = as_array(data)
    return msg
