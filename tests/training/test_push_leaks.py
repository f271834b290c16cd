"""What a trained adapter's push uploads (issue 14): the adapter, its card and tokenizer, nothing else: no
``training_args.bin`` (a pickle of the whole config), no checkpoint, optimizer or RNG state, and no token in any
file written or uploaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fake_hub import TOKEN
from tests.training.common import load_model, lora_config, prompt_completion, training_config

NEVER_ON_THE_HUB = (
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state",
    "trainer_state.json",
    "checkpoint",
)


def test_a_pushed_adapter_uploads_only_its_own_files_and_no_token(fake_hub, tmp_path, llama_folder):
    from e2wm import EWCLoRATrainer

    model, tok = load_model(llama_folder)
    out = tmp_path / "run"
    # every save pushed (hub_strategy every_save, trl's default), and the final push
    args = training_config(out, penalty="l2", ewc_lambda=0.1, max_steps=2, save_strategy="steps", save_steps=1,
                           push_to_hub=True, hub_model_id="fake-user/leak-test")  # fmt: skip
    trainer = EWCLoRATrainer(model=model, args=args, train_dataset=prompt_completion(8), processing_class=tok,
                             peft_config=lora_config())  # fmt: skip
    trainer.train()
    trainer.push_to_hub(dataset_name="e2wm/experiences")

    umask = os.umask(0)
    os.umask(umask)
    for weights in (out / "adapter_model.safetensors", out / "checkpoint-1" / "adapter_model.safetensors"):
        assert weights.stat().st_mode & 0o777 == 0o666 & ~umask, "readable as the umask allows (safetensors: 0600)"
    local = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"training_args.bin", "checkpoint-1/optimizer.pt", "checkpoint-2/training_args.bin"} <= local, (
        "the files that must not be pushed exist locally (the test could fail)"
    )
    uploaded = {path for commit in fake_hub.commits("fake-user/leak-test") for path in commit.files}
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "tokenizer.json"} <= uploaded
    leaked = sorted(path for path in uploaded if any(word in path for word in NEVER_ON_THE_HUB))
    assert leaked == [], leaked
    assert len(fake_hub.commits("fake-user/leak-test")) >= 3, "the pushes during training happened too"

    token = TOKEN.encode()  # what HF_TOKEN holds during the test: it authenticated every upload
    written = [p for p in out.rglob("*") if p.is_file() and token in p.read_bytes()]
    assert written == [], f"the token was written to {written}"
    on_hub = [p for c in fake_hub.commits("fake-user/leak-test") for p, data in c.files.items() if token in data]
    assert on_hub == []


@pytest.mark.parametrize("strategy", ["checkpoint", "all_checkpoints"])
def test_pushing_checkpoints_is_refused_at_construction(tmp_path, llama_folder, strategy):
    from e2wm import EWCLoRATrainer

    model, tok = load_model(llama_folder)
    args = training_config(tmp_path / "run", penalty="none", ewc_lambda=0.0, push_to_hub=True,
                           hub_model_id="fake-user/x", hub_strategy=strategy)  # fmt: skip
    with pytest.raises(ValueError, match=rf"hub_strategy='{strategy}' would upload checkpoints.*training_args\.bin"):
        EWCLoRATrainer(model=model, args=args, train_dataset=prompt_completion(4), processing_class=tok,
                       peft_config=lora_config())  # fmt: skip
    assert not Path(tmp_path / "run").exists() or not any(Path(tmp_path / "run").iterdir())


def test_a_token_in_a_training_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="hub_token is not accepted"):
        training_config(tmp_path / "run", penalty="l2", hub_token="hf_should_never_be_written")
    assert not (tmp_path / "run").exists()
