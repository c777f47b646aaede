"""The anyref node's parameters: one table that declares them, documents them
(README, config/anyref.yaml) and is checked against both by the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

Value = Union[str, int, float, bool, tuple]  # a tuple: an array of ``item``


@dataclass(frozen=True)
class Param:
    name: str
    default: Value
    description: str
    range: Optional[tuple[float, float]] = None  # inclusive; ints or floats by the default's type
    choices: Optional[tuple[str, ...]] = None
    live: bool = False  # True: a change takes effect at the next query; else at the next configure/activate
    item: type = str  # the element type of an array parameter (a tuple default): str or float


PARAMS: tuple[Param, ...] = (
    Param("checkpoint", "model/toy",
          "Model to load: a checkpoint folder (absolute, relative to the working directory, or relative to "
          "the package's share folder) or a preset name (tiny, anyref-7b, lisa-7b)."),
    Param("device", "auto", "Where the model runs: auto (cuda if available), cpu, cuda or cuda:N."),
    Param("dtype", "auto", "Weights precision: auto (the checkpoint's), float32, bfloat16 or float16.",
          choices=("auto", "float32", "bfloat16", "float16")),
    Param("quantization", "none",
          "Language-model weights in 8 or 4 bits (bitsandbytes; less memory, the rest of the model "
          "keeps dtype); none keeps dtype. Needs bitsandbytes and a CUDA GPU (or a CPU with "
          "bitsandbytes >= 0.46).", choices=("none", "8bit", "4bit")),
    Param("compile", False,
          "torch.compile the language model and the mask decoder (CUDA only). Off by default because "
          "the first queries recompile (seconds each, for every new prompt length) before it pays off."),
    Param("image_qos", "sensor_data",
          "QoS of the image subscriptions: sensor_data (BEST_EFFORT, what camera drivers publish) or reliable.",
          choices=("sensor_data", "reliable")),
    Param("use_compressed", False,
          "Subscribe to image/compressed (sensor_msgs/CompressedImage, jpeg or png) instead of image."),
    Param("max_frame_age_s", 2.0,
          "Refuse to answer on a camera frame that arrived longer ago than this (seconds, by the node's "
          "receive time, also for /diagnostics: a camera whose clock lags is judged by when its frames "
          "arrive); 0 disables.",
          range=(0.0, 3600.0), live=True),
    Param("max_queue", 4, "Queries that may wait for the model; more are refused at once (busy).",
          range=(1, 256)),
    Param("max_batch", 8,
          "Queries waiting for the same camera frame that run through the model together (one padded "
          "language-model batch on the frame's cached prompt start, one mask-decoder call); 1 answers "
          "them one by one.", range=(1, 64)),
    Param("max_image_pixels", 4096 * 3072,
          "Largest scene or exemplar image accepted (width x height).", range=(1, 2**31 - 1), live=True),
    Param("max_text_chars", 512, "Longest text query accepted, in characters.", range=(1, 100000), live=True),
    Param("publish_debug_image", True,
          "Publish ~/debug_image (drawn only while someone subscribes): the frame with the object outlined, "
          "its score and the answer; not-found answers on a red banner.", live=True),
    Param("refocus_lambda", -1.0,
          "Weight of AnyRef's refocusing term for segmentation; -1 keeps the checkpoint's value (0.1 for AnyRef).",
          range=(-1.0, 10.0), live=True),
    Param("min_score", 0.0,
          "Answers whose score (the mask decoder's predicted IoU, 0..1) is below this are reported with "
          "found: false and the reason in description, the mask kept for inspection. 0 accepts every mask "
          "(use it when the checkpoint's IoU head is untrained); 0.5 suits model/toy.",
          range=(0.0, 1.0), live=True),
    Param("query_timeout_s", 120.0,
          "How long a service call waits for its answer before it fails (the query is then cancelled).",
          range=(0.1, 3600.0), live=True),
    Param("frame_cache", 2, "Encoded frames kept, so several queries on one frame encode it once.",
          range=(0, 64)),
    Param("cpu_threads", 0,
          "Torch threads for the model on a CPU; 0 = half the cores (at least 1), leaving the rest to the "
          "camera driver and the node's callbacks (more threads than free cores make every query slower).",
          range=(0, 256)),
    Param("depth_unit_mm", 1.0, "Millimetres per unit of a 16UC1 depth image (1.0: millimetres).",
          range=(1e-6, 1e6), live=True),
    Param("depth_sync_slop_s", 0.1,
          "Largest stamp difference between a colour frame and the depth frame used for its 3D position.",
          range=(0.0, 10.0), live=True),
    Param("target_frame", "",
          "Frame of every 3D output (Referral.position, ~/detections_3d, ~/object_points, ~/markers), e.g. "
          "base_link or map; transformed at the image's stamp through TF. \"\" = the depth camera's own frame.",
          live=True),
    Param("tf_timeout_s", 0.2,
          "Longest wait for the transform to target_frame at the image's stamp; without it the answer keeps "
          "its mask, has_position is false, the 3D outputs are skipped and the description says why.",
          range=(0.0, 10.0), live=True),
    Param("max_object_points", 20000,
          "Most points on ~/object_points per answer: a larger mask is read on a pixel grid and the cloud "
          "voxel-downsampled to fit.", range=(100, 1000000), live=True),
    Param("object_depth_gap", 0.02,
          "Depth points of a mask farther than this fraction of the depth from the object's surface (behind "
          "its outline, through a hole) are background and dropped.", range=(0.001, 1.0), live=True),
    Param("flying_pixel_jump", 0.03,
          "A depth pixel whose depth differs from a neighbour's by more than this fraction of the depth is a "
          "flying pixel (a smeared outline) and dropped.", range=(0.001, 1.0), live=True),
    Param("watch", (),
          "Standing queries: texts answered together on every new camera frame (detections with one id per "
          "text for its life, ~/labels); change at runtime with ros2 param set; more through ~/watch.",
          live=True),
    Param("watch_rate_hz", 0.0,
          "Most frames a second the standing queries are answered on; 0 = as fast as the model allows (frames "
          "that come while it is busy are replaced by the newest, never queued).", range=(0.0, 1000.0), live=True),
    Param("max_watch", 16, "Most standing queries at once (parameter and ~/watch together).", range=(1, 64),
          live=True),
    Param("watch_lost_after", 3,
          "A found standing query is lost after this many answered frames in a row without it.",
          range=(1, 1000), live=True),
    Param("follow", "",
          "Name (or text, or id) of the standing query whose object's pose is published on ~/target_pose "
          "(geometry_msgs/PoseStamped in target_frame) on every frame it is found; \"\" = none.", live=True),
    Param("audio_window_s", 3.0,
          "Seconds of the audio topic ~/segment_sound uses (at least 2 s are needed); the buffer keeps "
          "at least 3.5 s for sound events.",
          range=(0.5, 60.0)),
    Param("sound_events", True,
          "Localise sounds heard on the audio topic unasked: each sound event becomes a sound query on the "
          "camera frame of that moment, answered on ~/sound_sources.", live=True),
    Param("sound_event_threshold_db", 12.0,
          "A sound event needs a level this many dB above the adaptive noise floor.", range=(3.0, 60.0)),
    Param("sound_event_min_duration_s", 0.15,
          "A sound is an event once it has lasted this long (a click is shorter).", range=(0.02, 2.0)),
    Param("sound_event_refractory_s", 2.0,
          "A sound starting this soon after the previous one ended continues it (no second event).",
          range=(0.0, 30.0)),
    Param("sound_event_pre_roll_s", 0.25,
          "The 2 s of audio a sound event's query uses start this long before its onset.",
          range=(0.0, 1.0), live=True),
    Param("mic_positions", (),
          "x, y, z of each audio channel's microphone in metres (3 numbers per channel, channel 0 first, "
          "every number with a decimal point), in the frame named by the audio headers' frame_id; [] = no "
          "direction. With it, every sound event on audio of that many channels gets its direction "
          "(~/sound_direction, Referral.direction) and its answer is the object in that direction, or "
          "not found when the sound came from outside the camera's view. Example arrays: "
          "config/mic_arrays.yaml.", item=float),
    Param("sound_direction_tolerance_deg", 20.0,
          "A sound event's answer is the masked object nearest the sound's direction, at most this far "
          "from it; when none is that near, the model is asked again on a crop around the direction.",
          range=(1.0, 90.0), live=True),
    Param("marker_lifetime_s", 2.0, "Lifetime of the RViz markers of an answer (0: forever).",
          range=(0.0, 3600.0), live=True),
    Param("warmup", True, "Run one query on a blank image at activation, so the first real one is not slow."),
    Param("autostart", True, "Configure and activate the lifecycle node at start-up."),
)

BY_NAME = {p.name: p for p in PARAMS}


# --- anyref_mic (anyref_ros/nodes/mic.py; config/mic.yaml) ------------------------------------
MIC_PARAMS: tuple[Param, ...] = (
    Param("device", "",
          "Input device: its PortAudio/ALSA name, a unique part of the name, or its index "
          "(python -m sounddevice lists them); \"\" = the system default input."),
    Param("sample_rate", 0, "Capture rate in Hz; 0 = the device's default rate.", range=(0, 384000)),
    Param("channels", 1, "Channels captured (interleaved in each AudioChunk).", range=(1, 32)),
    Param("chunk_ms", 100, "Length of each published AudioChunk, in milliseconds.", range=(5, 2000)),
    Param("encoding", "s16le", "Sample format of the published chunks.", choices=("s16le", "f32le")),
    Param("frame_id", "microphone", "frame_id of the published chunks' headers."),
    Param("queue_depth", 100,
          "History depth of the RELIABLE audio publisher (chunks kept for a subscriber that lags); "
          "BEST_EFFORT (sensor_data) subscribers receive it too.", range=(1, 10000)),
    Param("retry_s", 2.0, "Seconds between attempts to open a missing or failing device.", range=(0.1, 3600.0)),
    Param("autostart", True, "Configure and activate the lifecycle node at start-up."),
)

# --- anyref_speech (anyref_ros/nodes/speech.py; config/speech.yaml) ----------------------------
SPEECH_PARAMS: tuple[Param, ...] = (
    Param("engine", "pocketsphinx",
          "Speech recogniser: pocketsphinx (offline, English model in its wheel, command grammar) or "
          "whisper (a local Whisper checkpoint folder, asr_model).", choices=("pocketsphinx", "whisper")),
    Param("asr_model", "",
          "Whisper only: folder of a transformers Whisper checkpoint (save_pretrained of "
          "openai/whisper-tiny/base/small/...); absolute, relative to the working directory or to the "
          "package's share folder. Nothing is downloaded."),
    Param("asr_device", "cpu", "Whisper only: where it runs (cpu, cuda, cuda:N)."),
    Param("grammar", "config/speech_grammar.yaml",
          "pocketsphinx only: YAML word lists of the spoken commands (absolute, relative to the working "
          "directory or to the package's share folder); \"\" = free dictation with the default language model."),
    Param("wake_phrase", "",
          "When set (e.g. \"robot\"), only utterances starting with it become queries, the phrase removed; "
          "\"\" = every utterance is a query."),
    Param("audio_qos", "auto",
          "Reliability of the audio subscription: auto (follows the publishers found, looked at every second, "
          "as rosbag2 does: RELIABLE when all are, BEST_EFFORT when any is, which hears both), reliable or "
          "sensor_data (BEST_EFFORT). A publisher it cannot hear is a WARN in /diagnostics.",
          choices=("auto", "reliable", "sensor_data")),
    Param("vad_threshold", 0.5, "Silero VAD speech probability that starts an utterance.", range=(0.05, 0.95)),
    Param("pre_roll_s", 0.3, "Audio kept from before the detected start of speech.", range=(0.0, 2.0)),
    Param("end_silence_s", 0.5, "Silence that ends an utterance.", range=(0.1, 5.0)),
    Param("min_utterance_s", 0.3, "Shorter speech is dropped (coughs, clicks).", range=(0.0, 10.0)),
    Param("max_utterance_s", 8.0, "Longer speech is dropped (not a command); at most 30 s.",
          range=(0.5, 30.0)),
    Param("min_confidence", 0.0, "Transcripts with a lower recogniser confidence are dropped (0 keeps all).",
          range=(0.0, 1.0), live=True),
    Param("max_pending", 2,
          "Utterances waiting for the recogniser; one more is dropped with a log line.", range=(1, 64)),
    Param("autostart", True, "Configure and activate the lifecycle node at start-up."),
)
