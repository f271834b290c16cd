"""bench/gpu.py, the one-command GPU measurement, as far as CI can run it: its CPU mode goes through every part
(the 4-bit and 8-bit EWCLoRATrainer runs with and without the penalty, the Fisher against the paper's loop, the
penalty against the naive formula) and ends with its summary line; missing packages are named before anything runs.
No timing is asserted: speed is what the script prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEYS = [
    "gpu_peak_gib_4bit", "gpu_peak_gib_4bit_plain", "tokens_per_s_4bit", "tokens_per_s_4bit_plain",
    "gpu_peak_gib_8bit", "gpu_peak_gib_8bit_plain", "tokens_per_s_8bit", "tokens_per_s_8bit_plain",
    "fisher_speedup", "fisher_max_rel_err", "fisher_tokens_per_s", "penalty_speedup", "penalty_extra_mem_ratio",
]  # fmt: skip


def _run(*args: str, pythonpath: list[Path] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), str(REPO), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    command = [sys.executable, str(REPO / "bench" / "gpu.py"), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def test_cpu_mode_runs_every_part_and_ends_with_the_summary(tmp_path):
    result = _run("--cpu", "--json", str(tmp_path / "results.json"))
    assert result.returncode == 0, result.stderr[-4000:]
    fields = dict(item.split("=", 1) for item in result.stdout.strip().splitlines()[-1].split())
    assert list(fields) == KEYS
    assert (
        all(fields[k] == "n/a" for k in KEYS if k.startswith("gpu_peak")) and fields["penalty_extra_mem_ratio"] == "n/a"
    )
    assert all(float(fields[k]) > 0 for k in KEYS if k.startswith("tokens_per_s") or k.endswith("speedup"))
    assert float(fields["fisher_max_rel_err"]) <= 1e-4  # e2wm's batched Fisher is the paper's loop's
    results = json.loads((tmp_path / "results.json").read_text())
    for part in ("qlora4", "lora8"):  # the EWC run had a penalty, the plain one none
        assert results[part]["ewc"]["penalty"] > 0 and results[part]["plain"]["penalty"] is None
    assert "e2wm and naive P agree to" in result.stdout


def test_missing_training_packages_are_named_with_how_to_carry_them(tmp_path):
    for name in ("trl", "bitsandbytes"):  # what the GPU machine's image lacks (with datasets)
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('not installed (hidden by the test)')\n")
    result = _run("--cpu", pythonpath=[tmp_path])
    assert result.returncode == 2
    assert "cannot run qlora4, lora8: missing trl, bitsandbytes" in result.stderr
    assert "pip download" in result.stderr and "bash bench/gpu.sh" in result.stderr
    assert "python bench/gpu.py --parts fisher,penalty" in result.stderr
    assert "[fisher]" not in result.stdout  # nothing ran
