"""Bad inputs raise ValueError saying what was expected."""

from __future__ import annotations

import numpy as np
import pytest


def test_no_reference(tiny, image):
    with pytest.raises(ValueError, match="at least one reference"):
        tiny.segment(image)


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_text(tiny, image, text):
    with pytest.raises(ValueError, match="non-empty referring expression"):
        tiny.segment(image, text=text)


def test_text_with_model_tokens(tiny, image):
    with pytest.raises(ValueError, match="reserved tokens"):
        tiny.segment(image, text="the cat[SEG]")
    with pytest.raises(ValueError, match="expected a str"):
        tiny.segment(image, text=3)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 10, 3), np.uint8), "non-empty image"),
    (np.zeros((10, 0, 3), np.uint8), "non-empty image"),
    (np.zeros((10, 10, 3), np.float32), "dtype uint8"),
    (np.zeros((10, 10), np.uint8), "HxWx3"),
    (np.zeros((10, 10, 4), np.uint8), "HxWx3"),
    ([[0, 1, 2]], "numpy array"),
])
def test_bad_image(tiny, bad, match):
    with pytest.raises(ValueError, match=match):
        tiny.segment(bad, text="cat")
    with pytest.raises(ValueError, match=match):
        tiny.describe(bad, (0, 0, 1, 1))


def test_bad_exemplar(tiny, image):
    with pytest.raises(ValueError, match="exemplar: expected dtype uint8"):
        tiny.segment(image, exemplar=np.zeros((8, 8, 3), np.float64))
    with pytest.raises(ValueError, match="exemplar_mask: expected shape"):
        tiny.segment(image, exemplar=image, exemplar_mask=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="exemplar_mask: expected dtype bool"):
        tiny.segment(image, exemplar=image, exemplar_mask=np.ones(image.shape[:2], np.uint8))
    with pytest.raises(ValueError, match="at least one True"):
        tiny.segment(image, exemplar=image, exemplar_mask=np.zeros(image.shape[:2], bool))
    with pytest.raises(ValueError, match="without an exemplar"):
        tiny.segment(image, text="cat", exemplar_mask=np.ones(image.shape[:2], bool))


@pytest.mark.parametrize("box", [(-1, 0, 10, 10), (0, 0, 81, 10), (0, 0, 10, 61), (10, 10, 10, 20),
                                 (20, 10, 5, 30), (0, 0, 10), "abcd", (0, 0, float("nan"), 5)])
def test_bad_box(tiny, image, box):
    with pytest.raises(ValueError, match="box: expected"):
        tiny.describe(image, box)


@pytest.mark.parametrize("audio, rate, match", [
    (np.full(16000, np.nan, np.float32), 16000, "NaN"),
    (np.zeros(16, np.float32), 16000, r"at least 0.1 s.*1\.0 ms"),
    (np.zeros(16000, np.int16), 16000, "float32"),
    (np.zeros((4, 16000, 2), np.float32), 16000, "shape"),
    (np.zeros(16000, np.float32), None, "sample_rate"),
    (np.zeros(16000, np.float32), -5, "sample_rate"),
    (np.zeros(16000, np.float32), 16000.5, "sample_rate"),
    ("noise.wav", 16000, "numpy array"),
])
def test_bad_audio(tiny, image, audio, rate, match):
    with pytest.raises(ValueError, match=match):
        tiny.segment(image, audio=audio, sample_rate=rate)


def test_bad_decoding(tiny, image):
    with pytest.raises(ValueError, match="decoding: expected"):
        tiny.segment(image, text="cat", decoding="beam")
    with pytest.raises(ValueError, match="needs a known answer"):
        tiny.segment(image, exemplar=image, decoding="forced")
    with pytest.raises(ValueError, match="cannot be combined"):
        tiny.segment(image, text="cat", answer="cat[SEG].", decoding="greedy")


def test_bad_forced_answer(tiny, image):
    with pytest.raises(ValueError, match="answer: expected a non-empty str"):
        tiny.segment(image, text="cat", answer="  ")
    with pytest.raises(ValueError, match="needs the answer"):
        tiny.describe(image, (0, 0, 10, 10), decoding="forced")
