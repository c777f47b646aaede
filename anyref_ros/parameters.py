"""The anyref node's parameters: one table that declares them, documents them
(README, config/anyref.yaml) and is checked against both by the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

Value = Union[str, int, float, bool]


@dataclass(frozen=True)
class Param:
    name: str
    default: Value
    description: str
    range: Optional[tuple[float, float]] = None  # inclusive; ints or floats by the default's type
    choices: Optional[tuple[str, ...]] = None
    live: bool = False  # True: a change takes effect at the next query; else at the next configure/activate


PARAMS: tuple[Param, ...] = (
    Param("checkpoint", "model/toy",
          "Model to load: a checkpoint folder (absolute, relative to the working directory, or relative to "
          "the package's share folder) or a preset name (tiny, anyref-7b, lisa-7b)."),
    Param("device", "auto", "Where the model runs: auto (cuda if available), cpu, cuda or cuda:N."),
    Param("dtype", "auto", "Weights precision: auto (the checkpoint's), float32, bfloat16 or float16.",
          choices=("auto", "float32", "bfloat16", "float16")),
    Param("image_qos", "sensor_data",
          "QoS of the image subscriptions: sensor_data (BEST_EFFORT, what camera drivers publish) or reliable.",
          choices=("sensor_data", "reliable")),
    Param("use_compressed", False,
          "Subscribe to image/compressed (sensor_msgs/CompressedImage, jpeg or png) instead of image."),
    Param("max_frame_age_s", 2.0,
          "Refuse to answer on a camera frame older than this (seconds, by its header stamp); 0 disables.",
          range=(0.0, 3600.0), live=True),
    Param("max_queue", 4, "Queries that may wait for the model; more are refused at once (busy).",
          range=(1, 256)),
    Param("max_image_pixels", 4096 * 3072,
          "Largest scene or exemplar image accepted (width x height).", range=(1, 2**31 - 1), live=True),
    Param("max_text_chars", 512, "Longest text query accepted, in characters.", range=(1, 100000), live=True),
    Param("publish_debug_image", True,
          "Publish ~/debug_image: the frame with the mask, box and description drawn.", live=True),
    Param("refocus_lambda", -1.0,
          "Weight of AnyRef's refocusing term for segmentation; -1 keeps the checkpoint's value (0.1 for AnyRef).",
          range=(-1.0, 10.0), live=True),
    Param("query_timeout_s", 120.0,
          "How long a service call waits for its answer before it fails (the query is then cancelled).",
          range=(0.1, 3600.0), live=True),
    Param("frame_cache", 2, "Encoded frames kept, so several queries on one frame encode it once.",
          range=(0, 64)),
    Param("depth_unit_mm", 1.0, "Millimetres per unit of a 16UC1 depth image (1.0: millimetres).",
          range=(1e-6, 1e6), live=True),
    Param("depth_sync_slop_s", 0.1,
          "Largest stamp difference between a colour frame and the depth frame used for its 3D position.",
          range=(0.0, 10.0), live=True),
    Param("audio_window_s", 3.0,
          "Seconds of the audio topic kept for ~/segment_sound (at least 2 s are needed).",
          range=(0.5, 60.0)),
    Param("marker_lifetime_s", 2.0, "Lifetime of the RViz markers of an answer (0: forever).",
          range=(0.0, 3600.0), live=True),
    Param("warmup", True, "Run one query on a blank image at activation, so the first real one is not slow."),
    Param("autostart", True, "Configure and activate the lifecycle node at start-up."),
)

BY_NAME = {p.name: p for p in PARAMS}
