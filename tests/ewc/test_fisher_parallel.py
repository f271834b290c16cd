"""The Fisher on several processes: shares by draw position that add up to the one-process Fisher, a checkpoint
per process, refused resumes with another number of processes, and a real two-process run under
``accelerate launch -m e2wm.fisher`` (gloo on the CPU) that writes the one-process artifact."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from e2wm.ewc import FisherAccumulator, FisherError, estimate_fisher
from e2wm.ewc.build import process_layout
from tests.ewc.test_fisher import _dies_after, _Killed

REPO = Path(__file__).resolve().parents[2]
TARGETS = ["q_proj", "v_proj"]


def _no_reduction(self, world_size):  # one process's share, as it is before the all-reduce
    return [self.num_docs]


def _combined(shares):
    """Σ_r n_r F_r / Σ_r n_r: the shares' partial Fishers added back together."""
    total = sum(share.num_docs for share in shares)
    return {key: sum(s.tensors[key] * s.num_docs for s in shares) / total for key in shares[0].tensors}


@pytest.mark.parametrize("estimator", ["empirical", "sampled"])
def test_the_shares_of_two_processes_add_up_to_the_one_process_fisher(monkeypatch, estimator, tok, docs, llama64):
    kwargs = {"target_modules": TARGETS, "max_length": 32, "batch_size": 3, "estimator": estimator, "seed": 5}
    whole = estimate_fisher(llama64, tok, docs, **kwargs)
    monkeypatch.setattr(FisherAccumulator, "all_reduce", _no_reduction)
    shares = [estimate_fisher(llama64, tok, docs, rank=rank, world_size=2, **kwargs) for rank in (0, 1)]
    # every document once: process r takes positions r, r + 2, r + 4, ... of the draw
    assert [s.num_docs for s in shares] == [len(docs[0::2]), len(docs[1::2])]
    assert sum(s.num_tokens for s in shares) == whole.num_tokens
    expected = estimate_fisher(llama64, tok, docs[1::2], **{**kwargs, "estimator": "empirical"}).tensors
    if estimator == "empirical":  # process 1's share is the Fisher of its documents
        for key, tensor in expected.items():
            torch.testing.assert_close(shares[1].tensors[key], tensor, rtol=1e-12, atol=0)
    for key, tensor in _combined(shares).items():  # sampled labels too: seeded by the position in the whole draw
        torch.testing.assert_close(tensor, whole.tensors[key], rtol=1e-12, atol=0)


def test_a_killed_process_resumes_from_its_own_checkpoint(monkeypatch, tmp_path, tok, docs, llama64):
    monkeypatch.setattr(FisherAccumulator, "all_reduce", _no_reduction)
    kwargs = {"target_modules": TARGETS, "max_length": 32, "batch_size": 1, "checkpoint_every": 8, "world_size": 2}
    whole = estimate_fisher(llama64, tok, docs, rank=1, **kwargs)
    with pytest.raises(_Killed):
        estimate_fisher(llama64, tok, _dies_after(docs, 20), rank=1, checkpoint_dir=tmp_path, **kwargs)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-rank1-of-2.safetensors"]  # process 1's own file
    estimate_fisher(llama64, tok, docs[:4], rank=0, checkpoint_dir=tmp_path, **{**kwargs, "checkpoint_every": 2})
    resumed = estimate_fisher(llama64, tok, docs, rank=1, checkpoint_dir=tmp_path, **kwargs)
    assert (resumed.num_docs, resumed.num_tokens) == (whole.num_docs, whole.num_tokens)
    for key, tensor in whole.tensors.items():
        torch.testing.assert_close(resumed.tensors[key], tensor, rtol=1e-12, atol=0)


def test_a_resume_with_another_number_of_processes_is_refused(monkeypatch, tmp_path, tok, docs, llama64):
    monkeypatch.setattr(FisherAccumulator, "all_reduce", _no_reduction)
    kwargs = {"target_modules": ["q_proj"], "max_length": 16, "batch_size": 2, "checkpoint_every": 4}
    estimate_fisher(llama64, tok, docs[:8], rank=1, world_size=2, checkpoint_dir=tmp_path / "two", **kwargs)
    with pytest.raises(FisherError, match=r"2 processes \(checkpoint-rank1-of-2.safetensors\).*this run has 1 process"
                       r".*resume with 2 processes.*or delete that folder"):  # fmt: skip
        estimate_fisher(llama64, tok, docs[:8], checkpoint_dir=tmp_path / "two", **kwargs)
    estimate_fisher(llama64, tok, docs[:8], checkpoint_dir=tmp_path / "one", **kwargs)
    with pytest.raises(FisherError, match=r"1 process \(checkpoint.safetensors\).*this run has 3 processes"):
        estimate_fisher(llama64, tok, docs[:8], rank=0, world_size=3, checkpoint_dir=tmp_path / "one", **kwargs)


def test_several_processes_without_a_process_group_are_refused(monkeypatch, tok, docs, llama64):
    with pytest.raises(FisherError, match=r"torch.distributed has no process group.*accelerate launch -m e2wm\.fisher"):
        estimate_fisher(llama64, tok, docs[:4], target_modules=["q_proj"], max_length=16, rank=0, world_size=2)
    monkeypatch.setenv("WORLD_SIZE", "4")  # e.g. `accelerate launch -m e2wm.cli fisher`: 4 copies of one run
    with pytest.raises(FisherError, match=r"one of 4 processes.*accelerate launch .* -m e2wm\.fisher"):
        process_layout()


def test_e2wm_fisher_and_python_m_e2wm_fisher_take_the_same_flags():
    from e2wm.cli import build_parser as cli_parser
    from e2wm.fisher import build_parser

    def flags(parser):
        return {(tuple(a.option_strings), a.dest, a.default, a.required) for a in parser._actions if a.dest != "help"}

    cli = cli_parser("fisher")
    fisher = next(a for a in cli._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices["fisher"]
    assert flags(fisher) - {((), "func", None, False)} == flags(build_parser())
    assert any("--num-docs" in a.option_strings for a in build_parser()._actions)


# ----------------------------------------------------------------------------------- two real processes
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def documents(tmp_path_factory, docs) -> Path:
    path = tmp_path_factory.mktemp("text") / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    return path


@pytest.mark.parametrize("quantization", [None, "4bit"])
def test_two_processes_write_the_one_process_artifact(tmp_path, llama_folder, documents, quantization):
    """accelerate_configs/cpu_ddp.yaml: two gloo ranks; each takes every other document, the sums are all-reduced.

    Tolerance: the two processes add the same squared gradients in another order (two partial sums, then one
    fp64 addition) and see other batches (other padding), so F agrees to fp32 rounding: ≤ 1e-5 of each
    tensor's largest value.
    """
    from safetensors import safe_open

    from e2wm.cli import main

    flags = ["--model", str(llama_folder), "--target-modules", "q_proj,v_proj", "--text", str(documents),
             "--num-docs", "20", "--max-length", "48", "--batch-size", "3", "--checkpoint-every", "4", "--quiet"]  # fmt: skip
    if quantization:
        flags += ["--quantization", quantization]
    assert main(["fisher", *flags, "--out", str(tmp_path / "one"), "--device", "cpu"]) == 0

    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "accelerate_configs/cpu_ddp.yaml"), "--main_process_port", str(_free_port()),
               "-m", "e2wm.fisher", *flags, "--out", str(tmp_path / "two")]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("Fisher (empirical, 20 documents") == 1  # printed by process 0 only
    assert "2 processes (10, 10 documents)" in result.stdout

    metadata = json.loads((tmp_path / "two" / "fisher.json").read_text())
    assert metadata["num_processes"] == 2 and metadata["num_docs_per_process"] == [10, 10]  # both ranks worked
    single = json.loads((tmp_path / "one" / "fisher.json").read_text())
    for key in ("num_docs", "num_tokens", "num_predicted_tokens", "base_content_hash", "base_quantization"):
        assert metadata[key] == single[key], key
    assert not (tmp_path / "two.partial").exists()
    one, two = (safe_open(str(tmp_path / d / "fisher.safetensors"), "pt") for d in ("one", "two"))
    assert set(one.keys()) == set(two.keys()) and len(list(one.keys())) == 4
    for key in one.keys():  # noqa: SIM118 (not a dict)
        expected = one.get_tensor(key)
        torch.testing.assert_close(two.get_tensor(key), expected, rtol=0, atol=1e-5 * expected.abs().max().item())
