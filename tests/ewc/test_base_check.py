"""The Fisher's base check says what it compared, and never turns weights it cannot see into a false mismatch or a
silent pass: meta placeholders and ZeRO-3 partitions in one process are a clear error (the multi-process check is
tests/training/test_sharded.py)."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn

from e2wm.ewc import FisherError, estimate_fisher, load_fisher, save_fisher
from e2wm.ewc.layers import base_identity, model_identity

TARGETS = ["q_proj", "v_proj"]


@pytest.fixture(scope="module")
def llama(llama_folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(llama_folder).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory, llama, tok, docs):
    estimate = estimate_fisher(llama, tok, docs[:4], target_modules=TARGETS, max_length=24, batch_size=2)
    identity = model_identity(llama, [k.removesuffix(".weight") for k in estimate.tensors])
    metadata = {"base_model": identity["base_model_name_or_path"], **identity, "estimator": "empirical",
                "num_docs": 4, "num_skipped_docs": 0, "num_tokens": estimate.num_tokens,
                "num_predicted_tokens": estimate.num_predicted_tokens, "max_length": 24, "source": {"path": "x.txt"},
                "seed": 0, "normalization": "none", "target_modules": TARGETS, "e2wm_version": "test"}  # fmt: skip
    return save_fisher(tmp_path_factory.mktemp("fisher") / "fisher", estimate.tensors, metadata)


def _with_weight(model, name, make):
    """A copy of ``model`` whose ``name`` module weight is replaced by ``make(weight)``."""
    model = copy.deepcopy(model)
    module = model.get_submodule(name)
    module.weight = make(module.weight)
    return model


def test_the_check_done_is_logged_and_kept(saved, llama, llama_4bit, caplog):
    with caplog.at_level(logging.INFO, logger="e2wm.ewc.artifact"):
        fisher = load_fisher(saved, llama)
    assert fisher.base_check.startswith("content hash ") and "matches (computed on this process's weights)" in (
        fisher.base_check
    )
    assert fisher.base_check in caplog.text
    quantized = load_fisher(saved, llama_4bit)  # same name, no content hash on a 4-bit model
    assert quantized.base_check.startswith("name ") and "quantized" in quantized.base_check
    assert load_fisher(saved, llama, check_base=False).base_check == "skipped (check_base=False)"


def test_meta_placeholders_are_a_clear_error_not_a_mismatch(saved, llama):
    # What FSDP's cpu_ram_efficient_loading leaves on the processes other than 0 before it broadcasts the weights.
    name = "model.layers.1.self_attn.v_proj"
    placeholder = _with_weight(llama, name, lambda w: nn.Parameter(torch.empty_like(w, device="meta")))
    with pytest.raises(
        FisherError, match=r"'model\.layers\.1\.self_attn\.v_proj' is on the meta device.*check_base=False"
    ):
        load_fisher(saved, placeholder)
    assert len(load_fisher(saved, placeholder, check_base=False)) == 4


def test_zero3_partitions_in_one_process_are_a_clear_error_not_a_mismatch(saved, llama):
    def partition(weight):  # a ZeRO-3 parameter outside forward: empty data, the real size in ds_numel
        param = nn.Parameter(torch.empty(0), requires_grad=False)
        param.ds_numel, param.ds_shape = weight.numel(), weight.shape
        return param

    partitioned = _with_weight(llama, "model.layers.0.self_attn.q_proj", partition)
    identity, where = base_identity(partitioned, ["model.layers.1.self_attn.q_proj"])  # whole weights only: fine
    assert identity["base_content_hash"] and where == "on this process's weights"
    with pytest.raises(FisherError, match=r"sharded between processes in this process.*across_processes=True"):
        load_fisher(saved, partitioned)


def test_different_weights_are_still_a_mismatch(saved, llama):
    from e2wm.ewc import FisherMismatchError

    changed = _with_weight(llama, "model.layers.0.self_attn.q_proj", lambda w: nn.Parameter(w.detach() + 1.0))
    with pytest.raises(FisherMismatchError, match=r"its weights differ.*computed on this process's weights"):
        load_fisher(saved, changed)
