"""Tasks from explorations told as stories: counting, object path tracking and their QA formats.

* ``counting`` (training) and ``counting_qa`` (choices 0–4): the story, with what the surfaces it
  mentions held at the start, then "how many items are on the {surface}?" ⇒ "There are 3 items on
  the coffee table. They are the cup, the book, and two plates." (the simulator's count at the end);
* ``object_path_tracking`` (training): a story with several characters ⇒ the rooms where an object
  appeared, in order ("kitchen, bedroom, home office"), read from the episode's replay;
* ``object_location_qa`` (6 rooms to choose from): "Where was the {object} before/after the {room}?".

Objects whose name is shared with another object of the story are never asked about (the question
would be ambiguous).
"""

from __future__ import annotations

import random
from collections import Counter

from e2wm.tasks.common import Example, TaskConfig, join_words
from e2wm.tasks.stories import Story, name_of
from e2wm.world import World

__all__ = ["COUNTING_HEADER", "counting", "object_path", "room_path"]

COUNTING_HEADER = (
    "Given a sequence of actions in a house, and a question about what items are located in a specific place. "
    "Answer the number of items and list the items.\n\n"
)
_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def items_on(world: World, surface: int) -> list[int]:
    """Portable things ON a surface (characters sitting on it are not items)."""
    return sorted(
        n
        for n in world.sources(surface, "ON")
        if "GRABBABLE" in world.nodes[n].properties and world.nodes[n].category != "Characters"
    )


def _listing(world: World, nodes: list[int]) -> str:
    counts = Counter(name_of(world, n) for n in nodes)
    parts = [
        f"the {name}" if k == 1 else f"{_NUMBERS[k] if k < len(_NUMBERS) else k} {name}s"
        for name, k in sorted(counts.items())
    ]
    return join_words(parts)


def count_answer(world: World, surface: int) -> str:
    """The paper's answer shape: "There are 3 items on the table. They are ...", "There is no item ..."."""
    items, where = items_on(world, surface), name_of(world, surface)
    if not items:
        return f"There is no item on the {where}."
    if len(items) == 1:
        return f"There is one item on the {where}. It is {_listing(world, items)}."
    return f"There are {len(items)} items on the {where}. They are {_listing(world, items)}."


def _opening(story: Story, surfaces: list[int], rng: random.Random) -> str:
    """What the mentioned surfaces held at the start."""
    start = story.start
    sentences = []
    for surface in surfaces:
        items, where = items_on(start, surface), name_of(start, surface)
        if not items:
            sentences.append(
                rng.choice((f"At first, the {where} was empty.", f"Nothing was on the {where} at the start."))
            )
        else:
            verb = "was" if len(items) == 1 else "were"
            sentences.append(
                rng.choice(
                    (
                        f"At first, {_listing(start, items)} {verb} on the {where}.",
                        f"On the {where} there {verb} {_listing(start, items)}.",
                    )
                )
            )
    return " ".join(sentences)


_COUNT_QUESTIONS = (
    "How many items are there on the {where}?",
    "How many things are on the {where} now?",
    "Count the items on the {where}: how many are there?",
)


def counting(story: Story, config: TaskConfig, rng: random.Random) -> tuple[Example, Example | None] | None:
    """A counting example and, when the count is 0–4, its multiple-choice twin; None if the story
    mentions no surface."""
    end = story.end
    surfaces = sorted(
        n
        for n in story.mentioned
        if "SURFACES" in end.nodes[n].properties and "GRABBABLE" not in end.nodes[n].properties
    )
    if not surfaces:
        return None
    asked = rng.choice(surfaces)
    shown = sorted({asked, *rng.sample(surfaces, min(2, len(surfaces)))})
    text = f"{_opening(story, shown, rng)} {story.text}"
    where = name_of(end, asked)
    template = _COUNT_QUESTIONS[0] if config.style == "paper" else rng.choice(_COUNT_QUESTIONS)
    episode = story.episode
    train = Example(
        "counting", f"Q: {text} {template.format(where=where)}\nA:", " " + count_answer(end, asked),
        episode.episode_id, episode.scene_id, f"counting-{episode.episode_id}", config.weight("counting"),
        story=text, header=COUNTING_HEADER, extra={"surface": asked},
    )  # fmt: skip
    count = len(items_on(end, asked))
    qa = None
    if count <= 4:
        qa = Example(
            "counting_qa", f"Q: {text} How many items are there on the {where}?\nAnswer:", f" {count}",
            episode.episode_id, episode.scene_id, f"counting_qa-{episode.episode_id}", story=text,
            header=COUNTING_HEADER, choices=[str(k) for k in range(5)], answer=str(count), extra={"surface": asked},
        )  # fmt: skip
    return train, qa


def room_path(story: Story, node: int) -> list[int]:
    """The rooms an object was in, in order (consecutive repeats merged), from the replay."""
    rooms: list[int] = []
    for room in story.rooms.get(node, []):
        if room is not None and (not rooms or rooms[-1] != room):
            rooms.append(room)
    return rooms


def _unambiguous_movers(story: Story) -> list[int]:
    end = story.end
    names = Counter(name_of(end, n) for n in story.mentioned)
    movers = [int(n) for n in story.episode.tracks]
    return sorted(n for n in movers if n in story.mentioned and names[name_of(end, n)] == 1)


def object_path(
    story: Story, config: TaskConfig, rng: random.Random, room_names: list[str]
) -> tuple[Example, Example | None] | None:
    """A path-tracking example (2–5 rooms) and an object-location QA twin; None if no object qualifies."""
    end = story.end
    candidates = [(n, room_path(story, n)) for n in _unambiguous_movers(story)]
    candidates = [(n, path) for n, path in candidates if 2 <= len(path) <= 5]
    if not candidates:
        return None
    node, path = rng.choice(candidates)
    obj = name_of(end, node)
    rooms = [name_of(end, r) for r in path]
    episode = story.episode
    train = Example(
        "object_path_tracking",
        f"{story.text}\nQuestion: What is the order of the rooms where the {obj} appeared?\nAnswer:",
        " " + ", ".join(rooms),
        episode.episode_id, episode.scene_id, f"object_path_tracking-{episode.episode_id}",
        config.weight("object_path_tracking"), story=story.text, extra={"object": node},
    )  # fmt: skip
    qa = None
    unique = [i for i, r in enumerate(rooms) if rooms.count(r) == 1]
    if unique:
        index = rng.choice(unique)
        options = [(i, d) for i, d in ((index - 1, "before"), (index + 1, "after")) if 0 <= i < len(rooms)]
        answer_index, direction = rng.choice(options)
        answer = rooms[answer_index]
        pool = sorted(set(room_names) - {answer})
        choices = [answer, *rng.sample(pool, min(5, len(pool)))]
        rng.shuffle(choices)
        qa = Example(
            "object_location_qa",
            f"{story.text}\nQuestion: Where was the {obj} {direction} the {rooms[index]}?\nAnswer:",
            " " + answer, episode.episode_id, episode.scene_id, f"object_location_qa-{episode.episode_id}",
            story=story.text, choices=choices, answer=answer, extra={"object": node},
        )  # fmt: skip
    return train, qa
