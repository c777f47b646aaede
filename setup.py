"""pip install of anyref_ros (used by `make setup` as an editable install).

In a ROS 2 workspace the package is built by colcon through CMakeLists.txt
instead; both install the same Python package and the same commands.
The Python dependencies are listed in requirements/*.txt (ROS 2 wheels,
PyTorch pinned, the model stack); see README.
"""

from setuptools import find_packages, setup

ENTRY_POINTS = [
    # Keep in sync with ANYREF_ENTRY_POINTS in CMakeLists.txt.
    "anyref_node = anyref_ros.nodes.anyref:main",
    "anyref_mic = anyref_ros.nodes.mic:main",
    "anyref_speech = anyref_ros.nodes.speech:main",
    "anyref-demo = anyref_ros.tools.demo:main",
    "anyref-benchmark = anyref_ros.tools.benchmark:main",
    "anyref-soak = anyref_ros.tools.soak:main",
    "anyref-model-summary = anyref_ros.model.summary:main",
    "anyref-train = anyref_ros.training.cli:main",
    "anyref-eval = anyref_ros.evaluation.cli:main",
]

setup(
    name="anyref_ros",
    version="0.1.0",
    description='Find "the thing I mean": AnyRef referring segmentation as a ROS 2 node',
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["anyref_ros", "anyref_ros.*"]),
    package_data={"anyref_ros.training": ["configs/*.yaml", "configs/accelerate/*.yaml"]},
    entry_points={"console_scripts": ENTRY_POINTS},
    # 8-bit/4-bit language-model weights (quantization option); also in requirements/model.txt.
    extras_require={"quantization": ["bitsandbytes>=0.46"]},
)
