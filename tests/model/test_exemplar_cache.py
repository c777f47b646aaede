"""An exemplar asked again (a standing exemplar query, on every frame) is
encoded once: the second answer reuses its reference features and equals an
answer computed from scratch."""

from __future__ import annotations

import numpy as np

from anyref_ros.model import AnyRefPipeline


def test_an_exemplar_is_encoded_once(tiny: AnyRefPipeline, image):
    exemplar = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    mask = np.zeros((40, 30), bool)
    mask[5:35, 5:25] = True
    calls = []
    encode = tiny.model.reference_features
    tiny.model.reference_features = lambda pixels: calls.append(1) or encode(pixels)
    try:
        hits = tiny.exemplar_cache_hits
        first = tiny.segment(image, exemplar=exemplar, exemplar_mask=mask)
        second = tiny.segment(image, exemplar=exemplar.copy(), exemplar_mask=mask.copy())  # same pixels, new arrays
        other = tiny.segment(image, exemplar=exemplar[::-1].copy())
    finally:
        tiny.model.reference_features = encode
    assert len(calls) == 2 and tiny.exemplar_cache_hits == hits + 1  # the first and the other one
    assert np.array_equal(first.mask, second.mask) and first.text == second.text
    assert other.mask.shape == first.mask.shape
