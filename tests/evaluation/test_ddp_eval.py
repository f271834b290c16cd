"""``accelerate launch -m e2wm.evaluation`` on two CPU processes (gloo) gives the one-process results."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from e2wm.evaluation.__main__ import main
from e2wm.models import resolve_model
from tests.tiny import sample_documents

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _inputs(folder: Path) -> list[str]:
    """Odd-sized tasks (the two shares differ in length) and perplexity documents."""
    mc = folder / "counting_qa.json"
    mc.write_text(
        "\n".join(
            json.dumps({"input": f"Alice puts {k} cups on the table. How many?\nAnswer:", "answer": str(k % 5),
                        "answer_list": ["0", "1", "2", "3", "4"]})
            for k in range(7)
        )
    )  # fmt: skip
    gen = folder / "object_path_tracking.json"
    gen.write_text(
        "\n".join(json.dumps({"input": f"Bob walks {i} times.\nAnswer:", "ref": "kitchen, bedroom"}) for i in range(5))
    )
    text = folder / "general.jsonl"
    text.write_text("".join(json.dumps({"text": d}) + "\n" for d in sample_documents(7, seed=2)))
    return ["--task-files", str(mc), str(gen), "--perplexity-text", str(text), "--batch-size", "1",
            "--max-new-tokens", "4", "--label", "base", "--quiet"]  # fmt: skip


def _launch(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--config_file", str(REPO / "accelerate_configs/cpu_ddp.yaml"), "--main_process_port", str(_free_port()),
               "-m", "e2wm.evaluation", *args]  # fmt: skip
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_two_processes_score_each_example_once_and_match_one_process(tmp_path):
    model = resolve_model("e2wm:tiny", tmp_path / "tiny")
    args = ["--model", model, *_inputs(tmp_path)]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    result = _launch([*args, "--out", str(tmp_path / "two")])
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("Results in") == 1, "only the main process reports"

    one = json.loads((tmp_path / "one" / "base" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "base" / "results.json").read_text())
    assert one["processes"] == 1 and two["processes"] == 2, "two processes really ran"
    assert set(one["tasks"]) == set(two["tasks"]) == {"counting_qa", "object_path_tracking", "perplexity"}
    for task in ("counting_qa", "object_path_tracking"):
        a, b = one["tasks"][task], two["tasks"][task]
        assert b["per_example"] == a["per_example"] and b["n"] == a["n"] == len(a["per_example"]["id"])
        assert b["value"] == pytest.approx(a["value"]) and b["provenance"] == a["provenance"]
        predictions = [
            json.loads((tmp_path / run / "base" / f"{task}.json").read_text())["predictions"] for run in ("one", "two")
        ]
        assert predictions[0] == predictions[1]
    a, b = one["tasks"]["perplexity"], two["tasks"]["perplexity"]
    assert b["n"] == a["n"] == 7 and b["settings"]["tokens"] == a["settings"]["tokens"], "every token counted once"
    assert b["per_document"]["tokens"] == a["per_document"]["tokens"]
    assert b["per_document"]["nll"] == pytest.approx(a["per_document"]["nll"], rel=1e-5)
    assert b["value"] == pytest.approx(a["value"], rel=1e-5)

    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "two" / "base").iterdir()}
    again = _launch([*args, "--out", str(tmp_path / "two")])
    assert again.returncode == 0, again.stderr[-4000:]
    kept = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "two" / "base").iterdir() if p.name != "results.json"}
    assert kept == {k: v for k, v in written.items() if k != "results.json"}, "a second launch reuses every task"
