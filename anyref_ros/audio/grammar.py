"""Spoken-command grammar: the YAML word lists (config/speech_grammar.yaml),
the JSGF grammar pocketsphinx decodes with, and the referring expression cut
out of a transcript. ROS-free.

A command is::

    [wake phrase] [command] [article] [colour] object [relation [article] [colour] object]

e.g. "robot, find the red circle", "where is the cup on the table". The
YAML file has the lists ``commands``, ``articles``, ``colours``,
``objects`` and ``relations``; each entry is a word or a phrase of words.
:meth:`CommandGrammar.expression` turns a transcript into the query the
anyref node answers: the command phrase and the article in front are cut
("find the red circle" -> "red circle").
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Optional

from anyref_ros.ros_env import kind_of

__all__ = ["CommandGrammar", "GrammarError", "normalise", "MAX_FILE_BYTES", "MAX_PHRASES"]

#: Largest grammar file read (bytes) and most phrases in all its lists together.
MAX_FILE_BYTES = 1 << 20
MAX_PHRASES = 5000
#: Longest phrase, in words.
MAX_PHRASE_WORDS = 8
LISTS = ("commands", "articles", "colours", "objects", "relations")
_WORD = re.compile(r"^[a-z][a-z']*$")
#: Used to cut the command from free dictation when no grammar file is given.
DEFAULT_COMMANDS = ("find", "where is", "where's", "show me", "segment", "point to", "point at", "look at",
                    "locate", "highlight")
DEFAULT_ARTICLES = ("the", "a", "an")


class GrammarError(ValueError):
    """A grammar file or entry that cannot be used; the message says what to change."""


_GIVE = "give a YAML file (see config/speech_grammar.yaml) or \"\" for free dictation"


def _read_at_most(path: Path, limit: int) -> bytes:
    """The bytes of regular file ``path``, at most ``limit`` of them. The file is
    opened without blocking (a FIFO with no writer would block a plain open) and
    checked through its open descriptor, so what is checked is what is read."""
    fd = None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise GrammarError(f"grammar file {path} is {kind_of(mode)}, not a regular file; {_GIVE}")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise GrammarError(f"grammar file {path} cannot be read ({exc.strerror}); {_GIVE}") from None
    finally:
        if fd is not None:
            os.close(fd)
    if size > limit:
        raise GrammarError(f"grammar file {path} is larger than {limit} bytes (MAX_FILE_BYTES); "
                           f"give a smaller YAML file (see config/speech_grammar.yaml)")
    return b"".join(chunks)


def normalise(text: str) -> str:
    """Lower case, punctuation (except apostrophes inside words) removed, single spaces."""
    text = re.sub(r"[^a-z0-9' ]+", " ", str(text).lower())
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)


def _phrases(name: str, values, source: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if not isinstance(values, (list, tuple)):
        raise GrammarError(f"{source}: '{name}' must be a list of words or phrases, got {type(values).__name__}")
    out = []
    for v in values:
        if not isinstance(v, str):
            # YAML 1.1 reads on/off/yes/no as booleans: say how to write them.
            raise GrammarError(f"{source}: entry {v!r} in '{name}' is not text; quote it "
                               f"(e.g. \"on\" -- YAML reads bare on/off/yes/no as true/false)")
        phrase = " ".join(v.lower().split())
        words = phrase.split()
        if not words or len(words) > MAX_PHRASE_WORDS or not all(_WORD.match(w) for w in words):
            raise GrammarError(f"{source}: entry {v!r} in '{name}' must be 1-{MAX_PHRASE_WORDS} words of "
                               f"letters a-z (and apostrophes)")
        if phrase not in out:
            out.append(phrase)
    return tuple(out)


@dataclass(frozen=True)
class CommandGrammar:
    commands: tuple[str, ...] = DEFAULT_COMMANDS
    articles: tuple[str, ...] = DEFAULT_ARTICLES
    colours: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    relations: tuple[str, ...] = ()
    wake_phrase: str = ""
    source: str = field(default="<built-in>", compare=False)

    def __post_init__(self) -> None:
        # However it is built, the wake phrase is compared in the transcript's form.
        object.__setattr__(self, "wake_phrase", normalise(self.wake_phrase))

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, data, source: str = "<dict>", wake_phrase: str = "") -> "CommandGrammar":
        if not isinstance(data, dict):
            raise GrammarError(f"{source}: expected a mapping with the lists {', '.join(LISTS)}")
        unknown = sorted(set(data) - set(LISTS))
        if unknown:
            raise GrammarError(f"{source}: unknown keys {unknown}; expected {', '.join(LISTS)}")
        lists = {name: _phrases(name, data.get(name), source) for name in LISTS}
        total = sum(len(v) for v in lists.values())
        if total > MAX_PHRASES:
            raise GrammarError(f"{source}: {total} phrases; at most {MAX_PHRASES} are accepted")
        if not lists["objects"]:
            raise GrammarError(f"{source}: 'objects' is empty; list at least one object name")
        return cls(**lists, wake_phrase=normalise(wake_phrase), source=source)

    @classmethod
    def from_yaml(cls, path, wake_phrase: str = "") -> "CommandGrammar":
        """The grammar in YAML file ``path``: a regular file (a device, a FIFO or a
        folder is refused before anything is read) of at most :data:`MAX_FILE_BYTES`
        (at most that many bytes, plus one to tell, are read, even from a file that
        grows meanwhile); else :class:`GrammarError` saying what to give instead."""
        import yaml

        path = Path(path)
        data = _read_at_most(path, MAX_FILE_BYTES)
        try:
            parsed = yaml.safe_load(data.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise GrammarError(f"grammar file {path} is not valid YAML: {exc}") from None
        return cls.from_dict(parsed, str(path), wake_phrase)

    def with_wake_phrase(self, wake_phrase: str) -> "CommandGrammar":
        return replace(self, wake_phrase=normalise(wake_phrase))

    # ------------------------------------------------------------------ words
    def words(self) -> set[str]:
        every = [*self.commands, *self.articles, *self.colours, *self.objects, *self.relations, self.wake_phrase]
        return {w for phrase in every for w in phrase.split()}

    def restricted(self, known: Callable[[str], bool]) -> tuple["CommandGrammar", list[str]]:
        """The grammar without phrases holding a word ``known`` rejects, and the words dropped.

        The wake phrase is never dropped: a wake phrase the recogniser cannot
        say raises GrammarError (nothing would ever be accepted).
        """
        unknown = sorted(w for w in self.words() if not known(w))
        bad = set(unknown)
        if self.wake_phrase and bad & set(self.wake_phrase.split()):
            raise GrammarError(f"wake phrase {self.wake_phrase!r} has words the recogniser's dictionary lacks: "
                               f"{sorted(bad & set(self.wake_phrase.split()))}; choose other words")

        def keep(phrases):
            return tuple(p for p in phrases if not bad & set(p.split()))

        kept = replace(self, commands=keep(self.commands), articles=keep(self.articles),
                       colours=keep(self.colours), objects=keep(self.objects), relations=keep(self.relations))
        if not kept.objects:
            raise GrammarError(f"{self.source}: none of the objects is in the recogniser's dictionary")
        return kept, unknown

    # ------------------------------------------------------------------ JSGF
    def to_jsgf(self, name: str = "anyref") -> str:
        """The JSGF grammar text (public rule ``<command>``)."""

        def alternatives(phrases: Iterable[str]) -> str:
            return " | ".join(phrases)

        thing = "[<colour>] <object>" if self.colours else "<object>"
        art = "[<article>] " if self.articles else ""
        body = f"{art}<thing>"
        if self.relations:
            body += f" [<relation> {art}<thing>]"
        if self.commands:
            body = f"[<verb>] {body}"
        if self.wake_phrase:
            body = f"[{self.wake_phrase}] {body}"
        lines = ["#JSGF V1.0;", f"grammar {name};", f"public <command> = {body};", f"<thing> = {thing};"]
        for rule, phrases in (("verb", self.commands), ("article", self.articles), ("colour", self.colours),
                              ("object", self.objects), ("relation", self.relations)):
            if phrases:
                lines.append(f"<{rule}> = {alternatives(phrases)};")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ transcripts
    def strip_wake(self, text: str) -> Optional[str]:
        """The transcript after the wake phrase, or None when it does not start with it
        (always the normalised transcript when no wake phrase is set)."""
        text = normalise(text)
        if not self.wake_phrase:
            return text
        if text == self.wake_phrase or text.startswith(self.wake_phrase + " "):
            return text[len(self.wake_phrase):].strip()
        return None

    def expression(self, text: str) -> str:
        """The referring expression: the transcript without its leading command and article."""
        words = normalise(text).split()
        for phrases in (self.commands, self.articles):
            for phrase in sorted(phrases, key=lambda p: -len(p.split())):
                p = phrase.split()
                if words[:len(p)] == p and len(words) > len(p):
                    words = words[len(p):]
                    break
        return " ".join(words)
