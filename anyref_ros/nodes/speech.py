"""anyref_speech: the ROS 2 lifecycle node ``anyref_speech``, spoken queries.

``audio`` (anyref_ros/AudioChunk, any rate and channel count) in; for every
utterance heard, the referring expression on ``query`` (std_msgs/String:
the anyref node answers it like a typed query, on its ``~/results``) and a
record on ``~/utterances`` (std_msgs/String holding JSON: ``text`` (the
transcript), ``query`` (what went to ``query``), ``start``/``end`` (ROS
time of the speech, s), ``confidence``, ``engine``, ``latency_s`` (end of
speech -> published)). Parameters: :data:`anyref_ros.parameters.SPEECH_PARAMS`
(config/speech.yaml).

Pipeline (ROS-free parts in :mod:`anyref_ros.audio`): each chunk is mixed to
mono and resampled to 16 kHz (``vad.StreamResampler``); the Silero VAD cuts
utterances (``vad.UtteranceSegmenter``: pre-roll, end after
``end_silence_s`` of silence, too short / too long dropped with a log line);
a worker thread runs the recogniser (``asr``: PocketSphinx with the command
grammar of ``grammar``, or Whisper) so audio keeps flowing while it works;
at most ``max_pending`` utterances wait, one more is dropped with a log line.
Empty transcripts, low-confidence ones and (with ``wake_phrase``) ones that
do not start with the wake phrase are dropped with a log line. The command
words and the article in front are cut from the transcript ("find the red
circle" -> query "red circle").

The audio subscription follows the publishers found (``audio_qos`` auto, as
rosbag2 does: RELIABLE when all are or none is seen yet, BEST_EFFORT when
any is, which hears both kinds), looked at again every second;
``/diagnostics`` says which it chose and why (``audio_reliability``,
``audio_reliability_why``, ``audio_publishers``). A publisher the
subscription cannot hear (BEST_EFFORT under ``audio_qos`` reliable) is a
WARN in ``/diagnostics``. The VAD clips
samples to [-1, 1] and resets a non-finite state (``vad_resets``). Speech of
up to ``max_utterance_s`` is recognised: its pre-roll and trailing silence
are trimmed, never the speech, to fit the recogniser's 30 s.

``/diagnostics`` says whether audio arrives and counts what was heard, sent
and dropped, and why.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from anyref_ros import ros_env
from anyref_ros.audio import asr as asr_mod
from anyref_ros.audio.grammar import CommandGrammar, GrammarError, normalise
from anyref_ros.audio.vad import SAMPLE_RATE, SileroVAD, StreamResampler, Utterance, UtteranceSegmenter
from anyref_ros.msg import AudioChunk
from anyref_ros.nodes.conversions import ConversionError, audio_to_numpy
from anyref_ros.nodes.common import declare_parameters, run_node
from anyref_ros.parameters import SPEECH_PARAMS
from anyref_ros.workers import Worker, WorkerStuck

NODE_NAME = "anyref_speech"
#: Longest chunk accepted (seconds); longer ones are dropped before any work.
MAX_CHUNK_S = 10.0
#: Audio subscription depth (chunks), whatever its reliability.
AUDIO_DEPTH = 200
#: How often (s) the audio publishers are looked at (audio_qos=auto adapts to them).
QOS_CHECK_S = 1.0
#: No audio for this long: /diagnostics warns.
SILENT_WARN_S = 5.0

__all__ = ["SpeechNode", "main", "NODE_NAME"]


@dataclass
class _Job:
    audio: object  # float32 16 kHz
    start: float  # ROS time (s) of the speech
    end: float
    closed: float  # monotonic time the utterance was cut


class SpeechNode(LifecycleNode):
    """The ``anyref_speech`` node (see the module docstring)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_parameters(self, SPEECH_PARAMS)
        self._lock = threading.Lock()
        self._audio_group = MutuallyExclusiveCallbackGroup()
        self._status = (DiagnosticStatus.WARN, "unconfigured")
        self._stats = {k: 0 for k in ("chunks", "bad_chunks", "utterances", "queries", "dropped_short",
                                      "dropped_long", "dropped_busy", "empty", "low_confidence", "no_wake_phrase")}
        self._last = {"transcript": "", "query": "", "recognition_s": 0.0, "latency_s": 0.0}
        self.recognizer: Optional[asr_mod.Recognizer] = None
        self.grammar = CommandGrammar()
        self._segmenter: Optional[UtteranceSegmenter] = None
        self._resampler: Optional[StreamResampler] = None
        self._rate = 0
        self._n16 = 0  # 16 kHz samples given to the segmenter since its reset
        self._marks: deque[tuple[int, float]] = deque(maxlen=4096)  # (n16 at a chunk's start, its stamp s)
        self._last_audio = 0.0
        self._sub = None
        self._sub_lock = threading.Lock()  # the subscription: lifecycle transitions vs the QoS check
        self._sub_reliability: Optional[ReliabilityPolicy] = None
        self._audio_pubs: tuple = ()  # (node, reliability) of the audio publishers last seen
        self._qos_warning = ""  # publishers the subscription cannot hear, in words
        self._qos_why = ""  # why the subscription has its reliability, in words
        self._query_pub = self._utt_pub = None
        self._jobs: Optional[queue.Queue] = None
        self._worker = Worker("anyref_speech_asr", self._recognise_loop, report=self.get_logger().error)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics)
        self.create_timer(QOS_CHECK_S, self._check_audio_qos, callback_group=self._audio_group)

    def param(self, name: str):
        return self.get_parameter(name).value

    # ------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (GrammarError, FileNotFoundError, ValueError, ImportError, OSError) as exc:
            return self._fail(f"cannot configure: {exc}")
        except Exception as exc:  # noqa: BLE001 - e.g. a broken checkpoint: say it, stay up
            return self._fail(f"cannot configure: {type(exc).__name__}: {exc}")
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        p = self.param
        for name in ("engine", "audio_qos"):
            choices = next(x.choices for x in SPEECH_PARAMS if x.name == name)
            if p(name) not in choices:
                raise ValueError(f"parameter {name}={p(name)!r}: expected one of {', '.join(choices)}")
        if p("max_utterance_s") <= p("min_utterance_s"):
            raise ValueError(f"max_utterance_s ({p('max_utterance_s')}) must be larger than min_utterance_s "
                             f"({p('min_utterance_s')})")
        wake = p("wake_phrase")
        if wake.strip() and not normalise(wake):
            raise ValueError(f"wake_phrase {wake!r} has no words (letters or digits); set words, or \"\" for none")
        if p("grammar"):
            grammar = ros_env.resolve_path(p("grammar"), "grammar file", kind="file")
            self.grammar = CommandGrammar.from_yaml(grammar, wake_phrase=wake)
        else:
            self.grammar = CommandGrammar(wake_phrase=wake)
        log = self.get_logger()
        t = time.monotonic()
        if p("engine") == "pocketsphinx":
            use_grammar = self.grammar if p("grammar") else None
            rec = asr_mod.PocketSphinxRecognizer(use_grammar)
            if rec.dropped_words:
                log.warning(f"words of {self.grammar.source} missing from PocketSphinx's dictionary were dropped "
                            f"from the grammar: {', '.join(rec.dropped_words)}")
            if rec.grammar is not None:
                self.grammar = rec.grammar
        else:
            if not p("asr_model"):
                raise ValueError("engine 'whisper' needs asr_model: the folder of a Whisper checkpoint "
                                 "(save_pretrained of openai/whisper-tiny/base/small/...)")
            folder = ros_env.resolve_path(p("asr_model"), "asr_model", kind="folder")
            rec = asr_mod.WhisperRecognizer(folder, device=p("asr_device"))
        self.recognizer = rec
        self._segmenter = UtteranceSegmenter(
            SileroVAD(), threshold=p("vad_threshold"), pre_roll_s=p("pre_roll_s"), end_silence_s=p("end_silence_s"),
            min_utterance_s=p("min_utterance_s"), max_utterance_s=p("max_utterance_s"))
        self._query_pub = self.create_publisher(String, "query", 10)
        self._utt_pub = self.create_publisher(String, "~/utterances", 10)
        mode = (f"grammar {self.grammar.source}" if p("engine") == "pocketsphinx" and p("grammar")
                else "free dictation" if p("engine") == "pocketsphinx" else f"checkpoint {p('asr_model')}")
        log.info(f"configured: {p('engine')} ({mode}) ready in {time.monotonic() - t:.2f} s"
                 + (f"; wake phrase {self.grammar.wake_phrase!r}" if self.grammar.wake_phrase else ""))
        self._set_status(DiagnosticStatus.WARN, "configured, not listening (inactive)")

    def _fail(self, reason: str) -> TransitionCallbackReturn:
        self.get_logger().error(reason + "; fix the parameter, then configure again")
        self._set_status(DiagnosticStatus.ERROR, reason)
        self._release_outputs()
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._jobs = queue.Queue(maxsize=int(self.param("max_pending")))
        try:
            self._worker.start(self._jobs)  # this run's queue: a stuck earlier run never reads it
        except WorkerStuck as exc:
            return self._refuse_activation(exc)
        self._reset_stream(0)
        with self._sub_lock:
            self._audio_pubs = self._audio_publishers()
            wanted, self._qos_why = self._wanted_reliability(self._audio_pubs)
            self._subscribe(wanted)
        self._last_audio = time.monotonic()
        self._set_status(DiagnosticStatus.OK, "listening")
        self.get_logger().info(f"listening on {self._sub.topic_name} ({self._qos_words()}); queries go to "
                               f"{self._query_pub.topic_name}")
        if self._qos_warning:
            self.get_logger().warning(self._qos_warning)
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------ audio QoS (executor, audio group)
    def _subscribe(self, reliability: ReliabilityPolicy) -> None:
        if self._sub is not None:
            self.destroy_subscription(self._sub)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=AUDIO_DEPTH, reliability=reliability)
        self._sub = self.create_subscription(AudioChunk, "audio", self._on_audio, qos, callback_group=self._audio_group)
        self._sub_reliability = reliability
        self._qos_warning = self._mismatch(self._audio_pubs)

    def _audio_publishers(self) -> tuple:
        """(node, reliability) of every publisher on the audio topic, sorted."""
        topic = self.resolve_topic_name("audio")
        return tuple(sorted((f"{i.node_namespace.rstrip('/')}/{i.node_name}", i.qos_profile.reliability)
                            for i in self.get_publishers_info_by_topic(topic)))

    def _wanted_reliability(self, publishers: tuple) -> tuple[ReliabilityPolicy, str]:
        """The subscription's reliability and why, in words. audio_qos=auto, as
        rosbag2 does: RELIABLE when every publisher is (or none is known yet),
        else BEST_EFFORT, which hears both kinds (a RELIABLE publisher matches a
        BEST_EFFORT subscription, never the other way round)."""
        mode = self.param("audio_qos")
        if mode == "reliable":
            return ReliabilityPolicy.RELIABLE, "audio_qos=reliable"
        if mode == "sensor_data":
            return ReliabilityPolicy.BEST_EFFORT, "audio_qos=sensor_data"
        best_effort = sum(r == ReliabilityPolicy.BEST_EFFORT for _, r in publishers)
        if best_effort:
            return ReliabilityPolicy.BEST_EFFORT, (f"auto: {best_effort} of {len(publishers)} audio publisher(s) "
                                                   "BEST_EFFORT; a BEST_EFFORT subscription hears both kinds")
        if publishers:
            return ReliabilityPolicy.RELIABLE, f"auto: every audio publisher ({len(publishers)}) is RELIABLE"
        return ReliabilityPolicy.RELIABLE, ("auto: no audio publisher seen yet; RELIABLE until one that is "
                                            "BEST_EFFORT appears (looked at every second)")

    def _mismatch(self, publishers: tuple) -> str:
        """The publishers this subscription cannot hear (a RELIABLE subscription
        matches no BEST_EFFORT publisher), in words; "" when it hears them all."""
        if self._sub_reliability != ReliabilityPolicy.RELIABLE:
            return ""
        deaf = [node for node, r in publishers if r == ReliabilityPolicy.BEST_EFFORT]
        if not deaf:
            return ""
        return (f"cannot hear {len(deaf)} BEST_EFFORT audio publisher(s) ({', '.join(deaf)}): "
                f"audio_qos={self.param('audio_qos')} subscribes RELIABLE; set audio_qos to auto or sensor_data")

    def _check_audio_qos(self) -> None:
        """Looks at the audio publishers again: a new one may need another subscription."""
        with self._sub_lock:
            if self._sub is None:
                return
            publishers = self._audio_publishers()
            if publishers == self._audio_pubs:
                return
            self._audio_pubs = publishers
            wanted, self._qos_why = self._wanted_reliability(publishers)
            if wanted != self._sub_reliability:
                self._subscribe(wanted)
                self.get_logger().info(f"audio publishers changed: {self._qos_words()}")
            else:
                self._qos_warning = self._mismatch(publishers)
            if self._qos_warning:
                self.get_logger().warning(self._qos_warning)

    def _qos_words(self) -> str:
        kind = "RELIABLE" if self._sub_reliability == ReliabilityPolicy.RELIABLE else "BEST_EFFORT"
        return f"{kind} ({self._qos_why})"

    def _refuse_activation(self, exc: WorkerStuck) -> TransitionCallbackReturn:
        self.get_logger().error(f"cannot activate: {exc}")
        self._set_status(DiagnosticStatus.ERROR, str(exc))
        return TransitionCallbackReturn.FAILURE

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_listening()
        self._set_status(DiagnosticStatus.WARN, "inactive: not listening")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_listening()
        self._release_outputs()
        self._set_status(DiagnosticStatus.WARN, "unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        self._stop_listening()

    def _stop_listening(self) -> None:
        with self._sub_lock:
            if self._sub is not None:
                self.destroy_subscription(self._sub)
                self._sub = None
            self._sub_reliability, self._audio_pubs, self._qos_warning, self._qos_why = None, (), "", ""
        self._worker.stop()

    def _release_outputs(self) -> None:
        for pub in (self._query_pub, self._utt_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self._query_pub = self._utt_pub = None
        self.recognizer = None
        self._segmenter = None

    # ------------------------------------------------------------ audio in (executor thread)
    def _reset_stream(self, rate: int) -> None:
        self._rate = rate
        self._resampler = StreamResampler(rate) if rate else None
        if self._segmenter is not None:
            self._segmenter.reset()
        self._n16 = 0
        self._marks.clear()

    def _on_audio(self, msg: AudioChunk) -> None:
        log = self.get_logger()
        self._last_audio = time.monotonic()
        if self._segmenter is None:
            return  # cleaned up while this chunk waited
        try:
            mono, rate = audio_to_numpy(msg, MAX_CHUNK_S, mono=True)
        except ConversionError as exc:
            with self._lock:
                self._stats["bad_chunks"] += 1
            log.warning(f"dropping an audio chunk: {exc}", throttle_duration_sec=5.0)
            return
        if rate != self._rate:
            if self._rate:
                log.info(f"audio rate changed {self._rate} -> {rate} Hz: the stream restarts")
            self._reset_stream(rate)
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self._marks.append((self._n16, stamp))
        x = self._resampler.push(mono)
        utterances = self._segmenter.push(x)
        self._n16 += len(x)
        with self._lock:
            self._stats["chunks"] += 1
        for u in utterances:
            self._on_utterance(u)

    def _ros_time(self, t: float) -> float:
        """Segmenter time (s since the stream restarted) -> ROS time (s), from the chunk stamps."""
        n = t * SAMPLE_RATE
        if not self._marks:
            return 0.0
        best = self._marks[0]
        for mark in reversed(self._marks):
            if mark[0] <= n:
                best = mark
                break
        return best[1] + (n - best[0]) / SAMPLE_RATE

    def _on_utterance(self, u: Utterance) -> None:
        log = self.get_logger()
        with self._lock:
            self._stats["utterances"] += 1
        if u.verdict == "too_short":
            with self._lock:
                self._stats["dropped_short"] += 1
            log.info(f"dropped a sound of {u.duration:.2f} s: shorter than min_utterance_s="
                     f"{self.param('min_utterance_s'):g}", throttle_duration_sec=5.0)
            return
        if u.verdict == "too_long":
            with self._lock:
                self._stats["dropped_long"] += 1
            log.warning(f"dropped speech longer than max_utterance_s={self.param('max_utterance_s'):g} s "
                        "(not a command); listening for the next one after a pause")
            return
        # max_utterance_s (<= 30 s) of speech with its pre-roll and trailing silence may pass the
        # recogniser's limit: the silences are trimmed, never the speech.
        job = _Job(u.audio_at_most(asr_mod.MAX_SECONDS), self._ros_time(u.start), self._ros_time(u.end),
                   time.monotonic())
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            with self._lock:
                self._stats["dropped_busy"] += 1
            log.warning(f"recogniser busy: dropped an utterance of {u.duration:.2f} s "
                        f"(max_pending={self.param('max_pending')})")

    # ------------------------------------------------------------ recognition (worker thread)
    def _recognise_loop(self, stop: threading.Event, jobs: queue.Queue) -> None:
        while not stop.is_set():
            try:
                job = jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._recognise(job)
            except Exception as exc:  # noqa: BLE001 - one bad utterance must not stop listening
                if stop.is_set() or not self.context.ok():
                    return
                self.get_logger().error(f"recognition failed: {type(exc).__name__}: {exc}")

    def _recognise(self, job: _Job) -> None:
        log = self.get_logger()
        rec = self.recognizer
        if rec is None:
            return
        t = time.monotonic()
        transcript = rec.transcribe(job.audio)
        took = time.monotonic() - t
        text = normalise(transcript.text)
        seconds = job.end - job.start
        if not text:
            with self._lock:
                self._stats["empty"] += 1
            log.info(f"dropped {seconds:.2f} s of speech: nothing recognised")
            return
        if transcript.confidence < self.param("min_confidence"):
            with self._lock:
                self._stats["low_confidence"] += 1
            log.info(f"dropped {text!r}: confidence {transcript.confidence:.2f} < min_confidence="
                     f"{self.param('min_confidence'):g}")
            return
        rest = self.grammar.strip_wake(text)
        if rest is None:
            with self._lock:
                self._stats["no_wake_phrase"] += 1
            log.info(f"ignored {text!r}: it does not start with the wake phrase {self.grammar.wake_phrase!r}")
            return
        query = self.grammar.expression(rest)
        if not query:
            with self._lock:
                self._stats["empty"] += 1
            log.info(f"dropped {text!r}: no referring expression after the wake phrase/command")
            return
        pubs = (self._query_pub, self._utt_pub)
        if None in pubs:
            return
        now = self.get_clock().now().nanoseconds * 1e-9
        latency = now - job.end if job.end > 0 else time.monotonic() - job.closed
        pubs[0].publish(String(data=query))
        record = {"text": text, "query": query, "start": round(job.start, 4), "end": round(job.end, 4),
                  "confidence": round(float(transcript.confidence), 4), "engine": rec.engine,
                  "recognition_s": round(took, 4), "latency_s": round(latency, 4)}
        pubs[1].publish(String(data=json.dumps(record)))
        with self._lock:
            self._stats["queries"] += 1
            self._last.update(transcript=text, query=query, recognition_s=round(took, 3), latency_s=round(latency, 3))
        log.info(f"heard {text!r} -> query {query!r} (confidence {transcript.confidence:.2f}, "
                 f"{seconds:.2f} s of speech, recognised in {took:.2f} s)")

    # ------------------------------------------------------------ diagnostics
    def _set_status(self, level: int, message: str) -> None:
        with self._lock:
            self._status = (level, message)

    def _publish_diagnostics(self) -> None:
        with self._lock:
            (level, message), stats, last = self._status, dict(self._stats), dict(self._last)
        segmenter, qos_warning = self._segmenter, self._qos_warning
        if self._sub is not None:
            silent = time.monotonic() - self._last_audio
            if qos_warning:
                level, message = DiagnosticStatus.WARN, qos_warning
            elif silent > SILENT_WARN_S:
                level, message = DiagnosticStatus.WARN, f"no audio on {self._sub.topic_name} for {silent:.0f} s"
            elif segmenter is not None and segmenter.in_speech:
                message = "listening (hearing speech)"
        status = DiagnosticStatus(name=f"{self.get_name()}: speech", hardware_id=self.param("engine"),
                                  level=level, message=message)
        values = {"engine": self.param("engine"), "sample_rate_in": self._rate,
                  "pending": self._jobs.qsize() if self._jobs is not None else 0, **stats,
                  "vad_resets": segmenter.vad.non_finite_resets if segmenter is not None else 0,
                  "audio_reliability": {ReliabilityPolicy.RELIABLE: "reliable", ReliabilityPolicy.BEST_EFFORT:
                                        "best_effort"}.get(self._sub_reliability, ""),
                  "audio_publishers": len(self._audio_pubs), "audio_reliability_why": self._qos_why,
                  **{f"last_{k}": v for k, v in last.items()}}
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def main(args: Optional[list[str]] = None) -> NoReturn:
    """Console entry point: ``anyref_speech --ros-args --params-file config/speech.yaml``."""
    run_node(lambda: SpeechNode(), args, threads=2, release=lambda node: node.release())


if __name__ == "__main__":
    main()
