"""Speech recognition on real speech: espeak-ng commands (synthesised at test
time), cut by the Silero VAD, recognised by PocketSphinx (its wheel's US
English model) with the default command grammar (config/speech_grammar.yaml).
Whisper's plumbing runs a real transformers Whisper model with a tiny random
config and a tokenizer built here (no checkpoint can be downloaded)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from anyref_ros.audio.asr import MAX_SECONDS, PocketSphinxRecognizer, Transcript, WhisperRecognizer, create_recognizer
from anyref_ros.audio.grammar import CommandGrammar, GrammarError
from anyref_ros.audio.signal import resample
from anyref_ros.audio.vad import SAMPLE_RATE, SileroVAD, UtteranceSegmenter
from testsupport import HELPERS, REPO

sys.path.insert(0, str(HELPERS))
import mic_audio  # noqa: E402

needs_espeak = pytest.mark.skipif(not mic_audio.have_espeak(), reason="espeak-ng is not installed (make setup)")
GRAMMAR = REPO / "config" / "speech_grammar.yaml"
# Six commands in the default grammar's words: (sentence, colour, object).
COMMANDS = [
    ("find the red circle", "red", "circle"),
    ("where is the blue square", "blue", "square"),
    ("show me the green triangle", "green", "triangle"),
    ("segment the yellow circle", "yellow", "circle"),
    ("point to the red square", "red", "square"),
    ("find the cup", None, "cup"),
]


@pytest.fixture(scope="module")
def grammar() -> CommandGrammar:
    return CommandGrammar.from_yaml(GRAMMAR)


@pytest.fixture(scope="module")
def recognizer(grammar) -> PocketSphinxRecognizer:
    return PocketSphinxRecognizer(grammar)


def utterance(text: str, folder, **speak) -> np.ndarray:
    """``text`` by espeak-ng in silence, cut by the VAD as the node cuts it (100 ms chunks)."""
    pcm, rate = mic_audio.speak(text, folder, **speak)
    x = resample(pcm.astype(np.float32) / 32768.0, rate, SAMPLE_RATE)
    audio = np.concatenate([np.zeros(8000, np.float32), x, np.zeros(16000, np.float32)])
    seg = UtteranceSegmenter(SileroVAD())
    cut = [u for i in range(0, len(audio), 1600) for u in seg.push(audio[i:i + 1600])] + seg.flush()
    ok = [u for u in cut if u.verdict == "ok"]
    assert len(ok) == 1, f"the VAD cut {[(u.verdict, u.start, u.end) for u in cut]} from {text!r}"
    return ok[0].audio


@needs_espeak
def test_default_engine_gets_colour_and_object_of_spoken_commands(recognizer, tmp_path):
    right, report = 0, []
    for sentence, colour, obj in COMMANDS:
        audio = utterance(sentence, tmp_path)
        t = time.perf_counter()
        result = recognizer.transcribe(audio)
        took = time.perf_counter() - t
        words = result.text.split()
        good = obj in words and (colour is None or colour in words)
        right += good
        report.append({"said": sentence, "heard": result.text, "right": good,
                       "confidence": round(result.confidence, 2), "seconds": round(took, 3)})
        assert 0.0 <= result.confidence <= 1.0
    print(json.dumps({"right": f"{right}/{len(COMMANDS)}", "sentences": report}, indent=1))
    assert right >= 5, report


def test_grammar_drops_words_missing_from_the_dictionary(grammar):
    odd = CommandGrammar.from_dict({"commands": ["find"], "colours": ["red", "glorpish"],
                                    "objects": ["cup", "zorblax widget", "chair"]})
    rec = PocketSphinxRecognizer(odd)
    assert rec.dropped_words == ["glorpish", "zorblax"]
    jsgf = rec.grammar.to_jsgf()
    assert "zorblax" not in jsgf and "glorpish" not in jsgf and "chair" in jsgf
    assert PocketSphinxRecognizer(grammar).dropped_words == [], "the shipped grammar uses dictionary words only"


def test_grammar_file_errors_say_what_to_do(tmp_path):
    bad = tmp_path / "g.yaml"
    bad.write_text("objects: [cup]\nrelations: [on, under]\n")
    with pytest.raises(GrammarError, match="quote it"):
        CommandGrammar.from_yaml(bad)
    bad.write_text("objects: [cup]\ncolors: [red]\n")
    with pytest.raises(GrammarError, match="unknown keys"):
        CommandGrammar.from_yaml(bad)
    bad.write_text("objects: [cup!]\n")
    with pytest.raises(GrammarError, match="letters a-z"):
        CommandGrammar.from_yaml(bad)
    with pytest.raises(GrammarError, match="free dictation"):
        CommandGrammar.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(GrammarError, match="wake phrase"):
        PocketSphinxRecognizer(CommandGrammar.from_dict({"objects": ["cup"]}, wake_phrase="zorblax"))


def test_grammar_path_that_is_not_a_regular_file_is_refused_before_reading(tmp_path):
    """A FIFO (no writer: a plain open would block), a device that never ends
    and a folder are refused from the open descriptor, before any read, with
    what to give instead."""
    import os

    fifo = tmp_path / "grammar.fifo"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO"), (Path("/dev/zero"), "a device"), (tmp_path, "a folder")):
        with pytest.raises(GrammarError, match=f"is {kind}.*not a regular file; give a YAML file") as info:
            CommandGrammar.from_yaml(path)
        assert str(path) in str(info.value)


def test_grammar_file_is_read_at_most_max_file_bytes(tmp_path):
    """Exactly MAX_FILE_BYTES is read; one byte more is refused, however large
    the file is and whatever size the file system reports for it (a file whose
    size says nothing about what a read returns, like one that grows while it
    is read: /proc/kallsyms says 0 bytes and holds megabytes)."""
    import os

    from anyref_ros.audio.grammar import MAX_FILE_BYTES

    head = b"objects: [cup]\n#"
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(head + b"x" * (MAX_FILE_BYTES - len(head)))
    assert CommandGrammar.from_yaml(exact).objects == ("cup",)
    for extra in (1, 5 * MAX_FILE_BYTES):
        big = tmp_path / f"big{extra}.yaml"
        big.write_bytes(exact.read_bytes() + b"x" * extra)
        with pytest.raises(GrammarError, match=f"larger than {MAX_FILE_BYTES} bytes.*give a smaller YAML file"):
            CommandGrammar.from_yaml(big)
    lying = Path("/proc/kallsyms")
    if (lying.is_file() and os.access(lying, os.R_OK) and os.stat(lying).st_size == 0
            and len(lying.read_bytes()) > MAX_FILE_BYTES):
        with pytest.raises(GrammarError, match=f"larger than {MAX_FILE_BYTES} bytes"):
            CommandGrammar.from_yaml(lying)


def test_expression_and_wake_phrase(grammar):
    assert grammar.expression("find the red circle") == "red circle"
    assert grammar.expression("where is the cup on the table") == "cup on the table"
    assert grammar.expression("show me a blue square") == "blue square"
    assert grammar.expression("red circle") == "red circle"
    assert grammar.expression("Find the RED circle.") == "red circle"
    robot = grammar.with_wake_phrase("Robot")
    assert robot.strip_wake("robot find the cup") == "find the cup"
    assert robot.strip_wake("find the cup") is None
    assert robot.strip_wake("robotic arm") is None
    assert "[robot]" in robot.to_jsgf()


@needs_espeak
def test_wake_phrase_is_recognised(grammar, tmp_path):
    rec = PocketSphinxRecognizer(grammar.with_wake_phrase("robot"))
    text = rec.transcribe(utterance("robot, find the red circle", tmp_path)).text
    assert rec.grammar.strip_wake(text) is not None, text
    assert rec.grammar.expression(rec.grammar.strip_wake(text)) == "red circle", text


@needs_espeak
def test_free_dictation_runs(tmp_path):
    """grammar "" (the default language model): no accuracy is claimed, only that it runs."""
    result = create_recognizer("pocketsphinx").transcribe(utterance("find the red circle", tmp_path))
    assert isinstance(result, Transcript) and isinstance(result.text, str)


def test_input_is_bounded_before_any_work(recognizer):
    with pytest.raises(ValueError, match="longer than"):
        recognizer.transcribe(np.zeros(int((MAX_SECONDS + 1) * SAMPLE_RATE), np.float32))
    with pytest.raises(ValueError, match="1-D float32"):
        recognizer.transcribe(np.zeros((10, 2), np.float32))
    assert recognizer.transcribe(np.zeros(0, np.float32)) == Transcript("", 0.0)
    assert recognizer.transcribe(np.zeros(SAMPLE_RATE, np.float32)).text == ""  # silence: nothing


# ----------------------------------------------------------------------------- Whisper

def byte_alphabet() -> list[str]:
    """Byte-level BPE's 256 printable stand-ins for the bytes (the GPT-2 scheme Whisper uses)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory):
    """A save_pretrained folder of a tiny random Whisper and a tokenizer built
    offline: a byte-level vocabulary (256 symbols + a few words, no merges)
    and Whisper's special tokens."""
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer)

    folder = tmp_path_factory.mktemp("whisper")
    vocab = {c: i for i, c in enumerate(byte_alphabet() + ["\u0120find", "\u0120the", "\u0120red", "\u0120circle"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token="<|endoftext|>",
                           bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|startoftranscript|>", "<|en|>", "<|transcribe|>",
                                                          "<|translate|>", "<|notimestamps|>"]})
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>")}
    config = WhisperConfig(vocab_size=len(tok), num_mel_bins=80, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, d_model=32, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=64,
                           pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"],
                           eos_token_id=ids["<|endoftext|>"], decoder_start_token_id=ids["<|startoftranscript|>"],
                           suppress_tokens=None, begin_suppress_tokens=None)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"], no_timestamps_token_id=ids["<|notimestamps|>"])
    out = folder / "checkpoint"
    model.save_pretrained(out)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok).save_pretrained(out)
    return out


def test_whisper_recognizer_decodes_like_transformers(whisper_folder):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    rec = create_recognizer("whisper", asr_model=str(whisper_folder))
    assert isinstance(rec, WhisperRecognizer)
    audio = np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    result = rec.transcribe(audio)
    assert isinstance(result.text, str) and 0.0 <= result.confidence <= 1.0

    processor = WhisperProcessor.from_pretrained(whisper_folder, local_files_only=True)
    model = WhisperForConditionalGeneration.from_pretrained(whisper_folder, local_files_only=True).eval()
    features = processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
    with torch.inference_mode():
        sequences = model.generate(features, max_new_tokens=rec.max_new_tokens)
    assert result.text == processor.batch_decode(sequences, skip_special_tokens=True)[0].strip()


def test_whisper_needs_a_local_folder(tmp_path):
    with pytest.raises(ValueError, match="asr_model"):
        create_recognizer("whisper")
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        create_recognizer("whisper", asr_model="openai/whisper-tiny")  # a hub name: never downloaded
    with pytest.raises(ValueError, match="unknown engine"):
        create_recognizer("vosk")


@pytest.mark.parametrize("wake", ["Robot,", "ROBOT", " robot ", "robot!", "Robot  "])
def test_wake_phrase_is_normalised_like_the_transcript(wake):
    """However the wake phrase is written or the grammar built (the speech node
    builds one without a grammar file directly), it is compared in the
    transcript's form: case, punctuation and spaces do not matter."""
    for grammar in (CommandGrammar(wake_phrase=wake), CommandGrammar().with_wake_phrase(wake),
                    CommandGrammar.from_dict({"objects": ["cup"]}, wake_phrase=wake)):
        assert grammar.wake_phrase == "robot"
        assert grammar.strip_wake("Robot, find the cup!") == "find the cup"
        assert grammar.strip_wake("robot") == ""
        assert grammar.strip_wake("find the cup") is None
    assert CommandGrammar(wake_phrase="Hey,  Robot!").strip_wake("hey robot where is the cup") == "where is the cup"
