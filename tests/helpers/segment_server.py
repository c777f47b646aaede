"""A Segment service of this package's generated types, in its own process.

It answers with the request's text as description and a full-image mask of
the request image's size: enough to prove that the generated interfaces work
across processes. Prints "ready" once the service is up.
"""

import numpy as np

import helper_node
from anyref_ros.nodes.conversions import image_to_rgb, mask_to_image
from anyref_ros.srv import Segment


def main() -> None:
    node = helper_node.create("test_segment_server")

    def handle(request: Segment.Request, response: Segment.Response) -> Segment.Response:
        rgb = image_to_rgb(request.image)
        response.success = True
        response.message = "ok"
        response.result.header = request.image.header
        response.result.query = request.text
        response.result.description = f"echo: {request.text}"
        response.result.mask = mask_to_image(np.ones(rgb.shape[:2], bool), request.image.header)
        response.result.has_box = True
        response.result.x_max, response.result.y_max = rgb.shape[1] - 1, rgb.shape[0] - 1
        response.result.score = 1.0
        return response

    node.create_service(Segment, "segment", handle)
    helper_node.spin(node)


if __name__ == "__main__":
    main()
