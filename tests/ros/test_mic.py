"""anyref_mic as a user runs it: the console entry point in its own process,
capturing with PortAudio and publishing AudioChunks over Fast DDS.

The one stand-in: there is no sound card here, so the capture device is
ALSA's ``file`` plugin reading a raw file (``filemic``, defined in an
``.asoundrc`` in a temporary HOME; tests/helpers/mic_audio.py). It is read
unpaced (the whole file in a burst, then zeros), so the test subscribes
RELIABLE with a deep queue and activates the node only once its subscription
is matched: every sample of the file must come back, in order and exactly.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from anyref_ros.msg import AudioChunk
from node_harness import Client
from testsupport import HELPERS, REPO

sys.path.insert(0, str(HELPERS))
import mic_audio  # noqa: E402

RATE = 22050


def chunk_samples(msg: AudioChunk) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), "<i2" if msg.encoding == "s16le" else "<f4")


def stamp_ns(msg: AudioChunk) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.fixture
def client(ros_context):
    c = Client(ros_context, namespace="/mictest")
    c.base = "/mictest/anyref_mic"
    yield c
    c.close()


def diagnostics_of(messages: list, name: str) -> list[DiagnosticStatus]:
    return [s for m in messages for s in m.status if s.name == name]


@pytest.mark.parametrize("encoding", ["s16le", "f32le"])
def test_published_samples_are_the_device_samples_and_stamps_never_go_back(client, tmp_path, encoding):
    if encoding == "s16le":
        if mic_audio.have_espeak():
            samples, rate = mic_audio.speak("find the red circle", tmp_path)
            assert rate == RATE
        else:
            samples = (np.random.default_rng(0).normal(0, 3000, RATE * 2)).astype("<i2")
    else:
        t = np.arange(int(RATE * 1.5)) / RATE
        samples = (0.5 * np.sin(2 * np.pi * 440 * t) * np.linspace(0, 1, len(t))).astype("<f4")
    raw = tmp_path / "mic.raw"
    raw.write_bytes(samples.tobytes())
    home = tmp_path / "home"
    mic_audio.write_asoundrc(home, raw)

    chunks: list[AudioChunk] = []
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5000, reliability=ReliabilityPolicy.RELIABLE)
    sub = client.node.create_subscription(AudioChunk, "/mictest/audio", chunks.append, qos)
    diagnostics = client.listen(DiagnosticArray, "/diagnostics")
    mic = mic_audio.NodeProcess("anyref_mic", "-p", "device:=filemic", "-p", f"sample_rate:={RATE}",
                                "-p", f"encoding:={encoding}", "-p", "autostart:=false",
                                namespace="/mictest", params_file=REPO / "config" / "mic.yaml",
                                env={"HOME": str(home)})
    try:
        assert client.lifecycle_set("configure")
        client.wait_for(lambda: sub.get_publisher_count() > 0, 30, "the audio publisher to match")
        assert client.lifecycle_set("activate")
        client.wait_for(lambda: sum(len(chunk_samples(c)) for c in list(chunks)) >= len(samples), 30,
                        "the file's samples")
        got = list(chunks)
        heard = np.concatenate([chunk_samples(c) for c in got])
        np.testing.assert_array_equal(heard[:len(samples)], samples)  # exactly, in order
        assert {(c.sample_rate, c.channels, c.encoding, c.header.frame_id) for c in got} == \
            {(RATE, 1, encoding, "microphone")}
        assert all(len(c.data) == int(RATE * 0.1) * samples.itemsize for c in got), "100 ms chunks"
        stamps = [stamp_ns(c) for c in got]
        assert all(b > a for a, b in zip(stamps, stamps[1:])), "stamps went backwards"
        status = client.wait_for(lambda: [s for s in diagnostics_of(diagnostics, "anyref_mic: microphone")
                                          if s.level == DiagnosticStatus.OK], 10, "OK diagnostics")[-1]
        values = {kv.key: kv.value for kv in status.values}
        span = (stamps[-1] - stamps[0]) / 1e9
        print(f"{encoding}: {len(got)} chunks, stamps span {span:.3f} s; diagnostics {values}")
        assert int(values["chunks_published"]) > 0 and values["device"] == "filemic"
        assert "overruns" in values and "dropped_blocks" in values
        assert not mic.matching("Traceback") and not mic.matching("[ERROR]"), "\n".join(mic.lines[-20:])
    finally:
        code = mic.stop()
    assert code == 0, "\n".join(mic.lines[-20:])


def test_missing_device_names_the_devices_that_exist_and_retries(client, tmp_path):
    raw = tmp_path / "mic.raw"
    raw.write_bytes(bytes(RATE * 2))
    home = tmp_path / "home"
    mic_audio.write_asoundrc(home, raw)
    diagnostics = client.listen(DiagnosticArray, "/diagnostics")
    mic = mic_audio.NodeProcess("anyref_mic", "-p", "device:=nosuchdevice", "-p", "retry_s:=0.5",
                                namespace="/mictest", env={"HOME": str(home)})
    try:
        lines = mic.wait_for_lines("cannot capture from device 'nosuchdevice'", count=2, timeout=30)
        assert "attempt 1" in lines[0] and "attempt 2" in lines[1]
        for line in lines:
            assert "filemic" in line, "the error names the devices that exist"
            assert "Set the device parameter" in line
        assert mic.proc.poll() is None, "the node keeps running"
        status = client.wait_for(lambda: diagnostics_of(diagnostics, "anyref_mic: microphone"), 10,
                                 "diagnostics")[-1]
        assert status.level == DiagnosticStatus.ERROR and "no such input device" in status.message
        assert client.lifecycle_state() == "active"
        assert not mic.matching("Traceback")
    finally:
        code = mic.stop()
    assert code == 0


def test_parameters_are_declared_and_documented_in_config_mic_yaml(ros_context):
    import yaml

    from anyref_ros.nodes.mic import MicNode
    from anyref_ros.parameters import MIC_PARAMS

    node = MicNode(context=ros_context)
    try:
        for p in MIC_PARAMS:
            assert node.get_parameter(p.name).value == p.default
            (descriptor,) = node.describe_parameters([p.name])
            assert descriptor.description.startswith(p.description)
    finally:
        node.destroy_node()
    values = yaml.safe_load((REPO / "config" / "mic.yaml").read_text())["/**"]["ros__parameters"]
    assert values == {p.name: p.default for p in MIC_PARAMS}


def test_stamp_clock_uses_adc_time_else_the_sample_count_and_never_goes_back():
    from anyref_ros.nodes.mic import StampClock

    clock = StampClock(ros_start_ns=1_000_000_000_000, stream_start_s=50.0, rate=16000)
    # PortAudio reports the ADC time of the first sample: moved onto the ROS clock.
    assert clock.stamp(50.25, 1600) == 1_000_000_000_000 + 250_000_000
    assert clock.stamp(50.35, 1600) == 1_000_000_000_000 + 350_000_000
    # An earlier ADC time (driver jitter) still gives a later stamp.
    assert clock.stamp(50.30, 1600) == 1_000_000_000_000 + 350_000_001
    # No ADC time (0): stream start + samples captured before the chunk / rate.
    fallback = StampClock(ros_start_ns=2_000_000_000, stream_start_s=0.0, rate=16000)
    assert [fallback.stamp(0.0, 1600) for _ in range(3)] == [2_000_000_000, 2_100_000_000, 2_200_000_000]
    assert fallback.from_count == 3 and clock.from_adc == 3
