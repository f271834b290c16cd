"""Task examples against the simulator's truth, the prompt shapes, and multiple-choice rows."""

from __future__ import annotations

import random
import re

import pytest

from e2wm.experience.collect import read_episodes, read_scene
from e2wm.experience.episode import Episode
from e2wm.tasks.common import TaskConfig, join_words, scene_split, with_demos
from e2wm.tasks.corpus import TRAINING_CONFIGS, build_examples, demonstration_pool
from e2wm.tasks.stories import name_of
from e2wm.world import World, parse_script_line

WORDS = {"no": 0, "one": 1}


def replay(collection, episode_id, node=None):
    """Replay an episode: the start and end worlds, and the room of ``node`` after every step."""
    row = next(r for r in read_episodes(collection).to_pylist() if r["episode_id"] == episode_id)
    episode = Episode.from_row(row)
    world = World.from_dict(read_scene(collection, episode.scene_id))
    start = world.copy()
    rooms = [world.room_of(node)] if node is not None else []
    for action in episode.actions:
        line = parse_script_line(action)
        assert world.step(line, world.character(line.character)).success
        if node is not None:
            rooms.append(world.room_of(node))
    return start, world, rooms


@pytest.fixture(scope="module")
def examples(collection):
    return build_examples(collection, TaskConfig(), progress=False)[0]


def all_rows(examples, name):
    return [e for split in examples.get(name, {}).values() for e in split]


def test_counting_answers_are_the_simulators_count(collection, examples):
    rows = all_rows(examples, "counting")
    assert len(rows) >= 30
    for example in rows:
        _, end, _ = replay(collection, example.episode_id)
        surface = example.extra["surface"]
        items = [n for n in end.sources(surface, "ON") if "GRABBABLE" in end.nodes[n].properties]
        match = re.match(r" There (?:are (\d+) items|is (no|one) item) on the (.+?)\.", example.completion)
        assert match, example.completion
        count = int(match.group(1)) if match.group(1) else WORDS[match.group(2)]
        assert count == len(items)
        assert match.group(3) == name_of(end, surface)
        for item in items:
            assert name_of(end, item) in example.completion


def test_counting_qa_choices_are_zero_to_four(examples):
    rows = all_rows(examples, "counting_qa")
    assert rows
    for example in rows:
        assert example.choices == ["0", "1", "2", "3", "4"] and example.answer in example.choices
        assert example.completion == f" {example.answer}" and example.question.endswith("\nAnswer:")


def test_path_tracking_answers_are_the_rooms_in_order(collection, examples):
    rows = all_rows(examples, "object_path_tracking")
    assert len(rows) >= 10
    for example in rows:
        node = example.extra["object"]
        start, _, rooms = replay(collection, example.episode_id, node)
        path = [rooms[0]]
        for room in rooms[1:]:
            if room != path[-1]:
                path.append(room)
        names = ", ".join(name_of(start, r) for r in path)
        assert example.completion == " " + names
        assert 2 <= len(path) <= 5
        assert "What is the order of the rooms where the" in example.question


def test_object_location_answers_follow_the_path(examples):
    paths = {e.episode_id: e.completion.strip().split(", ") for e in all_rows(examples, "object_path_tracking")}
    rows = all_rows(examples, "object_location_qa")
    assert rows
    for example in rows:
        direction, room = re.search(r"Where was the .+ (before|after) the (.+)\?", example.question).groups()
        path = paths[example.episode_id]
        index = path.index(room)
        assert example.answer == path[index - 1 if direction == "before" else index + 1]
        assert example.answer in example.choices and len(set(example.choices)) == len(example.choices) >= 4


def test_plan_examples_are_the_plans_and_their_items(collection, examples):
    rows = {r["episode_id"]: Episode.from_row(r) for r in read_episodes(collection).to_pylist()}
    plans = all_rows(examples, "plan_generation")
    assert len(plans) >= 10
    for example in plans:
        episode = rows[example.episode_id]
        assert example.completion == " " + " ".join(episode.sentences)
        for action in episode.actions[:1]:
            target = parse_script_line(action).args[-1].class_name.replace("_", " ")
            assert target in example.question or target in (
                "living room",
                "kitchen",
                "bedroom",
                "bathroom",
                "dining room",
                "home office",
            )
    for example in all_rows(examples, "activity_recognition"):
        assert example.completion.strip().lower() == rows[example.episode_id].activity.lower()
        assert example.weight == 0.7


def test_multiple_choice_rows(examples):
    for name in ("housework_qa", "negation_housework_qa", "activity_inference_qa", "activity_recognition_qa"):
        for example in all_rows(examples, name):
            assert len(example.choices) == 4 and len(set(example.choices)) == 4
            assert example.answer in example.choices and example.completion == " " + example.answer
    for example in all_rows(examples, "negation_housework_qa"):
        assert "A. " in example.question and "D. " in example.question


def test_paper_style_reproduces_the_paper_prompt_shapes(collection):
    examples = build_examples(collection, TaskConfig(style="paper"), progress=False)[0]
    plan = all_rows(examples, "plan_generation")[0]
    assert re.match(r"Q: How to .+\? Given items include .+\.( .+)?\nA:$", plan.question), plan.question
    rec = all_rows(examples, "activity_recognition")[0]
    assert rec.question.startswith("Given a household activity plan as follows:\n") and rec.question.endswith(
        "\nQ: What is the name of the activity?\nA:"
    )
    count = all_rows(examples, "counting")[0]
    assert count.prompt.startswith(
        "Given a sequence of actions in a house, and a question about what items are located"
    )
    assert re.search(r"How many items are there on the .+\?\nA:$", count.question)
    path = all_rows(examples, "object_path_tracking")[0]
    assert (
        path.question.endswith("appeared?\nAnswer:")
        and "\nQuestion: What is the order of the rooms where the " in path.question
    )


def test_stories_vary_their_phrasing(examples):
    stories = " ".join(e.story for e in all_rows(examples, "counting"))
    assert len({verb for verb in ("picked up", "grabbed", "took", "got") if f" {verb} the " in stories}) >= 3
    assert len({verb for verb in ("went to", "walked into", "moved to") if f" {verb} the " in stories}) >= 2


def test_demonstrations_come_from_the_same_split_and_count_as_configured(examples):
    for name, splits in examples.items():
        for rows in splits.values():
            # training configs: the same split; evaluation configs: their training pool, never validation or test
            pool = rows if name in TRAINING_CONFIGS else examples[demonstration_pool(name)]["train"]
            ids = {e.example_id for e in pool}
            for example in rows:
                assert all(demo.example_id in ids and demo is not example for demo in example.demos)
                assert example.prompt.endswith(example.question)
    assert max(len(e.demos) for e in all_rows(examples, "counting_qa")) == 4
    counting = all_rows(examples, "counting")
    assert max(len(e.demos) for e in counting) == 4
    assert all(len(e.demos) == 0 for e in all_rows(examples, "object_path_tracking"))


def test_splits_are_by_scene(examples):
    config = TaskConfig()
    for name in ("counting", "object_path_tracking"):
        for split, rows in examples[name].items():
            assert all(scene_split(e.scene_id, config) == split for e in rows)


def test_helpers():
    assert (
        join_words(["a"]) == "a"
        and join_words(["a", "b"]) == "a and b"
        and join_words(["a", "b", "c"]) == "a, b, and c"
    )
    with pytest.raises(ValueError, match="style"):
        TaskConfig(style="fancy")
    assert with_demos([], 2, random.Random(0)) == []
