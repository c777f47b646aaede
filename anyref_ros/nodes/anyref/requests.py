"""Request validation: a Segment/DescribeRegion request, a Refer goal or a query
string becomes an engine request, or a :class:`QueryError` that says what to
fix. Every size that comes from the caller (string length, pixel count,
audio length and rate) is checked before the work it would cost."""

from __future__ import annotations

from typing import Optional

import numpy as np
from std_msgs.msg import Header

from anyref_ros import engine as eng
from anyref_ros.msg import Referral
from anyref_ros.nodes import conversions as conv

from .hearing import SOUND_CLIP_S, decode_audio
from .intake import check_pixels
from .support import QueryError

MAX_REQUEST_AUDIO_S = 30.0  # longest audio a request may carry


class RequestBuilder:
    def __init__(self, node, intake, hearing) -> None:
        self.node = node
        self.intake = intake
        self.hearing = hearing

    def _limit(self) -> int:
        return self.node.param("max_image_pixels")

    # ----------------------------------------------------------------- pieces
    def text(self, text: str) -> Optional[str]:
        """``text`` if it is a usable query, None if empty; the length is checked first."""
        limit = self.node.param("max_text_chars")
        if len(text) > limit:
            raise QueryError(f"text is {len(text)} characters, above max_text_chars={limit}")
        if not text:
            return None
        if not text.strip():
            raise QueryError("text is only white space; send a referring expression such as 'the red cup'")
        return text

    def scene(self, image_msg) -> tuple[eng.Frame, Header]:
        """The frame a query runs on: the request's image, or the latest camera frame."""
        if image_msg is not None and not conv.is_empty_image(image_msg):
            if image_msg.height == 0 or image_msg.width == 0:
                raise QueryError(f"image is {image_msg.width}x{image_msg.height}: a side is zero; "
                                 "send an empty image (0x0, no data) to use the latest camera frame")
            check_pixels(image_msg.width, image_msg.height, self._limit(), "image")
            return eng.Frame(image=self._rgb(image_msg, "image")), image_msg.header
        frame = self.intake.latest_frame()
        # The depth image of that moment, kept with the query: the depth buffer
        # moves on while the query waits (meta: see Publishing.referral).
        depth = self.intake.depth.nearest(frame.stamp, self.node.param("depth_sync_slop_s"))
        return eng.Frame(image=frame.rgb(self._limit()), key=frame.key, meta=depth), frame.header

    def _rgb(self, msg, what: str) -> np.ndarray:
        try:
            return conv.image_to_rgb(msg)
        except conv.ConversionError as exc:
            raise QueryError(f"{what}: {exc}") from None

    def audio(self, chunk) -> tuple[Optional[np.ndarray], Optional[int]]:
        """Samples and rate of a request's AudioChunk; empty data with a rate > 0
        means the last 2 s heard on the audio topic; all empty means none."""
        if len(chunk.data) == 0:
            if chunk.sample_rate > 0:
                return self.hearing.last(SOUND_CLIP_S)
            if chunk.encoding:
                raise QueryError("audio: encoding set but no data; leave audio empty, or set only "
                                 "audio.sample_rate > 0 to use the last 2 s heard on the audio topic")
            return None, None
        try:
            return decode_audio(chunk, MAX_REQUEST_AUDIO_S)
        except ValueError as exc:
            raise QueryError(f"audio: {exc}") from None

    # --------------------------------------------------------------- requests
    def segment(self, req) -> tuple[eng.Request, Header, str]:
        """From a Segment request or a Refer goal (same fields)."""
        text = self.text(req.text)
        exemplar, exemplar_mask = self.exemplar(req)
        audio, rate = self.audio(req.audio)
        kinds = [k for k, v in (("text", text), ("exemplar", exemplar), ("audio", audio)) if v is not None]
        if not kinds:
            raise QueryError("no reference given: set text, exemplar (+ exemplar_mask) or audio")
        frame, header = self.scene(req.image)
        kind = kinds[0] if len(kinds) == 1 else Referral.TYPE_COMBINED
        return (eng.Request(frame=frame, text=text, exemplar=exemplar, exemplar_mask=exemplar_mask,
                            audio=audio, sample_rate=rate), header, kind)

    def exemplar(self, req) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """The request's exemplar image and its mask (each None when empty), checked."""
        exemplar = exemplar_mask = None
        if not conv.is_empty_image(req.exemplar):
            check_pixels(req.exemplar.width, req.exemplar.height, self._limit(), "exemplar")
            exemplar = self._rgb(req.exemplar, "exemplar")
            if not conv.is_empty_image(req.exemplar_mask):
                check_pixels(req.exemplar_mask.width, req.exemplar_mask.height, self._limit(), "exemplar_mask")
                try:
                    exemplar_mask = conv.image_to_mask(req.exemplar_mask)
                except conv.ConversionError as exc:
                    raise QueryError(f"exemplar_mask: {exc}") from None
                if exemplar_mask.shape != exemplar.shape[:2]:
                    raise QueryError(f"exemplar_mask is {exemplar_mask.shape[1]}x{exemplar_mask.shape[0]} "
                                     f"but the exemplar is {exemplar.shape[1]}x{exemplar.shape[0]}")
        elif not conv.is_empty_image(req.exemplar_mask):
            raise QueryError("exemplar_mask given without an exemplar image")
        return exemplar, exemplar_mask

    def describe(self, req) -> tuple[eng.Request, Header, str]:
        frame, header = self.scene(req.image)
        h, w = frame.image.shape[:2]
        x0, y0, x1, y1 = req.x_min, req.y_min, req.x_max, req.y_max
        if not (0 <= x0 <= x1 < w and 0 <= y0 <= y1 < h):
            raise QueryError(f"box ({x0}, {y0}, {x1}, {y1}) is not inside the {w}x{h} image: expected "
                             f"0 <= x_min <= x_max < {w} and 0 <= y_min <= y_max < {h} (inclusive pixels)")
        # ROS boxes are inclusive pixel indices; the model's are exclusive at the max side.
        return eng.Request(frame=frame, box=(x0, y0, x1 + 1, y1 + 1)), header, Referral.TYPE_REGION

    def text_query(self, text: str) -> tuple[eng.Request, Header, str]:
        """From the query topic: text on the latest frame."""
        text = self.text(text)
        if text is None:
            raise QueryError("empty query")
        frame, header = self.scene(None)
        return eng.Request(frame=frame, text=text), header, Referral.TYPE_TEXT

    def heard(self) -> tuple[eng.Request, Header, str]:
        """~/segment_sound: the last audio_window_s heard, on the latest frame."""
        audio, rate = self.hearing.last(self.node.param("audio_window_s"))
        frame, header = self.scene(None)
        return eng.Request(frame=frame, audio=audio, sample_rate=rate), header, Referral.TYPE_AUDIO

