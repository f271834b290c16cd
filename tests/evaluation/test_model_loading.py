"""Models loaded for inference: the LM head gets a contiguous input (a frozen head's slow path otherwise)."""

from __future__ import annotations

import torch

from tests.tiny import save_pretrained, tiny_llama, tiny_tokenizer


def test_a_frozen_head_sees_a_contiguous_input_under_logits_to_keep_and_gives_the_same_logits(tmp_path):
    from peft import LoraConfig, get_peft_model

    from e2wm.models import load_causal_lm

    tok = tiny_tokenizer()
    folder = save_pretrained(tiny_llama(tok), tok, tmp_path / "model")
    tuned = get_peft_model(tiny_llama(tok), LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    tuned.save_pretrained(tmp_path / "adapter")
    ids = torch.randint(3, 300, (3, 9))
    for adapter in (None, str(tmp_path / "adapter")):
        model, _ = load_causal_lm(str(folder), adapter=adapter, device="cpu")
        model.requires_grad_(False)  # frozen, as under an adapter: torch.matmul's fold then needs a contiguous input
        head = (model.get_base_model() if adapter else model).get_output_embeddings()
        seen: list[bool] = []
        head.register_forward_hook(lambda _m, args, _out, seen=seen: seen.append(args[0].is_contiguous()))
        with torch.no_grad():
            last = model(input_ids=ids, logits_to_keep=2).logits
            full = model(input_ids=ids).logits
        assert seen == [True, True]
        torch.testing.assert_close(last, full[:, -2:])
    trained, _ = load_causal_lm(str(folder), device="cpu", train=True)  # training: the head is left alone
    assert not getattr(trained.get_output_embeddings(), "_e2wm_contiguous_input", False)
