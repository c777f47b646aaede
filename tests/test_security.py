"""Security checks (issue 10): how model files and data pickles are loaded,
checkpoint integrity (SHA256SUMS), and path parameters.

* A source scan of ``anyref_ros/``: model files load only through safetensors
  or ``torch.load(..., weights_only=True)``; no ``pickle.load``, no
  ``np.load(allow_pickle=True)``, no TorchScript/hub/YAML-unsafe loaders, no
  ``trust_remote_code``, Hugging Face ``from_pretrained`` only with
  ``local_files_only=True``; ``import pickle`` only where the restricted
  unpickler lives. The scanner is tested on bad snippets too.
* RefCOCO ``refs(*).p`` files load through ``RefsUnpickler``: plain data
  loads (protocols 0-5, Python 2 strings), a pickle that calls ``os.system``
  (or anything else) is refused and never runs.
* A checkpoint saved by ``save_pretrained`` carries ``SHA256SUMS``; a changed
  or missing file is refused by name, an extra file is fine.
* ``resolve_model_path`` refuses what cannot be a model path.
"""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from anyref_ros.data.readers.refer import RefsUnpickler, load_plain_pickle, load_refs
from anyref_ros.model import AnyRefPipeline, get_preset
from anyref_ros.model.loading import (
    MANIFEST,
    WeightsError,
    read_manifest,
    resolve_model_path,
    verify_manifest,
)

PACKAGE = Path(__file__).resolve().parents[1] / "anyref_ros"
UNPICKLER_HOME = "data/readers/refer.py"  # the only module that may import pickle

# Calls that can run code from a file (or fetch one), by dotted name after alias resolution.
FORBIDDEN_CALLS = {
    "pickle.load", "pickle.loads", "_pickle.load", "_pickle.loads", "cPickle.load", "cPickle.loads",
    "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads", "joblib.load",
    "marshal.load", "marshal.loads", "shelve.open", "pandas.read_pickle",
    "torch.jit.load", "torch.hub.load", "torch.hub.load_state_dict_from_url", "torch.package.PackageImporter",
    "yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all",
    "huggingface_hub.hf_hub_download", "huggingface_hub.snapshot_download",
    "eval", "exec",
}
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
OWN_FROM_PRETRAINED = {"AnyRefPipeline", "cls", "self", "pipeline_cls"}


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def scan(source: str, rel: str) -> list[str]:
    """Findings (``file:line: what``) for one module's source."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                if a.name.split(".")[0] in PICKLE_MODULES and not (a.name == "pickle" and rel == UNPICKLER_HOME):
                    found.append(f"{rel}:{node.lineno}: imports {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            if node.module.split(".")[0] in PICKLE_MODULES:
                found.append(f"{rel}:{node.lineno}: imports from {node.module}")

    def dotted(expr) -> str:
        parts = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return ""
        parts.append(aliases.get(expr.id, expr.id))
        name = ".".join(reversed(parts))
        return name.replace("np.", "numpy.", 1) if name.startswith("np.") else name

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        kw = {k.arg: k.value for k in node.keywords}
        where = f"{rel}:{node.lineno}"
        if name == "torch.load" and not _is_true(kw.get("weights_only")):
            found.append(f"{where}: torch.load without weights_only=True")
        if name in FORBIDDEN_CALLS:
            found.append(f"{where}: {name}")
        if name == "numpy.load" and "allow_pickle" in kw and not (
                isinstance(kw["allow_pickle"], ast.Constant) and kw["allow_pickle"].value is False):
            found.append(f"{where}: numpy.load with allow_pickle")
        if "trust_remote_code" in kw and not (
                isinstance(kw["trust_remote_code"], ast.Constant) and kw["trust_remote_code"].value is False):
            found.append(f"{where}: trust_remote_code")
        if isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained":
            owner = dotted(node.func.value)
            if owner.split(".")[-1] not in OWN_FROM_PRETRAINED and not _is_true(kw.get("local_files_only")):
                found.append(f"{where}: {owner}.from_pretrained without local_files_only=True")
    return found


def test_scanner_catches_unsafe_loading():
    bad = {
        "import torch\ntorch.load('x.pth')": "weights_only",
        "import torch\ntorch.load('x.pth', weights_only=False)": "weights_only",
        "from torch import load as L\nL('x', map_location='cpu')": "weights_only",
        "import torch\nkw = {}\ntorch.load('x', **kw)": "weights_only",
        "import pickle\npickle.load(open('f', 'rb'))": "imports pickle",
        "import pickle as p\np.loads(b'')": "pickle.loads",
        "from pickle import loads": "imports from pickle",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)": "allow_pickle",
        "import torch\ntorch.jit.load('m.pt')": "torch.jit.load",
        "import yaml\nyaml.load(open('c'))": "yaml.load",
        "from transformers import AutoModel\nAutoModel.from_pretrained('x', trust_remote_code=True)": "trust_remote_code",
        "from transformers import AutoModel\nAutoModel.from_pretrained('x')": "local_files_only",
        "import joblib\njoblib.load('m')": "joblib",
        "eval('1+1')": "eval",
    }
    for source, what in bad.items():
        findings = scan(source, "x.py")
        assert any(what in f for f in findings), (source, findings)
    good = ("import torch\ntorch.load('x', map_location='cpu', weights_only=True, mmap=True)\n"
            "import numpy as np\nnp.load('a.npy')\nimport yaml\nyaml.safe_load('a: 1')\n"
            "from transformers import AutoTokenizer\nAutoTokenizer.from_pretrained('d', local_files_only=True)\n"
            "AnyRefPipeline.from_pretrained('tiny')\n")
    assert scan(good, "x.py") == []
    assert scan("import pickle\nclass U(pickle.Unpickler): pass", UNPICKLER_HOME) == []
    assert scan("import pickle\npickle.load(f)", UNPICKLER_HOME) == [f"{UNPICKLER_HOME}:2: pickle.load"]


def test_package_loads_models_and_data_only_safely():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    findings = []
    for path in files:
        rel = path.relative_to(PACKAGE).as_posix()
        findings += scan(path.read_text(encoding="utf-8"), rel)
    assert findings == [], "unsafe loading in anyref_ros/:\n" + "\n".join(findings)


# --------------------------------------------------------------- refs pickles
REFS = [
    {"ref_id": 1, "ann_id": 7, "image_id": 3, "split": "val", "category_id": 2, "sent_ids": [0, 1],
     "file_name": "COCO_train2014_000000000003_7.jpg",
     "sentences": [{"sent": "the man on the left", "raw": "The man on the left.", "sent_id": 0,
                    "tokens": ["the", "man", "on", "the", "left"]},
                   {"sent": "café chair", "sent_id": 1, "tokens": ["café", "chair"]}]},
    {"ref_id": 2, "ann_id": 8, "image_id": 3, "split": "testA", "sentences": [{"sent": "red cup"}],
     "score": 0.5, "flags": (True, None), "blob": b"\x00\xff", "tags": {"a", "b"}, "frozen": frozenset({1})},
]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_refs_pickles_load(tmp_path, protocol):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps(REFS, protocol=protocol))
    assert load_refs(path) == REFS


def test_python2_strings_load(tmp_path):
    """Python 2 ``str`` (SHORT_BINSTRING): UTF-8 when valid, else Latin-1."""
    def py2_list(raw: bytes) -> bytes:  # PROTO 2, EMPTY_LIST, SHORT_BINSTRING, APPEND, STOP
        return b"\x80\x02]U" + bytes([len(raw)]) + raw + b"a."

    (tmp_path / "utf8.p").write_bytes(py2_list("café".encode("utf-8")))
    (tmp_path / "latin1.p").write_bytes(py2_list("café".encode("latin-1")))
    assert load_plain_pickle(tmp_path / "utf8.p") == ["café"]
    assert load_plain_pickle(tmp_path / "latin1.p") == ["café"]


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Evaluates:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


def test_malicious_refs_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "refs(unc).p"
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        path.write_bytes(pickle.dumps([dict(REFS[0], payload=_RunsShell(marker))], protocol=protocol))
        with pytest.raises(ValueError, match=r"refs\(unc\)\.p: cannot read pickle .*refused to load (posix|os)\.system"):
            load_refs(path)
        assert not marker.exists()
    path.write_bytes(pickle.dumps(_Evaluates()))
    with pytest.raises(ValueError, match="refused to load builtins.eval"):
        load_refs(path)
    path.write_bytes(pickle.dumps([np.int64(3)]))  # numpy scalars are classes too: refused
    with pytest.raises(ValueError, match="refused to load numpy"):
        load_refs(path)
    with pytest.raises(ValueError, match=r"cannot read pickle"):
        path.write_bytes(b"\x80\x04not a pickle")
        load_refs(path)


def test_unpickler_admits_only_set_frozenset_and_latin1_bytes(tmp_path):
    assert set(RefsUnpickler.ALLOWED) == {("builtins", "set"), ("builtins", "frozenset"),
                                          ("__builtin__", "set"), ("__builtin__", "frozenset"),
                                          ("_codecs", "encode")}
    # _codecs.encode is admitted for latin1 only (protocol <= 2 bytes), not as a general codec call.
    path = tmp_path / "codec.p"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R.")
    with pytest.raises(ValueError, match="admitted only for latin1"):
        load_plain_pickle(path)


# --------------------------------------------------------- checkpoint manifest
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    AnyRefPipeline.from_pretrained("tiny", device="cpu").save_pretrained(folder)
    return folder


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_save_writes_a_manifest_and_load_checks_it(saved, tmp_path):
    entries = read_manifest(saved)
    assert {"config.json", "trained.safetensors", "base.safetensors", "tokenizer.json"} <= set(entries)
    assert MANIFEST not in entries
    for line in (saved / MANIFEST).read_text().splitlines():  # sha256sum -c format
        digest, name = line.split("  ", 1)
        assert len(digest) == 64 and (saved / name).is_file()
    assert verify_manifest(saved) == sorted(entries)
    folder = _copy(saved, tmp_path / "ok")
    (folder / "notes.txt").write_text("extra files are not checked\n")
    AnyRefPipeline.from_pretrained(folder, device="cpu")


def test_a_changed_byte_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path / "bad")
    data = bytearray((folder / "trained.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the tensor data: safetensors itself would not notice
    (folder / "trained.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"trained\.safetensors does not match SHA256SUMS.*corrupt or was changed"):
        AnyRefPipeline.from_pretrained(folder, device="cpu")
    (folder / "trained.safetensors").write_bytes((saved / "trained.safetensors").read_bytes())
    AnyRefPipeline.from_pretrained(folder, device="cpu")


def test_a_missing_listed_file_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path / "partial")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(WeightsError, match="tokenizer.json is listed in SHA256SUMS but missing"):
        AnyRefPipeline.from_pretrained(folder, device="cpu")


def test_malformed_manifests_are_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path / "odd")
    (folder / MANIFEST).write_text("not a checksum line\n")
    with pytest.raises(WeightsError, match="line 1 is not '<64 hex digits>  <file name>'"):
        AnyRefPipeline.from_pretrained(folder, device="cpu")
    (folder / MANIFEST).write_text("0" * 64 + "  ../../etc/passwd\n")
    with pytest.raises(WeightsError, match="may only name files inside its folder"):
        verify_manifest(folder)
    (folder / MANIFEST).unlink()  # no manifest: nothing to check (an older checkpoint)
    assert verify_manifest(folder) == []


@pytest.mark.parametrize("text", ["", "\n\n", "# written by hand\n# nothing listed yet\n"])
def test_a_manifest_that_lists_nothing_is_not_a_verification(saved, tmp_path, text):
    folder = _copy(saved, tmp_path / "empty")
    (folder / MANIFEST).write_text(text)
    with pytest.raises(WeightsError, match="lists no file .* nothing could be verified"):
        verify_manifest(folder)
    with pytest.raises(WeightsError, match="lists no file"):
        AnyRefPipeline.from_pretrained(folder, device="cpu")


@pytest.mark.parametrize("name", ["../outside.safetensors", "/etc/passwd", "shards/../../x.bin"])
def test_sharded_index_names_stay_inside_the_folder(tmp_path, name):
    import json

    from anyref_ros.model.loading import iter_tensors

    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": name}}))
    with pytest.raises(WeightsError, match="may only name files inside its folder"):
        list(iter_tensors(folder))


# ----------------------------------------------------------- path parameters
def test_resolve_model_path(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "ckpt"
    folder.mkdir(parents=True)
    (folder / "w.safetensors").write_bytes(b"x")
    assert resolve_model_path(folder, kind="folder") == folder.resolve()
    assert resolve_model_path("ckpt/w.safetensors", base=tmp_path / "models", kind="file") == folder / "w.safetensors"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_model_path("~/models/ckpt") == folder.resolve()
    outside = tmp_path / "elsewhere"
    outside.symlink_to(folder)  # a link out of a folder is normal (official files live elsewhere)
    assert resolve_model_path(outside) == folder.resolve()
    cases = [
        (dict(value=""), "expected a path"),
        (dict(value=None), "expected a path"),
        (dict(value="a\0b"), "NUL"),
        (dict(value=str(tmp_path / "nope")), "does not exist"),
        (dict(value=str(folder / "w.safetensors"), kind="folder"), "is a file; expected a folder"),
        (dict(value=str(folder), kind="file"), "is a folder; expected a file"),
        (dict(value=os.devnull), "not a regular file or folder"),
    ]
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone")
    cases.append((dict(value=str(dangling)), "symlink to a missing target"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases.append((dict(value=str(fifo)), "not a regular file or folder"))
    for kwargs, match in cases:
        value = kwargs.pop("value")
        with pytest.raises(WeightsError, match=match):
            resolve_model_path(value, what="checkpoint", hint="give a folder", **kwargs)


def test_unreadable_file_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"x")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads every file: let os.access answer as for another user
        monkeypatch.setattr(os, "access", lambda p, mode: False)
    with pytest.raises(WeightsError, match="is not readable by this process"):
        resolve_model_path(path, kind="file")


def test_weights_paths_are_checked_before_reading(tmp_path):
    """A device or FIFO named as a weight file is refused, never read (torch.load
    on a FIFO would block the node)."""
    config = get_preset("tiny")
    config.weights.base = os.devnull
    with pytest.raises(WeightsError, match=r"weights\.base = '/dev/null'.*not a regular file or folder"):
        AnyRefPipeline.from_config(config, device="cpu")
    fifo = tmp_path / "checkpoint"
    os.mkfifo(fifo)
    with pytest.raises(WeightsError, match="checkpoint .* not a regular file or folder"):
        AnyRefPipeline.from_pretrained(fifo, device="cpu")
