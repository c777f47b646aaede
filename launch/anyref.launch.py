"""Launch the anyref node (ROS 2 Jazzy or later).

    ros2 launch anyref_ros anyref.launch.py image_topic:=/camera/color/image_raw
    ros2 launch anyref_ros anyref.launch.py checkpoint:=/models/anyref device:=cuda:0 namespace:=robot

Arguments: checkpoint, device, namespace, image_topic, depth_topic,
camera_info_topic, audio_topic, use_compressed, params_file (every other
parameter: config/anyref.yaml, documented in the README).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = {
    "checkpoint": ("model/toy", "checkpoint folder or preset name (tiny, anyref-7b, lisa-7b)"),
    "device": ("auto", "auto, cpu, cuda or cuda:N"),
    "namespace": ("", "namespace of the node and its topics"),
    "image_topic": ("/camera/image_raw", "camera image (sensor_msgs/Image); +/compressed with use_compressed"),
    "depth_topic": ("/camera/depth/image_raw", "depth image, 16UC1 mm or 32FC1 m (optional)"),
    "camera_info_topic": ("/camera/depth/camera_info", "CameraInfo of the depth image (optional)"),
    "audio_topic": ("/audio", "anyref_ros/AudioChunk stream for ~/segment_sound (optional)"),
    "use_compressed": ("false", "subscribe to <image_topic>/compressed instead"),
    "params_file": (PathJoinSubstitution([FindPackageShare("anyref_ros"), "config", "anyref.yaml"]),
                    "YAML file with the node's parameters"),
}


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()]
    image = LaunchConfiguration("image_topic")
    node = Node(
        package="anyref_ros",
        executable="anyref_node",
        name="anyref",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "checkpoint": LaunchConfiguration("checkpoint"),
                "device": LaunchConfiguration("device"),
                "use_compressed": ParameterValue(LaunchConfiguration("use_compressed"), value_type=bool),
            },
        ],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("depth", LaunchConfiguration("depth_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
            ("audio", LaunchConfiguration("audio_topic")),
        ],
    )
    return LaunchDescription([*args, node])
