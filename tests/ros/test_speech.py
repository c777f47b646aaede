"""Say it to your robot, end to end with real components, each in its own
process: espeak-ng speaks "find the red circle" into the microphone ->
anyref_mic -> ``audio`` -> anyref_speech (Silero VAD, PocketSphinx with the
default grammar) -> ``query`` -> anyref_node (checkpoint model/toy) -> its
``~/results`` hold the red circle's mask (IoU >= 0.6) on a toy scene with one
red circle, shown by a camera process (tests/helpers/toy_camera.py).

The one stand-in: there is no sound card here, so the microphone is ALSA's
``file`` plugin reading a named pipe that this test feeds at real-time pace
(tests/helpers/mic_audio.py: PacedPipe), so audio arrives as from a real
microphone: silence until anyref_speech receives it, then 1 s of silence,
the sentence, then silence.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import String

from anyref_ros.data.toy import ToyWorld
from anyref_ros.msg import Referral
from anyref_ros.nodes.conversions import image_to_mask
from node_harness import Client, scene_switcher, start_node, stop
from testsupport import HELPERS, REPO, collect_output, spawn_helper, stop_process

sys.path.insert(0, str(HELPERS))
import mic_audio  # noqa: E402

SEED, INDEX = 11, 101  # ToyWorld(11, 640x480) scene 101: a yellow square, a blue square, one red circle
SIZE = (640, 480)
NS = "/speak"  # (test_sound_events uses /hear)
SENTENCE = "find the red circle"

pytestmark = [
    pytest.mark.skipif(not (REPO / "model" / "toy" / "config.json").is_file(),
                       reason="model/toy (the trained toy checkpoint) is not in this checkout"),
    pytest.mark.skipif(not mic_audio.have_espeak(), reason="espeak-ng is not installed (make setup)"),
]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum()))


def test_spoken_command_gets_the_red_circle_segmented(tmp_path):
    sample = ToyWorld(SEED, size=SIZE).sample(INDEX, "text")
    objects = [(o["colour"], o["shape"]) for o in sample.metadata["objects"]]
    assert objects.count(("red", "circle")) == 1 and sample.query == "red circle"

    pcm, rate = mic_audio.speak(SENTENCE, tmp_path)
    chunk_bytes = int(rate * 0.1) * 2  # one 100 ms capture block (mic.yaml chunk_ms), s16le mono
    audio = bytes(rate * 2) + pcm.tobytes() + bytes(rate * 2)  # 1 s silence, the sentence, 1 s silence

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    procs = []
    node = start_node("-p", "checkpoint:=model/toy", "-p", "device:=cpu", namespace=NS)
    camera = spawn_helper("toy_camera", NS, str(SEED))
    logs = {"toy_camera": collect_output(camera)}  # (a failing test's report shows the node's log: conftest.py)
    speech = mic_audio.NodeProcess("anyref_speech", namespace=NS, params_file=REPO / "config" / "speech.yaml",
                                   cwd=REPO)
    procs.append(speech)
    client = Client(ctx, namespace=NS)
    pipe = None
    try:
        results = client.listen(Referral, f"{NS}/anyref/results")
        utterances = client.listen(String, f"{NS}/anyref_speech/utterances")
        diagnostics = client.listen(DiagnosticArray, "/diagnostics")
        scene_switcher(client, NS)(f"text {INDEX}")
        client.wait_loaded(120)
        graph = client.node
        client.wait_for(lambda: graph.count_subscribers(f"{NS}/audio") >= 2 and
                        graph.count_subscribers(f"{NS}/query") >= 1 and graph.count_publishers(f"{NS}/query") >= 1,
                        30, "anyref_speech and the anyref node on audio and query")

        pipe = mic_audio.PacedPipe(tmp_path / "mic.pipe", audio, rate * 2, chunk_bytes, hold=True)
        home = tmp_path / "home"
        mic_audio.write_asoundrc(home, pipe.path)
        mic = mic_audio.NodeProcess("anyref_mic", "-p", "device:=filemic", "-p", f"sample_rate:={rate}",
                                    "-p", "autostart:=false", namespace=NS,
                                    params_file=REPO / "config" / "mic.yaml", env={"HOME": str(home)})
        procs.append(mic)
        # Capture starts once the microphone's publisher is in the graph, so
        # no chunk is published before anyref_speech's subscription matches it.
        client.base = f"{NS}/anyref_mic"
        assert client.lifecycle_set("configure")
        client.wait_for(lambda: graph.count_publishers(f"{NS}/audio") >= 1, 30, "the microphone's publisher")
        assert client.lifecycle_set("activate")
        # The microphone sends silence until anyref_speech counts its chunks: a sentence
        # spoken before the two processes have matched would be lost (volatile topic).
        client.wait_for(lambda: [s for m in diagnostics for s in m.status if s.name == "anyref_speech: speech" and
                                 int(dict((kv.key, kv.value) for kv in s.values).get("chunks", "0")) >= 3],
                        30, "the microphone's chunks counted by anyref_speech")
        started = time.monotonic()
        pipe.go()
        try:
            answers = client.wait_for(lambda: [r for r in list(results) if r.query == "red circle"], 30,
                                      "the anyref node's answer to the spoken query on ~/results")
        except AssertionError as exc:  # say which link of the chain broke
            logs.update(anyref_speech=speech.lines, anyref_mic=mic.lines)
            raise AssertionError(
                f"{exc}\nutterances: {[u.data for u in utterances]}\nresults: {[r.query for r in results]}\n"
                f"pipe readers: {pipe.readers}\n" +
                "\n".join(f"--- {name} (last 25 lines)\n" + "\n".join(lines[-25:]) for name, lines in logs.items())
            ) from None
        answered = time.monotonic() - started
        record = json.loads(client.wait_for(lambda: utterances, 10, "the utterance on ~/utterances")[0].data)
        score = iou(image_to_mask(answers[0].mask), sample.masks[0])
        print(json.dumps({"utterance": record, "iou": round(score, 3),
                          "mic_start_to_answer_s": round(answered, 2),
                          "speech_ends_at_s": round(1.0 + len(pcm) / rate, 2)}))
        assert record["text"] == SENTENCE and record["query"] == "red circle" and record["engine"] == "pocketsphinx"
        assert 0.5 < record["end"] - record["start"] < 2.5
        assert score >= 0.6, f"IoU {score:.2f}"
        assert answers[0].header.frame_id == "toy_camera_optical"
        assert len([u for u in utterances]) == 1, [u.data for u in utterances]
        for p in procs:  # (checked before the stop: exit itself is run_node's business)
            assert not p.matching("Traceback") and not p.matching("[ERROR]"), "\n".join(p.lines[-30:])
    finally:
        if pipe is not None:
            pipe.close()
        for p in procs:
            p.stop()
        client.close()
        stop_process(camera)
        stop(node)
        rclpy.try_shutdown(context=ctx)


def test_speech_node_wake_phrase_tones_and_bad_chunks(ros_context, tmp_path):
    """anyref_speech alone, fed by this test (AudioChunks at 4x real time,
    44.1 kHz stereo f32le): with wake_phrase "robot" only the command that
    starts with it becomes a query; a command without it, a tone and a
    malformed chunk are dropped with a log line and the node keeps going."""
    from anyref_ros.audio.signal import resample
    from anyref_ros.msg import AudioChunk
    from anyref_ros.nodes.conversions import numpy_to_audio

    rate = 44100

    def said(text: str) -> np.ndarray:
        pcm, r = mic_audio.speak(text, tmp_path)
        return resample(pcm.astype(np.float32) / 32768.0, r, rate)

    def quiet(seconds: float) -> np.ndarray:
        return np.zeros(int(seconds * rate), np.float32)

    t = np.arange(int(1.5 * rate)) / rate
    mono = np.concatenate([quiet(0.5), said("robot, find the red circle"), quiet(1.0), said("where is the blue square"),
                           quiet(1.0), 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32), quiet(1.0)])
    stereo = np.stack([mono, 0.5 * mono], axis=1)

    speech = mic_audio.NodeProcess("anyref_speech", "-p", "wake_phrase:=robot", namespace="/talk",
                                   params_file=REPO / "config" / "speech.yaml", cwd=REPO)
    client = Client(ros_context, namespace="/talk")
    try:
        queries = client.listen(String, "/talk/query")
        utterances = client.listen(String, "/talk/anyref_speech/utterances")
        diagnostics = client.listen(DiagnosticArray, "/diagnostics")
        pub = client.node.create_publisher(AudioChunk, "/talk/audio", 50)
        client.wait_for(lambda: pub.get_subscription_count() > 0, 30, "anyref_speech's audio subscription")
        step = int(0.1 * rate)
        for i in range(0, len(stereo), step):
            pub.publish(numpy_to_audio(stereo[i:i + step], rate, "f32le"))
            time.sleep(0.025)
            if i == 10 * step:
                bad = AudioChunk(sample_rate=rate, channels=1, encoding="u8", data=bytes(100))
                pub.publish(bad)
        client.wait_for(lambda: speech.matching("does not start with the wake phrase"), 20, "the command without the wake phrase")
        assert [q.data for q in queries] == ["red circle"]
        record = json.loads(utterances[0].data)
        assert record["text"] == "robot find the red circle" and record["query"] == "red circle"
        speech.wait_for_lines("dropping an audio chunk: unsupported audio encoding 'u8'", timeout=5)
        ignored = speech.matching("does not start with the wake phrase 'robot'")
        assert len(ignored) == 1 and "blue square" in ignored[0]
        status = client.wait_for(lambda: [s for m in diagnostics for s in m.status
                                          if s.name == "anyref_speech: speech" and
                                          dict((kv.key, kv.value) for kv in s.values).get("no_wake_phrase") == "1"],
                                 10, "diagnostics counting the dropped command")[-1]
        values = {kv.key: kv.value for kv in status.values}
        assert values["queries"] == "1" and values["bad_chunks"] == "1" and values["sample_rate_in"] == str(rate)
        assert speech.proc.poll() is None
        assert not speech.matching("Traceback")
    finally:
        speech.stop()
        client.close()


def test_parameters_are_declared_and_documented_in_config_speech_yaml(ros_context):
    import yaml

    from anyref_ros.nodes.speech import SpeechNode
    from anyref_ros.parameters import SPEECH_PARAMS

    node = SpeechNode(context=ros_context)
    try:
        for p in SPEECH_PARAMS:
            assert node.get_parameter(p.name).value == p.default
            (descriptor,) = node.describe_parameters([p.name])
            assert descriptor.description.startswith(p.description)
    finally:
        node.destroy_node()
    values = yaml.safe_load((REPO / "config" / "speech.yaml").read_text())["/**"]["ros__parameters"]
    assert values == {p.name: p.default for p in SPEECH_PARAMS}


def test_bad_grammar_leaves_the_node_up_and_saying_why(ros_context, tmp_path):
    """A grammar that does not parse, a FIFO (reading it would block), a device
    that never ends (/dev/zero) and a folder: configure fails, the node stays
    up, unconfigured, and its status (/diagnostics) says why; a good grammar
    then configures."""
    import os

    from diagnostic_msgs.msg import DiagnosticStatus
    from lifecycle_msgs.msg import State
    from rclpy.parameter import Parameter

    from anyref_ros.nodes.speech import SpeechNode

    bad = tmp_path / "grammar.yaml"
    bad.write_text("objects: [cup]\nrelations: [on]\n")
    fifo = tmp_path / "grammar.fifo"
    os.mkfifo(fifo)
    node = SpeechNode(context=ros_context)
    try:
        for path, why in ((bad, "quote it"), (fifo, "is a FIFO (named pipe), not a regular file"),
                          (Path("/dev/zero"), "is a device, not a regular file"),
                          (tmp_path, "is a folder, not a regular file")):
            node.set_parameters([Parameter("grammar", value=str(path))])
            node.trigger_configure()
            assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
            level, message = node._status
            assert level == DiagnosticStatus.ERROR and why in message and str(path) in message, message
        node.set_parameters([Parameter("grammar", value=str(REPO / "config" / "speech_grammar.yaml"))])
        node.trigger_configure()
        assert node._state_machine.current_state[0] == State.PRIMARY_STATE_INACTIVE
    finally:
        node.destroy_node()


def speech_status(diagnostics, **want) -> list:
    """(status, values) of the anyref_speech statuses seen so far whose values hold ``want``."""
    out = []
    for m in list(diagnostics):
        for s in m.status:
            values = {kv.key: kv.value for kv in s.values}
            if s.name == "anyref_speech: speech" and all(values.get(k) == v for k, v in want.items()):
                out.append((s, values))
    return out


def test_best_effort_audio_is_heard_and_huge_samples_do_not_deafen(ros_context, tmp_path):
    """anyref_speech (audio_qos auto, the default) in its own process; this test
    publishes BEST_EFFORT AudioChunks (like a sensor-data microphone driver) at
    2x real time: the node subscribes BEST_EFFORT and counts them. One chunk of
    1e20 samples, then a spoken command: the command still becomes a query
    (the VAD clips its input). A second node with audio_qos:=reliable cannot
    hear that publisher and says so as a WARN in /diagnostics."""
    from rclpy.qos import qos_profile_sensor_data

    from anyref_ros.audio.signal import resample
    from anyref_ros.msg import AudioChunk
    from anyref_ros.nodes.conversions import numpy_to_audio

    rate = 48000
    pcm, r = mic_audio.speak("find the red circle", tmp_path)
    voice = resample(pcm.astype(np.float32) / 32768.0, r, rate)
    step = int(0.1 * rate)
    junk = (1e20 * np.sign(np.sin(2 * np.pi * 200 * np.arange(step) / rate) + 1e-9)).astype(np.float32)  # a 200 Hz square
    mono = np.concatenate([np.zeros(rate // 2, np.float32), junk, np.zeros(rate, np.float32), voice,
                           np.zeros(rate, np.float32)])
    auto = mic_audio.NodeProcess("anyref_speech", namespace="/qos", params_file=REPO / "config" / "speech.yaml",
                                 cwd=REPO)
    strict = mic_audio.NodeProcess("anyref_speech", "-p", "audio_qos:=reliable", "-r", "audio:=/qos/audio",
                                   namespace="/qos_strict", params_file=REPO / "config" / "speech.yaml", cwd=REPO)
    client = Client(ros_context, namespace="/qos")
    try:
        queries = client.listen(String, "/qos/query")
        diagnostics = client.listen(DiagnosticArray, "/diagnostics")
        pub = client.node.create_publisher(AudioChunk, "/qos/audio", qos_profile_sensor_data)
        # Only a BEST_EFFORT subscription matches this publisher: the auto node's, once it adapted.
        try:
            client.wait_for(lambda: pub.get_subscription_count() >= 1, 40, "anyref_speech subscribing BEST_EFFORT")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n" + "\n".join(auto.lines[-20:])) from None
        for i in range(0, len(mono), step):
            pub.publish(numpy_to_audio(mono[i:i + step], rate, "f32le"))
            time.sleep(0.05)
        client.wait_for(lambda: queries, 20, "the query after the 1e20 chunk")
        assert [q.data for q in queries] == ["red circle"]
        chunks = -(-len(mono) // step)
        heard = client.wait_for(lambda: [v for s, v in speech_status(diagnostics, audio_reliability="best_effort")
                                         if int(v["chunks"]) >= chunks * 0.8], 10, "the chunks counted")[-1]
        assert heard["vad_resets"] == "0" and heard["audio_publishers"] == "1", heard
        warned = client.wait_for(lambda: [s for s, v in speech_status(diagnostics, audio_reliability="reliable")
                                          if s.level == s.WARN and "cannot hear 1 BEST_EFFORT" in s.message], 10,
                                 "the reliable node's warning")
        assert "audio_qos" in warned[-1].message
        for node in (auto, strict):
            assert not node.matching("Traceback"), "\n".join(node.lines[-30:])
    finally:
        auto.stop()
        strict.stop()
        client.close()


@pytest.fixture
def late_audio(ros_context, tmp_path):
    """anyref_speech (audio_qos auto, the default) in its own process, listening
    before any audio publisher exists; ``play(text, reliability, go=None)`` starts
    tests/helpers/audio_publisher.py speaking ``text`` on its audio topic (1 s of
    silence each side) in a process of its own."""
    ns = "/late"
    speech = mic_audio.NodeProcess("anyref_speech", namespace=ns, params_file=REPO / "config" / "speech.yaml",
                                   cwd=REPO)
    client = Client(ros_context, namespace=ns)
    players = []

    def play(text: str, reliability: str, go=None):
        clip, rate = mic_audio.spoken_clip(text, tmp_path)
        args = ["--reliability", reliability] + (["--go", str(go)] if go is not None else [])
        players.append(spawn_helper("audio_publisher", f"{ns}/audio", str(clip), str(rate), *args))
        collect_output(players[-1])
        return players[-1]

    try:
        queries = client.listen(String, f"{ns}/query")
        diagnostics = client.listen(DiagnosticArray, "/diagnostics")
        client.wait_for(lambda: speech_status(diagnostics, audio_publishers="0", audio_reliability="reliable"), 60,
                        "anyref_speech listening with no audio publisher")
        yield client, speech, queries, diagnostics, play
        assert not speech.matching("Traceback"), "\n".join(speech.lines[-30:])
    finally:
        for p in players:
            stop_process(p)
        speech.stop()
        client.close()


def test_audio_publishers_that_appear_later_are_heard(late_audio):
    """anyref_speech listens before any audio publisher exists (RELIABLE, and
    says why). A BEST_EFFORT publisher appears: the node switches to BEST_EFFORT
    and its spoken command becomes a query; it goes away, a RELIABLE one appears:
    its command becomes a query too."""
    client, speech, queries, diagnostics, play = late_audio
    _, values = speech_status(diagnostics, audio_publishers="0")[-1]
    assert "no audio publisher seen yet" in values["audio_reliability_why"], values
    player = play("find the red circle", "best_effort")
    client.wait_for(lambda: [q for q in list(queries) if q.data == "red circle"], 40,
                    "the BEST_EFFORT publisher's command as a query")
    _, values = speech_status(diagnostics, audio_publishers="1", audio_reliability="best_effort")[-1]
    assert "1 of 1 audio publisher(s) BEST_EFFORT" in values["audio_reliability_why"], values
    player.wait(30)
    client.wait_for(lambda: speech_status(diagnostics)[-1][1]["audio_publishers"] == "0", 30, "the publisher gone")
    play("where is the blue square", "reliable")
    client.wait_for(lambda: [q for q in list(queries) if q.data == "blue square"], 40,
                    "the RELIABLE publisher's command as a query")
    _, values = speech_status(diagnostics, audio_publishers="1")[-1]
    assert values["audio_reliability"] == "reliable" and "every audio publisher (1) is RELIABLE" in \
        values["audio_reliability_why"], values
    assert [q.data for q in queries] == ["red circle", "blue square"]


def test_mixed_audio_publishers_are_both_heard(late_audio, tmp_path):
    """A BEST_EFFORT and a RELIABLE audio publisher on the topic at once (as
    rosbag2 does, auto subscribes BEST_EFFORT, which hears both, and says so
    in /diagnostics); each speaks a command in turn: both become queries."""
    client, speech, queries, diagnostics, play = late_audio
    go_best, go_reliable = tmp_path / "go_best_effort", tmp_path / "go_reliable"
    best = play("find the red circle", "best_effort", go=go_best)
    reliable = play("where is the blue square", "reliable", go=go_reliable)
    _, values = client.wait_for(lambda: speech_status(diagnostics, audio_publishers="2",
                                                      audio_reliability="best_effort"), 30,
                                "anyref_speech choosing BEST_EFFORT for the two publishers")[-1]
    assert "1 of 2 audio publisher(s) BEST_EFFORT" in values["audio_reliability_why"], values
    assert not [s for s, _ in speech_status(diagnostics, audio_publishers="2") if "cannot hear" in s.message]
    go_best.touch()
    client.wait_for(lambda: [q for q in list(queries) if q.data == "red circle"], 40,
                    "the BEST_EFFORT publisher's command as a query")
    best.wait(30)
    go_reliable.touch()
    client.wait_for(lambda: [q for q in list(queries) if q.data == "blue square"], 40,
                    "the RELIABLE publisher's command as a query")
    assert [q.data for q in queries] == ["red circle", "blue square"]
