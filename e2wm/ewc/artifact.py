"""The Fisher artifact: a folder that is complete or absent, and its validation against a model.

``fisher.safetensors`` (fp32 or bf16, never fp16: squared gradients underflow it) keyed by the base
model's weight names, with the metadata as JSON under the header key ``e2wm_fisher``; the same metadata
in ``fisher.json``; a ``README.md`` card. The metadata records the base model (name, revision, content
hash), the estimator, the documents and tokens it saw, the normalization applied, the layouts and, per
tensor, the statistics of the raw estimate (``e2wm.ewc.normalization.fisher_statistics``).

Never pickled; loading validates every entry (dtype, finite, non-negative, shape, base model).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from e2wm.ewc.layers import (
    FisherError,
    FisherFormatError,
    FisherMismatchError,
    base_identity,
    base_modules,
    lora_layers,
    model_identity,
    weight_shape,
)
from e2wm.utils import make_new_dir, new_file_mode

logger = logging.getLogger(__name__)

__all__ = [
    "CARD_FILE",
    "FISHER_FILE",
    "METADATA_FILE",
    "SAVE_DTYPES",
    "Fisher",
    "atomic_save_file",
    "check_fisher_folder",
    "load_fisher",
    "read_fisher_metadata",
    "save_fisher",
]

SAVE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
FORMAT, FORMAT_VERSION = "e2wm-fisher", 1
FISHER_FILE, METADATA_FILE, CARD_FILE = "fisher.safetensors", "fisher.json", "README.md"
_HEADER_KEY = "e2wm_fisher"


def atomic_save_file(tensors: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file`` through a temporary file and a rename: the file is complete or absent."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = make_new_dir(path.parent, f".{path.name}.")
    tmp = staging / path.name
    try:
        save_file(dict(tensors), str(tmp), metadata={"format": "pt", **metadata})
        os.chmod(tmp, new_file_mode(staging))  # safetensors writes 0600 whatever the umask
        os.replace(tmp, path)
    except SafetensorError as err:  # safetensors reports a full disk as "I/O error: ... (os error 28)"
        code = re.search(r"os error (\d+)", str(err))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_values(tensors: Mapping[str, torch.Tensor], where: str) -> None:
    for key, tensor in tensors.items():
        if tensor.dtype == torch.float16:
            raise FisherFormatError(f"{where}: {key!r} is float16; a Fisher must be float32 or bfloat16")
        if not tensor.dtype.is_floating_point:
            raise FisherFormatError(f"{where}: {key!r} has dtype {tensor.dtype}; a Fisher must be floating point")
        bad = (~torch.isfinite(tensor)).sum().item()
        if bad:
            raise FisherFormatError(f"{where}: {key!r} has {bad} NaN or infinite value(s)")
        if tensor.numel() and tensor.min().item() < 0:
            raise FisherFormatError(f"{where}: {key!r} has negative values (min {tensor.min().item():.3g})")


def save_fisher(
    folder: str | Path,
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
    *,
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Write the Fisher folder (``fisher.safetensors``, ``fisher.json``, ``README.md``), complete or absent.

    ``metadata`` must be JSON-serialisable; ``format``, ``format_version`` and ``dtype`` are set here.
    The folder is built beside ``folder`` and renamed into place; an existing ``folder`` is replaced only
    with ``overwrite``.
    """
    from e2wm._model_cards import render_card

    if dtype not in SAVE_DTYPES:
        hint = " (never float16: squared gradients underflow it)" if "16" in dtype else ""
        raise FisherError(f"dtype must be float32 or bfloat16, got {dtype!r}{hint}")
    folder = Path(folder)
    check_fisher_folder(folder, overwrite)
    _check_values(tensors, "the Fisher to save")
    meta = {**metadata, "format": FORMAT, "format_version": FORMAT_VERSION, "dtype": dtype}
    header = json.dumps(meta, sort_keys=True)
    stored = {key: t.detach().to("cpu", SAVE_DTYPES[dtype]).contiguous() for key, t in tensors.items()}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_new_dir(folder.parent, f".{folder.name}.tmp-")  # mkdir's permissions, not mkdtemp's 0700
    try:
        atomic_save_file(stored, tmp / FISHER_FILE, {_HEADER_KEY: header})
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        card = render_card("fisher_card.md.jinja", meta=meta, entries=_entry_summary(stored))
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):  # named as the folder asked for, not the staging folder just removed
            raise OSError(err.errno, err.strerror, str(folder)) from None
        raise
    return folder


def check_fisher_folder(folder: Path, overwrite: bool) -> None:
    """Refuse a ``folder`` that writing a Fisher there would destroy: one that exists without ``overwrite``, a
    file, or (even with ``overwrite``) a folder holding anything but a Fisher's own files."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise FisherError(f"{folder} is a file: give a folder for the Fisher")
    if not folder.exists():
        return
    if not overwrite:
        raise FisherError(f"{folder} already exists; choose another output folder or overwrite it")
    others = sorted(
        e.name for e in folder.iterdir() if e.name not in (FISHER_FILE, METADATA_FILE, CARD_FILE, ".e2wm.lock")
    )
    if others:
        raise FisherError(
            f"{folder} holds files that are not a Fisher's ({', '.join(others[:3])}{' …' if len(others) > 3 else ''}): "
            "overwriting replaces the whole folder, so it replaces only a Fisher folder; choose another output folder"
        )


def _entry_summary(tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    values = sum(t.numel() for t in tensors.values())
    shapes = sorted({tuple(t.shape) for t in tensors.values()})
    return {
        "num_tensors": len(tensors),
        "num_values": values,
        "shapes": [list(s) for s in shapes],
        "names": list(tensors),
    }


class Fisher(Mapping[str, torch.Tensor]):
    """A loaded Fisher: a mapping from base weight names to tensors, with its ``metadata``.

    ``base_check``: how ``load_fisher`` checked that it belongs to the model (also logged), or None.
    """

    def __init__(
        self, tensors: dict[str, torch.Tensor], metadata: dict[str, Any], base_check: str | None = None
    ) -> None:
        self._tensors, self.metadata, self.base_check = tensors, metadata, base_check

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._tensors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def to(self, device: torch.device | str) -> Fisher:
        return Fisher({k: t.to(device) for k, t in self._tensors.items()}, self.metadata, self.base_check)

    def __repr__(self) -> str:
        return (
            f"Fisher({len(self)} tensors, base {self.metadata.get('base_model')!r}, {self.metadata.get('estimator')})"
        )


def _resolve(path_or_repo: str | Path, revision: str | None) -> Path:
    path = Path(path_or_repo)
    if path.is_dir():
        path = path / FISHER_FILE
    if path.is_file():
        return path
    if path.exists() or str(path_or_repo).startswith((".", "/", "~")) or str(path_or_repo).count("/") != 1:
        raise FisherFormatError(f"no Fisher at {path_or_repo}: expected a folder with {FISHER_FILE} or a Hub repo id")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(str(path_or_repo), FISHER_FILE, revision=revision))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
        raise FisherFormatError(
            f"no Fisher at {path_or_repo}: not a local folder, and the Hub gave no {FISHER_FILE} ({err})"
        ) from None


def load_fisher(
    path_or_repo: str | Path,
    model: nn.Module,
    *,
    revision: str | None = None,
    check_base: bool = True,
    device: torch.device | str | None = None,
    across_processes: bool = False,
) -> Fisher:
    """Load a Fisher folder, file or Hub repo and validate it against ``model`` (plain or peft-wrapped).

    Raises ``FisherFormatError`` for a file that is not an e2wm Fisher, fp16, NaN/inf or negative
    values; ``FisherMismatchError`` for an entry naming a module the model lacks, a wrong shape, a LoRA
    layer without an entry, or another base model. The base check: when both the Fisher and the model
    have a content hash (neither quantized) they must be equal; otherwise the ``_name_or_path`` of the
    model's config must equal the Fisher's base model (``check_base=False`` skips this check). The check done
    is logged (``e2wm.ewc.artifact``: INFO, WARNING when nothing could be compared) and kept in
    ``Fisher.base_check``. ``across_processes``: call it on every process of a ``torch.distributed`` group (as
    ``EWCLoRATrainer`` does in a multi-process run) so that the hash is computed where the weights are whole:
    gathered from ZeRO-3 partitions or FSDP shards, or on process 0 when the others hold meta placeholders
    (``e2wm.ewc.layers.base_identity``). Each tensor goes to its module's device, or to ``device``.
    """
    from safetensors import SafetensorError, safe_open

    file = _resolve(path_or_repo, revision)
    try:
        with safe_open(str(file), framework="pt") as handle:
            header = (handle.metadata() or {}).get(_HEADER_KEY)
            if header is None:
                raise FisherFormatError(f"{file} is not an e2wm Fisher (no {_HEADER_KEY!r} metadata in its header)")
            metadata: dict[str, Any] = json.loads(header)
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, json.JSONDecodeError) as err:
        raise FisherFormatError(
            f"{file} is not a safetensors file, or a damaged one ({err}); re-create it with `e2wm fisher`"
        ) from None
    _upgrade_metadata(metadata)
    _check_values(tensors, str(path_or_repo))
    if tensors and all(not bool(t.any()) for t in tensors.values()):
        raise FisherFormatError(
            f"{path_or_repo}: every entry of the Fisher is zero, so the penalty would be 0 whatever λ is; "
            "re-estimate it (check the documents and the target modules)"
        )
    identity = model_identity(model, [])
    context = f"estimated for {metadata.get('base_model')}; this model is {identity['base_model_name_or_path'] or '(unnamed)'}"
    modules = dict(base_modules(model))
    for key, tensor in tensors.items():
        name = key.removesuffix(".weight")
        if name not in modules or key == name:
            raise FisherMismatchError(f"Fisher has an entry for {key!r}, but this model has no such weight ({context})")
        expected = weight_shape(modules[name])
        if tuple(tensor.shape) != expected:
            raise FisherMismatchError(
                f"Fisher entry {key!r} has shape {tuple(tensor.shape)}, but this model's weight is {expected} ({context})"
            )
    for name, layer in lora_layers(model):
        if len(layer.lora_A) and f"{name}.weight" not in tensors:
            raise FisherMismatchError(f"Fisher has no entry for '{name}.weight' ({context})")
    base_check = "skipped (check_base=False)"
    if check_base:
        names = [k.removesuffix(".weight") for k in tensors]
        identity, where = base_identity(model, names, across_processes=across_processes)
        base_check = _check_base(metadata, identity, context, where)
    log = logger.warning if base_check.startswith("not checked") else logger.info
    log("Fisher %s: base model %s", path_or_repo, base_check)
    for key in tensors:
        weight = getattr(modules[key.removesuffix(".weight")], "weight", None)
        target = device if device is not None else (weight.device if weight is not None else "cpu")
        tensors[key] = tensors[key].to(target)
    return Fisher(tensors, metadata, base_check)


def _upgrade_metadata(metadata: dict[str, Any]) -> None:
    """Metadata of artifacts written before one spelling was chosen (``normalisation``) reads as today's."""
    if "normalisation" in metadata and "normalization" not in metadata:
        metadata["normalization"] = metadata.pop("normalisation")


def read_fisher_metadata(path_or_repo: str | Path, revision: str | None = None) -> dict[str, Any]:
    """The metadata of a Fisher (folder, file or Hub repo) without loading its tensors."""
    from safetensors import SafetensorError, safe_open

    file = _resolve(path_or_repo, revision)
    try:
        with safe_open(str(file), framework="pt") as handle:
            header = (handle.metadata() or {}).get(_HEADER_KEY)
    except (SafetensorError, OSError) as err:
        raise FisherFormatError(f"{file} is not a readable e2wm Fisher ({err})") from None
    if header is None:
        raise FisherFormatError(f"{file} is not an e2wm Fisher (no {_HEADER_KEY!r} metadata in its header)")
    metadata: dict[str, Any] = json.loads(header)
    _upgrade_metadata(metadata)
    return metadata


def _check_base(metadata: Mapping[str, Any], model: Mapping[str, Any], context: str, where: str) -> str:
    """Raise ``FisherMismatchError`` if the Fisher belongs to another base; else say what was compared."""
    theirs, ours = metadata.get("base_content_hash"), model.get("base_content_hash")
    if theirs and ours:
        if theirs != ours:
            raise FisherMismatchError(
                f"Fisher was estimated for a different base model: its weights differ ({context}; content hash "
                f"{str(theirs)[:12]} vs {str(ours)[:12]}, computed {where})"
            )
        return f"content hash {str(ours)[:12]} matches (computed {where})"
    names = {metadata.get("base_model"), metadata.get("base_model_name_or_path")} - {None, ""}
    if model.get("base_model_name_or_path") and names and model["base_model_name_or_path"] not in names:
        raise FisherMismatchError(
            f"Fisher was estimated for a different base model ({context}); if they are the same weights, "
            "load it with check_base=False"
        )
    hashes = "the Fisher has no content hash" if not theirs else f"none here, {where}"
    if model.get("base_model_name_or_path") and names:
        return f"name {model['base_model_name_or_path']!r} matches (no content hash to compare: {hashes})"
    return f"not checked: no content hash to compare ({hashes}) and no model name on both sides"
