"""Strategies for the anyref node's inputs (requests, goals, sensor messages),
shared by the in-process and the real-process property suites."""

from __future__ import annotations

import numpy as np
from hypothesis import event
from hypothesis import strategies as st
from propsupport import UINT32_MAX, audio_chunks, forged_compressed, garbage_text, raw_images, valid_images
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from anyref_ros.msg import AudioChunk
from anyref_ros.nodes.conversions import numpy_to_image, rgb_to_compressed
from anyref_ros.srv import DescribeRegion, Segment

CAMERA = (64, 48)  # W, H of the good camera frames the suites show
EMPTY = Image()
COLOUR = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16"]
INT32 = st.one_of(st.integers(-3, 70), st.sampled_from([-2**31, 2**31 - 1, 2**16, -1]),
                  st.integers(-2**31, 2**31 - 1))

texts = st.one_of(
    st.sampled_from(["red circle", "the blue square on the left", "object", "", " ", "\t\n", "\x00", "a\x00b",
                     "\u202eelcric der", "e\u0301\u0301\u0301", "\U0001F600 circle", "[SEG]", "<obj>", "<image>",
                     "</s>", "{exp}", "%s%n", "\\u0000", "\x1b[31mred\x1b[0m", "\r\n\r\n", "\ufeff", "\ud7ff"]),
    garbage_text(300),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", " ", "\u00e9", "\U0001F600", "<obj>", "\x07"]),
              st.sampled_from([511, 512, 513, 4096, 100_000])),
)


def camera_frame(stamp=None) -> Image:
    """A good CAMERA-sized rgb8 frame with a red square in it."""
    rgb = np.zeros((CAMERA[1], CAMERA[0], 3), np.uint8)
    rgb[10:30, 20:40] = (220, 30, 30)
    msg = numpy_to_image(rgb, "rgb8")
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = "prop_camera"
    return msg


def small_images():
    return st.one_of(st.just(EMPTY), valid_images(max_side=64), raw_images(max_bytes=2048))


@st.composite
def segment_requests(draw):
    """Every field independent and often broken."""
    req = Segment.Request()
    req.text = draw(texts)
    req.image = draw(st.one_of(st.just(EMPTY), small_images()))
    req.exemplar = draw(st.one_of(st.just(EMPTY), st.just(EMPTY), small_images()))
    req.exemplar_mask = draw(st.one_of(st.just(EMPTY), st.just(EMPTY), small_images()))
    req.audio = draw(st.one_of(st.just(AudioChunk()), st.just(AudioChunk()), st.just(AudioChunk()),
                               audio_chunks(max_bytes=4096)))
    return req


@st.composite
def plausible_segment_requests(draw):
    """Well-formed requests at the edges: 1-pixel and thin images, every colour encoding, odd text."""
    req = Segment.Request()
    req.text = draw(st.one_of(st.sampled_from(["red circle", "object", "x"]), texts))
    req.image = draw(st.one_of(st.just(EMPTY), valid_images(COLOUR, max_side=64)))
    return req


@st.composite
def describe_requests(draw):
    """Boxes anywhere in int32 (outside, inverted, at the limits), images empty, garbage or odd."""
    req = DescribeRegion.Request()
    req.image = draw(st.one_of(st.just(EMPTY), small_images()))
    req.x_min, req.y_min, req.x_max, req.y_max = (draw(INT32) for _ in range(4))
    return req


@st.composite
def plausible_describe_requests(draw):
    """A box inside the image (the latest camera frame or the request's own), corners included."""
    req = DescribeRegion.Request()
    req.image = draw(st.one_of(st.just(EMPTY), valid_images(["rgb8", "mono8"], max_side=32)))
    w, h = (req.image.width, req.image.height) if req.image.width else CAMERA
    x0, x1 = sorted(draw(st.integers(0, w - 1)) for _ in range(2))
    y0, y1 = sorted(draw(st.integers(0, h - 1)) for _ in range(2))
    req.x_min, req.y_min, req.x_max, req.y_max = x0, y0, x1, y1
    return req


any_describe_requests = st.one_of(describe_requests(), describe_requests(), describe_requests(),
                                  plausible_describe_requests())
any_segment_requests = st.one_of(segment_requests(), plausible_segment_requests())


@st.composite
def camera_infos(draw):
    """Sizes 0..2^32-1 and a K matrix that may hold NaN, inf, zero or negative focal lengths."""
    info = CameraInfo()
    info.width, info.height = draw(st.integers(0, UINT32_MAX)), draw(st.integers(0, UINT32_MAX))
    floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 1e-300, 1e300]),
                       st.floats(1.0, 2000.0))
    info.k = [draw(floats) for _ in range(9)]
    return info


@st.composite
def depth_with_info(draw):
    """A depth image of the camera's size (one value everywhere: 0, NaN, inf, negative, ...)
    and camera info whose intrinsics may be NaN, inf, zero or negative."""
    encoding = draw(st.sampled_from(["16UC1", "32FC1"]))
    w, h = CAMERA
    if encoding == "16UC1":
        values = np.full((h, w), draw(st.integers(0, 65535)), np.uint16)
    else:
        values = np.full((h, w), draw(st.floats(width=32, allow_nan=True, allow_infinity=True)), np.float32)
    depth = numpy_to_image(values, encoding, is_bigendian=draw(st.booleans()))
    info = draw(camera_infos())
    if draw(st.booleans()):
        info.width, info.height = w, h
    return depth, info


@st.composite
def compressed_frames(draw):
    """Camera frames as CompressedImage: forged headers, bombs' headers, garbage, or a good small jpeg/png."""
    if draw(st.integers(0, 3)) == 0:
        rgb = np.full((draw(st.integers(1, 40)), draw(st.integers(1, 40)), 3), draw(st.integers(0, 255)), np.uint8)
        return rgb_to_compressed(rgb, draw(st.sampled_from(["png", "jpeg"])))
    return draw(forged_compressed())


@st.composite
def plausible_audio(draw):
    """A well-formed chunk of a stream: 8-48 kHz, 1-2 channels, 20-200 ms, stamped like a
    driver would (sometimes zero, sometimes jumping), rarely with a NaN sample."""
    from anyref_ros.nodes.conversions import numpy_to_audio

    rate = draw(st.sampled_from([8000, 16000, 16000, 44100, 48000]))
    channels = draw(st.sampled_from([1, 1, 2]))
    frames = int(rate * draw(st.sampled_from([0.02, 0.1, 0.1, 0.2])))
    level = draw(st.sampled_from([0.0, 0.01, 0.5]))
    seed = draw(st.integers(0, 2**32 - 1))
    x = (np.random.default_rng(seed).uniform(-1, 1, (frames, channels)) * level).astype(np.float32)
    encoding = draw(st.sampled_from(["s16le", "f32le"]))
    nan = encoding == "f32le" and draw(st.integers(0, 9)) == 0
    msg = numpy_to_audio(x, rate, encoding)
    if nan:  # written into the bytes: numpy_to_audio itself refuses NaN
        data = np.frombuffer(bytes(msg.data), "<f4").copy()
        data[draw(st.integers(0, frames - 1)) * channels] = np.nan
        msg.data = data.tobytes()
    msg.header.stamp.sec = draw(st.sampled_from([0, 1_000_000, 1_000_001, 2**31 - 1]))
    return msg


frame_names = st.one_of(st.sampled_from(["base_link", "camera_optical", "map", "odom", "", "/", "/base_link",
                                         "a" * 300, "\u00fc/x", "\x00"]), garbage_text(40))
numbers = st.one_of(st.floats(-10, 10), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, 1e308, -1e308, 1e-320]))


@st.composite
def tf_messages(draw):
    """A TFMessage of 0..6 transforms: any frame names, numbers (NaN, inf, huge, zero quaternions), stamps."""
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    out = []
    for _ in range(draw(st.integers(0, 6))):
        t = TransformStamped()
        t.header.frame_id, t.child_frame_id = draw(frame_names), draw(frame_names)
        t.header.stamp.sec = draw(st.integers(0, 2**31 - 1))
        t.header.stamp.nanosec = draw(st.integers(0, 999_999_999))
        tr, q = t.transform.translation, t.transform.rotation
        tr.x, tr.y, tr.z = draw(numbers), draw(numbers), draw(numbers)
        q.x, q.y, q.z, q.w = draw(numbers), draw(numbers), draw(numbers), draw(numbers)
        out.append(t)
    return TFMessage(transforms=out)


camera_messages = st.one_of(raw_images(max_bytes=4096), valid_images(max_side=64), compressed_frames())
depth_messages = st.one_of(raw_images(max_bytes=4096), valid_images(["16UC1", "32FC1"], 64))
query_strings = texts.map(lambda t: String(data=t))
audio_messages = audio_chunks(max_bytes=8192)

__all__ = ["CAMERA", "EMPTY", "frame_names", "tf_messages", "any_describe_requests", "any_segment_requests", "audio_messages",
           "camera_frame", "camera_infos", "camera_messages", "depth_messages", "depth_with_info",
           "plausible_audio", "query_strings", "texts"]


def is_empty(img) -> bool:
    """The request's image is left empty (0x0, no data): the latest camera frame is meant."""
    return img.width == 0 and img.height == 0 and len(img.data) == 0


def check_answer(response, scene, frame_sizes, what: str, context: str = "") -> None:
    """A service/action answer to a generated request: a failure says why; a
    success's mask is a well-formed mono8 image of the request image's size,
    or (``scene`` None or empty) of one of ``frame_sizes``, the (W, H) of the
    camera frames sent. ``context``: appended to the "no response" message."""
    assert response is not None, f"{what}: no response{context}"
    event(f"{what}: " + ("ok" if response.success else " ".join(response.message.split()[:3])))
    if not response.success:
        assert response.message.strip(), f"{what}: a failure without a message"
        return
    mask = response.result.mask
    size = (mask.width, mask.height)
    assert mask.encoding == "mono8" and mask.step >= mask.width
    assert len(mask.data) == mask.height * mask.step > 0
    if scene is not None and not is_empty(scene):
        assert size == (scene.width, scene.height), f"{what}: mask {size}, request image {scene.width}x{scene.height}"
    else:
        assert size in frame_sizes, f"{what}: mask {size}, camera frames were {sorted(frame_sizes)}"
    assert response.result.mask_area <= mask.width * mask.height
