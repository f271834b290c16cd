"""Run by test_ddp.py under ``accelerate launch``: SGD steps with the penalty; every rank leaves a marker, rank 0
writes the LoRA weights and the number of processes the trainer saw.

    python tests/training/ddp_train.py MODEL_FOLDER FISHER_FOLDER OUT PER_DEVICE_BATCH STEPS
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(model_folder: str, fisher_folder: str, out: str, per_device: int, steps: int) -> None:
    from safetensors.torch import save_file

    from e2wm import EWCLoRATrainer
    from tests.training.common import load_model, lora_config, lora_weights, prompt_completion, training_config

    torch.set_num_threads(1)
    folder = Path(out)
    args = training_config(
        folder / "run", optim="sgd", learning_rate=0.05, max_grad_norm=0.0, fisher=fisher_folder, ewc_lambda=1e-3,
        per_device_train_batch_size=per_device, max_steps=steps,
    )  # fmt: skip
    model, tok = load_model(model_folder)
    trainer = EWCLoRATrainer(
        model=model, args=args, train_dataset=prompt_completion(16), processing_class=tok,
        peft_config=lora_config(random_b=True),
    )  # fmt: skip
    trainer.train()
    accelerator = trainer.accelerator
    (folder / f"rank-{accelerator.process_index}").write_text("ran\n")
    if accelerator.is_main_process:
        save_file(lora_weights(trainer.model), str(folder / "lora.safetensors"))
        world = {"num_processes": accelerator.num_processes, "distributed_type": str(accelerator.distributed_type)}
        (folder / "world.json").write_text(json.dumps(world))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
