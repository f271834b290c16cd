"""From a base model and a text source to a Fisher folder (and the Hub): what ``e2wm fisher`` runs.

    build_fisher(FisherArguments(model="EleutherAI/gpt-neo-1.3B", target_modules=["q_proj", "v_proj"],
                                 text="pile.jsonl", out="fisher/", num_docs=20_000, max_length=800))

Steps: load the model and tokenizer (``e2wm.models.load_causal_lm``: the names every command accepts,
optionally 8-bit/4-bit with bitsandbytes), draw the documents, estimate (checkpointing the partial sums in
``<out>.partial/`` beside the output, so ``<out>`` itself is complete or absent), normalize, save, remove
the checkpoint, and push if asked. Run it again after a kill with the same arguments and it resumes from
the last checkpoint. ``FisherArguments`` is also what the ``e2wm fisher`` flags are made from.

Data parallel: in a ``torch.distributed`` group (``accelerate launch -m e2wm.fisher``, see ``e2wm/fisher.py``),
each process loads its own copy of the model on its own device (``cuda:<local rank>``, or the CPU), estimates
on its share of the documents (position in the draw mod the number of processes) with its own checkpoint, the
shares are summed (``estimate_fisher(rank=..., world_size=...)``), and only process 0 writes and pushes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2wm.ewc.artifact import SAVE_DTYPES, check_fisher_folder, save_fisher
from e2wm.ewc.estimate import ESTIMATORS, estimate_fisher
from e2wm.ewc.layers import FisherError, match_target_modules, model_identity
from e2wm.ewc.normalization import NORMALIZATIONS, fisher_statistics, normalize_fisher
from e2wm.ewc.text import TextSource, iter_documents

__all__ = ["FisherArguments", "FisherBuild", "build_fisher", "process_layout"]

MODEL_DTYPES = ("float32", "bfloat16")


@dataclass
class FisherArguments:
    """What ``e2wm fisher`` (and ``build_fisher``) estimates, from what, and where it goes."""

    model: str = field(metadata={"help": "base model: a Hub id, a local folder, or e2wm:tiny / e2wm:gemma-3-270m"})
    target_modules: list[str] = field(metadata={"help": "the LoRA target modules, comma-separated, e.g. q_proj,v_proj"})
    text: str = field(metadata={"help": "documents: a .jsonl or .txt file, or a datasets id or folder (streamed)"})
    out: str = field(metadata={"help": "output folder (must not exist unless --overwrite)"})
    num_docs: int = field(metadata={"help": "documents to draw (all of them: their count)"})
    max_length: int = field(metadata={"help": "truncate each document to this many tokens (the paper: 800)"})
    text_config: str | None = field(default=None, metadata={"help": "datasets config name (for a datasets source)"})
    text_split: str = field(default="train", metadata={"help": "datasets split"})
    text_field: str = field(default="text", metadata={"help": "field holding the document"})
    estimator: str = field(
        default="empirical",
        metadata={"help": "empirical (the document's tokens, the paper's) or sampled (labels from the model)",
                  "choices": list(ESTIMATORS)},
    )  # fmt: skip
    batch_size: int = field(default=8, metadata={"help": "documents per forward/backward"})
    seed: int = field(default=0, metadata={"help": "seed for drawing documents and sampled labels"})
    normalization: str = field(
        default="none",
        metadata={"help": "normalization stored in the artifact (the trainer can apply another at load time)",
                  "choices": list(NORMALIZATIONS)},
    )  # fmt: skip
    dtype: str = field(
        default="float32",
        metadata={"help": "stored dtype (never float16: squared gradients underflow it)", "choices": list(SAVE_DTYPES)},
    )
    model_dtype: str = field(
        default="float32", metadata={"help": "compute dtype of the model", "choices": list(MODEL_DTYPES)}
    )
    quantization: str | None = field(
        default=None, metadata={"help": "load the base with bitsandbytes", "choices": ["8bit", "4bit"]}
    )
    revision: str | None = field(default=None, metadata={"help": "model revision (branch, tag or commit)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow the model's own code (off by default)"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1… (default: cuda when available)"})
    checkpoint_every: int = field(default=1000, metadata={"help": "documents between checkpoints (0: none)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing --out folder"})
    push_to_hub: str | None = field(default=None, metadata={"help": "upload the folder to this model repo id"})
    private: bool | None = field(default=None, metadata={"help": "create the Hub repo private"})

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]
        self.target_modules = [t.strip() for item in self.target_modules for t in item.split(",") if t.strip()]
        if not self.target_modules:
            raise FisherError("--target-modules: name at least one module, e.g. q_proj,v_proj")
        for name in ("num_docs", "max_length", "batch_size", "checkpoint_every", "seed"):
            if not -(2**63) <= getattr(self, name) < 2**63:  # torch and itertools take 64-bit counts
                raise FisherError(f"--{name.replace('_', '-')} must fit in 64 bits, got {getattr(self, name)}")
        checks = [
            (self.num_docs < 1, f"--num-docs must be at least 1, got {self.num_docs}"),
            (self.max_length < 2, f"--max-length must be at least 2 (one predicted token), got {self.max_length}"),
            (self.batch_size < 1, f"--batch-size must be at least 1, got {self.batch_size}"),
            (self.checkpoint_every < 0, f"--checkpoint-every must be 0 (off) or a number of documents, got {self.checkpoint_every}"),
            (self.estimator not in ESTIMATORS, f"--estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}"),
            (self.normalization not in NORMALIZATIONS,
             f"--normalization must be one of {', '.join(NORMALIZATIONS)}, got {self.normalization!r}"),
            (self.dtype not in SAVE_DTYPES,
             f"--dtype must be float32 or bfloat16 (never float16: squared gradients underflow it), got {self.dtype!r}"),
            (self.model_dtype not in MODEL_DTYPES, f"--model-dtype must be float32 or bfloat16, got {self.model_dtype!r}"),
            (self.quantization not in (None, "8bit", "4bit"), f"--quantization must be 8bit or 4bit, got {self.quantization!r}"),
        ]  # fmt: skip
        for failed, message in checks:
            if failed:
                raise FisherError(message)

    def text_source(self) -> TextSource:
        return TextSource(self.text, config=self.text_config, split=self.text_split, field=self.text_field)


@dataclass(frozen=True)
class FisherBuild:
    """What ``build_fisher`` made: the folder, its metadata, and the Hub commit URL when pushed.

    ``is_main_process``: False on the other processes of a data-parallel build (process 0 wrote the folder).
    """

    folder: Path
    metadata: dict[str, Any]
    hub_url: str | None = None
    is_main_process: bool = True

    def summary(self) -> str:
        """One line for the person who ran it (what ``e2wm fisher`` prints)."""
        meta = self.metadata
        processes = meta.get("num_processes", 1)
        return (
            f"Fisher ({meta['estimator']}, {meta['num_docs']} documents, {meta['num_tokens']} tokens, "
            f"{len(meta['layouts'])} tensors, normalization {meta['normalization']}, {meta['dtype']}) in {self.folder}"
            + (f"; {meta['num_skipped_docs']} documents under 2 tokens skipped" if meta["num_skipped_docs"] else "")
            + (f"; {processes} processes ({', '.join(map(str, meta['num_docs_per_process']))} documents)"
               if processes > 1 else "")
        )  # fmt: skip


def process_layout() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` of this process: from ``torch.distributed`` when it is initialized.

    Several processes without a process group (``WORLD_SIZE`` > 1, e.g. ``accelerate launch -m e2wm.cli fisher``)
    would each estimate everything and write the same folder: refused, naming the launch that works.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        return rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank))
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if launched > 1:
        raise FisherError(
            f"this is one of {launched} processes (WORLD_SIZE={launched}) but no torch.distributed process group "
            "exists, so every process would estimate everything and write the same folder: run "
            "`accelerate launch ... -m e2wm.fisher <the same flags>`, which splits the documents between processes"
        )
    return 0, 1, 0


def _process_device(requested: str | None, local_rank: int, world_size: int) -> str:
    """The device this process loads its model on: one GPU per process when there are several."""
    if world_size == 1:
        return requested or "auto"
    import torch

    if requested in (None, "auto", "cuda"):
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda:") and requested != f"cuda:{local_rank}":
        raise FisherError(
            f"--device {requested} would put all {world_size} processes on one GPU: leave --device unset (process "
            "k takes cuda:k, its local rank) or pass --device cpu"
        )
    return requested


def build_fisher(args: FisherArguments, *, progress: bool = True) -> FisherBuild:
    """Estimate the Fisher of ``args.model`` on ``args.num_docs`` documents of ``args.text`` into ``args.out``.

    Arguments are checked (by ``FisherArguments``) before anything is loaded; each error names the argument
    and the fix.
    """
    from e2wm import __version__
    from e2wm._model_cards import template_text
    from e2wm.models import ModelLoadError, ModelUnavailableError, load_causal_lm

    rank, world_size, local_rank = process_layout()
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FisherError(f"output folder {out} already exists; choose another --out or pass --overwrite")
    check_fisher_folder(out, args.overwrite)  # --overwrite replaces a Fisher folder, never other files
    template_text("fisher_card.md.jinja")  # fail now, not after hours of estimation
    text = args.text_source()
    device = _process_device(args.device, local_rank, world_size)
    try:
        model, tokenizer = load_causal_lm(
            args.model,
            revision=args.revision,
            dtype=args.model_dtype,
            quantization=args.quantization,
            trust_remote_code=args.trust_remote_code,
            device=device,
        )
    except (ModelLoadError, ModelUnavailableError) as err:
        raise FisherError(str(err)) from None
    modules = match_target_modules(model, args.target_modules)
    identity = model_identity(model, list(modules))
    source = text.describe()
    run_key = {**identity, "base_model": args.model, "base_dtype": args.model_dtype, "source": source}
    checkpoint_dir = out.with_name(out.name + ".partial")
    estimate = estimate_fisher(
        model,
        tokenizer,
        iter_documents(text, args.num_docs, args.seed),
        target_modules=args.target_modules,
        max_length=args.max_length,
        estimator=args.estimator,
        batch_size=args.batch_size,
        seed=args.seed,
        num_docs=args.num_docs,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=args.checkpoint_every,
        run_key=run_key,
        progress=progress and rank == 0,
        rank=rank,
        world_size=world_size,
    )
    metadata = {
        "base_model": args.model,
        **identity,
        "base_dtype": args.model_dtype,
        "target_modules": list(args.target_modules),
        "estimator": args.estimator,
        "num_docs": estimate.num_docs,
        "num_skipped_docs": estimate.num_skipped_docs,
        "num_tokens": estimate.num_tokens,
        "num_predicted_tokens": estimate.num_predicted_tokens,
        "max_length": args.max_length,
        "source": source,
        "seed": args.seed,
        "normalization": args.normalization,
        "layouts": estimate.layouts,
        "statistics": fisher_statistics(estimate.tensors, estimate.layouts),  # of the raw estimate
        "num_processes": world_size,
        "num_docs_per_process": estimate.num_docs_per_process,
        "e2wm_version": __version__,
    }
    url = None
    if rank == 0:  # every process holds the same estimate; one writes it
        tensors = normalize_fisher(estimate.tensors, args.normalization, estimate.layouts)
        save_fisher(out, tensors, metadata, dtype=args.dtype, overwrite=args.overwrite)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if args.push_to_hub:
            from e2wm.hub import push_artifact

            url = push_artifact("fisher", out, args.push_to_hub, private=args.private)
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()  # no process reports success before the folder is written
    return FisherBuild(folder=out, metadata={**metadata, "dtype": args.dtype}, hub_url=url, is_main_process=rank == 0)
