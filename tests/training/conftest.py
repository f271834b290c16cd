"""Training tests: tiny models, a real Fisher and small datasets, built once per session.

Every test here trains on the CPU with one thread: on a 2-core machine shared with other jobs, two OpenMP
threads make a tiny matmul hundreds of times slower. trl is imported once, in this process; only the DDP
test launches subprocesses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.tiny import sample_documents, save_pretrained, tiny_llama, tiny_tokenizer
from tests.training.common import TARGETS


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def llama_folder(tok, tmp_path_factory) -> Path:
    """A tiny fp32 Llama as a local model folder."""
    return save_pretrained(tiny_llama(tok), tok, tmp_path_factory.mktemp("models") / "tiny-llama")


def _fisher(folder: Path, out: Path, targets: list[str]) -> Path:
    from e2wm.ewc import FisherArguments, build_fisher

    text = out.parent / "documents.txt"
    text.write_text("\n".join(sample_documents(32, seed=11)) + "\n", encoding="utf-8")
    args = FisherArguments(
        model=str(folder), target_modules=targets, text=str(text), out=str(out), num_docs=32, max_length=64,
        device="cpu", overwrite=True,
    )  # fmt: skip
    build_fisher(args, progress=False)
    return out


@pytest.fixture(scope="session")
def fisher_folder(llama_folder, tmp_path_factory) -> Path:
    """The empirical Fisher of the tiny Llama on q_proj and v_proj (32 household documents)."""
    return _fisher(llama_folder, tmp_path_factory.mktemp("fisher") / "fisher", TARGETS)


@pytest.fixture(scope="session")
def q_only_fisher(llama_folder, tmp_path_factory) -> Path:
    """A Fisher with q_proj entries only: it does not fit a LoRA on q_proj and v_proj."""
    return _fisher(llama_folder, tmp_path_factory.mktemp("fisher-q") / "fisher", ["q_proj"])
