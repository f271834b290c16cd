"""A real 2-process CPU DDP run (gloo, `accelerate launch`) equals one process on the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("ddp_train.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_process_cpu_ddp_gives_the_one_process_lora_weights(tmp_path, llama_folder, fisher_folder):
    from safetensors.torch import load_file

    from tests.training.ddp_train import main as train_once

    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir()
    ddp.mkdir()
    train_once(str(llama_folder), str(fisher_folder), str(single), per_device=4, steps=2)  # global batch 4

    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "accelerate_configs/cpu_ddp.yaml"), "--main_process_port", str(_free_port()),
        str(SCRIPT), str(llama_folder), str(fisher_folder), str(ddp), "2", "2",  # 2 processes × 2 = global batch 4
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]

    world = json.loads((ddp / "world.json").read_text())
    assert world["num_processes"] == 2 and "MULTI_CPU" in world["distributed_type"]
    assert (ddp / "rank-0").is_file() and (ddp / "rank-1").is_file()
    one, two = load_file(str(single / "lora.safetensors")), load_file(str(ddp / "lora.safetensors"))
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=1e-6, rtol=1e-5, msg=name)
