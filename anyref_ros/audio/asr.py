"""Speech recognition engines behind one small interface, ROS-free.

``recognizer.transcribe(audio) -> Transcript(text, confidence)`` with
``audio`` float32 mono at 16 kHz (at most ``MAX_SECONDS``; longer input is
refused before any work). Engines:

* ``pocketsphinx`` (default): CMU PocketSphinx 5 with the US English model
  shipped in its wheel. With a :class:`~anyref_ros.audio.grammar.CommandGrammar`
  it decodes against the JSGF command grammar (accurate, ~0.05-0.2 s per
  command on one core); without one it uses the default language model
  (free dictation: slower and far less accurate on short commands). Grammar
  words missing from the dictionary are dropped (``dropped_words``), the
  caller logs them. A faint noise floor (``noise_floor``, default 0.003 =
  -50 dBFS, fixed seed) is added before decoding: on digital silence (a file,
  a synthetic voice, a muted ADC) PocketSphinx's noise estimate and
  normalisation break down and it returns truncated hypotheses; a real
  microphone's own noise is louder than this, so it changes nothing there.
* ``whisper``: a Whisper checkpoint through ``transformers``
  (``WhisperForConditionalGeneration`` + ``WhisperProcessor``) from a local
  folder only (``local_files_only=True``; nothing is downloaded): any
  ``save_pretrained`` folder of an ``openai/whisper-*`` model (tiny, base,
  small, medium, large-v3, the ``.en`` variants) or a fine-tune of one. No
  grammar; the whole transcript comes back.

Confidence is in [0, 1]: PocketSphinx's mean word posterior, Whisper's mean
token probability.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .grammar import CommandGrammar

__all__ = ["SAMPLE_RATE", "MAX_SECONDS", "ENGINES", "Transcript", "Recognizer", "PocketSphinxRecognizer",
           "WhisperRecognizer", "create_recognizer"]

SAMPLE_RATE = 16000
#: Longest audio a recognizer accepts, in seconds.
MAX_SECONDS = 30.0
ENGINES = ("pocketsphinx", "whisper")
_FILLERS = {"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "[LAUGH]", "[COUGH]", "[BREATH]", "[UM]", "[UH]"}


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float


def _check_audio(audio) -> np.ndarray:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1 or audio.dtype.kind != "f":
        raise ValueError(f"audio: expected 1-D float32 samples at {SAMPLE_RATE} Hz, got "
                         f"{type(audio).__name__} with shape {getattr(audio, 'shape', None)}")
    if len(audio) > MAX_SECONDS * SAMPLE_RATE:
        raise ValueError(f"audio: {len(audio) / SAMPLE_RATE:.1f} s is longer than the {MAX_SECONDS:g} s "
                         f"a recognizer accepts; cut it first")
    audio = np.asarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        raise ValueError("audio: holds NaN or infinite samples")
    return audio


class Recognizer:
    """Interface: ``transcribe(audio_f32_16k) -> Transcript``. Not thread-safe
    per instance (each call holds a lock)."""

    engine = "none"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def transcribe(self, audio: np.ndarray) -> Transcript:
        audio = _check_audio(audio)
        if len(audio) == 0:
            return Transcript("", 0.0)
        with self._lock:
            return self._transcribe(audio)

    def _transcribe(self, audio: np.ndarray) -> Transcript:  # pragma: no cover - interface
        raise NotImplementedError


class PocketSphinxRecognizer(Recognizer):
    """PocketSphinx with the wheel's US English model (see the module docstring).

    ``decoder_options`` go to ``pocketsphinx.Decoder`` (e.g. ``beam=1e-60``);
    the defaults here were tuned on espeak-ng commands.
    """

    engine = "pocketsphinx"
    DEFAULT_OPTIONS = {"wip": 0.1}

    def __init__(self, grammar: Optional[CommandGrammar] = None, *, noise_floor: float = 0.003, seed: int = 0,
                 **decoder_options) -> None:
        super().__init__()
        from pocketsphinx import Decoder

        if not (math.isfinite(noise_floor) and 0.0 <= noise_floor <= 0.1):
            raise ValueError(f"noise_floor: expected a level in [0, 0.1] of full scale, got {noise_floor}")
        self.noise_floor = float(noise_floor)
        self._seed = int(seed)
        options = {**self.DEFAULT_OPTIONS, **decoder_options}
        self.grammar: Optional[CommandGrammar] = None
        self.dropped_words: list[str] = []
        if grammar is None:
            self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **options)
        else:
            self._decoder = Decoder(samprate=SAMPLE_RATE, lm=None, loglevel="FATAL", **options)
            self.grammar, self.dropped_words = grammar.restricted(self.knows)
            self._decoder.add_jsgf_string("command", self.grammar.to_jsgf())
            self._decoder.activate_search("command")

    def knows(self, word: str) -> bool:
        """True when the pronunciation dictionary has ``word``."""
        return self._decoder.lookup_word(word) is not None

    def _transcribe(self, audio: np.ndarray) -> Transcript:
        if self.noise_floor > 0:
            noise = np.random.default_rng(self._seed).normal(0.0, self.noise_floor, len(audio))
            audio = audio + noise.astype(np.float32)
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2").tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, no_search=False, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        if hyp is None or not hyp.hypstr.strip():
            return Transcript("", 0.0)
        probs = [float(s.prob) for s in d.seg() if s.word not in _FILLERS and not s.word.startswith("[")]
        confidence = float(np.clip(np.mean(probs), 0.0, 1.0)) if probs else 0.0
        # Alternative pronunciations come back as word(2): keep the word.
        words = [w.split("(")[0] for w in hyp.hypstr.split()]
        return Transcript(" ".join(words), confidence)


class WhisperRecognizer(Recognizer):
    """A local Whisper checkpoint folder through transformers (see the module docstring)."""

    engine = "whisper"

    def __init__(self, folder, *, device: str = "cpu", language: Optional[str] = "en",
                 max_new_tokens: int = 64) -> None:
        super().__init__()
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"asr_model {str(folder)!r} is not a Whisper checkpoint folder (no config.json); give a "
                "save_pretrained folder of WhisperForConditionalGeneration + WhisperProcessor, e.g. "
                "openai/whisper-base saved with model.save_pretrained(F) and processor.save_pretrained(F)")
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        if not 1 <= int(max_new_tokens) <= 440:
            raise ValueError(f"max_new_tokens: expected 1-440, got {max_new_tokens}")
        self._torch = torch
        self.processor = WhisperProcessor.from_pretrained(folder, local_files_only=True)
        self.model = WhisperForConditionalGeneration.from_pretrained(folder, local_files_only=True).to(device).eval()
        self.device = device
        self.language = language
        # Room for the start tokens Whisper puts in front (start, language, task, no-timestamps).
        limit = int(getattr(self.model.config, "max_target_positions", 448)) - 8
        self.max_new_tokens = max(1, min(int(max_new_tokens), limit))

    def _generate_kwargs(self) -> dict:
        kwargs = {"max_new_tokens": self.max_new_tokens, "return_dict_in_generate": True, "output_scores": True}
        gen = getattr(self.model, "generation_config", None)
        if self.language and getattr(gen, "lang_to_id", None):  # multilingual checkpoints
            kwargs.update(language=self.language, task="transcribe")
        return kwargs

    def _transcribe(self, audio: np.ndarray) -> Transcript:
        torch = self._torch
        features = self.processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        inputs = features.input_features.to(self.device, self.model.dtype)
        with torch.inference_mode():
            out = self.model.generate(inputs, **self._generate_kwargs())
            scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        text = self.processor.batch_decode(out.sequences, skip_special_tokens=True)[0].strip()
        probs = torch.exp(scores[0]).float()
        confidence = float(probs.mean().clamp(0.0, 1.0)) if probs.numel() else 0.0
        return Transcript(text, confidence)


def create_recognizer(engine: str, *, grammar: Optional[CommandGrammar] = None, asr_model: str = "",
                      device: str = "cpu") -> Recognizer:
    """The recognizer for ``engine`` (one of ENGINES); errors say what to set."""
    if engine == "pocketsphinx":
        return PocketSphinxRecognizer(grammar)
    if engine == "whisper":
        if not asr_model:
            raise ValueError("engine 'whisper' needs asr_model: the folder of a Whisper checkpoint "
                             "(save_pretrained of openai/whisper-tiny/base/small/...)")
        return WhisperRecognizer(asr_model, device=device)
    raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
