"""Tasks from planned episodes: plan generation, activity recognition, and the housework QA formats.

* ``plan_generation`` (training; and ``plan_generation_{vanilla,confusing}_{seen,unseen}`` for
  evaluation): activity, items and facts about them ⇒ the plan as sentences;
* ``activity_recognition`` (training) and ``activity_recognition_qa`` (4 choices): plan ⇒ activity;
* ``housework_qa`` (an item related to the activity, 4 choices), ``negation_housework_qa`` (an
  unrelated one, options A–D in the prompt), ``activity_inference_qa`` (a described goal state ⇒ a
  possible activity, 4 choices).

Items are the objects the plan touches; facts say where they start and what state they are in
("The milk is inside the fridge. The fridge is closed."). The confusing variant adds distractor items
from the scene and keeps only half the facts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from e2wm.experience.episode import Episode
from e2wm.experience.goals import Goal
from e2wm.tasks.common import Example, TaskConfig
from e2wm.world import World, parse_script_line

__all__ = ["PlanFacts", "activity_recognition", "plan_facts", "plan_generation", "plan_qa"]


@dataclass
class PlanFacts:
    """What a plan prompt says about an episode's scene."""

    activity: str
    items: list[str]  # item names in order of first use
    facts: list[str]  # sentences about the items' locations and states
    plan: str  # the plan as sentences on one line
    distractors: list[str]  # scene objects the plan does not use


def _name(world: World, node: int) -> str:
    return world.nodes[node].class_name.replace("_", " ")


def plan_facts(episode: Episode, graph: dict, rng: random.Random) -> PlanFacts:
    """Items, facts and distractors for a plan episode, read from its initial scene."""
    world = World.from_dict(graph)
    used: list[int] = []
    for action in episode.actions:
        for node in parse_script_line(action).node_ids:
            if node not in used and node not in world.rooms and world.nodes[node].class_name != "character":
                used.append(node)
    items = list(dict.fromkeys(_name(world, n) for n in used))
    facts = []
    for node in used:
        where = world.location_of(node)
        if where is not None and where[0] in ("ON", "INSIDE"):
            prep = "on" if where[0] == "ON" else "inside"
            facts.append(f"The {_name(world, node)} is {prep} the {_name(world, where[1])}.")
        states = world.nodes[node].states
        props = world.nodes[node].properties
        if "CAN_OPEN" in props and ("OPEN" in states or "CLOSED" in states):
            facts.append(f"The {_name(world, node)} is {'open' if 'OPEN' in states else 'closed'}.")
        if "HAS_SWITCH" in props and ("ON" in states or "OFF" in states):
            facts.append(f"The {_name(world, node)} is {'on' if 'ON' in states else 'off'}.")
    facts = list(dict.fromkeys(facts))
    scene_names = sorted(
        {
            _name(world, n)
            for n, node in world.nodes.items()
            if node.category not in ("Rooms", "Characters", "Walls", "Floor", "Floors", "Ceiling", "Doors")
        }
        - set(items)
    )
    distractors = rng.sample(scene_names, min(3, len(scene_names)))
    return PlanFacts(episode.activity, items, facts, " ".join(episode.sentences), distractors)


def _activity(text: str) -> str:
    """``Watch TV`` → ``watch TV`` (the first letter lowered unless the word is an acronym)."""
    word = text.split(" ", 1)[0]
    return text if word.isupper() and len(word) > 1 else text[:1].lower() + text[1:]


_PLAN_QUESTIONS = (
    "Q: How to {activity}? Given items include {items}. {facts}\nA:",
    "Task: {activity}. Items available: {items}. {facts}\nPlan:",
    "How would you {activity}? You can use {items}. {facts}\nSteps:",
)


def plan_generation(
    task: str, episode: Episode, info: PlanFacts, config: TaskConfig, rng: random.Random, confusing: bool = False
) -> Example:
    items, facts = list(info.items), list(info.facts)
    if confusing:
        items = items + info.distractors
        rng.shuffle(items)
        facts = sorted(rng.sample(facts, len(facts) // 2), key=facts.index) if facts else facts
    template = _PLAN_QUESTIONS[0] if config.style == "paper" else rng.choice(_PLAN_QUESTIONS)
    question = template.format(activity=_activity(info.activity), items=", ".join(items), facts=" ".join(facts))
    question = question.replace(". \n", ".\n").replace("  ", " ")
    return Example(
        task,
        question,
        " " + info.plan,
        episode.episode_id,
        episode.scene_id,
        f"{task}-{episode.episode_id}",
        config.weight(task),
    )


_RECOGNITION_QUESTIONS = (
    "Given a household activity plan as follows:\n{plan}\nQ: What is the name of the activity?\nA:",
    "Here is what someone did at home:\n{plan}\nWhat activity was this?\nAnswer:",
    "Plan:\n{plan}\nWhich household activity does this plan carry out?\nA:",
)


def activity_recognition(
    task: str,
    episode: Episode,
    info: PlanFacts,
    config: TaskConfig,
    rng: random.Random,
    choices: list[str] | None = None,
) -> Example:
    template = _RECOGNITION_QUESTIONS[0] if config.style == "paper" or choices else rng.choice(_RECOGNITION_QUESTIONS)
    answer = _activity(info.activity)
    example = Example(
        task,
        template.format(plan=info.plan),
        " " + answer,
        episode.episode_id,
        episode.scene_id,
        f"{task}-{episode.episode_id}",
        config.weight(task),
    )
    if choices is not None:
        example.choices, example.answer = choices, answer
    return example


def _choices(answer: str, others: list[str], rng: random.Random, count: int = 4) -> list[str] | None:
    pool = sorted(set(others) - {answer})
    if len(pool) < count - 1:
        return None
    options = [answer, *rng.sample(pool, count - 1)]
    rng.shuffle(options)
    return options


def _multiple_choice(task: str, episode: Episode, question: str, answer: str, options: list[str]) -> Example:
    """An evaluation row of one episode: ``answer`` among ``options`` (weight 1)."""
    return Example(
        task, question, " " + answer, episode.episode_id, episode.scene_id, f"{task}-{episode.episode_id}",
        choices=options, answer=answer,
    )  # fmt: skip


def _state_description(goal: Goal, graph: dict) -> str:
    world = World.from_dict(graph)
    sentences = []
    for text in goal.describe(world):
        text = text.replace("character", "someone")
        sentences.append(text[:1].upper() + text[1:] + ".")
    return " ".join(sentences)


def plan_qa(
    episode: Episode,
    info: PlanFacts,
    graph: dict,
    config: TaskConfig,
    rng: random.Random,
    activities: list[str],
    items_by_activity: dict[str, set[str]],
    all_items: list[str],
) -> list[Example]:
    """The multiple-choice evaluation formats built from one planned episode."""
    examples: list[Example] = []
    activity = _activity(info.activity)
    lowered = [_activity(a) for a in activities]
    # activity recognition QA
    options = _choices(activity, lowered, rng)
    if options:
        examples.append(activity_recognition("activity_recognition_qa", episode, info, config, rng, options))
    related = items_by_activity.get(info.activity, set())
    unrelated = [item for item in all_items if item not in related]
    # housework QA: a related item among unrelated ones
    if info.items and len(unrelated) >= 3:
        answer = rng.choice(info.items)
        options = [answer, *rng.sample(unrelated, 3)]
        rng.shuffle(options)
        question = f"To {activity}, a possibly related item could be"
        examples.append(_multiple_choice("housework_qa", episode, question, answer, options))
    # negation housework QA: the unrelated item among related ones (options in the prompt)
    if len(related) >= 3 and unrelated:
        answer = rng.choice(unrelated)
        options = [answer, *rng.sample(sorted(related), 3)]
        rng.shuffle(options)
        listed = "\n".join(f"{letter}. {option}" for letter, option in zip("ABCD", options, strict=True))
        question = f"To {activity}, a unrelated item could be\n{listed}\nAnswer:"
        examples.append(_multiple_choice("negation_housework_qa", episode, question, answer, options))
    # activity inference QA: a described goal state => a possible activity
    if episode.goal:
        goal = Goal.from_dict(episode.goal)
        options = _choices(activity, lowered, rng)
        if options and goal.facts:
            question = (
                f"{_state_description(goal, graph)} What could someone have been doing?\nAnswer: A possible activity is"
            )
            examples.append(_multiple_choice("activity_inference_qa", episode, question, activity, options))
    return examples
