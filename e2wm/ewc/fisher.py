"""The diagonal Fisher of a base model on its LoRA target modules: estimate, normalise, save, load, push.

Definitions (the tests hold the code to them). For documents d_1..d_N, each tokenized with the model's
tokenizer defaults (special tokens as the tokenizer adds them) and truncated to ``max_length``, and a
target weight W:

- **empirical** Fisher: F = (1/N) Σ_n (∂L_n/∂W)², where L_n is the mean token negative log-likelihood
  of document n over all its predicted tokens (tokens 2..T_n). This is the paper's estimator, which
  looped over documents one at a time; here documents are batched and give the same numbers.
- **sampled** (true) Fisher: the same, with the label of each predicted position drawn from the model's
  own predictive distribution at that position instead of the document's token. It needs no labels.
  Each document's draws come from its own generator, seeded by (seed, position in the draw), so the
  result does not depend on the batch size.

Per-document gradients in a batch: a forward hook on each target module keeps its input x (B, T, d_in),
a hook on its output gets g = ∂(Σ_n L_n)/∂y (B, T, d_out). Documents are independent in a right-padded
batch (causal attention; pad positions carry no loss, so their g is 0), hence ∂L_n/∂W = g_nᵀ x_n
(d_out, d_in) for ``nn.Linear``, x_nᵀ g_n (d_in, d_out) for GPT-2's ``Conv1D``: one backward gives
every document's gradient, and only the target modules get any. The weights need no gradient, so
8-bit and 4-bit bitsandbytes bases work (the Fisher has the logical (out, in) shape).

Artifact (a folder, complete or absent): ``fisher.safetensors`` (fp32 or bf16, never fp16: squared
gradients underflow it) keyed by the base model's weight names, with the metadata as JSON under the
header key ``e2wm_fisher``; the same metadata in ``fisher.json``; a ``README.md`` card.

Normalisations (recorded in the metadata): ``none``; ``mean`` (each tensor scaled to mean 1); ``max``
(to max 1); ``paper_int8`` (each row of the (out, in) matrix scaled so its maximum is 127, then
rounded: what the paper's code trained with after loading its Fisher in 8-bit, so its λ values apply).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from e2wm.ewc.layers import (
    FisherError,
    FisherFormatError,
    FisherMismatchError,
    Layout,
    base_modules,
    lora_layers,
    match_target_modules,
    model_identity,
    weight_layout,
    weight_shape,
)

__all__ = [
    "ESTIMATORS",
    "NORMALISATIONS",
    "Fisher",
    "FisherAccumulator",
    "FisherEstimate",
    "estimate_fisher",
    "load_fisher",
    "normalise_fisher",
    "push_fisher",
    "save_fisher",
]

ESTIMATORS = ("empirical", "sampled")
NORMALISATIONS = ("none", "mean", "max", "paper_int8")
SAVE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
FORMAT, FORMAT_VERSION = "e2wm-fisher", 1
FISHER_FILE, METADATA_FILE, CARD_FILE = "fisher.safetensors", "fisher.json", "README.md"
CHECKPOINT_FILE = "checkpoint.safetensors"
_HEADER_KEY, _CHECKPOINT_KEY = "e2wm_fisher", "e2wm_fisher_checkpoint"
_DEFAULT_CHUNK_BYTES = 256 * 2**20  # per-document gradients alive at once, per target module


# ---------------------------------------------------------------------------------------------- estimation
class FisherAccumulator:
    """Σ_n (∂L_n/∂W)² over the documents added so far, for every target weight W of ``model``.

    ``add`` takes token-id documents (each at least 2 tokens, at most what the model accepts) and their
    positions in the draw (which seed the sampled estimator's labels). ``fisher()`` is F = sums / N.
    Sums are fp32 (fp64 for an fp64 model), on each module's device.
    """

    def __init__(
        self,
        model: nn.Module,
        target_modules: Sequence[str],
        *,
        estimator: str = "empirical",
        seed: int = 0,
        chunk_bytes: int = _DEFAULT_CHUNK_BYTES,
    ) -> None:
        if estimator not in ESTIMATORS:
            raise FisherError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
        self.model, self.estimator, self.seed, self.chunk_bytes = model, estimator, seed, chunk_bytes
        self.modules = match_target_modules(model, target_modules)
        floats = [p.dtype for p in model.parameters() if p.dtype.is_floating_point]
        self.dtype = torch.float64 if torch.float64 in floats else torch.float32
        self.layouts: dict[str, Layout] = {}
        self.sums: dict[str, torch.Tensor] = {}
        for name, module in self.modules.items():
            weight = getattr(module, "weight", None)
            device = weight.device if weight is not None else torch.device("cpu")
            self.layouts[f"{name}.weight"] = weight_layout(module)
            self.sums[f"{name}.weight"] = torch.zeros(weight_shape(module), dtype=self.dtype, device=device)
        self.num_docs = self.num_tokens = self.num_predicted_tokens = 0

    def fisher(self) -> dict[str, torch.Tensor]:
        """F = (1/N) Σ_n (∂L_n/∂W)² for every target weight (on the CPU)."""
        if self.num_docs == 0:
            raise FisherError("no document with at least 2 tokens was added: the Fisher is undefined")
        return {key: (acc / self.num_docs).cpu() for key, acc in self.sums.items()}

    def add(self, documents: Sequence[Sequence[int]], indices: Sequence[int]) -> None:
        """Add the squared per-document gradients of a batch of token-id documents (one backward)."""
        lengths = [len(doc) for doc in documents]
        if len(indices) != len(documents):
            raise ValueError("indices must give one draw position per document")
        if min(lengths, default=0) < 2:
            raise FisherError("every document needs at least 2 tokens (one predicted token)")
        model: Any = self.model
        embeddings = model.get_input_embeddings()
        device = embeddings.weight.device
        ids = torch.zeros((len(documents), max(lengths)), dtype=torch.long)  # right padding: real tokens first
        mask = torch.zeros_like(ids, dtype=torch.bool)
        for row, doc in enumerate(documents):
            ids[row, : len(doc)] = torch.as_tensor(doc, dtype=torch.long)
            mask[row, : len(doc)] = True
        ids, mask = ids.to(device), mask.to(device)

        handles = [embeddings.register_forward_hook(lambda _m, _a, out: out.requires_grad_(True))]
        seen: set[str] = set()
        for name, module in self.modules.items():
            handles.append(module.register_forward_hook(self._capture(name, mask, seen)))
        frozen = [(p, p.requires_grad) for p in self.model.parameters()]
        training = self.model.training
        try:
            for param, _ in frozen:
                param.requires_grad_(False)
            self.model.eval()
            with torch.enable_grad():
                logits = model(input_ids=ids, attention_mask=mask.long(), use_cache=False).logits
                logp = torch.log_softmax(logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32)), -1)
                predicted = mask[:, 1:]  # (B, T-1): position t predicts token t+1
                labels = ids[:, 1:] if self.estimator == "empirical" else self._sample(logp, lengths, indices)
                nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
                per_doc = torch.where(predicted, nll, 0).sum(1) / predicted.sum(1)  # L_n, (B,)
                per_doc.sum().backward()
            missing = set(self.modules) - seen
            if missing:
                raise FisherError(f"the forward pass never called the target module(s) {sorted(missing)}")
        finally:
            for handle in handles:
                handle.remove()
            for param, flag in frozen:
                param.requires_grad_(flag)
            self.model.train(training)
        self.num_docs += len(documents)
        self.num_tokens += sum(lengths)
        self.num_predicted_tokens += sum(lengths) - len(lengths)

    def _sample(self, logp: torch.Tensor, lengths: Sequence[int], indices: Sequence[int]) -> torch.Tensor:
        """Labels (B, T-1) drawn from the model's predictive distribution, one generator per document."""
        labels = torch.zeros(logp.shape[:2], dtype=torch.long, device=logp.device)
        probs = logp.detach().exp()
        for row, (length, index) in enumerate(zip(lengths, indices, strict=True)):
            generator = torch.Generator(device=logp.device).manual_seed(_document_seed(self.seed, index))
            labels[row, : length - 1] = torch.multinomial(probs[row, : length - 1], 1, generator=generator)[:, 0]
        return labels

    def _capture(self, name: str, mask: torch.Tensor, seen: set[str]) -> Any:
        key = f"{name}.weight"

        def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            if name in seen:
                raise NotImplementedError(f"{name} is called more than once per forward pass (shared weights)")
            seen.add(name)
            if not output.requires_grad:
                raise FisherError(f"{name}: its output does not depend on the input embeddings")
            x = args[0].detach()  # (B, T, d_in)
            output.register_hook(lambda g: self._accumulate(key, x, g, mask))

        return hook

    def _accumulate(self, key: str, x: torch.Tensor, g: torch.Tensor, mask: torch.Tensor) -> None:
        # x: (B, T, d_in), g: (B, T, d_out). Per document: dW_n = g_nᵀ x_n, or x_nᵀ g_n for Conv1D.
        acc = self.sums[key]
        g = torch.where(mask.unsqueeze(-1), g, 0)
        per_chunk = max(1, self.chunk_bytes // (acc.numel() * acc.element_size()))
        for start in range(0, x.shape[0], per_chunk):
            xc = x[start : start + per_chunk].to(acc.dtype)
            gc = g[start : start + per_chunk].to(acc.dtype)
            if self.layouts[key] == "in_out":
                grads = torch.bmm(xc.transpose(1, 2), gc)  # (c, d_in, d_out)
            else:
                grads = torch.bmm(gc.transpose(1, 2), xc)  # (c, d_out, d_in)
            acc += grads.square_().sum(0)

    # Checkpoints: the sums with the counters in the safetensors header, one file, written atomically.
    def save_checkpoint(self, path: Path, state: dict[str, Any]) -> None:
        state = {**state, "num_docs": self.num_docs, "num_tokens": self.num_tokens}
        state["num_predicted_tokens"] = self.num_predicted_tokens
        sums = {key: acc.detach().to("cpu").contiguous() for key, acc in self.sums.items()}
        _atomic_save_file(sums, path, {_CHECKPOINT_KEY: json.dumps(state)})

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            state: dict[str, Any] = json.loads((handle.metadata() or {})[_CHECKPOINT_KEY])
            for key, acc in self.sums.items():
                acc.copy_(handle.get_tensor(key))
        self.num_docs, self.num_tokens = state["num_docs"], state["num_tokens"]
        self.num_predicted_tokens = state["num_predicted_tokens"]
        return state


def _document_seed(seed: int, index: int) -> int:
    digest = hashlib.sha256(f"e2wm-fisher:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass
class FisherEstimate:
    """An estimated Fisher: ``tensors`` maps base weight names to F (fp32), with the counts behind it."""

    tensors: dict[str, torch.Tensor]
    layouts: dict[str, Layout]
    num_docs: int
    num_skipped_docs: int
    num_tokens: int
    num_predicted_tokens: int


def estimate_fisher(
    model: nn.Module,
    tokenizer: Any,
    documents: Iterable[str],
    *,
    target_modules: Sequence[str],
    max_length: int,
    estimator: str = "empirical",
    batch_size: int = 8,
    seed: int = 0,
    num_docs: int | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1000,
    run_key: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> FisherEstimate:
    """Estimate the Fisher of ``model`` on ``documents`` (see the module docstring for the definitions).

    Documents are tokenized with ``tokenizer(text, truncation=True, max_length=max_length)``; those
    with fewer than 2 tokens have no predicted token and are skipped (counted in ``num_skipped_docs``).
    Windows of 8 batches are sorted by length to limit padding. With ``checkpoint_dir``, the partial
    sums are saved there every ``checkpoint_every`` documents and a later call with the same
    ``run_key`` (and the same documents) resumes after the last checkpoint; the caller removes the
    folder once the result is safe. ``num_docs`` only sizes the progress bar.
    """
    if max_length < 2:
        raise FisherError(f"max_length must be at least 2 (one predicted token), got {max_length}")
    if batch_size < 1:
        raise FisherError(f"batch_size must be at least 1, got {batch_size}")
    accumulator = FisherAccumulator(model, target_modules, estimator=estimator, seed=seed)
    key = dict(run_key or {})
    key.update(estimator=estimator, seed=seed, max_length=max_length, targets=sorted(accumulator.sums))
    key = json.loads(json.dumps(key, default=str))  # what a JSON round trip gives back, to compare
    consumed = skipped = 0
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
    if checkpoint is not None and checkpoint.exists():
        state = _read_checkpoint_state(checkpoint)
        if state.get("run") != key:
            changed = sorted(k for k in set(key) | set(state.get("run", {})) if key.get(k) != state["run"].get(k))
            raise FisherError(
                f"{checkpoint} is a checkpoint of a different run (differs in: {', '.join(changed)}); "
                "run with the same settings to resume, or delete that folder to start over"
            )
        state = accumulator.load_checkpoint(checkpoint)
        consumed, skipped = state["consumed"], state["num_skipped_docs"]
    from tqdm.auto import tqdm

    bar = tqdm(total=num_docs, initial=consumed, unit="doc", desc="fisher", disable=not progress)
    started, tokens_now, last_saved = time.monotonic(), 0, consumed
    texts = iter(documents)
    for _ in itertools.islice(texts, consumed):  # resume: skip what the checkpoint holds
        pass
    window = 8 * batch_size
    while chunk := list(itertools.islice(texts, window)):
        encoded = tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"]
        kept = [(consumed + i, ids) for i, ids in enumerate(encoded) if len(ids) >= 2]
        skipped += len(chunk) - len(kept)
        kept.sort(key=lambda item: -len(item[1]))
        for start in range(0, len(kept), batch_size):
            batch = kept[start : start + batch_size]
            accumulator.add([ids for _, ids in batch], [index for index, _ in batch])
            tokens_now += sum(len(ids) for _, ids in batch)
            bar.update(len(batch))
            bar.set_postfix_str(f"{tokens_now / max(time.monotonic() - started, 1e-9):,.0f} tok/s", refresh=False)
        bar.update(len(chunk) - len(kept))
        consumed += len(chunk)
        if checkpoint is not None and checkpoint_every > 0 and consumed - last_saved >= checkpoint_every:
            accumulator.save_checkpoint(checkpoint, {"run": key, "consumed": consumed, "num_skipped_docs": skipped})
            last_saved = consumed
    bar.close()
    if accumulator.num_docs == 0:
        raise FisherError(f"none of the {consumed} documents has 2 tokens or more: the Fisher is undefined")
    return FisherEstimate(
        tensors=accumulator.fisher(),
        layouts=dict(accumulator.layouts),
        num_docs=accumulator.num_docs,
        num_skipped_docs=skipped,
        num_tokens=accumulator.num_tokens,
        num_predicted_tokens=accumulator.num_predicted_tokens,
    )


def _read_checkpoint_state(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            state: dict[str, Any] = json.loads((handle.metadata() or {})[_CHECKPOINT_KEY])
    except Exception as err:  # a foreign or damaged file: say which, do not guess
        raise FisherError(f"{path} is not a readable e2wm Fisher checkpoint ({err}); delete it to start over") from None
    return state


def _atomic_save_file(tensors: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file`` through a temporary file and a rename: the file is complete or absent."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(dict(tensors), tmp, metadata={"format": "pt", **metadata})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------- normalisation
def normalise_fisher(
    tensors: Mapping[str, torch.Tensor], method: str, layouts: Mapping[str, Layout] | None = None
) -> dict[str, torch.Tensor]:
    """Scale each tensor: ``none``, ``mean`` (mean 1), ``max`` (max 1), ``paper_int8`` (rows to max 127, rounded).

    ``paper_int8`` works on rows of the (out, in) matrix, so ``in_out`` tensors (GPT-2 ``Conv1D``, per
    ``layouts``) are scaled along their columns. All-zero tensors and rows stay zero.
    """
    if method not in NORMALISATIONS:
        raise FisherError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, got {method!r}")
    result = {}
    for key, tensor in tensors.items():
        f = tensor.to(torch.float64)
        if method == "mean":
            f = f / f.mean() if f.mean() > 0 else f
        elif method == "max":
            f = f / f.max() if f.max() > 0 else f
        elif method == "paper_int8":
            rows = f.T if (layouts or {}).get(key) == "in_out" else f
            peak = rows.amax(dim=1, keepdim=True)
            rows = torch.where(peak > 0, torch.round(rows * (127.0 / peak.clamp_min(1e-300))), 0.0)
            f = rows.T if (layouts or {}).get(key) == "in_out" else rows
        result[key] = f.to(torch.float32).contiguous()
    return result


# --------------------------------------------------------------------------------------------- save / load
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
    if folder.exists() and not overwrite:
        raise FisherError(f"{folder} already exists; choose another output folder or overwrite it")
    _check_values(tensors, "the Fisher to save")
    meta = {**metadata, "format": FORMAT, "format_version": FORMAT_VERSION, "dtype": dtype}
    header = json.dumps(meta, sort_keys=True)
    stored = {key: t.detach().to("cpu", SAVE_DTYPES[dtype]).contiguous() for key, t in tensors.items()}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        _atomic_save_file(stored, tmp / FISHER_FILE, {_HEADER_KEY: header})
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


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
    """A loaded Fisher: a mapping from base weight names to tensors, with its ``metadata``."""

    def __init__(self, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
        self._tensors, self.metadata = tensors, metadata

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._tensors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def to(self, device: torch.device | str) -> Fisher:
        return Fisher({k: t.to(device) for k, t in self._tensors.items()}, self.metadata)

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
) -> Fisher:
    """Load a Fisher folder, file or Hub repo and validate it against ``model`` (plain or peft-wrapped).

    Raises ``FisherFormatError`` for a file that is not an e2wm Fisher, fp16, NaN/inf or negative
    values; ``FisherMismatchError`` for an entry naming a module the model lacks, a wrong shape, a LoRA
    layer without an entry, or another base model. The base check: when both the Fisher and the model
    have a content hash (neither quantized) they must be equal; otherwise the ``_name_or_path`` of the
    model's config must equal the Fisher's base model (``check_base=False`` skips this check).
    Each tensor goes to its module's device, or to ``device``.
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
    except SafetensorError as err:
        raise FisherFormatError(f"{file} is not a safetensors file ({err})") from None
    _check_values(tensors, str(path_or_repo))
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
    if check_base:
        _check_base(metadata, model_identity(model, [k.removesuffix(".weight") for k in tensors]), context)
    for key in tensors:
        weight = getattr(modules[key.removesuffix(".weight")], "weight", None)
        target = device if device is not None else (weight.device if weight is not None else "cpu")
        tensors[key] = tensors[key].to(target)
    return Fisher(tensors, metadata)


def _check_base(metadata: Mapping[str, Any], model: Mapping[str, Any], context: str) -> None:
    theirs, ours = metadata.get("base_content_hash"), model.get("base_content_hash")
    if theirs and ours:
        if theirs != ours:
            raise FisherMismatchError(
                f"Fisher was estimated for a different base model: its weights differ ({context}; content hash "
                f"{str(theirs)[:12]} vs {str(ours)[:12]})"
            )
        return
    names = {metadata.get("base_model"), metadata.get("base_model_name_or_path")} - {None, ""}
    if model.get("base_model_name_or_path") and names and model["base_model_name_or_path"] not in names:
        raise FisherMismatchError(
            f"Fisher was estimated for a different base model ({context}); if they are the same weights, "
            "load it with check_base=False"
        )


def push_fisher(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None) -> str:
    """Upload a Fisher folder to the Hub model repo ``repo_id`` (created if needed); returns the commit URL."""
    from e2wm.hub import push_folder

    folder = Path(folder)
    if not (folder / FISHER_FILE).is_file():
        raise FisherFormatError(f"{folder} is not a Fisher folder (no {FISHER_FILE})")
    return push_folder(
        folder, repo_id, repo_type="model", private=private, token=token, commit_message="Upload e2wm Fisher"
    )
