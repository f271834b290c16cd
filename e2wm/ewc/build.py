"""From a base model and a text source to a Fisher folder (and the Hub): what ``e2wm fisher`` runs.

    build_fisher("EleutherAI/gpt-neo-1.3B", target_modules=["q_proj", "v_proj"],
                 text=TextSource("pile.jsonl"), out="fisher/", num_docs=20_000, max_length=800)

Steps: load the model and tokenizer (optionally 8-bit/4-bit with bitsandbytes), draw the documents,
estimate (checkpointing the partial sums in ``<out>.partial/`` beside the output, so ``<out>`` itself is
complete or absent), normalise, save, remove the checkpoint, and push if asked. Run it again after a
kill with the same arguments and it resumes from the last checkpoint.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from e2wm.ewc.fisher import ESTIMATORS, NORMALISATIONS, SAVE_DTYPES, estimate_fisher, normalise_fisher, save_fisher
from e2wm.ewc.layers import FisherError, match_target_modules, model_identity
from e2wm.ewc.text import TextSource, iter_documents

__all__ = ["FisherBuild", "build_fisher", "load_base_model"]

MODEL_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
QUANTIZATIONS = ("8bit", "4bit")


@dataclass(frozen=True)
class FisherBuild:
    """What ``build_fisher`` made: the folder, its metadata, and the Hub commit URL when pushed."""

    folder: Path
    metadata: dict[str, Any]
    hub_url: str | None = None


def load_base_model(
    model_name_or_path: str,
    *,
    revision: str | None = None,
    dtype: str = "float32",
    quantization: str | None = None,
    trust_remote_code: bool = False,
    device: str | None = None,
) -> tuple[nn.Module, Any]:
    """The causal LM and its tokenizer, in eval mode on ``device`` (default: cuda when available, else cpu).

    ``quantization`` ``"8bit"``/``"4bit"`` loads the linear layers with bitsandbytes (compute dtype
    ``dtype``). ``trust_remote_code`` stays off unless asked for.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    if dtype not in MODEL_DTYPES:
        raise FisherError(f"model dtype must be one of {', '.join(MODEL_DTYPES)}, got {dtype!r}")
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise FisherError(f"quantization must be 8bit or 4bit (or none), got {quantization!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kwargs: dict[str, Any] = {
        "revision": revision,
        "trust_remote_code": trust_remote_code,
        "dtype": MODEL_DTYPES[dtype],
    }
    if quantization == "8bit":
        kwargs.update(quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map={"": device})
    elif quantization == "4bit":
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=MODEL_DTYPES[dtype])
        kwargs.update(quantization_config=config, device_map={"": device})
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            model_name_or_path, revision=revision, trust_remote_code=trust_remote_code
        )
        model: Any = AutoModelForCausalLM.from_pretrained(model_name_or_path, **kwargs)
    except (OSError, ValueError, ImportError) as err:
        raise FisherError(f"cannot load the model {model_name_or_path!r}: {err}") from None
    if quantization is None:
        model.to(device)
    return model.eval(), tokenizer


def build_fisher(
    model_name_or_path: str,
    *,
    target_modules: Sequence[str],
    text: TextSource,
    out: str | Path,
    num_docs: int,
    max_length: int,
    estimator: str = "empirical",
    batch_size: int = 8,
    seed: int = 0,
    normalisation: str = "none",
    dtype: str = "float32",
    model_dtype: str = "float32",
    quantization: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    device: str | None = None,
    checkpoint_every: int = 1000,
    overwrite: bool = False,
    push_to_hub: str | None = None,
    private: bool | None = None,
    progress: bool = True,
) -> FisherBuild:
    """Estimate the Fisher of ``model_name_or_path`` on ``num_docs`` documents of ``text`` into ``out``.

    Arguments are checked before anything is loaded; each error names the argument and the fix.
    """
    from e2wm import __version__
    from e2wm._model_cards import template_text

    out = Path(out)
    _check_arguments(num_docs, max_length, batch_size, estimator, normalisation, dtype, checkpoint_every)
    if out.exists() and not overwrite:
        raise FisherError(f"output folder {out} already exists; choose another --out or pass --overwrite")
    template_text("fisher_card.md.jinja")  # fail now, not after hours of estimation
    model, tokenizer = load_base_model(
        model_name_or_path,
        revision=revision,
        dtype=model_dtype,
        quantization=quantization,
        trust_remote_code=trust_remote_code,
        device=device,
    )
    modules = match_target_modules(model, target_modules)
    identity = model_identity(model, list(modules))
    run_key = {**identity, "base_model": model_name_or_path, "base_dtype": model_dtype, "source": text.describe()}
    checkpoint_dir = out.with_name(out.name + ".partial")
    estimate = estimate_fisher(
        model,
        tokenizer,
        iter_documents(text, num_docs, seed),
        target_modules=target_modules,
        max_length=max_length,
        estimator=estimator,
        batch_size=batch_size,
        seed=seed,
        num_docs=num_docs,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        run_key=run_key,
        progress=progress,
    )
    metadata = {
        "base_model": model_name_or_path,
        **identity,
        "base_dtype": model_dtype,
        "target_modules": list(target_modules),
        "estimator": estimator,
        "num_docs": estimate.num_docs,
        "num_skipped_docs": estimate.num_skipped_docs,
        "num_tokens": estimate.num_tokens,
        "num_predicted_tokens": estimate.num_predicted_tokens,
        "max_length": max_length,
        "source": text.describe(),
        "seed": seed,
        "normalisation": normalisation,
        "layouts": estimate.layouts,
        "e2wm_version": __version__,
    }
    tensors = normalise_fisher(estimate.tensors, normalisation, estimate.layouts)
    folder = save_fisher(out, tensors, metadata, dtype=dtype, overwrite=overwrite)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    metadata = {**metadata, "dtype": dtype}
    url = None
    if push_to_hub:
        from e2wm.ewc.fisher import push_fisher

        url = push_fisher(folder, push_to_hub, private=private)
    return FisherBuild(folder=folder, metadata=metadata, hub_url=url)


def _check_arguments(
    num_docs: int,
    max_length: int,
    batch_size: int,
    estimator: str,
    normalisation: str,
    dtype: str,
    checkpoint_every: int,
) -> None:
    if num_docs < 1:
        raise FisherError(f"--num-docs must be at least 1, got {num_docs}")
    if max_length < 2:
        raise FisherError(f"--max-length must be at least 2 (one predicted token), got {max_length}")
    if batch_size < 1:
        raise FisherError(f"--batch-size must be at least 1, got {batch_size}")
    if estimator not in ESTIMATORS:
        raise FisherError(f"--estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    if normalisation not in NORMALISATIONS:
        raise FisherError(f"--normalisation must be one of {', '.join(NORMALISATIONS)}, got {normalisation!r}")
    if dtype not in SAVE_DTYPES:
        raise FisherError(
            f"--dtype must be float32 or bfloat16 (never float16: squared gradients underflow it), got {dtype!r}"
        )
    if checkpoint_every < 0:
        raise FisherError(f"--checkpoint-every must be 0 (off) or a number of documents, got {checkpoint_every}")
