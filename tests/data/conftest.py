"""Tiny COCO-format fixture shared by the COCO and RefCOCO reader tests."""

import json

import numpy as np
import pytest
from PIL import Image

from anyref_ros.data.masks import rle_encode

SIZES = {1: (40, 30), 2: (40, 30), 3: (20, 20)}  # image id -> (W, H)


def rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def coco_files(tmp_path):
    """Write images and an instances.json; returns (json path, image root, expected masks by ann id)."""
    image_root = tmp_path / "images"
    image_root.mkdir()
    rng = np.random.default_rng(0)
    images = []
    for image_id, (w, h) in SIZES.items():
        name = f"COCO_train2014_{image_id:012d}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(image_root / name)
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
    dog_mask = rect(30, 40, 20, 25, 30, 36)
    cat2_mask = rect(30, 40, 0, 5, 0, 5)
    crowd = rect(20, 20, 5, 15, 5, 15)
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [2, 2, 10, 10],
         "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]]},
        {"id": 2, "image_id": 1, "category_id": 2, "iscrowd": 0, "bbox": [30, 20, 6, 5],
         "segmentation": rle_encode(dog_mask)},
        {"id": 3, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 5, 5],
         "segmentation": rle_encode(cat2_mask, compressed=False)},
        {"id": 4, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [20, 10, 10, 10],
         "segmentation": [[20, 10, 30, 10, 30, 20, 20, 20]]},
        {"id": 5, "image_id": 3, "category_id": 2, "iscrowd": 1, "bbox": [5, 5, 10, 10],
         "segmentation": rle_encode(crowd, compressed=False)},
    ]
    categories = [{"id": 1, "name": "cat", "supercategory": "animal"},
                  {"id": 2, "name": "dog", "supercategory": "animal"}]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    expected = {1: rect(30, 40, 2, 12, 2, 12), 2: dog_mask, 3: cat2_mask, 4: rect(30, 40, 10, 20, 20, 30), 5: crowd}
    return path, image_root, expected
