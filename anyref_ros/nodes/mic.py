"""anyref_mic: the ROS 2 lifecycle node ``anyref_mic``, a microphone.

Captures with PortAudio (``sounddevice``) while active and publishes
``audio`` (anyref_ros/AudioChunk, ``s16le`` or ``f32le``, ``chunk_ms`` per
message). Parameters: :data:`anyref_ros.parameters.MIC_PARAMS` (config/mic.yaml).

QoS: RELIABLE, KEEP_LAST ``queue_depth`` (default 100 chunks = 10 s), VOLATILE.
A RELIABLE publisher serves both RELIABLE subscribers (anyref_speech: no chunk
lost between processes, even when a device delivers in bursts) and BEST_EFFORT
``sensor_data`` ones (the anyref node's ``audio`` subscription).

Stamps: each chunk's ``header.stamp`` is the capture time of its first
sample: PortAudio's ``inputBufferAdcTime`` moved onto the ROS clock by the
offset between the stream's clock (``stream.time``) and the ROS clock,
measured when the stream starts. Where PortAudio reports no ADC time (0),
the stamp is the stream's start time on the ROS clock plus the samples
captured before the chunk divided by the rate. Stamps never go backwards
(each is at least 1 ns after the previous one).

Threads: the PortAudio callback only copies the block into a bounded queue
(5 s of chunks; a full queue drops the block and counts it); a capture
thread opens the device, publishes from the queue and watches the stream.
A missing device, an unsupported rate or format, or a device that stops
delivering (unplugged) gives one log line naming the input devices that do
exist, then a new attempt every ``retry_s`` (PortAudio's device list is
re-read each time, so a device plugged in later is found); the node never
exits for it. ``/diagnostics`` (diagnostic_msgs/DiagnosticArray) says what is
wrong, and counts chunks published, overruns and dropped blocks.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import NoReturn, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time

from anyref_ros.msg import AudioChunk
from anyref_ros.nodes.common import declare_parameters, run_node
from anyref_ros.parameters import MIC_PARAMS
from anyref_ros.workers import Worker, WorkerStuck

NODE_NAME = "anyref_mic"
DTYPES = {"s16le": "int16", "f32le": "float32"}
#: Audio the callback queue holds before it drops blocks (seconds).
QUEUE_SECONDS = 5.0
#: A running stream that delivers nothing for this long (and 5 chunks) is reopened.
STALL_S = 2.0
#: Attempts logged one by one before the log goes to one line a minute.
LOGGED_ATTEMPTS = 3

__all__ = ["MicNode", "main", "NODE_NAME", "StampClock", "input_devices"]


def input_devices(sd) -> list[str]:
    """``"index: name (N ch, R Hz)"`` for every PortAudio input device."""
    out = []
    try:
        for i, d in enumerate(sd.query_devices()):
            if d.get("max_input_channels", 0) > 0:
                out.append(f"{i}: {d['name']} ({d['max_input_channels']} ch, {d['default_samplerate']:g} Hz)")
    except Exception as exc:  # noqa: BLE001 - PortAudio itself failed
        out.append(f"(PortAudio cannot list devices: {exc})")
    return out


class StampClock:
    """Chunk stamps (ns on the ROS clock) from PortAudio ADC times or the sample count."""

    def __init__(self, ros_start_ns: int, stream_start_s: float, rate: int) -> None:
        self.ros_start_ns = int(ros_start_ns)
        self.offset_ns = int(ros_start_ns) - int(round(stream_start_s * 1e9))  # ROS - stream clock
        self.rate = int(rate)
        self.frames = 0  # frames captured before the next chunk
        self.last_ns: Optional[int] = None
        self.from_adc = 0  # chunks stamped from the ADC time
        self.from_count = 0  # chunks stamped from the sample count

    def stamp(self, adc_time_s: float, frames: int) -> int:
        if adc_time_s and adc_time_s > 0 and math.isfinite(adc_time_s):
            ns = int(round(adc_time_s * 1e9)) + self.offset_ns
            self.from_adc += 1
        else:
            ns = self.ros_start_ns + self.frames * 1_000_000_000 // self.rate
            self.from_count += 1
        if self.last_ns is not None and ns <= self.last_ns:
            ns = self.last_ns + 1
        self.last_ns = ns
        self.frames += int(frames)
        return ns


@dataclass
class _Block:
    data: bytes
    frames: int
    adc_time: float
    overflow: bool


class MicNode(LifecycleNode):
    """The ``anyref_mic`` node (see the module docstring)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_parameters(self, MIC_PARAMS)
        self._pub = None
        self._capture = Worker("anyref_mic_capture", self._capture_loop, report=self.get_logger().error)
        self._delivered = False
        self._lock = threading.Lock()
        self._status = (DiagnosticStatus.WARN, "unconfigured")
        self._device_name = ""
        self._rate = 0
        self._stats = {"chunks_published": 0, "overruns": 0, "dropped_blocks": 0, "open_attempts": 0,
                       "reopens": 0, "stamps_from_adc": 0, "stamps_from_count": 0}
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics)

    def param(self, name: str):
        return self.get_parameter(name).value

    # ------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        encoding = self.param("encoding")
        if encoding not in DTYPES:
            return self._fail(f"parameter encoding={encoding!r}: expected one of {', '.join(DTYPES)}")
        try:
            import sounddevice  # noqa: F401 - PortAudio loads here
        except (OSError, ImportError) as exc:
            return self._fail(f"PortAudio is not available ({exc}); install libportaudio2 and sounddevice")
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.param("queue_depth"),
                         reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        self._pub = self.create_publisher(AudioChunk, "audio", qos)
        self._set_status(DiagnosticStatus.WARN, "configured, not capturing (inactive)")
        self.get_logger().info(f"configured: will publish {self.param('encoding')} chunks of "
                               f"{self.param('chunk_ms')} ms on {self._pub.topic_name} (RELIABLE)")
        return TransitionCallbackReturn.SUCCESS

    def _fail(self, reason: str) -> TransitionCallbackReturn:
        self.get_logger().error(reason)
        self._set_status(DiagnosticStatus.ERROR, reason)
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._capture.start()
        except WorkerStuck as exc:
            self.get_logger().error(f"cannot activate: {exc}")
            self._set_status(DiagnosticStatus.ERROR, str(exc))
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_capture()
        self._set_status(DiagnosticStatus.WARN, "inactive: not capturing")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_capture()
        if self._pub is not None:
            self.destroy_publisher(self._pub)
            self._pub = None
        self._set_status(DiagnosticStatus.WARN, "unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_capture()
        return TransitionCallbackReturn.SUCCESS

    def stop_capture(self) -> None:
        self._capture.stop()

    # ------------------------------------------------------------ capture
    def _capture_loop(self, stop: threading.Event) -> None:
        attempt = 0
        while not stop.is_set():
            attempt += 1
            with self._lock:
                self._stats["open_attempts"] += 1
            self._delivered = False
            try:
                try:
                    self._run_stream(attempt, stop)
                except Exception:  # noqa: BLE001
                    if stop.is_set() or not self.context.ok():
                        break  # shutting down (the publisher's context is gone): not a device problem
                    if self._delivered:
                        attempt = 1  # it had worked: a new outage, counted afresh
                    raise
            except _DeviceProblem as exc:
                self._report_problem(str(exc), attempt)
            except Exception as exc:  # noqa: BLE001 - PortAudio errors of every kind
                self._report_problem(f"{type(exc).__name__}: {exc}", attempt)
            if stop.wait(self.param("retry_s")):
                break

    def _report_problem(self, problem: str, attempt: int) -> None:
        import sounddevice as sd

        devices = input_devices(sd)
        listed = "; ".join(devices) if devices else "none (no input device at all)"
        text = (f"cannot capture from device {self.param('device') or '(system default)'!r}: {problem}. "
                f"Input devices: {listed}. Set the device parameter to one of them "
                f"(name, part of it, or index); retrying every {self.param('retry_s'):g} s "
                f"(attempt {attempt})")
        self._set_status(DiagnosticStatus.ERROR, f"{problem} (attempt {attempt}; retrying)")
        log = self.get_logger()
        if attempt <= LOGGED_ATTEMPTS:
            log.error(text)
        else:
            log.error(text, throttle_duration_sec=60.0)

    def _resolve(self, sd):
        """(device index or None, name, rate, channels, dtype), checked with PortAudio."""
        wanted = str(self.param("device")).strip()
        device = None if wanted == "" else (int(wanted) if wanted.isdigit() else wanted)
        try:
            info = sd.query_devices(device, "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise _DeviceProblem(f"no such input device ({exc})") from None
        channels = int(self.param("channels"))
        if info["max_input_channels"] < channels:
            raise _DeviceProblem(f"{info['name']!r} has {info['max_input_channels']} input channel(s), "
                                 f"{channels} asked (parameter channels)")
        rate = int(self.param("sample_rate")) or int(round(info["default_samplerate"]))
        dtype = DTYPES[self.param("encoding")]
        try:
            sd.check_input_settings(device=info["index"], channels=channels, dtype=dtype, samplerate=rate)
        except Exception as exc:  # noqa: BLE001 - PortAudioError or ValueError
            raise _DeviceProblem(f"{info['name']!r} does not capture {channels} ch {dtype} at {rate} Hz "
                                 f"({exc}); set sample_rate (0 = the device's default, "
                                 f"{info['default_samplerate']:g} Hz)") from None
        return info["index"], info["name"], rate, channels, dtype

    def _refresh_portaudio(self, sd) -> None:
        """Re-read PortAudio's device list (it is read once, at initialisation)."""
        try:
            sd._terminate()
            sd._initialize()
        except Exception as exc:  # noqa: BLE001 - keep the old list
            self.get_logger().debug(f"PortAudio re-initialisation failed: {exc}")

    def _run_stream(self, attempt: int, stop: threading.Event) -> None:
        import sounddevice as sd

        if attempt > 1:
            self._refresh_portaudio(sd)
        index, name, rate, channels, dtype = self._resolve(sd)
        frames = max(1, int(round(rate * self.param("chunk_ms") / 1000.0)))
        blocks: queue.Queue[_Block] = queue.Queue(maxsize=max(8, int(math.ceil(QUEUE_SECONDS * rate / frames))))

        def callback(indata, n, time_info, status) -> None:  # PortAudio's thread: no rclpy here
            block = _Block(bytes(indata), n, float(time_info.inputBufferAdcTime), bool(status.input_overflow))
            try:
                blocks.put_nowait(block)
            except queue.Full:
                with self._lock:
                    self._stats["dropped_blocks"] += 1

        stream = sd.RawInputStream(device=index, samplerate=rate, channels=channels, dtype=dtype,
                                   blocksize=frames, callback=callback)
        with self._lock:
            self._device_name, self._rate = name, rate
        try:
            ros_start = self.get_clock().now().nanoseconds
            clock = StampClock(ros_start, stream.time, rate)
            stream.start()
            self._set_status(DiagnosticStatus.OK, f"capturing from {name!r} at {rate} Hz")
            self.get_logger().info(f"capturing from {name!r}: {channels} ch {self.param('encoding')} at "
                                   f"{rate} Hz, {frames} frames per chunk")
            last_block = time.monotonic()
            stall = max(STALL_S, 5 * frames / rate)
            while not stop.is_set():
                try:
                    block = blocks.get(timeout=0.1)
                except queue.Empty:
                    if not stream.active or time.monotonic() - last_block > stall:
                        with self._lock:
                            self._stats["reopens"] += 1
                        raise _DeviceProblem(f"{name!r} stopped delivering audio "
                                             f"({'stream ended' if not stream.active else f'nothing for {stall:g} s'}; "
                                             "unplugged?)")
                    continue
                last_block = time.monotonic()
                self._publish(block, clock, rate, channels)
                self._delivered = True
        finally:
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001 - the device may be gone already
                pass

    def _publish(self, block: _Block, clock: StampClock, rate: int, channels: int) -> None:
        stamp = clock.stamp(block.adc_time, block.frames)
        msg = AudioChunk()
        msg.header.stamp = Time(nanoseconds=stamp).to_msg()
        msg.header.frame_id = self.param("frame_id")
        msg.sample_rate = rate
        msg.channels = channels
        msg.encoding = self.param("encoding")
        msg.data = block.data  # the device's samples as they came (bytes: fast assignment)
        pub = self._pub
        if pub is not None:
            pub.publish(msg)
        with self._lock:
            self._stats["chunks_published"] += 1
            self._stats["overruns"] += int(block.overflow)
            self._stats["stamps_from_adc"] = clock.from_adc
            self._stats["stamps_from_count"] = clock.from_count

    # ------------------------------------------------------------ diagnostics
    def _set_status(self, level: int, message: str) -> None:
        with self._lock:
            self._status = (level, message)

    def _publish_diagnostics(self) -> None:
        with self._lock:
            (level, message), stats = self._status, dict(self._stats)
            name, rate = self._device_name, self._rate
        status = DiagnosticStatus(name=f"{self.get_name()}: microphone", hardware_id=name or str(self.param("device")),
                                  level=level, message=message)
        values = {"device": name, "sample_rate": rate, "channels": self.param("channels"),
                  "encoding": self.param("encoding"), "chunk_ms": self.param("chunk_ms"), **stats}
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


class _DeviceProblem(RuntimeError):
    """The device cannot be used now; the message says why (no traceback needed)."""


def main(args: Optional[list[str]] = None) -> NoReturn:
    """Console entry point: ``anyref_mic --ros-args --params-file config/mic.yaml``."""
    run_node(lambda: MicNode(), args, threads=2, release=lambda node: node.stop_capture())


if __name__ == "__main__":
    main()
