"""Every command as a careless user runs it (issue 14): bad files, bad flags, folders in use, full disks, Ctrl-C.

Each case asserts the exit status (2 for bad input; 1 only where the docs define it), one line on stderr that
names the input, no traceback, and that nothing was lost: inputs unchanged, outputs complete or absent, nothing
deleted that e2wm did not write. The world and scenes commands' cases are in tests/world/test_bad_input.py, the
adapter push's in tests/training/test_push_leaks.py.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from e2wm.cli import main
from e2wm.locking import LOCK_NAME, output_lock
from tests.tiny import sample_documents, save_pretrained, tiny_llama, tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]


def bad_input(capsys, *argv, words=(), code=2, prefix="e2wm: error: ") -> str:
    """Run ``e2wm argv`` in this process; assert exit ``code`` and one error line holding ``words``; return it."""
    result = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [text for text in err.splitlines() if text.strip().startswith("e2wm")]
    assert result == code, (result, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith(prefix), err[-2000:]
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the (empty, hidden) lock file a run may leave: it is never removed."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != LOCK_NAME)
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def siblings(folder: Path) -> list[str]:
    """What e2wm left beside ``folder`` (staging folders of a failed or killed run)."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}"))


# ------------------------------------------------------------------------------------------------------- build
@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    """A small collection (6 plans, 6 explorations): a corpus builds from it in about a second."""
    from e2wm.experience.collect import CollectConfig, collect
    from e2wm.experience.exploration import ExplorationConfig

    folder = tmp_path_factory.mktemp("bad-input") / "episodes"
    config = CollectConfig("generated", plans=6, explorations=6, seed=3, chunk_size=3,
                           exploration=ExplorationConfig(steps=10))  # fmt: skip
    collect(config, folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def built(episodes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "corpus"
    assert main(["build", "--episodes", str(episodes), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture
def corpus(built, tmp_path) -> Path:
    """A copy of a built corpus that a test may try to replace."""
    return Path(shutil.copytree(built, tmp_path / "corpus"))


@pytest.mark.parametrize(
    ("where", "words"),
    [
        (lambda ep: ep, "is the episodes folder"),
        (lambda ep: ep / "corpus", "is inside the episodes folder"),
        (lambda ep: ep.parent, "contains the episodes folder"),
    ],
    ids=["same", "inside", "contains"],
)
def test_build_never_writes_over_or_into_its_episodes(episodes, capsys, where, words):
    before = snapshot(episodes)
    bad_input(capsys, "build", "--episodes", episodes, "--out", where(episodes), "--quiet", words=[words])
    assert snapshot(episodes) == before


def test_build_refuses_a_folder_it_did_not_write(episodes, corpus, tmp_path, capsys):
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    bad_input(capsys, "build", "--episodes", episodes, "--out", mine, "--quiet",
              words=[mine, "notes.txt", "is not an e2wm corpus"])  # fmt: skip
    assert snapshot(mine) == {"notes.txt": b"precious"}

    (corpus / "my-analysis.ipynb").write_text("{}")  # a user's file inside an e2wm corpus
    before = snapshot(corpus)
    bad_input(capsys, "build", "--episodes", episodes, "--out", corpus, "--quiet",
              words=[corpus, "my-analysis.ipynb", "move them out"])  # fmt: skip
    assert snapshot(corpus) == before

    bad_input(capsys, "build", "--episodes", episodes, "--out", mine / "notes.txt", "--quiet", words=["is a file"])
    link = tmp_path / "link"
    link.symlink_to(mine)
    bad_input(capsys, "build", "--episodes", episodes, "--out", link, "--quiet", words=[link, "symbolic link"])
    assert snapshot(mine) == {"notes.txt": b"precious"}


def test_build_refuses_a_corpus_as_episodes(built, tmp_path, capsys):
    bad_input(capsys, "build", "--episodes", built, "--out", tmp_path / "c2", "--quiet",
              words=[built, "is an e2wm corpus", "not a collection"])  # fmt: skip
    assert not (tmp_path / "c2").exists()


def test_a_rebuild_swaps_the_corpus_and_clears_what_a_killed_build_left(episodes, corpus, capsys):
    stale = corpus.with_name(f".{corpus.name}.e2wm-new-dead0001")  # a build killed with -9 left it
    stale.mkdir()
    (stale / "README.md").write_text("half")
    previous = os.umask(0o022)
    try:
        assert main(["build", "--episodes", str(episodes), "--out", str(corpus), "--quiet"]) == 0
    finally:
        os.umask(previous)
    assert (corpus / "e2wm_corpus.json").is_file() and not (corpus / ".e2wm.lock").exists()
    assert siblings(corpus) == [], "the stale staging folder is gone, and no new one is left"
    assert corpus.stat().st_mode & 0o777 == 0o755, "a corpus others can read, as mkdir makes it"


@pytest.mark.parametrize("new_out", [False, True], ids=["over-a-corpus", "new-folder"])
def test_build_on_a_full_disk_keeps_the_old_corpus(episodes, corpus, tmp_path, capsys, monkeypatch, new_out):
    import pyarrow.parquet as pq

    real, written = pq.write_table, []

    def full(table, where, **kwargs):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")
        written.append(where)
        return real(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", full)
    out = tmp_path / "fresh" if new_out else corpus
    before = snapshot(corpus)
    bad_input(capsys, "build", "--episodes", episodes, "--out", out, "--quiet",
              words=[f"cannot write {out}: the disk is full: free some space"])  # fmt: skip
    assert snapshot(corpus) == before
    assert not out.exists() if new_out else snapshot(out) == before
    assert siblings(out) == [], "no staging folder left"


def test_ctrl_c_during_a_build_keeps_the_old_corpus_and_a_rerun_finishes(episodes, corpus, capsys, monkeypatch):
    import pyarrow.parquet as pq

    real = pq.write_table
    before = snapshot(corpus)

    def interrupted(table, where, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", interrupted)
    assert main(["build", "--episodes", str(episodes), "--out", str(corpus), "--quiet"]) == 130
    assert capsys.readouterr().err.strip() == "e2wm: error: interrupted"
    assert snapshot(corpus) == before and siblings(corpus) == []
    monkeypatch.setattr(pq, "write_table", real)
    assert main(["build", "--episodes", str(episodes), "--out", str(corpus), "--quiet"]) == 0
    assert snapshot(corpus).keys() == before.keys()


def test_a_second_build_into_a_folder_in_use_stops_at_once(episodes, corpus, capsys):
    before = snapshot(corpus)
    with output_lock(corpus, "e2wm build (the first run)"):
        bad_input(capsys, "build", "--episodes", episodes, "--out", corpus, "--quiet",
                  words=[corpus, "is in use by another run", "e2wm build (the first run)"])  # fmt: skip
    assert snapshot(corpus) == before


def test_build_from_a_collection_missing_a_scene_names_the_file(episodes, tmp_path, capsys):
    damaged = Path(shutil.copytree(episodes, tmp_path / "damaged"))
    scene = sorted((damaged / "scenes").iterdir())[0]
    scene.unlink()
    bad_input(capsys, "build", "--episodes", damaged, "--out", tmp_path / "c", "--quiet",
              words=[scene, "is missing", "collect it again"])  # fmt: skip
    assert not (tmp_path / "c").exists()


def test_build_from_a_damaged_or_missing_collection(episodes, tmp_path, capsys):
    damaged = Path(shutil.copytree(episodes, tmp_path / "damaged"))
    shard = sorted((damaged / "episodes").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    bad_input(capsys, "build", "--episodes", damaged, "--out", tmp_path / "c", "--quiet", words=[shard])
    bad_input(capsys, "build", "--episodes", tmp_path / "none", "--out", tmp_path / "c", "--quiet",
              words=[tmp_path / "none", "holds no episodes"])  # fmt: skip
    bad_input(capsys, "build", "--episodes", episodes, episodes, "--out", tmp_path / "c", "--quiet",
              words=["pass each collection once"])  # fmt: skip
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------------------------------------------ fisher
FISHER = ["fisher", "--target-modules", "q_proj", "--num-docs", "2", "--max-length", "16", "--quiet"]


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "docs.txt"
    path.write_text("\n".join(sample_documents(8, seed=2)) + "\n", encoding="utf-8")
    return path


def test_a_second_fisher_into_the_same_out_stops_at_once(docs, tmp_path, capsys):
    out = tmp_path / "fisher"
    with output_lock(out.with_name("fisher.partial"), "e2wm fisher (the first run)"):
        bad_input(capsys, *FISHER, "--model", "e2wm:tiny", "--text", docs, "--out", out,
                  words=["fisher.partial", "is in use by another run", "the first run"])  # fmt: skip
    assert not out.exists()


def test_a_failed_fisher_leaves_no_partial_folder(docs, tmp_path, capsys):
    out = tmp_path / "fisher"
    bad_input(capsys, *FISHER, "--model", tmp_path / "no-model", "--text", docs, "--out", out,
              words=["no model folder at", "no-model"])  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "neither fisher/ nor fisher.partial/"
    bad_input(capsys, *FISHER, "--model", "e2wm:tiny", "--text", docs, "--out", docs / "fisher",
              words=[docs, "a part of the path is a file"])  # fmt: skip
    bad_input(capsys, *FISHER, "--batch-size", "0", "--model", "e2wm:tiny", "--text", docs, "--out", out,
              words=["--batch-size must be at least 1"])  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_fisher_overwrite_replaces_only_a_fisher_folder(docs, tmp_path, capsys):
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    bad_input(capsys, *FISHER, "--model", "e2wm:tiny", "--text", docs, "--out", mine, "--overwrite",
              words=[mine, "holds files that are not a Fisher's (notes.txt)"])  # fmt: skip
    bad_input(capsys, *FISHER, "--model", "e2wm:tiny", "--text", docs, "--out", mine / "notes.txt", "--overwrite",
              words=[mine / "notes.txt", "is a file"])  # fmt: skip
    assert snapshot(mine) == {"notes.txt": b"precious"}


@pytest.mark.parametrize("flag", ["--num-docs", "--max-length", "--batch-size", "--seed"])
def test_fisher_numbers_beyond_64_bits(docs, tmp_path, capsys, flag):
    values = {"--num-docs": "2", "--max-length": "16", flag: str(10**23)}
    bad_input(capsys, "fisher", "--target-modules", "q_proj", "--model", "e2wm:tiny", "--text", docs,
              "--out", tmp_path / "f", *[x for pair in values.items() for x in pair], "--quiet",
              words=[flag, "64 bits"])  # fmt: skip


def test_fisher_on_a_full_disk_leaves_neither_a_fisher_nor_a_staging_folder(docs, tmp_path, capsys, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    real = safetensors.torch.save_file

    def full(tensors, filename, metadata=None):
        if Path(filename).name == "fisher.safetensors":
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    out = tmp_path / "fisher"
    bad_input(capsys, *FISHER, "--model", "e2wm:tiny", "--text", docs, "--out", out,
              words=[f"cannot write {out}: the disk is full"])  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no Fisher, no staging folder, no fisher.partial/"


# ---------------------------------------------------------------------------------------------------- pipeline
def test_pipeline_on_a_full_disk_or_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    import e2wm.utils

    recipe = REPO / "recipes" / "smoke.yaml"
    bad_input(capsys, "pipeline", "--recipe", recipe, "--out", recipe, "--quiet",
              words=[f"--out {recipe} is a file: give a folder for the run"])  # fmt: skip

    def full(directory, prefix, suffix):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(e2wm.utils, "_open_new_file", full)
    run = tmp_path / "run"
    bad_input(capsys, "pipeline", "--recipe", recipe, "--out", run, "--quiet",
              words=[f"cannot write {run / 'pipeline.json'}: the disk is full"])  # fmt: skip
    with output_lock(run, "after"):  # the failed run let go of its folder
        pass


def test_pipeline_never_runs_over_a_users_folder(tmp_path, capsys):
    """A run redoing a stage removes that stage's folder: a user's corpus/ or report/ would go."""
    mine = tmp_path / "project"
    (mine / "corpus").mkdir(parents=True)
    (mine / "corpus" / "notes.txt").write_text("precious")
    bad_input(capsys, "pipeline", "--recipe", REPO / "recipes" / "smoke.yaml", "--out", mine, "--quiet",
              words=[mine, "holds files (corpus)", "not a run folder"])  # fmt: skip
    assert snapshot(mine) == {"corpus/notes.txt": b"precious"}


def test_build_and_fisher_check_the_hub_repo_id_before_working(episodes, docs, tmp_path, capsys):
    bad_input(capsys, "build", "--episodes", episodes, "--out", tmp_path / "c", "--quiet", "--push-to-hub", "a..b",
              words=["--push-to-hub", "'a..b' is not a valid Hub repo id"])  # fmt: skip
    bad_input(capsys, *FISHER, "--model", "e2wm:tiny", "--text", docs, "--out", tmp_path / "f", "--push-to-hub",
              "a/b/c", words=["--push-to-hub", "'a/b/c'"])  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing built"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"\x00\x01\x02\xff binary", ["not a text file"]),
        (b"model: e2wm:tiny\ncollect: [\n", ["not valid YAML"]),
        (b"- a\n- b\n", ["a recipe is a YAML mapping"]),
    ],
    ids=["binary", "syntax", "list"],
)
def test_pipeline_recipes_that_are_not_recipes(tmp_path, capsys, text, words):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(text)
    bad_input(capsys, "pipeline", "--recipe", recipe, "--out", tmp_path / "run", "--quiet", words=[recipe, *words])
    assert not (tmp_path / "run").exists()


# -------------------------------------------------------------------------------------------------------- push
@pytest.mark.parametrize("repo_id", ["bad..id", "a/b/c", "", "x" * 200, "space in/name"])
def test_push_refuses_an_invalid_repo_id_before_anything(built, capsys, repo_id):
    bad_input(capsys, "push", "corpus", built, repo_id, words=[repr(repo_id), "not a valid Hub repo id"])


def test_push_refuses_a_damaged_or_wrong_artifact_and_uploads_nothing(built, tmp_path, capsys, fake_hub):
    from e2wm.ewc.artifact import FISHER_FILE, METADATA_FILE

    damaged = Path(shutil.copytree(built, tmp_path / "corpus"))
    shard = sorted(damaged.glob("*/*.parquet"))[0]
    shard.write_bytes(b"PAR1 not really")
    bad_input(capsys, "push", "corpus", damaged, "me/corpus", words=[shard, "damaged", "nothing was pushed"])

    fisher = tmp_path / "fisher"
    fisher.mkdir()
    (fisher / FISHER_FILE).write_bytes(os.urandom(300))
    (fisher / METADATA_FILE).write_text("{}")
    bad_input(capsys, "push", "fisher", fisher, "me/fisher", words=[fisher / FISHER_FILE, "nothing was pushed"])

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00")
    bad_input(capsys, "push", "adapter", adapter, "me/adapter", words=["adapter_model.safetensors", "damaged"])
    bad_input(capsys, "push", "corpus", adapter, "me/corpus",
              words=["is not a corpus folder", "it looks like an adapter folder", "push it as `adapter`"])  # fmt: skip
    bad_input(capsys, "push", "fisher", tmp_path / "none", "me/fisher", words=["is not a folder"])
    assert fake_hub.repos == {} and fake_hub.log == [], "not even a repo was created"


# -------------------------------------------------------------------------------------------------- models, eval
@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tiny model folder, a copy with damaged weights, and adapters: damaged, and one for a wider model."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("models")
    tok = tiny_tokenizer()
    good = save_pretrained(tiny_llama(tok), tok, root / "tiny")
    damaged = Path(shutil.copytree(good, root / "damaged"))
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    wide = get_peft_model(tiny_llama(tok, hidden=128), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    wide.save_pretrained(root / "wide-adapter")
    broken = Path(shutil.copytree(root / "wide-adapter", root / "damaged-adapter"))
    (broken / "adapter_model.safetensors").write_bytes(b"not safetensors at all")
    return {"good": good, "damaged": damaged, "wide": root / "wide-adapter", "broken": broken}


@pytest.mark.parametrize(
    ("model", "adapter", "words"),
    [
        ("damaged", None, ["damaged", "are damaged or not safetensors", "download or save the model"]),
        ("good", "broken", ["damaged-adapter", "damaged or not safetensors"]),
        ("good", "wide", ["wide-adapter", "made for a model of another shape", "size mismatch"]),
    ],
    ids=["damaged-model", "damaged-adapter", "adapter-of-another-shape"],
)
def test_eval_with_a_damaged_model_or_a_mismatched_adapter(models, docs, tmp_path, capsys, model, adapter, words):
    argv = ["eval", "--model", models[model], "--perplexity-text", docs, "--out", tmp_path / "eval", "--quiet"]
    bad_input(capsys, *argv, *(["--adapter", models[adapter]] if adapter else []), words=words)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--batch-size", "0"], ["batch"]),
        (["--limit", "-1"], ["limit"]),
        (["--perplexity-text", "none.txt"], ["none.txt"]),
        (["--device", "cuda:7"], ["cuda:7"]),
        (["--device", "gpu"], ["'gpu' is not a device name"]),
    ],
)
def test_eval_flags_and_files(models, docs, tmp_path, capsys, flags, words):
    argv = ["eval", "--model", models["good"], "--out", tmp_path / "eval", "--quiet", "--perplexity-text", docs]
    bad_input(capsys, *argv, *flags, words=words)


# ------------------------------------------------------------------------------------------------------- train
TRAIN_PREFIX = "e2wm train: error: "


@pytest.fixture(scope="module")
def train_data(tmp_path_factory) -> Path:
    """A corpus folder with one config (plan_generation, train split) in the layout load_corpus reads."""
    import random

    from datasets import Dataset

    from e2wm.train import _tiny_examples

    folder = tmp_path_factory.mktemp("train-data")
    rows = [r for r in _tiny_examples(random.Random(0), 8) if r["task"] == "plan_generation"]
    (folder / "plan_generation").mkdir()
    Dataset.from_list(rows).to_parquet(str(folder / "plan_generation" / "train-00000-of-00001.parquet"))
    return folder


def recipe(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (os.urandom(64) + b"\xff\xfe", ["not a text file"]),
        ("model_name_or_path: e2wm:tiny\nlora_target_modules: 5\n", ["lora_target_modules must be a list"]),
        ("model_name_or_path: e2wm:tiny\newc_lambda: [1, 2]\n", ["ewc_lambda must be a number"]),
        ("model_name_or_path: e2wm:tiny\n  ewc_lambda: : 3\n", ["not valid YAML"]),
        ("model_name_or_path: e2wm:tiny\newc_lamda: 1\n", ["unknown key 'ewc_lamda'", "did you mean ewc_lambda"]),
        (
            "model_name_or_path: e2wm:tiny\npenalty: l2\nper_device_train_batch_size: 0\n",
            ["per_device_train_batch_size"],
        ),
        ("model_name_or_path: e2wm:tiny\npenalty: l2\nlearning_rate: -1\n", ["learning_rate must be a number ≥ 0"]),
        ("model_name_or_path: e2wm:tiny\npenalty: l2\nnum_train_epochs: 0\n", ["num_train_epochs"]),
        ("model_name_or_path: e2wm:tiny\npenalty: l2\nhub_token: hf_secret\n", ["hub_token is not accepted"]),
        ("- model_name_or_path\n", ["a recipe is a YAML mapping"]),
    ],
    ids=[
        "binary",
        "targets-int",
        "lambda-list",
        "yaml-syntax",
        "misspelt",
        "batch-0",
        "lr-negative",
        "epochs-0",
        "token",
        "list",
    ],
)
def test_train_recipes_with_wrong_types_values_or_syntax(tmp_path, capsys, text, words):
    path = recipe(tmp_path, text)
    message = bad_input(capsys, "train", "--config", path, words=[path, *words], prefix=TRAIN_PREFIX)
    assert "hf_secret" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"], "nothing written"


def test_train_recipe_paths_that_are_not_files(tmp_path, capsys):
    bad_input(capsys, "train", "--config", tmp_path, words=[tmp_path, "cannot read the recipe"], prefix=TRAIN_PREFIX)
    bad_input(capsys, "train", "--config", tmp_path / "none.yaml", words=["none.yaml"], prefix=TRAIN_PREFIX)
    bad_input(capsys, "train", "--config", words=["--config needs a recipe file"], prefix=TRAIN_PREFIX)


def test_train_with_damaged_inputs_or_an_unwritable_output(models, train_data, tmp_path, capsys):
    damaged_fisher = tmp_path / "fisher"
    damaged_fisher.mkdir()
    (damaged_fisher / "fisher.safetensors").write_bytes(os.urandom(200))
    common = (
        f"dataset_name: {train_data}\ndataset_config: plan_generation\nuse_cpu: true\nreport_to: none\n"
        f"max_steps: 1\noutput_dir: {tmp_path / 'adapter'}\n"
    )
    path = recipe(tmp_path, f"model_name_or_path: {models['good']}\nfisher: {damaged_fisher}\n{common}")
    bad_input(capsys, "train", "--config", path, prefix=TRAIN_PREFIX,
              words=[damaged_fisher / "fisher.safetensors", "re-create it with `e2wm fisher`"])  # fmt: skip
    path = recipe(tmp_path, f"model_name_or_path: {models['damaged']}\npenalty: l2\n{common}")
    bad_input(capsys, "train", "--config", path, prefix=TRAIN_PREFIX,
              words=[models["damaged"], "damaged or not safetensors"])  # fmt: skip
    bad_input(capsys, "train", "--config", path, "--output_dir", path, prefix=TRAIN_PREFIX,
              words=[path, "already exists as a file"])  # fmt: skip
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "README.md").write_text("my project")  # the Trainer would write its model card over it
    bad_input(capsys, "train", "--config", path, "--output_dir", mine, prefix=TRAIN_PREFIX,
              words=[mine, "holds files (README.md)", "no training run"])  # fmt: skip
    assert snapshot(mine) == {"README.md": b"my project"}
    assert not (tmp_path / "adapter").exists(), "no output folder from a run that did not start"


def test_train_on_a_disk_that_fills_up_while_saving(models, train_data, tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError

    import e2wm.train
    from e2wm.trainer import EWCLoRATrainer

    def full(*args, **kwargs):  # what safetensors raises when the adapter's weights do not fit
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(EWCLoRATrainer, "save_model", full)
    monkeypatch.setattr(e2wm.train, "_disk_full", lambda folder: True)  # what the failed write left: no space
    out = tmp_path / "adapter"
    path = recipe(tmp_path, f"model_name_or_path: {models['good']}\npenalty: l2\ndataset_name: {train_data}\n"
                            f"dataset_config: plan_generation\nuse_cpu: true\nreport_to: none\nmax_steps: 1\n"
                            f"save_strategy: 'no'\noutput_dir: {out}\n")  # fmt: skip
    bad_input(capsys, "train", "--config", path, prefix=TRAIN_PREFIX,
              words=[f"cannot write {out}: the disk is full", "delete the newest"])  # fmt: skip


# ------------------------------------------------------------------------------------------- what errors say
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, "cannot write out/x.json: the disk is full: free some space or write to another disk"),
        (errno.EROFS, "cannot write out/x.json: the filesystem is read-only: write to another folder"),
        (errno.EACCES, "out/x.json: permission denied: check its permissions, or use a file or folder you can access"),
        (errno.ENOENT, "out/x.json: no such file or folder: check the path"),
        (errno.EISDIR, "out/x.json is a folder, where a file was expected: give a file"),
        (errno.ENOTDIR, "out/x.json: a part of this path is a file, where a folder was expected: check the path"),
    ],
)
def test_every_os_error_becomes_one_line_with_the_path_and_the_fix(code, expected):
    """Unreadable files and folders cannot be made here (tests may run as root): the wording is checked directly."""
    from e2wm.utils import describe_os_error

    assert describe_os_error(OSError(code, os.strerror(code), "out/x.json")) == expected
    assert describe_os_error(OSError(code, os.strerror(code)), "out/x.json") == expected
