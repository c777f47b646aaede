"""Building the model and filling it from local files; saving checkpoints.

Sources (``WeightsConfig``), applied in this order, later ones winning:

=========== ============================================== =========================
``base``    this project's safetensors (canonical names)   everything not trained
``clip``    CLIP ViT HF folder (``vision_model.*``)        ``vision_tower``
``sam``     ``sam_vit_h_4b8939.pth``                       ``sam``
``imagebind`` ``imagebind_huge.pth`` (audio branch kept)   ``audio_encoder``
``llava``   LLaVA-7B-v1-1 HF folder (``model.layers.*``,   ``language_model``,
            ``model.mm_projector.*``, ``lm_head.*``)       ``mm_projector``
``lisa``    LISA-7B-v1 HF folder (LLaVA names plus          as llava, ``sam``,
            ``model.visual_model.*``,                      ``text_hidden_fcs``,
            ``model.text_hidden_fcs.0.*``,                 ``vision_tower``
            ``model.vision_tower.vision_tower.*``)
``trained`` this project's safetensors: LoRA adapter,       trained parts
            ``text_hidden_fcs``, ``audio_projector``, the
            trained mask-decoder parts, ``lm_head``, new token rows
=========== ============================================== =========================

"Canonical" names are the model's state-dict names without peft's
``.base_layer`` infix, so files do not depend on whether LoRA is injected.
Pickles are read with ``torch.load(weights_only=True)``; nothing is
downloaded and no remote code runs.  Every model tensor must come from a file
(or, with ``allow_random``, keeps its seeded random value); otherwise loading
fails naming the tensor, its shape and the setting to fix.

Integrity: ``save_pipeline`` writes ``SHA256SUMS`` (``sha256sum`` format,
``<hex>  <file name>`` per line) for the files it wrote; when a checkpoint
folder has one, loading first checks every file it lists (a missing file or
a different hash is a :class:`WeightsError` naming the file; files it does
not list are not checked). A manifest that lists no file (empty, or only
comments) verifies nothing and is refused, as is a name in it or in a
sharded checkpoint's index that leaves the folder (``..``, an absolute path). Paths given by users (the checkpoint, the
``weights.*`` entries) go through :func:`resolve_model_path` before use.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import torch

from . import optimize as O
from .config import AnyRefConfig
from .modeling import AnyRefModel
from .presets import get_preset, preset_names
from .tokenization import add_model_tokens, build_stand_in_tokenizer, make_tokenizer

BASE_FILE = "base.safetensors"
TRAINED_FILE = "trained.safetensors"
MANIFEST = "SHA256SUMS"  # sha256sum format; written by save_pipeline, checked on load
ROW_OFFSETS = "row_offsets"  # safetensors metadata: {name: first row} for row slices
OFFICIAL = ("clip", "sam", "imagebind", "llava", "lisa")
ORDER = ("base",) + OFFICIAL + ("trained",)
ROW_SLICED = ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight")
KEEP_FLOAT32 = ("sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",)
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


class WeightsError(ValueError):
    """A weight file is missing, unreadable or does not fit the model."""


def canonical(name: str) -> str:
    """Model state-dict name -> file name: no peft ``.base_layer`` infix, and
    CLIP under ``vision_tower.vision_model.`` (transformers 5 dropped that
    level from ``CLIPVisionModel``; checkpoints keep it)."""
    name = name.replace(".base_layer.", ".")
    if name.startswith("vision_tower.") and not name.startswith("vision_tower.vision_model."):
        name = "vision_tower.vision_model." + name[len("vision_tower."):]
    return name


# ------------------------------------------------------------------ readers
def iter_tensors(path: Path) -> Iterator[Tuple[str, torch.Tensor]]:
    """(name, tensor) pairs of a .safetensors/.pth/.bin file or an HF folder."""
    if path.is_dir():
        files = _folder_files(path)
        for file in files:
            yield from iter_tensors(file)
        return
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                yield name, f.get_tensor(name)
        return
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - reported with the file name
        raise WeightsError(f"{path}: cannot be read as a PyTorch checkpoint "
                           f"(torch.load weights_only=True): {exc}") from exc
    if isinstance(data, dict) and "model" in data and isinstance(data["model"], dict):
        data = data["model"]
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a state dict (name -> tensor), got {type(data).__name__}")
    for name, tensor in data.items():
        if isinstance(tensor, torch.Tensor):
            yield name, tensor


def _folder_files(folder: Path) -> List[Path]:
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            weight_map = json.loads((folder / index).read_text())["weight_map"]
            names = sorted(set(weight_map.values()), key=str)
            for name in names:
                _check_inside(name, f"{folder / index}: the weight map names {name!r}")
            return [folder / f for f in names]
    for pattern in ("model*.safetensors", "pytorch_model*.bin"):
        files = sorted(folder.glob(pattern))
        if files:
            return files
    raise WeightsError(f"{folder}: no model*.safetensors or pytorch_model*.bin weight files "
                       "(expected a Hugging Face checkpoint folder)")


def _strip(name: str, prefixes: Dict[str, str]) -> Optional[str]:
    for old, new in prefixes.items():
        if name.startswith(old):
            return new + name[len(old):]
    return None


def _llava_map(name: str, lisa: bool) -> Optional[str]:
    prefixes = {}
    if lisa:
        prefixes.update({"model.visual_model.": "sam.", "model.text_hidden_fcs.0.": "text_hidden_fcs."})
    prefixes.update({"model.mm_projector.": "mm_projector.",
                     "model.vision_tower.vision_tower.": "vision_tower.",
                     "model.": "language_model.model.", "lm_head.": "language_model.lm_head."})
    return _strip(name, prefixes)


def mapped_tensors(kind: str, path: Path) -> Iterator[Tuple[str, Optional[str], torch.Tensor]]:
    """(file name, canonical name or None if not ours, tensor) for source ``kind``."""
    for name, tensor in iter_tensors(path):
        if kind in ("base", "trained"):
            target = name
        elif kind == "clip":
            target = _strip(name, {"vision_model.": "vision_tower.vision_model."})
        elif kind == "sam":
            target = _strip(name, {p: "sam." + p for p in
                                   ("image_encoder.", "prompt_encoder.", "mask_decoder.")})
        elif kind == "imagebind":
            target = None
            for part in ("preprocessors", "trunks", "heads", "postprocessors"):
                prefix = f"modality_{part}.audio."
                if name.startswith(prefix):
                    target = "audio_encoder." + name
        else:
            target = _llava_map(name, lisa=kind == "lisa")
        yield name, target, tensor


# Names in official files that are not parameters of ours (ignored).
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq", "embeddings.position_ids")


# ------------------------------------------------------------------- build
def resolve_files(config: AnyRefConfig, folder: Optional[Path]) -> Dict[str, Path]:
    """Configured weight paths, relative ones resolved against ``folder``."""
    files = {}
    for kind in ORDER:
        value = getattr(config.weights, kind)
        if value is None:
            continue
        files[kind] = resolve_model_path(value, what=f"weights.{kind}", base=folder,
                                         hint=f"point weights.{kind} at the {_DESCRIBE[kind]}")
    return files


_DESCRIBE = {
    "base": "base.safetensors written by save_pretrained",
    "trained": "trained.safetensors written by save_pretrained",
    "clip": "CLIP ViT-L/14 Hugging Face folder (openai/clip-vit-large-patch14)",
    "sam": "SAM checkpoint file (sam_vit_h_4b8939.pth)",
    "imagebind": "ImageBind checkpoint file (imagebind_huge.pth)",
    "llava": "LLaVA-7B-v1-1 Hugging Face folder (e.g. LLaVA-7B-Lightening-v1-1)",
    "lisa": "LISA-7B-v1 Hugging Face folder",
}


def _prepare(tensor: torch.Tensor, dtype: Optional[torch.dtype]) -> torch.Tensor:
    """A tensor in its own, 64-byte aligned memory (tensors read from files
    may sit at odd offsets of a file buffer, which makes CPU kernels take
    other, not bit-identical, code paths), in ``dtype`` if given."""
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        return tensor.to(dtype)
    if tensor.data_ptr() % 64:
        return tensor.clone()
    return tensor


def build_model(config: AnyRefConfig, files: Dict[str, Path], dtype: Optional[torch.dtype] = None):
    """The model with every tensor from ``files``; returns (model, sources, base_rows).

    ``dtype``: floating tensors are converted to it while reading;
    ``sources``: canonical name -> file path (None: random initialisation);
    ``base_rows``: for embedding/LM-head matrices taken partly from an
    official file, how many rows it provided.
    """
    from accelerate import init_empty_weights

    if config.weights.allow_random:
        torch.manual_seed(config.init_seed)
        model = AnyRefModel(config)
        _randomise_lora(model, config.init_seed)
    else:
        with init_empty_weights():  # parameters on "meta" until assigned
            model = AnyRefModel(config)
    collector = _Collector(model, config, dtype)
    for kind in ORDER:
        if kind in files:
            collector.read(kind, files[kind])
    model.load_state_dict(collector.state(files), strict=False, assign=True)
    meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if meta:
        raise WeightsError(f"internal: tensors left uninitialised: {meta[:5]}")
    return model.eval(), collector.sources, collector.base_rows


class _Collector:
    """Gathers tensors from weight files for one model, checking names and shapes."""

    def __init__(self, model: AnyRefModel, config: AnyRefConfig, dtype) -> None:
        current = model.state_dict()
        self.actual = {canonical(k): k for k in current}
        self.expected = {c: current[k] for c, k in self.actual.items()}
        self.config, self.dtype = config, dtype
        self.full: Dict[str, torch.Tensor] = {}
        self.rows: Dict[str, List[Tuple[int, torch.Tensor]]] = {}
        self.sources: Dict[str, Optional[str]] = {}
        self.base_rows: Dict[str, int] = {}

    def read(self, kind: str, path: Path) -> None:
        own = kind in ("base", "trained")
        offsets = _row_offsets(path) if own else {}
        unexpected, seen, used = [], [], 0
        for file_name, name, tensor in mapped_tensors(kind, path):
            seen.append(file_name)
            if name not in self.expected:
                if own or (name is not None and not name.endswith(_IGNORED_SUFFIXES)):
                    unexpected.append(file_name)
                continue
            used += 1
            self._add(kind, path, file_name, name, tensor, offsets.get(name))
        if not used and not own:
            unexpected = seen
        if unexpected:
            raise WeightsError(
                f"{path}: {len(unexpected)} tensors do not belong to preset {self.config.name!r} "
                f"(e.g. {', '.join(unexpected[:5])}); weights.{kind} should be the "
                f"{_DESCRIBE[kind]} for this config")

    def _add(self, kind, path, file_name, name, tensor, offset: Optional[int]) -> None:
        want, got = tuple(self.expected[name].shape), tuple(tensor.shape)
        tensor = _prepare(tensor, None if name in KEEP_FLOAT32 else self.dtype)
        if offset is not None:  # a row slice in our own format (added tokens)
            if got[1:] != want[1:] or offset + got[0] > want[0]:
                raise WeightsError(_shape_message(path, file_name, got, want, kind))
            self.rows.setdefault(name, []).append((offset, tensor))
            self.sources.setdefault(name, str(path))
        elif got == want:
            self.full[name] = tensor
            self.rows.pop(name, None)
            self.sources[name] = str(path)
        elif name in ROW_SLICED and kind in OFFICIAL and got[1:] == want[1:] and got[0] < want[0]:
            self.rows[name] = [(0, tensor)]  # the base vocabulary; added tokens come later
            self.sources[name] = str(path)
            self.base_rows[name] = got[0]
        else:
            raise WeightsError(_shape_message(path, file_name, got, want, kind))

    def state(self, files) -> Dict[str, torch.Tensor]:
        """Model state-dict names -> tensors; WeightsError listing what is missing."""
        allow_random = self.config.weights.allow_random
        state, missing = {}, []
        for name, ref in self.expected.items():
            if name in self.full:
                tensor = self.full[name]
                if name in self.rows:
                    tensor = tensor.clone()
                    for start, part in self.rows[name]:
                        tensor[start: start + part.shape[0]] = part
            elif name in self.rows:
                tensor = _assemble_rows(self.rows[name], ref, allow_random)
                if tensor is None:
                    missing.append((name, ref.shape, "rows of added tokens"))
                    continue
            elif allow_random:
                self.sources[name] = None
                continue
            else:
                missing.append((name, ref.shape, ""))
                continue
            state[self.actual[name]] = tensor
        if missing:
            raise WeightsError(_missing_message(self.config, missing, files))
        return state


def _assemble_rows(parts, ref: torch.Tensor, allow_random: bool) -> Optional[torch.Tensor]:
    n = ref.shape[0]
    if ref.device.type != "meta" and allow_random:
        out = ref.detach().clone()
        covered = torch.ones(n, dtype=torch.bool)
    else:
        out = torch.empty(ref.shape, dtype=parts[0][1].dtype)
        covered = torch.zeros(n, dtype=torch.bool)
    for start, part in parts:
        out[start: start + part.shape[0]] = part.to(out.dtype)
        covered[start: start + part.shape[0]] = True
    return out if bool(covered.all()) else None


def _row_offsets(path: Path) -> Dict[str, int]:
    from safetensors import safe_open

    if path.suffix != ".safetensors":
        raise WeightsError(f"{path}: this project's weight files are .safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return {k: int(v) for k, v in json.loads(meta.get(ROW_OFFSETS, "{}")).items()}


def _shape_message(path, key, got, want, kind) -> str:
    return (f"{path}: tensor {key!r} has shape {list(got)}, expected {list(want)}; "
            f"weights.{kind} should be the {_DESCRIBE[kind]} matching this config's sizes")


def _missing_message(config: AnyRefConfig, missing, files) -> str:
    lines = [f"no weights for {len(missing)} tensors of preset {config.name!r}:"]
    for name, shape, what in missing[:8]:
        lines.append(f"  {name} {list(shape)}" + (f" ({what})" if what else ""))
    if len(missing) > 8:
        lines.append(f"  ... and {len(missing) - 8} more")
    hint = _missing_hint(missing[0][0])
    used = ", ".join(f"{k}={v}" for k, v in files.items()) or "none"
    lines.append(f"files used: {used}")
    lines.append(f"what to do: {hint}")
    return "\n".join(lines)


def _missing_hint(name: str) -> str:
    if name.startswith("audio_encoder."):
        return "set weights.imagebind to imagebind_huge.pth"
    if name.startswith("sam."):
        return "set weights.sam to sam_vit_h_4b8939.pth (or weights.lisa)"
    if name.startswith("vision_tower."):
        return "set weights.clip to the CLIP ViT-L/14 folder"
    if "lora_" in name or name.startswith(("text_hidden_fcs", "audio_projector")) \
            or name in ROW_SLICED:
        return ("set weights.trained to a trained.safetensors with the AnyRef trained parts "
                "(LoRA, text_hidden_fcs, audio_projector, new token rows)")
    return "set weights.llava (or weights.lisa) to the language-model folder"


def _randomise_lora(model: AnyRefModel, seed: int) -> None:
    """peft starts ``lora_B`` at zero; a from-scratch model gets small random
    values instead so that the adapter path does something."""
    gen = torch.Generator().manual_seed(seed + 1)
    for name, param in model.language_model.named_parameters():
        if "lora_B" in name:
            with torch.no_grad():
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)


# ------------------------------------------------------ paths and integrity
def resolve_model_path(value, *, what: str = "checkpoint", base: Optional[Path] = None,
                       kind: str = "any", hint: str = "") -> Path:
    """Resolve a user-given model path and check it before anything reads it.

    ``value``: a path (``~`` expanded; relative ones against ``base``, else
    the working directory). ``kind``: ``"folder"``, ``"file"`` or ``"any"``
    (either). Refused with a :class:`WeightsError` naming ``what`` and the
    path (``hint`` appended: what to do): an empty value, a path that does
    not exist (a dangling symlink included), a folder where a file is
    expected or the other way round, anything that is neither a regular
    file nor a folder (a device, a FIFO or a socket: reading it could block
    or never end), and a file or folder this process cannot read. Symlinks
    are followed and the real path is returned: pointing outside the
    checkpoint folder is normal (its config names official files by
    relative paths such as ``../sam_vit_h_4b8939.pth``), so it is not
    refused.
    """
    suffix = f"; {hint}" if hint else ""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or not text.strip():
        raise WeightsError(f"{what}: expected a path, got {value!r}{suffix}")
    if "\0" in text:
        raise WeightsError(f"{what}: the path contains a NUL character{suffix}")
    path = Path(os.path.expanduser(text))
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    try:
        info = path.stat()
    except FileNotFoundError:
        broken = " (a symlink to a missing target)" if path.is_symlink() else ""
        raise WeightsError(f"{what} = {text!r}: {path} does not exist{broken}{suffix}") from None
    except OSError as exc:
        raise WeightsError(f"{what} = {text!r}: cannot access {path}: {exc.strerror or exc}{suffix}") from None
    is_dir, is_file = stat.S_ISDIR(info.st_mode), stat.S_ISREG(info.st_mode)
    if not (is_dir or is_file):
        raise WeightsError(f"{what} = {text!r}: {path} is not a regular file or folder "
                           f"(a device, FIFO or socket){suffix}")
    if kind == "folder" and not is_dir:
        raise WeightsError(f"{what} = {text!r}: {path} is a file; expected a folder{suffix}")
    if kind == "file" and not is_file:
        raise WeightsError(f"{what} = {text!r}: {path} is a folder; expected a file{suffix}")
    if not os.access(path, os.R_OK | (os.X_OK if is_dir else 0)):
        raise WeightsError(f"{what} = {text!r}: {path} is not readable by this process "
                           f"(check its permissions){suffix}")
    return path.resolve()


_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_manifest(folder, names) -> Path:
    """Write ``folder/SHA256SUMS`` for the files ``names`` (relative to ``folder``)."""
    folder = Path(folder)
    lines = [f"{sha256_file(folder / name)}  {name}\n" for name in sorted(set(names))]
    out = folder / MANIFEST
    out.write_text("".join(lines))
    return out


def read_manifest(folder) -> Optional[Dict[str, str]]:
    """{file name: sha256 hex} from ``folder/SHA256SUMS``; None when there is none."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path}: cannot read the checksum manifest ({exc})") from None
    entries: Dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _MANIFEST_LINE.match(line.rstrip("\r"))
        if match is None:
            raise WeightsError(f"{path}: line {number} is not '<64 hex digits>  <file name>' "
                               "(the sha256sum format)")
        name = match.group(2)
        _check_inside(name, f"{path}: line {number} names {name!r}")
        entries[name] = match.group(1).lower()
    if not entries:
        raise WeightsError(f"{path} lists no file (it is empty or holds only comments), so nothing could be "
                           f"verified; write it again (cd {path.parent} && sha256sum FILES > {MANIFEST}) "
                           "or remove it")
    return entries


def _check_inside(name, what: str) -> None:
    """A file name from a checkpoint's own files (manifest, shard index): a relative
    path that stays inside the folder, else :class:`WeightsError`."""
    if not isinstance(name, str) or not name or chr(0) in name:
        raise WeightsError(f"{what}; expected a file name")
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts or not parts:
        raise WeightsError(f"{what}; the checkpoint may only name files inside its folder")


def verify_manifest(folder) -> List[str]:
    """Check every file listed in ``folder/SHA256SUMS``; returns the names
    checked ([] when the folder has no manifest). A listed file that is
    missing or whose SHA-256 differs raises :class:`WeightsError` naming it."""
    folder = Path(folder)
    entries = read_manifest(folder)
    if entries is None:
        return []
    for name, expected in entries.items():
        path = folder / name
        if not path.is_file():
            raise WeightsError(
                f"checkpoint {folder}: {name} is listed in {MANIFEST} but missing; the checkpoint is "
                "incomplete: copy the whole folder again")
        actual = sha256_file(path)
        if actual != expected:
            raise WeightsError(
                f"checkpoint {folder}: {name} does not match {MANIFEST} (SHA-256 {actual[:16]}..., "
                f"expected {expected[:16]}...): the file is corrupt or was changed after the checkpoint "
                f"was saved; copy the checkpoint again (if you changed it on purpose, rewrite the "
                f"manifest: cd {folder} && sha256sum {' '.join(sorted(entries))} > {MANIFEST})")
    return sorted(entries)


# ------------------------------------------------------------------- entry
def resolve_device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but torch sees no CUDA device")
    return device


def resolve_dtype(dtype, config: AnyRefConfig) -> torch.dtype:
    value = config.dtype if dtype is None else dtype
    if isinstance(value, torch.dtype):
        if value not in DTYPES.values():
            raise ValueError(f"dtype: expected float32, bfloat16 or float16, got {value}")
        return value
    if value not in DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(DTYPES)}, got {value!r}")
    return DTYPES[value]


def load_pipeline(cls, path_or_preset, device=None, dtype=None, *, quantization=None,
                  merge_lora=False, random_weights=False, compile=False):
    """See ``AnyRefPipeline.from_pretrained``."""
    path = Path(os.path.expanduser(str(path_or_preset)))
    if path.exists() or path.is_symlink():
        path = resolve_model_path(path, what="checkpoint",
                                  hint="give a checkpoint folder written by save_pretrained")
        folder: Optional[Path] = path if path.is_dir() else path.parent
        if not random_weights:
            verify_manifest(folder)
        config = AnyRefConfig.load(path)
    elif str(path_or_preset) in preset_names():
        config = get_preset(str(path_or_preset))
        folder = None
    else:
        raise FileNotFoundError(f"{path_or_preset!r} is neither a checkpoint folder nor a preset "
                                f"(presets: {', '.join(preset_names())})")
    return pipeline_from_config(cls, config, folder, device=device, dtype=dtype,
                                quantization=quantization, merge_lora=merge_lora,
                                random_weights=random_weights, compile=compile)


def pipeline_from_config(cls, config: AnyRefConfig, folder: Optional[Path] = None,
                         device=None, dtype=None, *, quantization=None, merge_lora=False,
                         random_weights=False, compile=False):
    """Build ``cls`` (a pipeline class) from ``config``; relative paths in it
    are resolved against ``folder`` (else the working directory).

    ``quantization``: None (the config's), "none", "8bit" or "4bit" (see
    ``optimize.py``); ``merge_lora``: merge the LoRA adapter into the base
    weights (inference only: such a pipeline cannot be trained into or
    saved); ``random_weights``: the architecture with random weights on
    ``device``, no weight file read (a stand-in tokenizer of the same
    vocabulary size when the LLaMA one is not at hand); ``compile``:
    ``torch.compile`` the language model and mask decoder (CUDA only).
    """
    config = copy.deepcopy(config)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, config)
    mode = O.resolve_quantization(quantization, config.quantization)
    bnb = O.check_quantization(mode, torch_device)  # before anything heavy
    if random_weights:
        files: Dict[str, Path] = {}
        tokenizer = _random_weights_tokenizer(config, folder)
    else:
        files = resolve_files(config, folder)
        tokenizer = make_tokenizer(config, _tokenizer_folder(config, folder, files))
    config.language.vocab_size = len(tokenizer)
    generator = None
    if random_weights:
        from accelerate import init_empty_weights

        with init_empty_weights():  # parameters on "meta"; buffers (small) real
            model = AnyRefModel(config)
        sources: Dict[str, Optional[str]] = {canonical(k): None for k in model.state_dict()}
        base_rows: Dict[str, int] = {}
        generator = O.random_generator(torch_device, config.init_seed)
    else:
        model, sources, base_rows = build_model(config, files, torch_dtype)
    detached = O.detach_language_linears(model) if mode is not None else []
    if random_weights:
        O.materialise(model, torch_device, torch_dtype, generator)
    model.place(torch_device, torch_dtype)
    if merge_lora:
        O.merge_lora(model)
    O.attach_language_linears(detached, device=torch_device, dtype=torch_dtype, merge=merge_lora,
                              bnb=bnb, mode=mode, generator=generator)
    if merge_lora and config.lora is not None:
        model.lora_merged = True
    config.quantization = mode
    if compile:
        O.compile_model(model, torch_device)
    return cls(model.eval(), tokenizer, config, sources=sources, folder=folder, base_rows=base_rows)


def _random_weights_tokenizer(config: AnyRefConfig, folder: Optional[Path]):
    """The config's tokenizer when its files are at hand, else (a LLaMA
    tokenizer) a stand-in of the same vocabulary size."""
    tok_folder = _tokenizer_folder(config, folder, {})
    if tok_folder is not None and tok_folder.is_dir():
        return make_tokenizer(config, tok_folder)
    if config.tokenizer.kind != "pretrained":
        return make_tokenizer(config)
    tokenizer = build_stand_in_tokenizer(config)
    add_model_tokens(tokenizer, config.tokens)
    return tokenizer


def _tokenizer_folder(config: AnyRefConfig, folder: Optional[Path], files) -> Optional[Path]:
    names = ("tokenizer.json", "tokenizer.model")
    if folder is not None and any((folder / n).is_file() for n in names):
        return folder
    if config.tokenizer.path is not None:
        path = Path(os.path.expanduser(config.tokenizer.path))
        return path if path.is_absolute() or folder is None else folder / path
    if config.tokenizer.kind == "pretrained":
        for kind in ("lisa", "llava"):
            if kind in files and files[kind].is_dir():
                return files[kind]
    return None


# -------------------------------------------------------------------- save
def save_pipeline(pipe, folder) -> None:
    """Write ``config.json``/``config.yaml``, the tokenizer, ``trained.safetensors``
    (LoRA, ``trained_modules``, added-token rows) and, for tensors that came
    from no official file, ``base.safetensors``; official files stay
    referenced (paths relative to ``folder``). Last, ``SHA256SUMS`` lists
    the files written here (checked when the folder is loaded)."""
    from safetensors.torch import save_file

    if getattr(pipe.model, "lora_merged", False) or O.is_quantized(pipe.model):
        raise ValueError("this pipeline was loaded for inference (LoRA merged into the base weights "
                         "or a quantized language model) and cannot be saved: load the checkpoint "
                         "with merge_lora=False and quantization='none' to save or train it")
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(pipe.config)
    state = {canonical(k): v.detach().to("cpu").contiguous()
             for k, v in pipe.model.state_dict().items()}
    official = {str(p) for p in _official_paths(pipe)}
    trained: Dict[str, torch.Tensor] = {}
    base: Dict[str, torch.Tensor] = {}
    offsets: Dict[str, int] = {}
    base_rows = pipe.base_rows
    for name, tensor in state.items():
        if name in base_rows:
            start = base_rows[name]
            if _is_trained(name, config):
                trained[name] = tensor.clone()
            else:
                trained[name] = tensor[start:].clone()
                offsets[name] = start
        elif _is_trained(name, config):
            trained[name] = tensor.clone()
        elif pipe.sources.get(name) not in official:
            base[name] = tensor.clone()
    for kind in OFFICIAL:
        value = getattr(config.weights, kind)
        if value is not None:
            src = _resolve_against(value, pipe.folder)
            setattr(config.weights, kind, os.path.relpath(src, folder))
    config.weights.base = None
    if base:
        save_file(base, str(folder / BASE_FILE))
        config.weights.base = BASE_FILE
    save_file(trained, str(folder / TRAINED_FILE), metadata={ROW_OFFSETS: json.dumps(offsets)})
    config.weights.trained = TRAINED_FILE
    config.weights.allow_random = False
    config.dtype = _dtype_name(pipe.model.dtype)
    config.save(folder)
    written = [n for n in (BASE_FILE if base else None, TRAINED_FILE, "config.json", "config.yaml")
               if n is not None and (folder / n).is_file()]
    for file in pipe.tokenizer.save_pretrained(str(folder)) or ():
        file = Path(file)
        if file.parent.resolve() == folder and file.is_file():
            written.append(file.name)
    write_manifest(folder, written)  # checked by load_pipeline


def _is_trained(name: str, config: AnyRefConfig) -> bool:
    return "lora_" in name or any(name == p or name.startswith(p + ".") for p in config.trained_modules)


def _official_paths(pipe) -> List[Path]:
    out = []
    for kind in OFFICIAL:
        value = getattr(pipe.config.weights, kind)
        if value is not None:
            out.append(_resolve_against(value, pipe.folder))
    return out


def _resolve_against(value: str, folder: Optional[Path]) -> Path:
    path = Path(os.path.expanduser(value))
    if not path.is_absolute() and folder is not None:
        path = folder / path
    return path.resolve()


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]
