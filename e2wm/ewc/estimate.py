"""Estimating the diagonal Fisher of a base model on its LoRA target modules.

Definitions (the tests hold the code to them). For documents d_1..d_N, each tokenized with the model's
tokenizer defaults (special tokens as the tokenizer adds them) and truncated to ``max_length``, and a
target weight W:

- **empirical** Fisher: F = (1/N) Σ_n (∂L_n/∂W)², where L_n is the mean token negative log-likelihood
  of document n over all its predicted tokens (tokens 2..T_n). This is the paper's estimator, which
  looped over documents one at a time; here documents are batched and give the same numbers.
- **sampled** (true) Fisher: the same, with the label of each predicted position drawn from the model's
  own predictive distribution at that position instead of the document's token. It needs no labels.
  Each document's draws use its own uniforms, seeded by (seed, position in the draw), turned into
  labels by the inverse CDF, so the result depends neither on the batch size nor on the chunking.

Per-document gradients in a batch: a forward hook on each target module keeps its input x (B, T, d_in),
a hook on its output gets g = ∂(Σ_n L_n)/∂y (B, T, d_out). Documents are independent in a right-padded
batch (causal attention; pad positions carry no loss, so their g is 0), hence ∂L_n/∂W = g_nᵀ x_n
(d_out, d_in) for ``nn.Linear``, x_nᵀ g_n (d_in, d_out) for GPT-2's ``Conv1D``: one backward gives
every document's gradient, and only the target modules get any. The weights need no gradient, so
8-bit and 4-bit bitsandbytes bases work (the Fisher has the logical (out, in) shape). The LM head runs
on ``chunk_tokens`` positions at a time (``e2wm.lm.LMHead``): a 262k vocabulary never needs the logits
of a whole batch at once.

Several processes (``world_size`` > 1, ``torch.distributed`` initialized): process ``rank`` takes the documents
whose position in the draw is ``rank`` modulo ``world_size``, accumulates Σ (∂L_n/∂W)² over them (checkpointing its
own partial sums), and the partial sums and counts are then all-reduced in fp64, so every process ends with the
same F: the one-process F on the same documents, up to float rounding (the sums are added in another order).

The artifact (save, load, validate) is ``e2wm.ewc.artifact``; normalizations are ``e2wm.ewc.normalization``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from e2wm.ewc.artifact import atomic_save_file
from e2wm.ewc.layers import FisherError, Layout, match_target_modules, weight_layout, weight_shape
from e2wm.lm import DEFAULT_CHUNK_TOKENS, LMHead
from e2wm.models import differentiable_4bit

__all__ = ["CHECKPOINT_FILE", "ESTIMATORS", "FisherAccumulator", "FisherEstimate", "checkpoint_file", "estimate_fisher"]

ESTIMATORS = ("empirical", "sampled")
CHECKPOINT_FILE = "checkpoint.safetensors"  # one process; process r of w: checkpoint-rank<r>-of-<w>.safetensors
_RANK_CHECKPOINT = re.compile(r"checkpoint-rank(\d+)-of-(\d+)\.safetensors")
_CHECKPOINT_KEY = "e2wm_fisher_checkpoint"
_DEFAULT_CHUNK_BYTES = 256 * 2**20  # per-document gradients alive at once, per target module


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
        chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
    ) -> None:
        if estimator not in ESTIMATORS:
            raise FisherError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
        self.model, self.estimator, self.seed, self.chunk_bytes = model, estimator, seed, chunk_bytes
        self.chunk_tokens = chunk_tokens
        self.head = LMHead(model)
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
        self.num_docs = self.num_tokens = self.num_predicted_tokens = self.num_skipped_docs = 0

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
        # L_n = mean NLL of document n: each of its predicted tokens weighs 1 / (its predicted tokens)
        weights = 1.0 / torch.tensor([n - 1 for n in lengths], dtype=torch.float64, device=device)
        labels_for = None if self.estimator == "empirical" else self._sampler(lengths, indices)

        frozen = [(p, p.requires_grad) for p in self.model.parameters()]
        training = self.model.training
        handles: list[Any] = []
        try:
            for param, _ in frozen:
                param.requires_grad_(False)
            self.model.eval()
            self.head.check(ids, mask.long())  # before the hooks: it runs the model's own forward once
            handles.append(embeddings.register_forward_hook(lambda _m, _a, out: out.requires_grad_(True)))
            seen: set[str] = set()
            for name, module in self.modules.items():
                handles.append(module.register_forward_hook(self._capture(name, mask, seen)))
            with torch.enable_grad():
                self.head.backward_weighted_nll(ids, mask.long(), weights, labels_for, self.chunk_tokens)
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

    def _sampler(self, lengths: Sequence[int], indices: Sequence[int]) -> Any:
        """Labels for the sampled Fisher: y ~ p(·|x_<t) by the inverse CDF of one uniform per position.

        Document n's uniforms come from its own generator (seeded by its position in the draw), so a label
        depends on nothing but the document and the seed: not on the batch, nor on the chunk it is drawn in.
        """
        width = max(lengths) - 1
        uniforms = torch.zeros((len(lengths), width), dtype=torch.float64)
        for row, (length, index) in enumerate(zip(lengths, indices, strict=True)):
            generator = torch.Generator().manual_seed(_document_seed(self.seed, index))
            uniforms[row, : length - 1] = torch.rand(length - 1, generator=generator, dtype=torch.float64)

        def labels_for(logp: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
            cdf = logp.detach().double().exp().cumsum(-1)  # (chunk, V)
            u = uniforms.to(logp.device)[rows, cols].unsqueeze(-1) * cdf[:, -1:]
            return torch.searchsorted(cdf, u).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)

        return labels_for

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

    def all_reduce(self, world_size: int) -> list[int]:
        """Sum the sums and the counters over the ``world_size`` processes of the default process group.

        Every process must call it (a collective). Sums travel in fp64, one tensor at a time (on the GPU with
        NCCL, on the CPU with gloo), and come back in their own dtype. Returns each process's document count.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() != world_size:
            found = dist.get_world_size() if dist.is_available() and dist.is_initialized() else "no process group"
            raise FisherError(
                f"the Fisher is split over {world_size} processes, but torch.distributed has {found}: launch it with "
                "`accelerate launch -m e2wm.fisher ...`, which starts the processes and their group"
            )
        rank = dist.get_rank()
        counts = torch.zeros(4 + world_size, dtype=torch.float64)  # exact for counts below 2**53
        counts[:4] = torch.tensor([self.num_docs, self.num_tokens, self.num_predicted_tokens, self.num_skipped_docs])
        counts[4 + rank] = self.num_docs
        counts = _all_reduce_sum(counts)
        for acc in self.sums.values():
            acc.copy_(_all_reduce_sum(acc.double()))
        totals = [round(v) for v in counts.tolist()]
        self.num_docs, self.num_tokens, self.num_predicted_tokens, self.num_skipped_docs = totals[:4]
        return totals[4:]

    # Checkpoints: the sums with the counters in the safetensors header, one file, written atomically.
    def save_checkpoint(self, path: Path, state: dict[str, Any]) -> None:
        state = {**state, "num_docs": self.num_docs, "num_tokens": self.num_tokens}
        state["num_predicted_tokens"] = self.num_predicted_tokens
        state["num_skipped_docs"] = self.num_skipped_docs
        sums = {key: acc.detach().to("cpu").contiguous() for key, acc in self.sums.items()}
        atomic_save_file(sums, path, {_CHECKPOINT_KEY: json.dumps(state)})

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            state: dict[str, Any] = json.loads((handle.metadata() or {})[_CHECKPOINT_KEY])
            for key, acc in self.sums.items():
                acc.copy_(handle.get_tensor(key))
        self.num_docs, self.num_tokens = state["num_docs"], state["num_tokens"]
        self.num_predicted_tokens, self.num_skipped_docs = state["num_predicted_tokens"], state["num_skipped_docs"]
        return state


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the processes, on the device the backend wants (NCCL: a GPU; gloo: the CPU)."""
    import torch.distributed as dist

    backend = str(dist.get_backend())
    if "nccl" in backend and not ("gloo" in backend and tensor.device.type == "cpu"):
        device = tensor.device if tensor.device.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    moved = tensor.to(device)
    dist.all_reduce(moved)
    return moved.to(tensor.device)


def checkpoint_file(rank: int = 0, world_size: int = 1) -> str:
    """The checkpoint's file name for process ``rank`` of ``world_size`` (``checkpoint.safetensors`` for one)."""
    return CHECKPOINT_FILE if world_size == 1 else f"checkpoint-rank{rank}-of-{world_size}.safetensors"


def _check_checkpoint_world(folder: Path, world_size: int) -> None:
    """Refuse a folder holding checkpoints written by another number of processes (their split differs)."""
    others: dict[int, list[str]] = {}
    for path in sorted(folder.glob("checkpoint*.safetensors")) if folder.is_dir() else []:
        match = _RANK_CHECKPOINT.fullmatch(path.name)
        written_by = int(match.group(2)) if match else 1 if path.name == CHECKPOINT_FILE else None
        if written_by is not None and written_by != world_size:
            others.setdefault(written_by, []).append(path.name)
    if others:
        worlds = sorted(others)
        described = "; ".join(f"{n} process{'es' if n > 1 else ''} ({', '.join(others[n])})" for n in worlds)
        raise FisherError(
            f"{folder} holds checkpoints of a run on {described}, but this run has {world_size} process"
            f"{'es' if world_size > 1 else ''}: each process checkpoints its own share of the documents, so resume "
            f"with {worlds[0]} process{'es' if worlds[0] > 1 else ''} (`accelerate launch --num_processes {worlds[0]} "
            "-m e2wm.fisher ...`, or `e2wm fisher` for 1), or delete that folder to start over"
        )


def _document_seed(seed: int, index: int) -> int:
    digest = hashlib.sha256(f"e2wm-fisher:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass
class FisherEstimate:
    """An estimated Fisher: ``tensors`` maps base weight names to F (fp32), with the counts behind it.

    ``num_docs_per_process``: the documents each process contributed (one entry for one process).
    """

    tensors: dict[str, torch.Tensor]
    layouts: dict[str, Layout]
    num_docs: int
    num_skipped_docs: int
    num_tokens: int
    num_predicted_tokens: int
    num_docs_per_process: list[int]


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
    rank: int = 0,
    world_size: int = 1,
) -> FisherEstimate:
    """Estimate the Fisher of ``model`` on ``documents`` (see the module docstring for the definitions).

    Documents are tokenized with ``tokenizer(text, truncation=True, max_length=max_length)``; those
    with fewer than 2 tokens have no predicted token and are skipped (counted in ``num_skipped_docs``).
    Windows of 8 batches are sorted by length to limit padding. With ``checkpoint_dir``, the partial
    sums are saved there every ``checkpoint_every`` documents and a later call with the same
    ``run_key`` (and the same documents) resumes after the last checkpoint; the caller removes the
    folder once the result is safe. ``num_docs`` only sizes the progress bar.

    ``world_size`` > 1: this is process ``rank`` of a ``torch.distributed`` group of ``world_size``; every
    process gets the same ``documents`` and keeps those at positions ``rank`` mod ``world_size``, checkpoints
    its share in its own file (``checkpoint_file(rank, world_size)``), and the sums are all-reduced at the end:
    every process returns the whole estimate. A checkpoint folder written by another number of processes is
    refused (their shares differ).
    """
    if max_length < 2:
        raise FisherError(f"max_length must be at least 2 (one predicted token), got {max_length}")
    if batch_size < 1:
        raise FisherError(f"batch_size must be at least 1, got {batch_size}")
    if not 0 <= rank < world_size:
        raise FisherError(f"rank must be in 0..{world_size - 1} for {world_size} process(es), got {rank}")
    accumulator = FisherAccumulator(model, target_modules, estimator=estimator, seed=seed)
    key = dict(run_key or {})
    key.update(estimator=estimator, seed=seed, max_length=max_length, targets=sorted(accumulator.sums))
    if world_size > 1:
        key.update(process=rank, num_processes=world_size)
    key = json.loads(json.dumps(key, default=str))  # what a JSON round trip gives back, to compare
    consumed = 0  # documents of the whole draw (every process's) before this point
    checkpoint = None
    if checkpoint_dir is not None:
        _check_checkpoint_world(Path(checkpoint_dir), world_size)
        checkpoint = Path(checkpoint_dir) / checkpoint_file(rank, world_size)
    if checkpoint is not None and checkpoint.exists():
        state = _read_checkpoint_state(checkpoint)
        if state.get("run") != key:
            changed = sorted(k for k in set(key) | set(state.get("run", {})) if key.get(k) != state["run"].get(k))
            raise FisherError(
                f"{checkpoint} is a checkpoint of a different run (differs in: {', '.join(changed)}); "
                "run with the same settings to resume, or delete that folder to start over"
            )
        consumed = accumulator.load_checkpoint(checkpoint)["consumed"]
    from tqdm.auto import tqdm

    def share(count: int) -> int:  # this process's documents among the first `count` of the draw
        return len(range(rank, count, world_size))

    total = share(num_docs) if num_docs is not None else None
    bar = tqdm(total=total, initial=share(consumed), unit="doc", desc="fisher", disable=not progress)
    started, tokens_now, last_saved = time.monotonic(), 0, consumed
    texts = iter(documents)
    for _ in itertools.islice(texts, consumed):  # resume: skip what the checkpoint holds
        pass
    window = 8 * batch_size * world_size  # about 8 batches for each process
    # the model check is an eval-mode forward without gradients: bitsandbytes ≥ 0.50 would end the gradients
    with differentiable_4bit(model):  # through 4-bit layers on a CPU after it
        while chunk := list(itertools.islice(texts, window)):
            mine = [(consumed + i, text) for i, text in enumerate(chunk) if (consumed + i) % world_size == rank]
            encoded = (
                tokenizer([text for _, text in mine], truncation=True, max_length=max_length)["input_ids"]
                if mine
                else []
            )
            kept = [(index, ids) for (index, _), ids in zip(mine, encoded, strict=True) if len(ids) >= 2]
            accumulator.num_skipped_docs += len(mine) - len(kept)
            kept.sort(key=lambda item: -len(item[1]))
            for start in range(0, len(kept), batch_size):
                batch = kept[start : start + batch_size]
                accumulator.add([ids for _, ids in batch], [index for index, _ in batch])
                tokens_now += sum(len(ids) for _, ids in batch)
                bar.update(len(batch))
                bar.set_postfix_str(f"{tokens_now / max(time.monotonic() - started, 1e-9):,.0f} tok/s", refresh=False)
            bar.update(len(mine) - len(kept))
            consumed += len(chunk)
            if checkpoint is not None and checkpoint_every > 0 and consumed - last_saved >= checkpoint_every:
                accumulator.save_checkpoint(checkpoint, {"run": key, "consumed": consumed})
                last_saved = consumed
    bar.close()
    per_process = accumulator.all_reduce(world_size) if world_size > 1 else [accumulator.num_docs]
    if accumulator.num_docs == 0:
        raise FisherError(f"none of the {consumed} documents has 2 tokens or more: the Fisher is undefined")
    return FisherEstimate(
        tensors=accumulator.fisher(),
        layouts=dict(accumulator.layouts),
        num_docs=accumulator.num_docs,
        num_skipped_docs=accumulator.num_skipped_docs,
        num_tokens=accumulator.num_tokens,
        num_predicted_tokens=accumulator.num_predicted_tokens,
        num_docs_per_process=per_process,
    )


def _read_checkpoint_state(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            state: dict[str, Any] = json.loads((handle.metadata() or {})[_CHECKPOINT_KEY])
    except Exception as err:  # a foreign or damaged file: say which, do not guess
        raise FisherError(f"{path} is not a readable e2wm Fisher checkpoint ({err}); delete it to start over") from None
    return state
