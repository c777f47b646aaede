"""What an answer's 3D outputs cost (``outputs_3d_ms_720p`` of anyref-benchmark).

For one found object on a 1280x720 16UC1 depth image registered to the
colour image (a ray-cast 3D toy scene: an object 14 cm wide at 0.55 m, about
65 000 mask pixels, as a grasp target near the camera is), it times the node's
path after the network: the object's points (holes, flying pixels and
background rejected; :func:`~anyref_ros.spatial.objects.object_points`), the
transform to ``base_link`` at the image's stamp (a static camera pose in a
:class:`~anyref_ros.spatial.transforms.TransformBuffer`), the points and
oriented box in that frame, and the messages: ``Detection3DArray``,
``PointCloud2`` and the box markers. Medians over ``repeats`` in
milliseconds; nothing here is a pass/fail threshold.
"""

from __future__ import annotations

import statistics
import time

import numpy as np


def measure_outputs_3d(size: tuple[int, int] = (1280, 720), repeats: int = 20) -> dict:
    from std_msgs.msg import Header

    from anyref_ros.data.toy_3d import Camera, Solid, render
    from anyref_ros.geometry import Intrinsics
    from anyref_ros.nodes.anyref import detections as det
    from anyref_ros.nodes.anyref.space import located_in
    from anyref_ros.spatial.objects import PointFilter, object_points
    from anyref_ros.spatial.transforms import TransformBuffer
    from pytransform3d.transformations import pq_from_transform

    w, h = size
    camera = Camera(width=w, height=h, focal=900.0 * w / 1280, position=(0.2, 0.0, 0.6), target=(0.6, 0.0, 0.0))
    view = render([Solid("cylinder", "blue", 0.55, 0.0, (0.14, 0.14, 0.2))], camera)
    depth = np.round(view.depth * 1000.0).astype(np.uint16)
    mask = view.masks[0]
    intrinsics = Intrinsics.from_k(camera.k, w, h)
    buffer = TransformBuffer()
    pq = pq_from_transform(view.pose)  # x y z, qw qx qy qz
    buffer.add("base_link", "camera_optical", 0.0, pq[:3], (pq[4], pq[5], pq[6], pq[3]), static=True)
    header = Header(frame_id="base_link")

    class Answer:  # what the Referral contributes to the 3D messages
        id, query, description, score = "1", "blue circle", "blue circle", 0.9

    def one() -> dict:
        times = {}
        t = time.perf_counter()
        cloud = object_points(mask, depth, intrinsics, view.rgb, PointFilter(), 0.001)
        times["points"] = time.perf_counter() - t
        matrix = buffer.lookup("base_link", "camera_optical", 12.5, 0.2)
        located = located_in(cloud, matrix, "base_link")
        times["transform_and_box"] = time.perf_counter() - t - times["points"]
        det.detections_3d(Answer, located, header)
        det.object_cloud(located, header)
        det.box_markers(located, header, "blue circle", "anyref", (1.0, 0.25, 0.63), 2.0)
        times["total"] = time.perf_counter() - t
        times["messages"] = times["total"] - times["points"] - times["transform_and_box"]
        return {k: v * 1000.0 for k, v in times.items()} | {"kept": cloud.counts["kept"],
                                                            "published": cloud.counts["published"]}

    one()  # warm-up
    runs = [one() for _ in range(max(1, repeats))]
    med = {k: round(statistics.median(r[k] for r in runs), 3) for k in ("points", "transform_and_box", "messages",
                                                                          "total")}
    return {"outputs_3d_ms_720p": med["total"],
            "outputs_3d": {**{f"{k}_ms": v for k, v in med.items() if k != "total"},
                           "mask_pixels": int(mask.sum()), "points_kept": runs[-1]["kept"],
                           "points_published": runs[-1]["published"], "depth_size": [w, h]}}
