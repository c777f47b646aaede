"""The demo's standing-query step: a red circle moves across a 10 Hz toy
camera while the node watches "red circle" (the ``watch`` parameter). The
picture is a strip of answered frames with the detection's box and its id
(the same on every frame), and the last frame's label image; an animated
GIF of every answered frame goes beside it.
"""

from __future__ import annotations

import threading
import time

import numpy as np

QUERY = "red circle"
SIZE = (640, 480)
SECONDS = 4.0


def scene(t: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The frame at time ``t``: a blue square still, a red circle moving; the circle's box (inclusive)."""
    from anyref_ros.data.toy_render import COLOURS

    w, h = SIZE
    rgb = np.full((h, w, 3), 128, np.uint8)
    rgb[300:380, 100:180] = COLOURS["blue"]
    cx, cy, r = w / 2 + 0.35 * w * np.sin(1.2 * t), 0.4 * h, 45.0
    yy, xx = np.mgrid[:h, :w]
    inside = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r
    rgb[inside] = COLOURS["red"]
    ys, xs = np.nonzero(inside)
    return rgb, (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))


def set_watch(demo, namespace: str, texts: list[str]) -> bool:
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client = demo.node.create_client(SetParameters, f"{namespace}/anyref/set_parameters")
    value = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=texts)
    r = demo.call(client, SetParameters.Request(parameters=[Parameter(name="watch", value=value)]), timeout=30)
    return bool(r is not None and r.results[0].successful)


def run_watch(demo, namespace: str) -> None:
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from anyref_ros.nodes.conversions import image_to_numpy, numpy_to_image

    from .demo import Answer

    answer = Answer(scene=0, path="watch", query=QUERY, expected=QUERY)
    node = demo.node
    arrays: list = []
    labels: list = []
    node.create_subscription(Detection2DArray, f"{namespace}/anyref/detections", arrays.append, 50)
    node.create_subscription(Image, f"{namespace}/anyref/labels", labels.append, 10)
    pub = node.create_publisher(Image, f"{namespace}/image", qos_profile_sensor_data)
    shown: dict[tuple[int, int], tuple[np.ndarray, tuple]] = {}
    stop = threading.Event()

    def camera() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            rgb, box = scene(time.monotonic() - t0)
            msg = numpy_to_image(rgb, "rgb8")
            msg.header.stamp, msg.header.frame_id = node.get_clock().now().to_msg(), "toy_camera"
            shown[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (rgb, box)
            pub.publish(msg)
            stop.wait(0.1)

    thread = threading.Thread(target=camera, daemon=True)
    thread.start()
    ok = set_watch(demo, namespace, [QUERY])
    time.sleep(SECONDS)
    set_watch(demo, namespace, [])
    stop.set()
    thread.join(1.0)
    answered = []
    for a in list(arrays):
        key = (a.header.stamp.sec, a.header.stamp.nanosec)
        dets = [d for d in a.detections if d.results and d.results[0].hypothesis.class_id == QUERY]
        if key in shown and dets:
            answered.append((shown[key], dets[0]))
    if not ok or not answered:
        answer.message = "no standing answers" if ok else "could not set the watch parameter"
        demo._report(answer)
        return
    ious, ids, pictures = [], set(), []
    for (rgb, truth), d in answered:
        c, sx, sy = d.bbox.center.position, d.bbox.size_x, d.bbox.size_y
        box = (c.x - (sx - 1) / 2, c.y - (sy - 1) / 2, c.x + (sx - 1) / 2, c.y + (sy - 1) / 2)
        ious.append(box_iou(box, truth))
        ids.add(d.id)
        pictures.append(frame_picture(rgb, box, d.id, d.results[0].hypothesis.score))
    label_rgb = colour_labels(image_to_numpy(labels[-1])) if labels else np.zeros_like(pictures[0])
    strip = strip_of(pictures, label_rgb)
    from PIL import Image as PILImage

    name = f"{len(demo.answers):03d}_watch"
    PILImage.fromarray(strip).save(demo.out / "answers" / f"{name}.png")
    gif = [PILImage.fromarray(p[::2, ::2]) for p in pictures]
    gif[0].save(demo.out / "answers" / f"{name}.gif", save_all=True, append_images=gif[1:], duration=100, loop=0)
    answer.success, answer.message, answer.found = True, "ok", True
    answer.description = f"{len(answered)} frames answered in {SECONDS:g} s, ids {sorted(ids)}"
    answer.iou = round(float(np.median(ious)), 4)
    answer.score = float(answered[-1][1].results[0].hypothesis.score)
    answer.latency_ms = SECONDS * 1000.0 / len(answered)
    answer.picture = f"answers/{name}.png"
    answer.spatial = {"frames_answered": len(answered), "ids": sorted(ids), "median_box_iou": answer.iou}
    demo._report(answer)


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return float(ix * iy / (area(a) + area(b) - ix * iy))


def frame_picture(rgb: np.ndarray, box, ident: str, score: float) -> np.ndarray:
    import cv2

    from anyref_ros.drawing import BOX_COLOUR

    out = rgb.copy()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    cv2.rectangle(out, (x0, y0), (x1, y1), BOX_COLOUR, 3)
    cv2.putText(out, f"{ident} {QUERY} {score:.2f}", (x0, max(20, y0 - 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                BOX_COLOUR, 2, cv2.LINE_AA)
    return out


def colour_labels(labels: np.ndarray) -> np.ndarray:
    """A mono16 label image as a picture: 0 black, each label its own colour."""
    palette = np.array([[0, 0, 0], [255, 220, 0], [40, 200, 255], [255, 80, 160], [120, 255, 120]], np.uint8)
    return palette[np.minimum(labels, len(palette) - 1)]


def strip_of(pictures: list[np.ndarray], label_rgb: np.ndarray, count: int = 5) -> np.ndarray:
    """``count`` answered frames evenly picked, then the label image, each at half size, side by side."""
    import cv2

    picks = [pictures[round(i)] for i in np.linspace(0, len(pictures) - 1, min(count, len(pictures)))]
    tiles = [np.ascontiguousarray(p[::2, ::2]) for p in picks + [label_rgb]]
    cv2.putText(tiles[-1], "~/labels", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    gap = np.full((tiles[0].shape[0], 4, 3), 24, np.uint8)
    return np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)
