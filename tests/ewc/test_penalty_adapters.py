"""The EWC penalty is Σ F ⊙ (W − W*)² on each layer's total change from the weights W* the Fisher was estimated at.

Stacked adapters (several active, frozen or trainable) are penalised on their sum, cross terms included; inits
that rewrite the base weights (PiSSA, OLoRA) are penalised against the original base weights, not the residual.
"""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model

from e2wm.ewc.layers import base_modules, lora_layers
from e2wm.ewc.penalty import ewc_penalty, layer_penalty, penalty_reference, rewrites_base
from tests.ewc.test_penalty import lora_grads, random_fisher
from tests.tiny import tiny_gpt2, tiny_llama

F64 = torch.float64


def naive_total_penalty(model, fisher, original=None):
    """Σ_layers Σ F ⊙ (W − W*)², built from what peft computes, with full-size tensors in the weight's own layout.

    W is the layer's effective weight: its current base weight plus peft's ``get_delta_weight`` (already in the
    weight's layout, (in, out) for ``Conv1D``) of every active adapter, none when adapters are disabled. W* is
    ``original[name]``, the base weight before peft touched it, or the current base weight when ``original`` is None.
    """
    total = 0
    for name, layer in lora_layers(model):
        base = layer.get_base_layer().weight
        change = base - original[name] if original is not None else torch.zeros_like(base)
        if not layer.disable_adapters:
            for adapter in layer.active_adapters:
                if adapter in layer.lora_A:
                    change = change + layer.get_delta_weight(adapter)
        total = total + (fisher[f"{name}.weight"] * change**2).sum()
    return total


def assert_matches(ours_fn, naive_fn, model, rtol):
    """Value and gradients of ours vs the naive formula; returns the gradients (only trainable factors get one)."""
    ours = ours_fn()
    ours.backward()
    grads = lora_grads(model)
    model.zero_grad(set_to_none=True)
    naive = naive_fn()
    naive.backward()
    assert ours.ndim == 0 and abs(ours.item() / naive.item() - 1) < rtol, (ours.item(), naive.item())
    expected = lora_grads(model)
    model.zero_grad(set_to_none=True)
    assert grads.keys() == expected.keys() and grads
    for name, grad in expected.items():
        err = ((grads[name].to(grad.dtype) - grad).abs().max() / grad.abs().max()).item()
        assert err < rtol * 10, f"{name}: {err:.3g}"
    return grads


# ----------------------------------------------------------------------------------------------- stacked adapters
@pytest.mark.parametrize("fan_in_fan_out", [False, True])
@pytest.mark.parametrize("chunk_bytes", [1024, 2**30])  # many row-chunks, and one
def test_two_adapters_on_one_layer_are_penalised_on_their_sum_in_float64(fan_in_fan_out, chunk_bytes):
    gen = torch.Generator().manual_seed(0)
    d_out, d_in = 48, 40
    a1, b1 = torch.randn(3, d_in, dtype=F64, generator=gen), torch.randn(d_out, 3, dtype=F64, generator=gen)  # frozen
    # The new adapter partly undoes the old one (0.5·(−3 B₁)A₁ = −1.5 B₁A₁) and adds two directions of its own.
    a2 = torch.cat([a1, torch.randn(2, d_in, dtype=F64, generator=gen)]).requires_grad_()  # trainable
    b2 = torch.cat([-3 * b1, torch.randn(d_out, 2, dtype=F64, generator=gen)], dim=1).requires_grad_()
    rows = torch.rand(d_out, d_in, dtype=F64, generator=gen)  # F in (d_out, d_in)
    fisher = rows.T.contiguous() if fan_in_fan_out else rows  # stored in the weight's own layout

    ours = layer_penalty([(a1, b1, 2.0), (a2, b2, 0.5)], fisher, fan_in_fan_out=fan_in_fan_out, chunk_bytes=chunk_bytes)
    grads = torch.autograd.grad(ours, (a2, b2))
    naive = (rows * (2.0 * b1 @ a1 + 0.5 * b2 @ a2) ** 2).sum()
    naive_grads = torch.autograd.grad(naive, (a2, b2))
    assert ours.item() == pytest.approx(naive.item(), rel=1e-12)
    for got, want in zip(grads, naive_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=0)
    per_adapter = (rows * (2.0 * b1 @ a1) ** 2).sum() + (rows * (0.5 * b2 @ a2) ** 2).sum()
    assert per_adapter.item() > 2 * naive.item()  # the cross terms matter here

    uniform = layer_penalty([(a1, b1, 2.0), (a2, b2, 0.5)], None)  # L2 on the summed ΔW
    assert uniform.item() == pytest.approx(((2.0 * b1 @ a1 + 0.5 * b2 @ a2) ** 2).sum().item(), rel=1e-12)


def stacked_model():
    """A tiny fp64 Llama with "default" (q, v; r=4), "second" (q; r=2) and "third" (v; r=2), B ≠ 0 everywhere."""
    model = get_peft_model(
        tiny_llama(dtype=F64),
        LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.add_adapter("second", LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], init_lora_weights=False))
    model.add_adapter("third", LoraConfig(r=2, lora_alpha=4, target_modules=["v_proj"], init_lora_weights=False))
    return model.double()


def test_a_frozen_earlier_adapter_and_a_trainable_new_one_are_penalised_on_their_sum():
    model = stacked_model()
    model.base_model.set_adapter(["default", "second"])  # peft's multi-adapter API: both active, "third" not
    for name, param in model.named_parameters():
        if ".default." in name:
            param.requires_grad_(False)  # the earlier task's adapter, frozen
    fisher = random_fisher(model)
    grads = assert_matches(lambda: ewc_penalty(model, fisher, chunk_bytes=1024),
                           lambda: naive_total_penalty(model, fisher), model, rtol=1e-12)  # fmt: skip
    assert grads and all(".second." in name for name in grads)  # the frozen adapter gets no gradient

    both = ewc_penalty(model, fisher).item()
    alone = {}
    for adapter in ("default", "second"):
        model.base_model.set_adapter(adapter)
        alone[adapter] = ewc_penalty(model, fisher).item()
    assert abs(both - (alone["default"] + alone["second"])) > 1e-3 * both  # not the per-adapter sum


def test_only_the_active_adapters_count_as_peft_switches_them():
    model = stacked_model()
    fisher = random_fisher(model)
    for active in (["default"], ["second"], ["default", "third"], ["default", "second", "third"]):
        if len(active) == 1:
            model.set_adapter(active[0])  # PeftModel's single-adapter switch
        else:
            model.base_model.set_adapter(active)
        assert ewc_penalty(model, fisher).item() == pytest.approx(naive_total_penalty(model, fisher).item(), rel=1e-12)
    with model.disable_adapter():
        assert ewc_penalty(model, fisher).item() == 0.0


# -------------------------------------------------------------------------------------- inits that rewrite the base
def rewritten_model(arch, init, **lora):
    """A tiny fp32 base wrapped with ``init`` (peft's SVD/QR need fp32), then made fp64; and the original weights."""
    base = tiny_llama() if arch == "llama" else tiny_gpt2()
    targets = ["q_proj", "v_proj"] if arch == "llama" else ["c_attn", "c_proj"]
    modules = dict(base_modules(base))
    config = LoraConfig(r=4, lora_alpha=16, target_modules=targets, init_lora_weights=init, **lora)
    model = get_peft_model(copy.deepcopy(base), config)
    original = {name: modules[name].weight.detach().double().clone() for name, _ in lora_layers(model)}
    # fp64 from here: the residual base and B⁰, A⁰ keep exactly the fp32 values peft computed.
    return model.double(), original


@pytest.mark.parametrize(
    ("arch", "init", "lora"),
    [
        ("llama", "pissa", {}),
        ("llama", "pissa_niter_4", {}),
        ("llama", "olora", {}),
        ("llama", "pissa", {"use_rslora": True}),
        ("gpt2", "pissa", {"fan_in_fan_out": True}),  # Conv1D: base, residual and Fisher are (in, out)
    ],
)
def test_rewriting_inits_are_penalised_on_the_change_from_the_original_base_weights(arch, init, lora):
    model, original = rewritten_model(arch, init, **lora)
    name, layer = next(iter(lora_layers(model)))
    assert not torch.allclose(layer.get_base_layer().weight, original[name])  # peft did rewrite the base
    reference = penalty_reference(model)  # B⁰, A⁰ as peft subtracted them
    fisher = random_fisher(model)

    # At the start the model is W* again (W_res + s·B⁰A⁰), up to peft's fp32 rounding of W_res.
    start = ewc_penalty(model, fisher, reference=reference).item()
    plain_lora_formula = sum(
        (fisher[f"{n}.weight"] * lay.get_delta_weight("default") ** 2).sum().item() for n, lay in lora_layers(model)
    )
    assert start < 1e-12 * plain_lora_formula
    assert naive_total_penalty(model, fisher, original).item() < 1e-9 * plain_lora_formula

    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a few training steps' worth of change to every A and B
        for param in (p for n, p in model.named_parameters() if "lora_" in n):
            param.add_(0.05 * param.abs().mean() * torch.randn(param.shape, generator=gen, dtype=F64))
    assert_matches(lambda: ewc_penalty(model, fisher, reference=reference, chunk_bytes=1024),
                   lambda: naive_total_penalty(model, fisher, original), model, rtol=1e-6)  # fmt: skip


def test_a_rewriting_adapter_counts_when_inactive_or_disabled_and_stacks_with_a_new_one():
    model, original = rewritten_model("llama", "pissa")
    reference = penalty_reference(model)
    model.add_adapter("second", LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], init_lora_weights=False))
    model.double()
    fisher = random_fisher(model)
    naive = lambda: naive_total_penalty(model, fisher, original)  # noqa: E731
    model.base_model.set_adapter(["default", "second"])
    for name, param in model.named_parameters():
        if ".default." in name:
            param.requires_grad_(False)  # the PiSSA adapter of an earlier task, frozen
    assert_matches(lambda: ewc_penalty(model, fisher, reference=reference), naive, model, rtol=1e-6)
    model.set_adapter("second")  # the PiSSA adapter inactive: the base still lacks s·B⁰A⁰
    assert_matches(lambda: ewc_penalty(model, fisher, reference=reference), naive, model, rtol=1e-6)
    with model.disable_adapter():  # W = W_res: the change is −s·B⁰A⁰, a constant
        value = ewc_penalty(model, fisher, reference=reference)
        assert not value.requires_grad and value.item() == pytest.approx(naive().item(), rel=1e-6) and value > 0


def test_a_rewriting_init_without_a_reference_is_refused():
    model, _ = rewritten_model("llama", "olora")
    with pytest.raises(ValueError, match=r"init_lora_weights='olora'.*rewrote the base.*penalty_reference\(model\)"):
        ewc_penalty(model, random_fisher(model))


def test_a_reference_needs_the_initial_factors_and_the_same_model():
    model, _ = rewritten_model("llama", "pissa")
    other, _ = rewritten_model("gpt2", "pissa", fan_in_fan_out=True)
    with pytest.raises(ValueError, match="built for another model"):
        ewc_penalty(model, random_fisher(model), reference=penalty_reference(other))
    with torch.no_grad():  # as after training, or after loading a saved PiSSA adapter over a rewritten base
        model.base_model.model.model.layers[1].self_attn.v_proj.lora_B["default"].weight.mul_(1.5)
    with pytest.raises(ValueError, match=r"v_proj: adapter 'default'.*no longer holds the factors"):
        penalty_reference(model)


def test_olora_on_a_quantized_base_is_refused(llama_4bit):
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj"], init_lora_weights="olora")
    model = get_peft_model(copy.deepcopy(llama_4bit), config)  # peft re-quantises W* − s·B⁰A⁰
    with pytest.raises(NotImplementedError, match="rewrote a quantised base weight"):
        penalty_reference(model)


@pytest.mark.parametrize(
    ("init", "rewrites"),
    [(True, False), (False, False), ("gaussian", False), ("eva", False), ("orthogonal", False),
     ("pissa", True), ("pissa_niter_16", True), ("olora", True), ("corda", True), ("lora_ga", True)],
)  # fmt: skip
def test_which_inits_rewrite_the_base(init, rewrites):
    assert rewrites_base(init) is rewrites


def test_loftq_and_unknown_inits_are_refused():
    with pytest.raises(NotImplementedError, match=r"loftq.*quantisation error"):
        rewrites_base("loftq")
    with pytest.raises(NotImplementedError, match="'some_future_init' is not known"):
        rewrites_base("some_future_init")
