"""The corpus: configs that load_dataset reads, splits without leaks, a card, and a Hub round trip."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from datasets import get_dataset_config_names, load_dataset

from e2wm.cli import main
from e2wm.tasks.common import TaskConfig
from e2wm.tasks.corpus import (
    EVALUATION_CONFIGS,
    TRAINING_CONFIGS,
    LeakError,
    build_corpus,
    build_examples,
    check_leaks,
    load_corpus,
)


def test_every_config_loads_with_load_dataset(corpus):
    folder, summary = corpus
    names = get_dataset_config_names(str(folder))
    assert set(TRAINING_CONFIGS) <= set(names) and "episodes" in names
    assert {"counting_qa", "object_location_qa", "plan_generation_vanilla_unseen", "housework_qa"} <= set(names)
    assert set(names) <= {*TRAINING_CONFIGS, *EVALUATION_CONFIGS, "episodes", "scenes"}
    for name in names:
        data = load_dataset(str(folder), name)
        assert {split: len(rows) for split, rows in data.items()} == summary.sizes[name]
        if name in ("episodes", "scenes"):
            continue
        for split in data.values():
            assert all(row["prompt"].strip() and row["completion"].strip() for row in split)
            assert all(row["completion"].startswith(" ") for row in split)


def test_train_and_test_share_no_prompt_and_no_example(corpus):
    folder, _ = corpus
    for name in TRAINING_CONFIGS:
        data = load_dataset(str(folder), name)
        train_prompts = set(data["train"]["prompt"])
        train_pairs = set(zip(data["train"]["prompt"], data["train"]["completion"], strict=True))
        train_questions = set(data["train"]["question"])
        for split in ("validation", "test"):
            if split in data:
                assert not train_prompts & set(data[split]["prompt"])
                assert not train_pairs & set(zip(data[split]["prompt"], data[split]["completion"], strict=True))
                assert not train_questions & set(data[split]["question"])


def test_unseen_activities_never_reach_training(corpus, collection):
    folder, summary = corpus
    assert summary.unseen_activities
    for name in ("plan_generation", "activity_recognition"):
        for split, rows in load_dataset(str(folder), name).items():
            for row in rows:
                assert not any(
                    f"{a[:1].lower()}{a[1:]}" in row["question"] + row["completion"] for a in summary.unseen_activities
                ), split
    unseen = load_dataset(str(folder), "plan_generation_vanilla_unseen")["test"]
    assert len(unseen) > 0


def test_a_planted_leak_fails_the_build(collection, tmp_path):
    examples, _ = build_examples(collection, TaskConfig(), progress=False)
    assert check_leaks(examples) == []
    train, test = examples["counting"]["train"], examples["counting"]["test"]
    test[0].question = train[0].question
    assert any("its question is training text" in p for p in check_leaks(examples))
    test[0].question, test[1].demos = test[1].question + " x", [train[1]]
    assert any("is from another split" in p for p in check_leaks(examples))

    import e2wm.tasks.corpus as corpus_module

    def leaky(*args, **kwargs):
        return examples, corpus_module.CorpusSummary()

    original = corpus_module.build_examples
    corpus_module.build_examples = leaky
    try:
        with pytest.raises(LeakError, match="leak into training; nothing was written"):
            build_corpus(collection, tmp_path / "corpus", progress=False)
    finally:
        corpus_module.build_examples = original
    assert not (tmp_path / "corpus").exists() and not list(tmp_path.iterdir())


def test_a_corpus_rebuilt_elsewhere_under_the_same_name_loads_its_own_rows(corpus, collection, tmp_path):
    """datasets caches a local folder's configs by folder name and card, not by files: a second corpus
    named like the first loaded the first one's rows (the quickstart trained on a stale corpus)."""
    import shutil

    first, first_summary = corpus
    smaller = tmp_path / "collection"
    shutil.copytree(collection, smaller)
    chunks = sorted((smaller / "episodes").glob("*.parquet"))
    for chunk in chunks[: len(chunks) // 2]:
        chunk.unlink()
    second = tmp_path / first.name  # the same folder name, as two pipeline runs' `corpus` folders
    second_summary = build_corpus(smaller, second, progress=False)
    assert second_summary.sizes["counting"]["train"] < first_summary.sizes["counting"]["train"]
    for folder, summary in ((first, first_summary), (second, second_summary), (first, first_summary)):
        assert len(load_corpus(folder, "counting", split="train")) == summary.sizes["counting"]["train"]
        assert {k: len(v) for k, v in load_corpus(folder, "counting").items()} == summary.sizes["counting"]
    with pytest.raises(ValueError, match="has no 'train' split"):
        load_corpus(first, "plan_generation_vanilla_unseen", split="train")


def test_the_card_describes_the_corpus(corpus):
    folder, summary = corpus
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "configs:\n- config_name: plan_generation\n  default: true" in card
    assert "leak" in card and "arXiv 2305.10626" in card and "license: mit" in card
    assert f"| counting | {summary.sizes['counting'].get('train', 0)} |" in card
    assert "scenes `generated`, seed 5: 40 plans" in card


def test_push_to_the_hub_and_load_it_back(corpus, fake_hub):
    folder, _ = corpus
    from e2wm.hub import push_folder

    push_folder(folder, "e2wm/experiences", repo_type="dataset", delete_patterns=["*.parquet", "README.md", "*.json"])
    local = load_dataset(str(folder), "counting")
    remote = load_dataset("e2wm/experiences", "counting")
    for split in local:
        assert remote[split].to_list() == local[split].to_list()
    files = fake_hub.files("e2wm/experiences", repo_type="dataset")
    assert "README.md" in files and "counting/train-00000-of-00001.parquet" in files
    # Re-pushing a corpus without a config removes the stale shards in place.
    stale = folder.parent / "smaller"
    import shutil

    shutil.copytree(folder, stale)
    shutil.rmtree(stale / "object_location_qa")
    push_folder(stale, "e2wm/experiences", repo_type="dataset", delete_patterns=["*.parquet", "README.md", "*.json"])
    assert not any(p.startswith("object_location_qa/") for p in fake_hub.files("e2wm/experiences", repo_type="dataset"))
    assert len(fake_hub.commits("e2wm/experiences", repo_type="dataset")) >= 2


def test_build_command(collection, tmp_path, capsys):
    code = main(["build", "--episodes", str(collection), "--out", str(tmp_path / "c"), "--quiet", "--style", "paper"])
    out = capsys.readouterr().out
    assert code == 0 and "leak check passed" in out and "counting" in out
    assert json.loads((tmp_path / "c" / "e2wm_corpus.json").read_text())["task_config"]["style"] == "paper"
    (tmp_path / "empty").mkdir()
    code = main(["build", "--episodes", str(tmp_path / "empty"), "--out", str(tmp_path / "d"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "holds no episodes" in err and not (tmp_path / "d").exists()


def test_push_command(corpus, fake_hub, tmp_path, capsys):
    folder, _ = corpus
    assert main(["push", "corpus", str(folder), "e2wm/experiences-cli"]) == 0
    assert "counting/train-00000-of-00001.parquet" in fake_hub.files("e2wm/experiences-cli", repo_type="dataset")
    assert main(["push", "fisher", str(folder), "e2wm/not-a-fisher"]) == 2
    err = capsys.readouterr().err
    assert "is not a Fisher folder written by `e2wm fisher` (no fisher.safetensors, fisher.json)" in err
    assert "it looks like a corpus folder, so push it as `corpus`" in err
    assert main(["push", "corpus", str(folder), "not a repo id"]) == 2
    assert "'not a repo id' is not a valid Hub repo id" in capsys.readouterr().err
    assert ("model", "e2wm/not-a-fisher") not in fake_hub.repos  # refused before any request


# ---------------------------------------------------------------------- held-out RobotHow programs
HELD = ["27_2", "11_1", "394_2"]  # three of EAI's programs
KEPT = ["2_1", "4_1", "5_2"]  # RobotHow ids EAI does not use


@pytest.fixture(scope="module")
def robothow_collection(collection, tmp_path_factory):
    """The test collection with every episode relabelled as coming from one of six RobotHow programs
    (episodes know their program by ``scene_source`` and ``scene_name``, as RobotHow collections write them)."""
    import shutil

    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("robothow") / "collection"
    shutil.copytree(collection, folder)
    names = HELD + KEPT
    for index, path in enumerate(sorted((folder / "episodes").glob("*.parquet"))):
        table = pq.read_table(path)
        labels = [f"file{names[(index + row) % len(names)]}" for row in range(table.num_rows)]
        table = table.set_column(table.schema.get_field_index("scene_source"), "scene_source",
                                 pa.array(["robothow"] * table.num_rows))  # fmt: skip
        table = table.set_column(table.schema.get_field_index("scene_name"), "scene_name", pa.array(labels))
        pq.write_table(table, path)
    return folder


def test_held_out_programs_never_reach_training(robothow_collection, tmp_path):
    config = TaskConfig(holdout_programs="eai")
    out = tmp_path / "corpus"
    summary = build_corpus(robothow_collection, out, config, progress=False)
    assert set(summary.held_out.values()) == {f"file{p}" for p in HELD}
    for name in TRAINING_CONFIGS:
        for split, rows in load_corpus(out, name).items():
            for row in rows:
                assert row["episode_id"] not in summary.held_out, (name, split)
    examples, _ = build_examples(robothow_collection, config, progress=False)
    for name in TRAINING_CONFIGS:
        for rows in examples.get(name, {}).values():
            assert not any(d.episode_id in summary.held_out for e in rows for d in (e, *e.demos))
    # held-out episodes are evaluation material: the test split only
    present = [name for name in EVALUATION_CONFIGS if (out / name).is_dir()]
    test_rows = [r for name in present for r in load_corpus(out, name).get("test", [])]
    assert any(r["episode_id"] in summary.held_out for r in test_rows)
    episodes = load_corpus(out, "episodes")
    assert all(r["episode_id"] not in summary.held_out for s in episodes if s != "test" for r in episodes[s])
    record = json.loads((out / "e2wm_corpus.json").read_text())
    assert record["holdout"]["preset"] == "eai" and len(record["holdout"]["programs"]) == 342
    assert record["holdout"]["episodes"] == len(summary.held_out) and record["holdout"]["programs_found"] == 3
    assert record["task_config"]["holdout_programs"] == ["eai"]
    assert set(record["training_programs"]) <= {f"file{p}" for p in KEPT} and record["training_programs"]
    trained = {r["episode_id"] for r in load_corpus(out, "plan_generation", split="train")}
    plans = {r["episode_id"]: r["activity"] for s in episodes.values() for r in s}
    assert record["training_activities"] == sorted({plans[e] for e in trained})
    assert "RobotHow programs held out by id (preset `eai`" in (out / "README.md").read_text()


def test_a_planted_held_out_program_fails_the_build(robothow_collection, tmp_path):
    config = TaskConfig(holdout_programs=HELD)
    examples, summary = build_examples(robothow_collection, config, progress=False)
    assert summary.held_out and check_leaks(examples, summary.held_out) == []
    planted = next(e for rows in examples["counting_qa"].values() for e in rows if e.episode_id in summary.held_out)
    examples["counting"]["train"].append(planted)
    problems = check_leaks(examples, summary.held_out)
    assert any(f"comes from held-out RobotHow program {summary.held_out[planted.episode_id]}" in p for p in problems)
    examples["counting"]["train"].pop()
    examples["plan_generation"]["train"][0].demos.append(planted)  # a demonstration is training text too
    assert any("its demonstration" in p for p in check_leaks(examples, summary.held_out))

    import e2wm.tasks.corpus as corpus_module

    original = corpus_module.build_examples
    corpus_module.build_examples = lambda *args, **kwargs: (examples, summary)
    try:
        with pytest.raises(LeakError, match="held-out RobotHow program"):
            build_corpus(robothow_collection, tmp_path / "corpus", config, progress=False)
    finally:
        corpus_module.build_examples = original
    assert not (tmp_path / "corpus").exists()


def test_holdout_settings_are_checked(tmp_path):
    assert TaskConfig(holdout_programs=["27_2", "file11_1"]).held_out_programs() == {"file27_2", "file11_1"}
    assert len(TaskConfig(holdout_programs="eai").held_out_programs()) == 342
    assert len(TaskConfig(holdout_programs=["eai", "2_1"]).held_out_programs()) == 343
    with pytest.raises(ValueError, match="'eia' is neither a RobotHow program id"):
        TaskConfig(holdout_programs="eia")
    with pytest.raises(ValueError, match="'kitchen' is neither a RobotHow program id"):
        TaskConfig(holdout_programs=["kitchen"])
    # a flag of `e2wm build` and a key of a recipe's corpus section, as every TaskConfig field
    import argparse

    from e2wm.arguments import add_dataclass_arguments, from_mapping, from_namespace

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, TaskConfig)
    parsed = from_namespace(TaskConfig, parser.parse_args(["--holdout-programs", "eai,2_1"]))
    assert parsed.holdout_programs == ["eai", "2_1"]
    assert from_mapping(TaskConfig, {"holdout_programs": "eai"}, "recipe: corpus").holdout_programs == ["eai"]
