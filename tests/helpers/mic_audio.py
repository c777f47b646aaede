"""Sound for the hearing tests (imported by tests, not a process).

* :func:`speak`: real synthetic speech from espeak-ng (a Debian package, an
  independent speech source, not written by this project), made at test time.
* A capture device for a machine without a sound card -- the one stand-in
  these tests use, for hardware that cannot exist here: ALSA's ``file``
  plugin turns a raw file (or a named pipe) into a capture PCM that
  PortAudio, and so ``sounddevice`` and anyref_mic, open like a microphone.
  :func:`write_asoundrc` defines it in ``HOME/.asoundrc``; run the process
  under test with ``HOME`` pointing there.

  - A plain file is read **unpaced**: the whole file arrives in a burst, then
    zeros for ever. Its samples come back exactly.
  - :class:`PacedPipe` feeds a named pipe at real-time pace instead, in
    pieces of exactly one capture block (the microphone's ``chunk_ms``), so
    each read the plugin makes is whole: capture runs at real time and the
    samples come back exactly. It starts again from the beginning for each
    new reader (PortAudio opens every device once when it starts, to probe it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path

import numpy as np

from testsupport import collect_output  # (tests/ is on the path of every test that imports this)


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, folder: Path, voice: str = "en-us", speed: int = 150) -> tuple[np.ndarray, int]:
    """``text`` spoken by espeak-ng: (int16 mono samples, rate)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"speech_{abs(hash((text, voice, speed)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, "espeak-ng writes 16-bit mono"
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").copy(), w.getframerate()


def spoken_clip(text: str, folder: Path, pad_s: float = 1.0) -> tuple[Path, int]:
    """``text`` spoken by espeak-ng with ``pad_s`` of silence on each side, saved as a
    float32 .npy for tests/helpers/audio_publisher.py: (path, rate)."""
    pcm, rate = speak(text, folder)
    quiet = np.zeros(int(pad_s * rate), np.float32)
    path = Path(folder) / f"{pcm.size}_{abs(hash(text))}.npy"
    np.save(path, np.concatenate([quiet, pcm.astype(np.float32) / 32768.0, quiet]))
    return path, rate


def write_asoundrc(home: Path, infile: Path, name: str = "filemic") -> Path:
    """Define capture PCM ``name`` reading raw samples from ``infile`` in ``home``/.asoundrc.
    The stream's rate, channels and format must match the file's (nothing converts them)."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    rc = home / ".asoundrc"
    rc.write_text(
        f"pcm.{name} {{\n"
        "    type file\n"
        '    slave.pcm "null"\n'
        '    file "/dev/null"\n'
        f'    infile "{Path(infile).resolve()}"\n'
        '    format "raw"\n'
        "}\n")
    return rc


class PacedPipe:
    """A named pipe at ``path`` fed with ``data`` (raw bytes) at ``bytes_per_s``,
    ``block_bytes`` at a time, then silence (zeros) until :meth:`close`.

    ``hold=True``: silence until :meth:`go`, then ``data`` -- so a test can first
    see the audio arrive where it listens (subscriptions matched), then play."""

    def __init__(self, path: Path, data: bytes, bytes_per_s: float, block_bytes: int, hold: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists():
            self.path.unlink()
        os.mkfifo(self.path)
        self.data, self.rate, self.block = data, float(bytes_per_s), int(block_bytes)
        self.readers = 0
        self._go = threading.Event()
        if not hold:
            self._go.set()
        self.started: list[float] = []  # monotonic time each reader connection began
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY)  # blocks until a reader opens the pipe
            except OSError:
                return
            if self._stop.is_set():
                os.close(fd)
                return
            self.readers += 1
            start = time.monotonic()
            self.started.append(start)
            sent = written = 0
            try:
                while not self._stop.is_set():
                    piece = self.data[sent:sent + self.block] if self._go.is_set() else b""
                    if piece:
                        sent += self.block
                    if len(piece) < self.block:
                        piece += bytes(self.block - len(piece))
                    os.write(fd, piece)
                    written += self.block
                    delay = start + written / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            except (BrokenPipeError, OSError):
                pass
            finally:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def go(self) -> None:
        """Start ``data`` (with ``hold=True``), at the next block."""
        self._go.set()

    def close(self) -> None:
        self._stop.set()
        try:  # unblock a writer waiting for a reader
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
        self._thread.join(timeout=2.0)


class NodeProcess:
    """A console entry point (anyref_mic, anyref_speech) in its own process, its
    output collected line by line (``lines``) by a reader thread."""

    def __init__(self, command: str, *ros_args: str, namespace: str, params_file: Path | None = None,
                 env: dict | None = None, cwd: Path | None = None) -> None:
        import sys

        exe = Path(sys.executable).with_name(command)
        cmd = [str(exe), "--ros-args", "-r", f"__ns:={namespace}"]
        if params_file is not None:
            cmd += ["--params-file", str(params_file)]
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen(cmd + list(ros_args), cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = collect_output(self.proc)

    def matching(self, text: str) -> list[str]:
        return [line for line in list(self.lines) if text in line]

    def wait_for_lines(self, text: str, count: int = 1, timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.matching(text)
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{count} line(s) with {text!r} did not come (exit code {self.proc.poll()}); "
                             f"output:\n" + "\n".join(self.lines[-40:]))

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.output_reader.join(timeout=2.0)
        return self.proc.returncode
