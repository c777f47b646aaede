"""Launch the anyref node, and optionally the microphone and speech nodes (ROS 2 Jazzy or later).

    ros2 launch anyref_ros anyref.launch.py image_topic:=/camera/color/image_raw
    ros2 launch anyref_ros anyref.launch.py checkpoint:=/models/anyref device:=cuda:0 namespace:=robot
    ros2 launch anyref_ros anyref.launch.py use_mic:=true use_speech:=true wake_phrase:=robot
    ros2 launch anyref_ros anyref.launch.py image_topic:=/camera/color/image_raw \
        depth_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/aligned_depth_to_color/camera_info target_frame:=base_link

With use_mic the robot's microphone feeds `audio_topic` (sound events are then
localised by the anyref node unasked); with use_speech, utterances heard on
`audio_topic` are transcribed onto `query_topic`, which the anyref node answers
like a typed query. All three nodes share the namespace and the two topics.

Arguments: see ARGUMENTS below (every other parameter: config/anyref.yaml,
config/mic.yaml, config/speech.yaml, documented in the README).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def _config(name: str) -> PathJoinSubstitution:
    return PathJoinSubstitution([FindPackageShare("anyref_ros"), "config", name])


ARGUMENTS = {
    "checkpoint": ("model/toy", "checkpoint folder or preset name (tiny, anyref-7b, lisa-7b)"),
    "device": ("auto", "auto, cpu, cuda or cuda:N"),
    "namespace": ("", "namespace of the nodes and their topics"),
    "image_topic": ("/camera/image_raw", "camera image (sensor_msgs/Image); +/compressed with use_compressed"),
    "depth_topic": ("/camera/depth/image_raw", "depth image, 16UC1 mm or 32FC1 m (optional)"),
    "camera_info_topic": ("/camera/depth/camera_info",
                          "CameraInfo of the depth image (of the colour image when depth is registered to it)"),
    "depth_camera_info_topic": ("depth/camera_info",
                                "CameraInfo of a depth image of another size than camera_info's (optional)"),
    "target_frame": ("", "frame of the 3D outputs, e.g. base_link or map ('' = the camera's frame); TF at the "
                         "image's stamp"),
    "audio_topic": ("/audio", "anyref_ros/AudioChunk stream: sound events, ~/segment_sound, speech"),
    "query_topic": ("query", "std_msgs/String queries (typed, or transcribed by anyref_speech)"),
    "use_compressed": ("false", "subscribe to <image_topic>/compressed instead"),
    "use_mic": ("false", "start anyref_mic: capture the microphone onto audio_topic"),
    "use_speech": ("false", "start anyref_speech: spoken queries from audio_topic onto query_topic"),
    "mic_device": ("", "microphone: name, substring or index ('' = the system default)"),
    "wake_phrase": ("", "only utterances starting with this phrase become queries ('' = every utterance)"),
    "params_file": (_config("anyref.yaml"), "YAML file with the anyref node's parameters"),
    "mic_params_file": (_config("mic.yaml"), "YAML file with anyref_mic's parameters"),
    "speech_params_file": (_config("speech.yaml"), "YAML file with anyref_speech's parameters"),
}


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()]
    image = LaunchConfiguration("image_topic")
    audio = ("audio", LaunchConfiguration("audio_topic"))
    query = ("query", LaunchConfiguration("query_topic"))
    namespace = LaunchConfiguration("namespace")
    node = Node(
        package="anyref_ros",
        executable="anyref_node",
        name="anyref",
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "checkpoint": LaunchConfiguration("checkpoint"),
                "device": LaunchConfiguration("device"),
                "use_compressed": ParameterValue(LaunchConfiguration("use_compressed"), value_type=bool),
                "target_frame": ParameterValue(LaunchConfiguration("target_frame"), value_type=str),
            },
        ],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("depth", LaunchConfiguration("depth_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
            ("depth/camera_info", LaunchConfiguration("depth_camera_info_topic")),
            audio,
            query,
        ],
    )
    mic = Node(
        package="anyref_ros",
        executable="anyref_mic",
        name="anyref_mic",
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        condition=IfCondition(LaunchConfiguration("use_mic")),
        parameters=[LaunchConfiguration("mic_params_file"), {"device": ParameterValue(LaunchConfiguration("mic_device"), value_type=str)}],
        remappings=[audio],
    )
    speech = Node(
        package="anyref_ros",
        executable="anyref_speech",
        name="anyref_speech",
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        condition=IfCondition(LaunchConfiguration("use_speech")),
        parameters=[LaunchConfiguration("speech_params_file"), {"wake_phrase": ParameterValue(LaunchConfiguration("wake_phrase"), value_type=str)}],
        remappings=[audio, query],
    )
    return LaunchDescription([*args, node, mic, speech])
