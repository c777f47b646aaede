"""anyref-soak: the anyref node under live sensors for minutes, as JSON.

Starts ``anyref_node`` (the real console entry point, in its own process) and,
from this process, plays what a robot sends it at real rates:

* camera: ``--fps`` (30) rgb8 frames of ``--width`` x ``--height`` (1280x720)
  on ``image`` with sensor-data QoS (BEST_EFFORT). A few toy scenes are
  rendered once at start-up and cycled (a new one every ``--scene-period-s``);
  every message is built once and only its stamp changes, so a frame costs a
  copy into the middleware, never a render;
* depth: 16UC1 (millimetres; objects at 1 m, background at 2 m) with
  ``camera_info`` at ``--depth-fps`` (15);
* audio: 100 ms ``AudioChunk``s (16 kHz s16le) at real-time pace: quiet room
  noise, with the toy signature sound of a shape in the current scene every
  ``--sound-period-s``;
* one query per ``--query-period-s``, alternately a ``~/segment`` call with
  the text of an object in the scene (on the latest frame) and the same kind
  of text on the ``query`` topic (whose answer must come on ``~/results``);
  after each signature sound a ``~/segment_sound`` call instead.

Every second it samples the node's resident memory (VmRSS of
/proc/PID/status), its CPU time (/proc/PID/stat) and its latest
``/diagnostics``. At the end it prints ONE JSON object (also written to
``--json-out``) and exits 1 when a query was not answered with success or the
node died, else 0. Nothing here is a speed threshold: compare the numbers
with earlier runs.

    anyref-soak --minutes 1                        # the CI run: model/toy on the CPU
    anyref-soak --minutes 30 --json-out soak.json  # warm-up defaults to 60 s above 2 minutes
    anyref-soak --checkpoint /models/anyref --device cuda:0 --minutes 60 -p dtype:=float16

Keys of the JSON object:

* ``queries_asked``, ``queries_answered`` (success true), ``queries_failed``
  (asked - answered), ``errors`` (the first few failure messages),
  ``by_kind`` (asked/answered per path), ``query_latency_ms_p50/p99``
  (asked -> answer received, in this process);
* ``rss_mb_start`` (when the load starts), ``rss_mb_after_warmup`` (at
  ``--warmup-s``), ``rss_growth_mb`` (on the rolling median of 5 samples:
  its largest value after the warm-up minus its value at the warm-up; the
  raw samples swing by tens of MB with the frames in flight),
  ``rss_growth_raw_mb`` (the same on the raw samples), ``rss_mb_max``,
  ``rss_mb_end``, ``rss_slope_mb_per_min`` (least squares over the samples
  after the warm-up), ``rss_mb_every_10s``;
* ``camera_callback_ms_p50/p99``: the node's own measure of its image
  callback, from the diagnostics keys ``camera_callback_ms.p50``/``.p99``
  (null when the node does not report them; ``camera_callback_source`` says
  which); ``camera_delay_ms_p50/p99`` likewise from ``camera_delay_ms.*``;
* ``frames_published``, ``fps_achieved``, ``publish_ms_p50/p99`` (this
  process's cost per frame), ``frames_received_by_node`` and
  ``frames_dropped_by_node`` (diagnostics), ``dropped_frame_ratio`` (their
  ratio: frames replaced before any query used them, so close to 1 when the
  camera is much faster than the queries), ``transport_loss_ratio``
  (1 - received / published: frames lost between the processes);
* ``depth_frames_published``, ``audio_chunks_published``,
  ``sound_events_played`` (signature sounds sent), ``sound_events_answered``
  (answers of the node's own sound-event detector on ``~/sound_sources``),
  ``sound_events_detected_by_node``, ``sound_events_unlocated_by_node`` (the
  model found nothing) and ``sound_events_dropped_by_node`` (diagnostics),
  ``audio_results_unsolicited``
  (audio answers on ``~/results`` nobody here asked for);
  ``by_kind.segment_sound`` counts the ``~/segment_sound`` calls;
* ``node_cpu_percent`` (of one core, over the load), ``node_alive``,
  ``node_log``, ``node_diagnostics`` (the node's last /diagnostics values).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from anyref_ros import ros_env
from anyref_ros.workers import Worker

NAMESPACE = "/soak"
SCENE_SEED = 23  # toy-world scenes shown by the soak run (not a training seed)
AUDIO_RATE = 16000
CHUNK_S = 0.1
SOUND_S = 1.5
ROOM_RMS = 0.004
FOCAL_PER_WIDTH = 0.8  # fx = fy = 0.8 * width: a ~64 degree horizontal field of view
MAX_ERRORS = 5
#: RSS growth is measured on a rolling median of this many 1 s samples: frames
#: in flight (2.7 MB each at 720p) and the allocator returning memory make the
#: raw samples swing by tens of MB from one second to the next.
RSS_MEDIAN_SAMPLES = 5


# ----------------------------------------------------------------- scenes
@dataclass
class Scene:
    image: Any  # sensor_msgs/Image, built once
    depth: Any  # sensor_msgs/Image 16UC1
    info: Any  # sensor_msgs/CameraInfo
    texts: list[str]  # "{colour} {shape}" of every object (unique in a toy scene)
    shapes: list[str]


def render_scenes(count: int, size: tuple[int, int]) -> list[Scene]:
    """``count`` toy scenes as ready-to-publish messages (rendered once)."""
    from sensor_msgs.msg import CameraInfo

    from anyref_ros.data.toy import ToyWorld
    from anyref_ros.data.toy_render import ToyObject, object_mask
    from anyref_ros.nodes.conversions import numpy_to_image

    world = ToyWorld(SCENE_SEED, size=size)
    w, h = size
    f = FOCAL_PER_WIDTH * w
    scenes = []
    for i in range(count):
        sample = world.sample(i, "text")
        objects = [ToyObject(**{k: o[k] for k in ("shape", "colour", "rgb", "x0", "y0", "size")})
                   for o in sample.metadata["objects"]]
        depth = np.full((h, w), 2000, np.uint16)
        for o in objects:
            depth[object_mask(o, size)] = 1000
        info = CameraInfo(width=w, height=h, k=[f, 0.0, w / 2, 0.0, f, h / 2, 0.0, 0.0, 1.0],
                          distortion_model="plumb_bob", d=[0.0] * 5)
        msgs = (numpy_to_image(sample.image, "rgb8"), numpy_to_image(depth, "16UC1"), info)
        for m in msgs:
            m.header.frame_id = "soak_camera_optical"
        scenes.append(Scene(*msgs, texts=[o.name for o in objects], shapes=[o.shape for o in objects]))
    return scenes


def audio_chunks(seconds: float, rng: np.random.Generator, shape: Optional[str] = None) -> list[Any]:
    """Room noise (with ``shape``'s toy signature sound over its first
    ``SOUND_S`` seconds when given) as 100 ms s16le AudioChunk messages."""
    from anyref_ros.data.toy_audio import shape_sound
    from anyref_ros.nodes.conversions import numpy_to_audio

    n = int(round(seconds * AUDIO_RATE))
    white = rng.normal(0.0, 1.0, n)
    room = np.convolve(white, np.ones(8) / 8, mode="same")  # a little darker than white
    room *= ROOM_RMS / max(float(np.sqrt(np.mean(room**2))), 1e-12)
    if shape is not None:
        sound = shape_sound(rng, shape, seconds=min(SOUND_S, seconds), sample_rate=AUDIO_RATE)
        room[: len(sound)] += sound
    step = int(round(CHUNK_S * AUDIO_RATE))
    chunks = []
    for start in range(0, n - step + 1, step):
        msg = numpy_to_audio(np.clip(room[start:start + step], -1.0, 1.0), AUDIO_RATE, "s16le")
        msg.header.frame_id = "soak_microphone"
        chunks.append(msg)
    return chunks


# ---------------------------------------------------------------- helpers
def percentile(values, q: float) -> Optional[float]:
    values = list(values)
    return round(float(np.percentile(values, q)), 3) if values else None


def read_rss_mb(pid: int) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def read_cpu_s(pid: int) -> Optional[float]:
    """User + system CPU seconds of the process (fields 14 and 15 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _float(value: Optional[str]) -> Optional[float]:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return round(v, 3) if np.isfinite(v) else None


@dataclass
class Query:
    kind: str  # segment, topic, segment_sound
    text: str
    asked: float
    answered: Optional[float] = None
    ok: bool = False
    message: str = ""
    key: Optional[tuple] = None  # the answer's _result_key (service calls)


@dataclass
class Counters:
    frames: int = 0
    late_frames: int = 0
    depth: int = 0
    audio: int = 0
    sounds_played: int = 0
    camera_s: float = 0.0  # how long the camera ran
    publish_ms: deque = field(default_factory=lambda: deque(maxlen=5000))


# -------------------------------------------------------------- the soak run
class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        from anyref_ros.nodes.common import ToolNode

        self.args = args
        self.ros = ToolNode("anyref_soak", threads=2)
        self.node = self.ros.node
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = Path(args.node_log) if args.node_log else Path(
            tempfile.mkstemp(prefix="anyref-soak-node-", suffix=".log")[1])
        self.counters = Counters()
        report = self.node.get_logger().warning
        self.sensors = [Worker("soak-camera", self._camera, report=report),
                        Worker("soak-microphone", self._microphone, report=report)]
        self.lock = threading.Lock()
        self.queries: list[Query] = []
        self.results: list[tuple[float, Any]] = []  # (arrival, Referral)
        self.sound_sources: list[tuple[float, Any]] = []  # answers of the node's own sound events
        self.diag: dict[str, str] = {}
        self.scene_index = 0
        self.sound_done: deque[float] = deque()
        self.rss: list[tuple[float, float]] = []  # (seconds since the load started, MB)
        self.cpu: list[tuple[float, float]] = []
        self.t0 = 0.0

    # ---- node process
    def start_node(self) -> None:
        exe = Path(sys.executable).with_name("anyref_node")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "anyref_ros.nodes.anyref"]
        cmd += ["--ros-args", "--params-file", str(ros_env.shared_file("config/anyref.yaml")),
                "-r", f"__ns:={NAMESPACE}", "-p", f"checkpoint:={self.args.checkpoint}",
                "-p", f"device:={self.args.device}"]
        for p in self.args.param or []:
            cmd += ["-p", p]
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        log.close()
        print(f"[soak] started anyref_node, pid {self.proc.pid} (log: {self.log_path})", file=sys.stderr, flush=True)

    def node_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def call(self, client, request, timeout: float):
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        return future.result() if done.wait(timeout) else None

    def wait_active(self, timeout: float) -> None:
        from anyref_ros.srv import Segment

        self.segment = self.node.create_client(Segment, f"{NAMESPACE}/anyref/segment")
        deadline = time.monotonic() + timeout
        while not self.segment.wait_for_service(timeout_sec=1.0):
            if not self.node_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"anyref_node did not come up; see {self.log_path}")
        while time.monotonic() < deadline:
            if not self.node_alive():
                raise RuntimeError(f"anyref_node exited; see {self.log_path}")
            with self.lock:
                state = self.diag.get("state")
            if state is None or state == "ready":  # nodes without a "state" key: ask until it answers
                r = self.call(self.segment, Segment.Request(text="ping"), 60.0)
                message = r.message.lower() if r is not None else "no response"
                if r is not None and not any(w in message for w in ("not active", "inactive", "loading")):
                    return
            time.sleep(0.5)
        raise RuntimeError(f"anyref_node did not activate within {timeout:.0f} s; see {self.log_path}")

    # ---- sensors
    def start_sensors(self, scenes: list[Scene]) -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image

        from anyref_ros.msg import AudioChunk

        sensor = qos_profile_sensor_data
        pubs = {
            "image": self.node.create_publisher(Image, f"{NAMESPACE}/image", sensor),
            "depth": self.node.create_publisher(Image, f"{NAMESPACE}/depth", sensor),
            "camera_info": self.node.create_publisher(CameraInfo, f"{NAMESPACE}/camera_info", sensor),
            "audio": self.node.create_publisher(AudioChunk, f"{NAMESPACE}/audio", sensor),
        }
        deadline = time.monotonic() + 30.0
        while any(p.get_subscription_count() == 0 for p in pubs.values()):
            if time.monotonic() > deadline:
                missing = [k for k, p in pubs.items() if p.get_subscription_count() == 0]
                raise RuntimeError(f"the node does not subscribe to {', '.join(missing)} under {NAMESPACE}")
            time.sleep(0.05)
        self.scenes = scenes
        self.t0 = time.monotonic()
        self.sensors[0].start(pubs)
        self.sensors[1].start(pubs["audio"])

    def stop_sensors(self) -> None:
        for worker in self.sensors:
            worker.stop()

    def _camera(self, stop: threading.Event, pubs: dict) -> None:
        clock = self.node.get_clock()
        period = 1.0 / self.args.fps
        depth_every = max(1, round(self.args.fps / self.args.depth_fps)) if self.args.depth_fps > 0 else 0
        c = self.counters
        next_t = started = time.monotonic()
        k = 0
        while not stop.is_set():
            now = time.monotonic()
            if now < next_t:
                stop.wait(next_t - now)
                continue
            if now - next_t > period:  # fell behind: skip the missed slots instead of bursting
                c.late_frames += int((now - next_t) / period)
                next_t = now
            index = int((now - self.t0) / self.args.scene_period_s) % len(self.scenes)
            self.scene_index = index
            scene = self.scenes[index]
            t = time.perf_counter()
            stamp = clock.now().to_msg()
            if depth_every and k % depth_every == 0:
                scene.info.header.stamp = stamp
                scene.depth.header.stamp = stamp
                pubs["camera_info"].publish(scene.info)
                pubs["depth"].publish(scene.depth)
                c.depth += 1
            scene.image.header.stamp = stamp
            pubs["image"].publish(scene.image)
            c.publish_ms.append((time.perf_counter() - t) * 1000.0)
            c.frames += 1
            c.camera_s = time.monotonic() - started
            k += 1
            next_t += period

    def _microphone(self, stop: threading.Event, pub) -> None:
        rng = np.random.default_rng(SCENE_SEED)
        room = audio_chunks(5.0, rng)
        sounds = {s: audio_chunks(SOUND_S, rng, s) for s in sorted({s for sc in self.scenes for s in sc.shapes})}
        clock = self.node.get_clock()
        c = self.counters
        next_t = time.monotonic()
        # Stamps follow the samples (the capture time of each chunk's first sample), as a
        # microphone driver's do: publishing jitter must not look like gaps in the audio.
        stream_ns = clock.now().nanoseconds
        next_sound = self.t0 + min(5.0, self.args.sound_period_s)
        queue: deque = deque()
        i = 0
        while not stop.is_set():
            now = time.monotonic()
            if now < next_t:
                stop.wait(next_t - now)
                continue
            if not queue:
                if self.args.sound_period_s > 0 and now >= next_sound:
                    scene = self.scenes[self.scene_index]
                    shape = scene.shapes[c.sounds_played % len(scene.shapes)]
                    queue.extend(sounds[shape])
                    queue.append(None)  # marks the end of the sound
                    next_sound += self.args.sound_period_s
                    c.sounds_played += 1
                else:
                    queue.append(room[i % len(room)])
                    i += 1
            msg = queue.popleft()
            if msg is None:
                self.sound_done.append(now)
                continue
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stream_ns, 1_000_000_000)
            pub.publish(msg)
            c.audio += 1
            next_t += CHUNK_S
            stream_ns += int(CHUNK_S * 1e9)
            if now - next_t > 1.0:  # far behind (a stalled process): a real gap, not a burst of backlog
                stream_ns += int((now - next_t) * 1e9)
                next_t = now

    # ---- node output
    def listen(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from anyref_ros.msg import Referral

        def on_result(msg) -> None:
            with self.lock:
                self.results.append((time.monotonic(), msg))

        def on_diag(msg) -> None:
            for status in msg.status:
                values = {kv.key: kv.value for kv in status.values}
                if "frames_received" in values and status.name.startswith("anyref"):
                    with self.lock:
                        self.diag = values

        def on_sound_source(msg) -> None:
            with self.lock:
                self.sound_sources.append((time.monotonic(), msg))

        self.node.create_subscription(Referral, f"{NAMESPACE}/anyref/results", on_result, 50)
        self.node.create_subscription(Referral, f"{NAMESPACE}/anyref/sound_sources", on_sound_source, 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)

    def sample(self) -> None:
        t = time.monotonic() - self.t0
        rss = read_rss_mb(self.proc.pid) if self.proc else None
        cpu = read_cpu_s(self.proc.pid) if self.proc else None
        if rss is not None:
            self.rss.append((t, rss))
        if cpu is not None:
            self.cpu.append((t, cpu))

    # ---- queries
    def run_queries(self) -> None:
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from anyref_ros.srv import Segment

        query_pub = self.node.create_publisher(String, f"{NAMESPACE}/query", 10)
        sound = self.node.create_client(Trigger, f"{NAMESPACE}/anyref/segment_sound")
        deadline = time.monotonic() + 30.0
        while query_pub.get_subscription_count() == 0 or not sound.service_is_ready():
            if time.monotonic() > deadline:
                raise RuntimeError("the node's query topic or ~/segment_sound did not appear")
            time.sleep(0.05)
        end = self.t0 + self.args.minutes * 60.0
        next_query = self.t0 + self.args.query_period_s
        next_sample = self.t0
        n = 0
        while time.monotonic() < end and self.node_alive():
            now = time.monotonic()
            if now >= next_sample:
                self.sample()
                next_sample += 1.0
            if now >= next_query:
                next_query += self.args.query_period_s
                if self.sound_done:
                    self.sound_done.popleft()
                    self._ask(sound, Trigger.Request(), Query("segment_sound", "", now))
                else:
                    scene = self.scenes[self.scene_index]
                    text = scene.texts[n % len(scene.texts)]
                    if n % 2 == 0:
                        self._ask(self.segment, Segment.Request(text=text), Query("segment", text, now))
                    else:
                        query = Query("topic", text, now)
                        with self.lock:
                            self.queries.append(query)
                        query_pub.publish(String(data=text))
                    n += 1
            time.sleep(max(0.0, min(next_sample, next_query) - time.monotonic()))
        self.sample()

    def _ask(self, client, request, query: Query) -> None:
        with self.lock:
            self.queries.append(query)
        future = client.call_async(request)

        def done(f) -> None:
            query.answered = time.monotonic()
            try:
                r = f.result()
            except Exception as exc:  # a client-side failure is reported, not raised
                query.message = f"{type(exc).__name__}: {exc}"
                return
            query.ok = bool(r.success)
            query.message = r.message
            if hasattr(r, "result"):
                query.key = _result_key(r.result)

        future.add_done_callback(done)

    def drain(self, timeout: float) -> None:
        """Wait (sensors still running) until every query has its answer or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.node_alive():
            self._match_topic_queries()
            with self.lock:
                if all(q.answered is not None for q in self.queries):
                    return
            time.sleep(0.1)
        self._match_topic_queries()

    def _match_topic_queries(self) -> None:
        """Pair topic queries with ~/results answers that no service call returned (FIFO per
        text). Recomputed from scratch each time: a service call's answer may reach ~/results
        before its response, so a pairing is final only once every call has its response."""
        with self.lock:
            service_keys = {q.key for q in self.queries if q.kind == "segment"}
            free = [(t, m) for t, m in self.results
                    if m.reference_type == "text" and _result_key(m) not in service_keys]
            used: set[int] = set()
            for q in self.queries:
                if q.kind != "topic":
                    continue
                q.answered, q.ok, q.message = None, False, ""
                for i, (t, m) in enumerate(free):
                    if i not in used and m.query == q.text and t >= q.asked:
                        used.add(i)
                        q.answered, q.ok, q.message = t, True, "ok"
                        break

    # ---- the report
    def report(self) -> dict:
        args, c = self.args, self.counters
        warmup = args.warmup_s
        with self.lock:
            queries = list(self.queries)
            diag = dict(self.diag)
            results = list(self.results)
        for q in queries:
            if q.answered is None and not q.message:
                q.message = ("no answer on ~/results" if q.kind == "topic"
                             else f"no response within {args.answer_timeout_s:g} s")
        answered = [q for q in queries if q.ok]
        errors = [f"{q.kind} {q.text!r}: {q.message}" for q in queries if not q.ok][:MAX_ERRORS]
        by_kind = {}
        for kind in ("segment", "topic", "segment_sound"):
            qs = [q for q in queries if q.kind == kind]
            by_kind[kind] = {"asked": len(qs), "answered": sum(q.ok for q in qs)}
        latencies = [(q.answered - q.asked) * 1000.0 for q in answered if q.answered is not None]

        rss_start = self.rss[0][1] if self.rss else None
        after = [(t, v) for t, v in self.rss if t >= warmup]
        rss_warm = after[0][1] if after else None
        smooth = [(t, v) for t, v in _rolling_median(self.rss, RSS_MEDIAN_SAMPLES) if t >= warmup]
        slope = None
        if len(after) >= 3:
            ts, vs = np.array([t for t, _ in after]), np.array([v for _, v in after])
            slope = round(float(np.polyfit(ts, vs, 1)[0]) * 60.0, 3)
        cpu_percent = None
        if len(self.cpu) >= 2 and self.cpu[-1][0] > self.cpu[0][0]:
            cpu_percent = round(100.0 * (self.cpu[-1][1] - self.cpu[0][1]) / (self.cpu[-1][0] - self.cpu[0][0]), 1)

        received = _int(diag.get("frames_received"))
        dropped = _int(diag.get("frames_dropped"))
        cb50, cb99 = _float(diag.get("camera_callback_ms.p50")), _float(diag.get("camera_callback_ms.p99"))
        if "camera_callback_ms.p99" in diag:
            source = "diagnostics camera_callback_ms.p50/.p99"
        else:
            source = "absent: the node's /diagnostics has no camera_callback_ms.p50/.p99 keys"
        asked_sound = sum(q.kind == "segment_sound" for q in queries)
        unsolicited_audio = max(0, sum(m.reference_type == "audio" for _, m in results) - asked_sound)
        with self.lock:
            sound_sources = len(self.sound_sources)
        return {
            "minutes": args.minutes,
            "checkpoint": args.checkpoint,
            "device": args.device,
            "fps": args.fps,
            "size": [args.width, args.height],
            "queries_asked": len(queries),
            "queries_answered": len(answered),
            "queries_failed": len(queries) - len(answered),
            "errors": errors,
            "by_kind": by_kind,
            "query_latency_ms_p50": percentile(latencies, 50),
            "query_latency_ms_p99": percentile(latencies, 99),
            "warmup_s": warmup,
            "rss_mb_start": _round(rss_start),
            "rss_mb_after_warmup": _round(rss_warm),
            "rss_growth_mb": _round(max(v for _, v in smooth) - smooth[0][1]) if smooth else None,
            "rss_growth_raw_mb": _round(max(v for _, v in after) - rss_warm) if after else None,
            "rss_mb_max": _round(max(v for _, v in self.rss)) if self.rss else None,
            "rss_mb_end": _round(self.rss[-1][1]) if self.rss else None,
            "rss_slope_mb_per_min": slope,
            "rss_mb_every_10s": [_round(v) for t, v in _every(self.rss, 10.0)],
            "camera_callback_ms_p50": cb50,
            "camera_callback_ms_p99": cb99,
            "camera_callback_source": source,
            "camera_delay_ms_p50": _float(diag.get("camera_delay_ms.p50")),
            "camera_delay_ms_p99": _float(diag.get("camera_delay_ms.p99")),
            "frames_published": c.frames,
            "frames_late_skipped": c.late_frames,
            "fps_achieved": round((c.frames - 1) / c.camera_s, 2) if c.camera_s > 0 else None,
            "publish_ms_p50": percentile(c.publish_ms, 50),
            "publish_ms_p99": percentile(c.publish_ms, 99),
            "frames_received_by_node": received,
            "frames_dropped_by_node": dropped,
            "dropped_frame_ratio": round(dropped / received, 4) if received and dropped is not None else None,
            "transport_loss_ratio": round(1.0 - received / c.frames, 4) if received is not None and c.frames else None,
            "depth_frames_published": c.depth,
            "audio_chunks_published": c.audio,
            "sound_events_played": c.sounds_played,
            "sound_events_answered": sound_sources,
            "sound_events_dropped_by_node": _int(diag.get("sound_events_dropped")),
            "audio_results_unsolicited": unsolicited_audio,
            "sound_events_detected_by_node": _int(diag.get("sound_events_detected")),
            "sound_events_unlocated_by_node": _int(diag.get("sound_events_unlocated")),
            "node_cpu_percent": cpu_percent,
            "node_alive": self.node_alive(),
            "node_log": str(self.log_path),
            "node_diagnostics": diag,
        }

    def close(self) -> None:
        from anyref_ros.nodes.common import stop_processes

        self.stop_sensors()
        stop_processes([self.proc])
        self.ros.close()


def _result_key(msg) -> tuple:
    """Identifies one answer: the frame's stamp, the query and the node's latency figure."""
    stamp = msg.header.stamp
    return (stamp.sec, stamp.nanosec, msg.query, msg.reference_type, round(float(msg.latency_ms), 3))


def _rolling_median(samples: list[tuple[float, float]], k: int) -> list[tuple[float, float]]:
    """Each sample replaced by the median of it and the ``k - 1`` before it."""
    values = [v for _, v in samples]
    return [(t, float(np.median(values[max(0, i - k + 1):i + 1]))) for i, (t, _) in enumerate(samples)]


def _every(samples: list[tuple[float, float]], period: float) -> list[tuple[float, float]]:
    """The first sample of each ``period`` seconds."""
    out, next_t = [], 0.0
    for t, v in samples:
        if t >= next_t:
            out.append((t, v))
            next_t = (int(t / period) + 1) * period
    return out


def _int(value: Optional[str]) -> Optional[int]:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 1)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="anyref-soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=1.0, help="length of the load (default 1)")
    ap.add_argument("--checkpoint", default="model/toy", help="checkpoint folder or preset (default model/toy)")
    ap.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    ap.add_argument("--fps", type=float, default=30.0, help="camera rate (default 30)")
    ap.add_argument("--depth-fps", type=float, default=15.0, help="depth + camera_info rate; 0 = none (default 15)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--scenes", type=int, default=3, help="toy scenes cycled (default 3)")
    ap.add_argument("--scene-period-s", type=float, default=10.0, help="seconds per scene (default 10)")
    ap.add_argument("--query-period-s", type=float, default=1.0, help="seconds between queries (default 1)")
    ap.add_argument("--sound-period-s", type=float, default=10.0,
                    help="seconds between signature sounds; 0 = room noise only (default 10)")
    ap.add_argument("--warmup-s", type=float, default=None,
                    help="memory growth is measured after this (default 20 s for runs up to 2 minutes, else 60 s)")
    ap.add_argument("--answer-timeout-s", type=float, default=30.0,
                    help="how long the end of the run waits for outstanding answers (default 30)")
    ap.add_argument("--node-timeout-s", type=float, default=600.0, help="seconds allowed for the node to activate")
    ap.add_argument("-p", "--param", action="append", metavar="NAME:=VALUE",
                    help="an extra node parameter (repeatable), e.g. -p dtype:=float16")
    ap.add_argument("--node-log", help="the node's output goes here (default: a temporary file)")
    ap.add_argument("--json-out", help="also write the JSON object to this file")
    args = ap.parse_args(argv)
    if args.minutes <= 0 or args.fps <= 0 or args.query_period_s <= 0 or args.scene_period_s <= 0:
        ap.error("--minutes, --fps, --query-period-s and --scene-period-s must be > 0")
    if args.width <= 0 or args.height <= 0 or args.scenes <= 0:
        ap.error("--width, --height and --scenes must be > 0")
    if args.warmup_s is None:
        args.warmup_s = 20.0 if args.minutes <= 2.0 else 60.0
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    ros_env.configure_private_graph()
    scenes = render_scenes(args.scenes, (args.width, args.height))
    soak = Soak(args)
    report: Optional[dict] = None
    try:
        soak.listen()
        soak.start_node()
        soak.wait_active(args.node_timeout_s)
        print(f"[soak] node active; {args.minutes:g} min of {args.width}x{args.height} at {args.fps:g} Hz",
              file=sys.stderr, flush=True)
        soak.start_sensors(scenes)
        soak.run_queries()
        soak.drain(args.answer_timeout_s)
        soak.stop_sensors()
        time.sleep(2.5)  # the node's next diagnostics (1 Hz) count every frame it received
        report = soak.report()
    except (RuntimeError, KeyboardInterrupt) as exc:
        print(f"[soak] stopped: {exc}", file=sys.stderr, flush=True)
    finally:
        soak.close()
    if report is None:
        return 1
    text = json.dumps(report, indent=2)
    print(text, flush=True)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    ok = report["queries_asked"] > 0 and report["queries_failed"] == 0 and report["node_alive"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
