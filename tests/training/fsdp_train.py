"""Run by test_sharded.py under ``accelerate launch`` (2 CPU processes, gloo): EWC-LoRA under FSDP2 with
``cpu_ram_efficient_loading``, where process 1 holds meta placeholders instead of weights at construction.

    python tests/training/fsdp_train.py MODEL_FOLDER FISHER_FOLDER OUT PER_DEVICE_BATCH STEPS

Two things here are test harness, not e2wm:

* accelerate turns FSDP into plain multi-CPU when the device is a CPU (``AcceleratorState`` enables FSDP only for
  GPU-like distributed types), although torch's ``fully_shard`` runs on CPUs with gloo. The patch below keeps the
  FSDP plugin that accelerate built from the ``FSDP_*`` variables, so the trainer, accelerate's ``fsdp2_prepare_model``
  (which broadcasts process 0's weights into the shards) and torch's FSDP2 run as they do on GPUs.
* transformers 5 reads the checkpoint on every process even with ``cpu_ram_efficient_loading``; earlier versions,
  and models built with ``init_empty_weights``, leave the other processes with meta parameters. Process 1 replaces
  its parameters by meta placeholders (buffers stay real, as transformers keeps them) to be that case.

Every process writes a marker with what it saw (and the base weights' hash after training, when they are all FSDP2
shards); process 0 writes the LoRA weights after training.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import torch


def allow_fsdp_on_cpu() -> None:
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedType

    init = AcceleratorState.__init__

    def patched(self, *args, fsdp_plugin=None, **kwargs):  # type: ignore[no-untyped-def]
        init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type, self.fsdp_plugin = DistributedType.FSDP, fsdp_plugin

    AcceleratorState.__init__ = patched  # type: ignore[method-assign]


def as_meta_placeholders(model: torch.nn.Module) -> None:
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            placeholder = torch.nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
            setattr(module, name, placeholder)


def main(model_folder: str, fisher_folder: str, out: str, per_device: int, steps: int, fsdp: bool = True) -> None:
    from safetensors.torch import save_file

    from e2wm import EWCLoRATrainer
    from tests.training.common import load_model, lora_config, prompt_completion, training_config

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("e2wm.ewc.artifact").setLevel(logging.INFO)
    if fsdp:
        allow_fsdp_on_cpu()
    folder = Path(out)
    args = training_config(
        folder / "run", optim="sgd", learning_rate=0.05, max_grad_norm=0.0, fisher=fisher_folder, ewc_lambda=1e-3,
        per_device_train_batch_size=per_device, max_steps=steps, gradient_checkpointing=False,
    )  # fmt: skip
    rank = args.process_index  # starts the process group, as in any training script, before the model loads
    model, tok = load_model(model_folder)
    if fsdp and rank != 0:
        as_meta_placeholders(model)
    seen = {"q_proj_is_meta": model.model.layers[0].self_attn.q_proj.weight.is_meta}
    trainer = EWCLoRATrainer(
        model=model, args=args, train_dataset=prompt_completion(16), processing_class=tok,
        peft_config=lora_config(random_b=True),
    )  # fmt: skip
    seen["base_check"] = trainer.fisher.base_check if trainer.fisher is not None else None
    seen["fsdp_enabled"] = trainer.is_fsdp_enabled
    trainer.train()
    accelerator = trainer.accelerator
    lora = {n: p for n, p in trainer.model.named_parameters() if "lora_" in n}
    seen["lora_types"] = sorted({type(p).__name__ for p in lora.values()})
    seen["fisher_device"] = str(next(iter(trainer.fisher.values())).device) if trainer.fisher is not None else None
    if trainer.fisher is not None:  # after training every base weight is an FSDP2 shard: the hash gathers them
        from e2wm.ewc.layers import base_identity

        names = [key.removesuffix(".weight") for key in trainer.fisher]
        identity, where = base_identity(trainer.model, names, across_processes=True)
        seen["identity_after_training"] = {"hash": identity["base_content_hash"], "where": where}
    (folder / f"rank-{accelerator.process_index}.json").write_text(json.dumps(seen))
    full = {
        n: (p.full_tensor() if type(p).__name__ == "DTensor" else p).detach().float().cpu() for n, p in lora.items()
    }
    if accelerator.is_main_process:
        save_file(full, str(folder / "lora.safetensors"))
        plugin = getattr(accelerator.state, "fsdp_plugin", None)
        world = {
            "num_processes": accelerator.num_processes,
            "fsdp_version": getattr(plugin, "fsdp_version", None),
            "cpu_ram_efficient_loading": getattr(plugin, "cpu_ram_efficient_loading", None),
        }
        (folder / "world.json").write_text(json.dumps(world))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
