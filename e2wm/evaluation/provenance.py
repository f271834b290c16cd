"""What determines an evaluation result, recorded with it, so a result is reused only when it still holds.

A task's result (``OUT/<label>/<task>.json``) is reused by a later ``e2wm eval`` into the same folder
only when everything that could change its numbers is the same: the e2wm version, the model (its name
and a fingerprint of its weight files), the adapter (its name and the SHA-256 of its weights file),
the dtype and quantization, the task's examples (a hash of every prompt, option, answer and id: this
covers the corpus and its data, the split, the caps, the demonstrations and their seed), and the
generation settings. Batch size and device are left out: they change how a result is computed, not
what it is. Anything else recomputes the task, and :func:`differences` says why.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from e2wm import __version__

__all__ = [
    "differences",
    "model_provenance",
    "perplexity_provenance",
    "sha256_json",
    "task_provenance",
    "weights_fingerprint",
]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def sha256_json(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON (sorted keys)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_fingerprint(name_or_path: str | None, content: bool = False) -> str | None:
    """A fingerprint of a model's or adapter's weights.

    A local folder: its weight files with their sizes, and either the SHA-256 of their bytes (``content``,
    for adapters, which are small) or their modification times (base models can be many GB). A Hub id:
    the files of its snapshot in the local cache (the snapshot folder is named after the commit), found
    offline; None when it is not cached."""
    if not name_or_path:
        return None
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(str(name_or_path), local_files_only=True))
        except Exception:  # not a cached Hub repo either: nothing to fingerprint
            return None
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    entries = []
    for file in files:
        stat = file.stat()
        entries.append([file.name, stat.st_size, _sha256_file(file) if content else stat.st_mtime_ns])
    return sha256_json(entries) if entries else None


def model_provenance(
    model: str, adapter: str | None, dtype: str | None = None, quantization: str | None = None
) -> dict[str, Any]:
    """The model side of a result: names, weight fingerprints, dtype and quantization."""
    from e2wm.models import resolve_model

    try:
        resolved = resolve_model(model) if model.startswith("e2wm:") else model
    except Exception:  # an unknown e2wm: name fails later, at loading, with its own message
        resolved = model
    return {
        "model": model,
        "model_weights": weights_fingerprint(resolved),
        "adapter": adapter,
        "adapter_weights": weights_fingerprint(adapter, content=True),
        "dtype": dtype,
        "quantization": quantization,
    }


def task_provenance(task: Any, model: dict[str, Any] | None, generation: dict[str, Any] | None) -> dict[str, Any]:
    """Everything that determines one task's result (``task`` an ``EvalTask``; ``generation`` the
    decoding settings, for tasks that generate)."""
    return {
        "e2wm_version": __version__,
        **(model or {}),
        "task": task.name,
        "kind": task.kind,
        "metric": task.metric,
        "source": task.source,
        "settings": {k: v for k, v in task.settings.items() if k not in ("num_proc",)},
        "examples_sha256": sha256_json(task.examples),
        "examples": len(task.examples),
        "generation": generation,
    }


def perplexity_provenance(documents: list[str], max_length: int, model: dict[str, Any] | None) -> dict[str, Any]:
    """Everything that determines the perplexity result: the model, the documents and their truncation."""
    return {
        "e2wm_version": __version__,
        **(model or {}),
        "task": "perplexity",
        "examples_sha256": sha256_json(documents),
        "examples": len(documents),
        "max_length": max_length,
    }


def differences(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What changed between a stored provenance and the current one, one phrase per setting."""
    if old is None:
        return ["it records no settings (written by an older e2wm)"]
    changed = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            before, after = old.get(key), new.get(key)
            if key.endswith(("_weights", "_sha256")):
                changed.append(f"{key} differ")
            else:
                changed.append(f"{key} {_short(before)} → {_short(after)}")
    return changed


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
