"""The corpus: configs that load_dataset reads, splits without leaks, a card, and a Hub round trip."""

from __future__ import annotations

import json

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
        load_corpus(first, "counting_qa", split="train")


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
    assert "is not a fisher folder (no fisher.safetensors)" in capsys.readouterr().err
