"""The EWC-LoRA penalty equals Σ F ⊙ ΔW² as peft applies ΔW, with exact gradients, chunked and in fp32."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from peft import LoraConfig, get_peft_model

from e2wm.ewc import FisherMismatchError, ewc_penalty, lora_penalty
from e2wm.ewc.layers import base_modules, lora_layers, weight_shape
from tests.tiny import tiny_gpt2, tiny_llama


def random_fisher(model, seed=0, dtype=torch.float64):
    """A positive F for every LoRA layer's base weight, keyed by base weight names, in the weight's own layout."""
    gen = torch.Generator().manual_seed(seed)
    modules = dict(base_modules(model))
    return {
        f"{name}.weight": torch.rand(weight_shape(modules[name]), generator=gen, dtype=dtype)
        for name, _ in lora_layers(model)
    }


def naive_penalty(model, fisher):
    """Σ over layers of Σ F ⊙ ΔW², ΔW the sum of peft's (differentiable, transposing) get_delta_weight over the
    layer's active adapters."""
    total = 0
    for name, layer in lora_layers(model):
        deltas = [layer.get_delta_weight(adapter) for adapter in layer.active_adapters if adapter in layer.lora_A]
        if deltas:
            total = total + ((fisher[f"{name}.weight"] if fisher else 1) * sum(deltas) ** 2).sum()
    return total


def lora_grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if "lora_" in n and p.grad is not None}


def peft_model(arch, dtype=torch.float64, **lora):
    base = tiny_llama(dtype=dtype) if arch == "llama" else tiny_gpt2(dtype=dtype)
    targets = ["q_proj", "v_proj"] if arch == "llama" else ["c_attn", "c_proj"]
    config = LoraConfig(r=4, lora_alpha=16, target_modules=targets, init_lora_weights=False, **lora)
    return get_peft_model(base, config).to(dtype)


def assert_penalty_matches_naive(model, fisher, rtol=1e-12, **kwargs):
    ours = ewc_penalty(model, fisher, **kwargs)
    ours.backward()
    grads = lora_grads(model)
    model.zero_grad(set_to_none=True)
    naive = naive_penalty(model, fisher)
    naive.backward()
    assert ours.ndim == 0 and abs(ours.item() / naive.item() - 1) < rtol
    assert grads.keys() == lora_grads(model).keys() and grads
    for name, grad in lora_grads(model).items():
        err = ((grads[name].to(grad.dtype) - grad).abs().max() / grad.abs().max()).item()
        assert err < rtol * 10, f"{name}: {err:.3g}"


@pytest.mark.parametrize(
    ("arch", "lora"),
    [
        ("llama", {}),
        ("llama", {"use_rslora": True}),
        ("gpt2", {"fan_in_fan_out": True}),  # Conv1D: F and the base weight are (in, out)
        ("gpt2", {"fan_in_fan_out": True, "use_rslora": True}),
    ],
)
@pytest.mark.parametrize("chunk_bytes", [1024, 2**30])  # many row-chunks per layer, and one
def test_penalty_matches_naive_formula_in_float64(arch, lora, chunk_bytes):
    model = peft_model(arch, **lora)
    assert_penalty_matches_naive(model, random_fisher(model), chunk_bytes=chunk_bytes)


def test_rslora_scaling_is_alpha_over_sqrt_r():
    plain, rs = peft_model("llama"), peft_model("llama", use_rslora=True)  # same seed: same A and B
    fisher = random_fisher(plain)
    ratio = ewc_penalty(rs, fisher) / ewc_penalty(plain, fisher)
    assert ratio.item() == pytest.approx((16 / 2) ** 2 / (16 / 4) ** 2, rel=1e-12)  # (α/√r)² / (α/r)², r=4


def test_penalty_on_4bit_base_with_bf16_adapters_accumulates_in_fp32(llama_4bit):
    import copy

    model = get_peft_model(
        copy.deepcopy(llama_4bit),
        LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    for name, param in model.named_parameters():
        if "lora_" in name:
            param.data = param.data.to(torch.bfloat16)  # what trl does to QLoRA adapters
    fisher = random_fisher(model, dtype=torch.float32)
    assert fisher["model.layers.0.self_attn.q_proj.weight"].shape == (64, 64)  # logical, not the packed (2048, 1)
    ours = ewc_penalty(model, fisher)
    assert ours.dtype == torch.float32
    ours.backward()
    for name, param in model.named_parameters():
        if "lora_" in name:
            assert param.grad is not None and param.grad.dtype == torch.bfloat16, name
    # reference: the same bf16 values, upcast to fp64
    expected = 0.0
    for name, layer in lora_layers(model):
        a, b = layer.lora_A["default"].weight.double(), layer.lora_B["default"].weight.double()
        expected += (fisher[f"{name}.weight"].double() * (layer.scaling["default"] * b @ a) ** 2).sum().item()
    assert ours.item() == pytest.approx(expected, rel=1e-5)


def test_uniform_fisher_is_l2_on_delta():
    model = peft_model("gpt2", fan_in_fan_out=True)
    assert_penalty_matches_naive(model, None)


def test_penalty_keeps_no_full_size_tensor_for_backward():
    # Naive autograd keeps ΔW (d_out × d_in) per layer until backward; ours keeps only r × d sized gradients.
    a = torch.randn(8, 512, requires_grad=True)
    b = torch.randn(256, 8, requires_grad=True)
    fisher = torch.rand(256, 512)

    def saved_sizes(compute):
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
            value = compute()
        return value, sizes

    ours, ours_saved = saved_sizes(lambda: lora_penalty(a, b, 2.0, fisher, chunk_bytes=16 * 512 * 4))
    naive, naive_saved = saved_sizes(lambda: (fisher * (2.0 * b @ a) ** 2).sum())
    assert max(ours_saved) <= 8 * 512  # the two gradients, A- and B-sized
    assert max(naive_saved) == 256 * 512  # the naive formula keeps a full ΔW
    grads_ours = torch.autograd.grad(ours, (a, b))
    grads_naive = torch.autograd.grad(naive, (a, b))
    for ours_grad, naive_grad in zip(grads_ours, grads_naive, strict=True):
        torch.testing.assert_close(ours_grad, naive_grad, rtol=1e-4, atol=1e-3)


def test_penalty_under_no_grad_is_a_plain_value():
    model = peft_model("llama")
    fisher = random_fisher(model)
    with torch.no_grad():
        value = ewc_penalty(model, fisher)
    assert not value.requires_grad
    assert value.item() == pytest.approx(naive_penalty(model, fisher).item(), rel=1e-12)


def test_disabled_adapters_contribute_nothing():
    model = peft_model("llama")
    fisher = random_fisher(model)
    with model.disable_adapter():
        assert ewc_penalty(model, fisher).item() == 0.0
    assert ewc_penalty(model, fisher).item() > 0


def test_missing_or_misshapen_fisher_entries_are_named():
    model = peft_model("llama")
    fisher = random_fisher(model)
    del fisher["model.layers.1.self_attn.v_proj.weight"]
    with pytest.raises(FisherMismatchError, match=r"no entry for 'model\.layers\.1\.self_attn\.v_proj\.weight'"):
        ewc_penalty(model, fisher)
    fisher = random_fisher(model)
    fisher["model.layers.0.self_attn.q_proj.weight"] = fisher["model.layers.0.self_attn.q_proj.weight"].T[:, :32]
    with pytest.raises(FisherMismatchError, match=r"q_proj\.weight' has shape \(64, 32\).*needs \(64, 64\)"):
        ewc_penalty(model, fisher)


def test_dora_and_plain_models_are_refused_clearly():
    model = peft_model("llama", use_dora=True)
    with pytest.raises(NotImplementedError, match="DoRA"):
        ewc_penalty(model, random_fisher(model))
    with pytest.raises(ValueError, match="no LoRA layer"):
        ewc_penalty(tiny_llama(), None)


def test_ewc_package_imports_neither_trl_nor_peft():
    code = "import sys, e2wm.ewc; bad = {'trl', 'peft'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)
