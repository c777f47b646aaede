"""Faults and hostile input against real node processes (console entry point,
Fast DDS), on the tiny random preset unless said otherwise:

* regressions: a PNG whose header claims 40000x40000 on image/compressed
  followed by a ~/refer goal, and an AudioChunk at 1 Hz with a short
  audio_window_s, each used to end the process;
* start-up as a new user tries it: services answer from the first moment
  ("loading the model ...", never "no camera frame"), frames published while
  the model loads are kept and answered on;
* deactivate / activate / cleanup while queries wait and run: every caller
  is answered at once, the node serves again after activate;
* waiting callers never starve the executor (lifecycle, diagnostics, cancel);
* the camera stops, audio gaps, rate changes and malformed chunks, a NaN fx;
* the model file corrupted or removed between two activations;
* SIGTERM during a model call that ignores cancel.

Slow or hanging model calls come from a test fault plan (tests/faults.py),
installed by the test-only entry point tests/helpers/faulty_anyref_node.py
(start_node(faults=...)): a real model call of the tiny model takes
milliseconds, too short to deactivate during it."""

from __future__ import annotations

import shutil
import signal
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from anyref_ros.action import Refer
from anyref_ros.msg import AudioChunk
from anyref_ros.nodes.conversions import numpy_to_audio, numpy_to_image, rgb_to_compressed
from anyref_ros.srv import Segment
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from node_harness import anyref_status, status_count, client_context, output_of, start_node, stop
from testsupport import REPO

W, H = 160, 120
NS = "/rel"


@pytest.fixture
def client():
    with client_context(NS) as c:
        yield c


@pytest.fixture
def node():
    procs = []

    def start(*args, checkpoint="tiny", env=None, faults=None):
        procs.append(start_node("-p", f"checkpoint:={checkpoint}", "-p", "warmup:=false", *args,
                                namespace=NS, env=env, faults=faults))
        return procs[-1]

    yield start
    for p in procs:
        if p.poll() is None:
            stop(p)


def publisher(client, msg_type, topic, qos=qos_profile_sensor_data):
    pub = client.node.create_publisher(msg_type, topic, qos)
    client.wait_for(lambda: pub.get_subscription_count() > 0, 30, f"the node's subscription to {topic}")
    return pub


def stamp(client, msg, offset: float = 0.0):
    now = client.node.get_clock().now().nanoseconds * 1e-9 + offset
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
    return msg


def frame(client, frame_id: str = "cam", lag: float = 0.0) -> Image:
    msg = numpy_to_image(np.full((H, W, 3), 120, np.uint8), "rgb8")
    msg.header.frame_id = frame_id
    return stamp(client, msg, -lag)


class Camera:
    """Publishes frames (frame_id = their number) at ``hz`` from a thread until stopped;
    ``lag``: their header stamps are that many seconds behind (a camera with a lagging clock)."""

    def __init__(self, client, topic: str = f"{NS}/image", hz: float = 10.0, lag: float = 0.0) -> None:
        self.client, self.pub, self.hz, self.lag = client, publisher(client, Image, topic), hz, lag
        self.sent: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = frame(self.client, str(len(self.sent)), self.lag)
            self.sent.append(msg.header.frame_id)
            try:
                self.pub.publish(msg)
            except Exception:  # the test ended (failed) and its client is gone
                return
            self._stop.wait(1.0 / self.hz)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def diagnostics(client) -> list:
    return client.listen(DiagnosticArray, "/diagnostics")


def png_claiming(width: int, height: int) -> bytes:
    """A valid-looking ~70-byte PNG whose IHDR claims width x height (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


# ------------------------------------------------------------------ regressions
def test_png_bomb_header_then_a_goal_is_answered_and_the_node_lives(node, client):
    """Was: cv2.error inside the goal callback ended the process (exit code 1)."""
    proc = node("-p", "use_compressed:=true", "-p", "max_frame_age_s:=0.0")
    client.wait_loaded()
    pub = publisher(client, CompressedImage, f"{NS}/image/compressed")
    bomb = CompressedImage(format="png", data=png_claiming(40000, 40000))
    assert len(bomb.data) < 100
    seg = client.service(Segment, "segment")

    def refused():
        pub.publish(stamp(client, bomb))
        r = client.call(seg, Segment.Request(text="red circle"))
        return "has arrived yet" not in r.message and r
    r = client.wait_for(refused, 20, "the bomb frame to arrive")
    assert not r.success and "40000x40000" in r.message and "max_image_pixels" in r.message, r.message

    action = client.action(Refer, "refer")
    handle = client.send_goal(action, Refer.Goal(text="red circle"))
    outcome = client.goal_result(handle)
    assert outcome.status == GoalStatus.STATUS_ABORTED
    assert "40000x40000" in outcome.result.message, outcome.result.message
    assert proc.poll() is None, "the node died"

    good = rgb_to_compressed(np.full((H, W, 3), 90, np.uint8), "png")

    def answered():
        pub.publish(stamp(client, good))
        time.sleep(0.1)
        return client.goal_result(client.send_goal(action, Refer.Goal(text="red circle"))).result.success
    client.wait_for(answered, 20, "an answer on a good frame after the bomb")


def test_audio_chunk_at_1_hz_with_a_short_window_is_dropped(node, client):
    """Was: audio_window_s < 1 and sample_rate 1 emptied the deque, then indexed it (IndexError, exit)."""
    proc = node("-p", "audio_window_s:=0.5")
    client.wait_loaded()
    diags = diagnostics(client)
    pub = publisher(client, AudioChunk, f"{NS}/audio")
    bad = AudioChunk(sample_rate=1, channels=1, encoding="f32le", data=np.zeros(4, "<f4").tobytes())
    # BEST_EFFORT: the node's reader can match a moment after our writer did, so the
    # chunk is sent again until the node counts it.
    client.wait_for(lambda: status_count(diags, "audio_chunks_dropped") >= 1, 30, "the chunk to be counted as dropped",
                    resend=lambda: pub.publish(stamp(client, bad)), every=0.5)
    assert proc.poll() is None, "the node died"
    seg = client.service(Segment, "segment")
    image = frame(client)
    r = client.call(seg, Segment.Request(text="red circle", image=image))
    assert r.success, r.message


# ------------------------------------------------------------------- start-up
def test_start_up_as_a_new_user_never_says_no_camera_frame(node, client):
    """Start the node, wait for ~/segment, publish frames for 1 s, ask until answered:
    every answer is "loading the model" or an answer on a published frame. While it
    loads, the lifecycle state and /diagnostics (with the load stage) answer."""
    diags = diagnostics(client)
    node("-p", "warmup:=true")
    seg = client.service(Segment, "segment")
    states = [client.lifecycle_state(timeout=30.0)]  # sets up the caller (discovery), so not timed
    camera = Camera(client)
    time.sleep(1.0)
    answers, t0 = [], time.monotonic()
    while time.monotonic() - t0 < 120:
        t = time.monotonic()
        states.append(client.lifecycle_state(timeout=10.0))
        # Blocked by the load, it would wait for the whole load (tens of seconds on this CPU).
        assert time.monotonic() - t < 5.0, "lifecycle get_state is slow while the model loads"
        r = client.call(seg, Segment.Request(text="red circle"), timeout=10)
        answers.append(r)
        if r.success:
            break
        assert r.message.startswith("loading the model ("), r.message
        time.sleep(0.2)
    camera.stop()
    assert answers[-1].success, answers[-1].message
    assert answers[-1].result.header.frame_id in camera.sent
    # (the first answer can come during autostart's short transitions)
    assert set(states) <= {"unconfigured", "configuring", "inactive", "activating", "active"} and "active" in states
    loading = [s for d in diags for s in d.status if s.name.startswith("anyref") and s.message.startswith("loading")]
    if len(answers) > 1:  # it was still loading when we first asked
        assert loading, "no /diagnostics while loading"
        values = {kv.key: kv.value for kv in loading[-1].values}
        assert values["load_stage"] and float(values["load_seconds"]) > 0


def test_frames_sent_while_loading_are_answered_on(node, client):
    node("-p", "max_frame_age_s:=0.0")
    diags = diagnostics(client)
    client.service(Segment, "segment")
    camera = Camera(client)
    # BEST_EFFORT frames reach the node once its reader has matched the camera too, which
    # can lag the camera's own match on a loaded machine: frames go on until it counts some.
    client.wait_for(lambda: status_count(diags, "frames_received") >= 3, 60, "the node to count frames while it loads")
    camera.stop()
    first = client.wait_loaded()
    assert "no camera frame" not in first.message
    r = client.call(client.service(Segment, "segment"), Segment.Request(text="red circle"))
    assert r.success, r.message
    assert r.result.header.frame_id in camera.sent


# ------------------------------------------------------------------ lifecycle
def test_deactivate_activate_cleanup_while_queries_wait_and_run(node, client):
    """Every caller gets a clear answer at once; none hangs; the node serves again."""
    proc = node("-p", "max_queue:=4", "-p", "max_frame_age_s:=0.0", faults="slow:5")
    client.wait_loaded()
    camera = Camera(client)
    seg = client.service(Segment, "segment")
    action = client.action(Refer, "refer")
    diags = diagnostics(client)
    client.lifecycle_ready()  # set up the lifecycle callers now: their discovery is not what is timed

    def ask_all():
        answers: dict = {}

        def call(i):
            answers[i] = client.call(seg, Segment.Request(text=f"red circle {i}"), timeout=30)
        threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        goal = client.send_goal(action, Refer.Goal(text="blue square"))
        assert goal.accepted
        n = len(diags)  # one runs (5 s), the others wait: all four are inside the node
        client.wait_for(lambda: (s := anyref_status(diags, n)) and
                        int(s[2]["waiting_callers"]) + int(s[2]["pending_goals"]) + int(s[2]["queue_depth"]) >= 3,
                        30, "the callers to wait in the node")
        return answers, threads, goal

    for transition in ("deactivate", "cleanup"):
        answers, threads, goal = ask_all()
        t = time.monotonic()
        assert client.lifecycle_set("deactivate")
        if transition == "cleanup":
            assert client.lifecycle_set("cleanup")
        for th in threads:
            th.join(10)
        outcome = client.goal_result(goal, timeout=10)
        took = time.monotonic() - t
        assert took < 5.0, f"callers answered {took:.1f} s after {transition}"
        assert len(answers) == 3 and not any(a.success for a in answers.values())
        for a in answers.values():
            assert "deactivat" in a.message or "shutting down" in a.message, a.message
        assert outcome.status == GoalStatus.STATUS_ABORTED and "deactivat" in outcome.result.message
        r = client.call(seg, Segment.Request(text="red circle"))
        assert not r.success and "not active" in r.message, r.message
        if transition == "cleanup":
            assert client.lifecycle_set("configure")
        assert client.lifecycle_set("activate")
        client.wait_loaded()
        # After cleanup + configure the image subscription is new: the camera's next
        # frames reach it once discovery has matched them (asked again only for that).
        r = client.wait_for(lambda: (a := client.call(seg, Segment.Request(text="red circle"), timeout=30))
                            and "no camera frame has arrived yet" not in a.message and a, 60, "a frame after configure")
        assert r.success, r.message
    camera.stop()
    assert proc.poll() is None


def test_waiting_callers_never_starve_the_executor(node, client):
    """max_queue 8 and 12 callers at once on a slow model: the extra ones are told
    "busy" at once, and lifecycle, diagnostics and goal cancel keep answering."""
    node("-p", "max_queue:=8", "-p", "max_frame_age_s:=0.0", faults="slow:3")
    client.wait_loaded()
    diags = diagnostics(client)
    camera = Camera(client)
    seg = client.service(Segment, "segment")
    action = client.action(Refer, "refer")
    client.lifecycle_ready()
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(client.call(seg, Segment.Request(text="x"), 120)))
               for _ in range(12)]
    for t in threads:
        t.start()
    busy = client.wait_for(lambda: [a for a in list(answers) if not a.success], 15, "the extra callers told busy")
    assert all(a.message.startswith("busy") for a in busy), [a.message for a in answers]
    t = time.monotonic()
    assert client.lifecycle_state(timeout=10) == "active"
    # Starved, it would wait for a running query (3 s each, eight in line).
    assert time.monotonic() - t < 2.5
    n = len(diags)
    client.wait_for(lambda: len(diags) > n + 1, 5, "/diagnostics while every caller waits")
    status = anyref_status(diags)
    assert int(status[2]["waiting_callers"]) >= 1
    goal = client.send_goal(action, Refer.Goal(text="y"))
    if goal.accepted:
        client.cancel(goal, timeout=5)
        assert client.goal_result(goal, timeout=10).status in (GoalStatus.STATUS_CANCELED, GoalStatus.STATUS_SUCCEEDED)
    assert client.lifecycle_set("deactivate", timeout=5)  # every waiting caller is answered now
    for th in threads:
        th.join(10)
    assert len(answers) == 12
    camera.stop()


# ---------------------------------------------------------------- sensor faults
def test_camera_stops(node, client):
    node("-p", "max_frame_age_s:=1.0")
    client.wait_loaded()
    diags = diagnostics(client)
    camera = Camera(client)
    seg = client.service(Segment, "segment")
    client.wait_for(lambda: client.call(seg, Segment.Request(text="red circle")).success, 30, "an answer")
    camera.stop()
    time.sleep(1.5)
    r = client.call(seg, Segment.Request(text="red circle"))
    assert not r.success and "no camera frame newer than 1 s on /rel/image" in r.message, r.message
    n = len(diags)
    client.wait_for(lambda: (s := anyref_status(diags, n)) and "no camera frame for" in s[1], 5, "a WARN")


def test_a_camera_with_a_lagging_clock_is_judged_by_one_rule(node, client):
    """Frames stamped 5 s behind the node's clock, arriving at 10 Hz, max_frame_age_s 1:
    freshness is judged by receive time for queries and /diagnostics alike, so the
    node that says "ready" also answers."""
    node("-p", "max_frame_age_s:=1.0")
    client.wait_loaded()
    diags = diagnostics(client)
    camera = Camera(client, lag=5.0)
    seg = client.service(Segment, "segment")
    client.wait_for(lambda: status_count(diags, "frames_received") >= 3, 30, "frames")
    n = len(diags)
    client.wait_for(lambda: (s := anyref_status(diags, n)) and s[1] == "ready", 10, "ready")
    r = client.call(seg, Segment.Request(text="red circle"))
    assert r.success, r.message
    camera.stop()
    time.sleep(1.5)
    r = client.call(seg, Segment.Request(text="red circle"))
    assert not r.success and "no camera frame newer than 1 s" in r.message and "arrived" in r.message, r.message
    n = len(diags)
    client.wait_for(lambda: (s := anyref_status(diags, n)) and "no camera frame for" in s[1], 5, "a WARN")


def test_depth_images_above_the_pixel_limit_are_not_stored(node, client):
    """max_image_pixels bounds depth images before they are stored (ten are kept)."""
    node("-p", "max_frame_age_s:=0.0", "-p", f"max_image_pixels:={W * H}")
    client.wait_loaded()
    diags = diagnostics(client)
    pub = publisher(client, Image, f"{NS}/depth")
    big = numpy_to_image(np.ones((H * 2, W * 2), np.uint16), "16UC1")
    client.wait_for(lambda: status_count(diags, "depth_rejected") >= 1, 30, "the big depth image refused",
                    resend=lambda: pub.publish(stamp(client, big)))
    n = len(diags)
    client.wait_for(lambda: len(diags) > n, 5, "a status")
    assert status_count(diags, "callback_errors") == 0


def test_audio_gaps_rate_changes_and_malformed_chunks(node, client):
    """Chunks with gaps, at 16 then 48 kHz, 6 channels, and malformed ones: the bad
    ones are dropped and counted; ~/segment with empty audio data and a sample
    rate uses the last 2 s heard; ~/segment_sound works."""
    from std_srvs.srv import Trigger

    proc = node("-p", "max_frame_age_s:=0.0")
    client.wait_loaded()
    diags = diagnostics(client)
    pub = publisher(client, AudioChunk, f"{NS}/audio")
    camera = Camera(client)

    def play(rate: int, seconds: float, channels: int = 1, encoding: str = "s16le"):
        """Contiguous 100 ms chunks, stamped as a microphone would (from the sample
        count, not the wall clock: a late send is not a gap)."""
        t = np.arange(int(rate * 0.1)) / rate
        chunk = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        start = client.node.get_clock().now().nanoseconds * 1e-9 - 0.1
        for i in range(int(seconds * 10)):
            msg = numpy_to_audio(np.repeat(chunk[:, None], channels, 1), rate, encoding)
            at = start + 0.1 * i
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(at), int((at % 1) * 1e9)
            pub.publish(msg)
            time.sleep(max(0.0, start + 0.1 * (i + 1) - client.node.get_clock().now().nanoseconds * 1e-9))

    play(16000, 1.0)
    time.sleep(1.0)  # a gap
    play(48000, 2.5, channels=6, encoding="f32le")  # a rate change: the buffer restarts at 48 kHz
    malformed = [
        AudioChunk(sample_rate=200000, channels=1, encoding="s16le", data=b"\0\0" * 100),
        AudioChunk(sample_rate=16000, channels=0, encoding="s16le", data=b"\0\0" * 100),
        AudioChunk(sample_rate=16000, channels=1, encoding="mp3", data=b"\0" * 100),
        AudioChunk(sample_rate=16000, channels=2, encoding="s16le", data=b"\0" * 3),
        AudioChunk(sample_rate=16000, channels=1, encoding="f32le", data=np.full(100, np.nan, "<f4").tobytes()),
        AudioChunk(sample_rate=4_294_967_295, channels=65535, encoding="f32le", data=b"\0" * 8),
    ]
    base = status_count(diags, "audio_chunks_dropped")
    for i, m in enumerate(malformed):  # BEST_EFFORT: sent again if not counted within 3 s
        client.wait_for(lambda: status_count(diags, "audio_chunks_dropped") >= base + i + 1, 15,
                        f"malformed chunk {i} counted as dropped", resend=lambda: pub.publish(stamp(client, m)), every=3.0)
    status = anyref_status(diags)
    assert 1.9 <= float(status[2]["audio_buffered_s"]) <= 2.6, status[2]["audio_buffered_s"]
    seg = client.service(Segment, "segment")
    r = client.call(seg, Segment.Request(audio=AudioChunk(sample_rate=16000)))
    assert r.success, r.message
    assert r.result.reference_type == "audio"
    r = client.call(client.service(Trigger, "segment_sound"), Trigger.Request())
    assert r.success, r.message
    camera.stop()
    assert proc.poll() is None


def test_nan_fx_gives_no_position(node, client):
    """Was: a NaN fx gave has_position with a NaN point."""
    node("-p", "max_frame_age_s:=0.0")
    client.wait_loaded()
    diags = diagnostics(client)
    pubs = {k: publisher(client, t, f"{NS}/{k}") for k, t in (("image", Image), ("depth", Image), ("camera_info", CameraInfo))}
    seg = client.service(Segment, "segment")
    colour = frame(client)
    depth = numpy_to_image(np.full((H, W), 1500, np.uint16), "16UC1", colour.header)
    info = CameraInfo(width=W, height=H, k=[float("nan"), 0, W / 2, 0, 100.0, H / 2, 0, 0, 1])
    info.header = colour.header

    def answered():
        pubs["camera_info"].publish(info)
        pubs["depth"].publish(depth)
        pubs["image"].publish(colour)
        time.sleep(0.2)
        s = anyref_status(diags)
        r = client.call(seg, Segment.Request(text="red circle"))
        return r.success and s and int(s[2].get("camera_info_rejected", 0)) >= 1 and r
    r = client.wait_for(answered, 30, "an answer after a NaN camera_info")
    assert not r.result.has_position
    assert np.isfinite([r.result.position.point.x, r.result.position.point.y, r.result.position.point.z]).all()


# ------------------------------------------------------------------ model faults
@pytest.mark.skipif(not (REPO / "model" / "toy" / "config.json").is_file(), reason="model/toy is not in this checkout")
def test_model_corrupted_or_removed_between_activations(node, client, tmp_path):
    folder = tmp_path / "toy"
    shutil.copytree(REPO / "model" / "toy", folder)
    proc = node("-p", "device:=cpu", "-p", "max_frame_age_s:=0.0", checkpoint=str(folder))
    client.wait_loaded(180)
    diags = diagnostics(client)
    seg = client.service(Segment, "segment")
    assert client.call(seg, Segment.Request(text="red circle", image=frame(client))).success

    (folder / "trained.safetensors").write_bytes(b"\x00garbage, not a safetensors file" * 8)
    assert client.lifecycle_set("deactivate")
    assert client.lifecycle_set("activate")  # the files are there: the load starts, then fails
    client.wait_for(lambda: client.lifecycle_state() == "inactive", 120, "the node back to inactive")
    r = client.call(seg, Segment.Request(text="red circle", image=frame(client)))
    assert not r.success and "not active" in r.message and str(folder) in r.message, r.message
    assert "safetensor" in r.message.lower(), r.message
    n = len(diags)
    s = client.wait_for(lambda: anyref_status(diags, n), 5, "diagnostics")
    assert s[0] == DiagnosticStatus.ERROR and str(folder) in s[1], s[:2]

    (folder / "trained.safetensors").unlink()
    assert not client.lifecycle_set("activate")  # refused at once: a file is missing
    assert client.lifecycle_state() == "inactive"
    r = client.call(seg, Segment.Request(text="red circle", image=frame(client)))
    assert not r.success and "does not exist" in r.message, r.message
    assert proc.poll() is None
    stop(proc)
    assert "cannot load checkpoint" in output_of(proc)


def test_model_errors_are_answered_and_shown_in_diagnostics(node, client):
    """Queries 1-5 raise inside the model: each caller gets the error, /diagnostics
    turns WARN ("the last 5 queries failed"), the 6th query succeeds and it is "ready" again."""
    faults = ",".join(f"exception:{i}" for i in range(1, 6))
    proc = node("-p", "max_frame_age_s:=0.0", faults=faults)
    client.wait_loaded()
    diags = diagnostics(client)
    camera = Camera(client)
    seg = client.service(Segment, "segment")
    client.wait_for(lambda: status_count(diags, "frames_received") > 0, 20, "a frame")
    for _ in range(5):
        r = client.call(seg, Segment.Request(text="red circle"))
        assert not r.success and "injected fault" in r.message, r.message
    n = len(diags)  # (a status sent just before the 5th failure may still arrive after this)
    s = client.wait_for(lambda: (s := anyref_status(diags, n)) and s[1].startswith("the last 5 queries failed") and s,
                        10, "diagnostics saying the last 5 queries failed")
    assert s[0] == DiagnosticStatus.WARN, s[:2]
    assert client.call(seg, Segment.Request(text="red circle")).success
    n = len(diags)
    client.wait_for(lambda: (s := anyref_status(diags, n)) and s[1] == "ready", 10, "ready again")
    camera.stop()
    assert proc.poll() is None


def test_sigterm_during_a_model_call_exits_quickly(node, client):
    proc = node("-p", "max_frame_age_s:=0.0", faults="hang:30")
    client.wait_loaded()
    diags = diagnostics(client)
    seg = client.service(Segment, "segment")
    caller = threading.Thread(target=lambda: client.call(seg, Segment.Request(text="x", image=frame(client)), 60),
                              daemon=True)
    caller.start()
    client.wait_for(lambda: (s := anyref_status(diags)) and s[2].get("busy") == "True", 10, "the model call to start")
    assert stop(proc, signal.SIGTERM) < 2.0
    assert proc.returncode == 0

