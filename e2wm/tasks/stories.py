"""Exploration episodes told as stories, with varied phrasing, and replayed for the truth.

A :class:`Story` replays an exploration episode in its scene, one step at a time, and writes one or
two sentences per step in the past tense ("Alice went to the kitchen. Alice picked up the plate."):
a walk that changes rooms names the room (so a reader can follow objects between rooms), then the
object walked to; grabbing, putting, opening, switching each have several phrasings, drawn with the
task's random generator. The replay keeps the world at the start and at the end, and the room of
every moving object after each step, so tasks read their answers (what is on the table, which rooms
the plate went through) from the simulator, not from the text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from e2wm.experience.episode import Episode
from e2wm.tasks.common import names_for
from e2wm.world import World, parse_script_line

__all__ = ["Story", "name_of", "tell", "the"]

_PHRASES: dict[str, tuple[str, ...]] = {
    "room": ("{who} went to the {a}.", "{who} walked into the {a}.", "{who} moved to the {a}.", "Then {who} went to the {a}."),
    "walk": ("{who} walked over to the {a}.", "{who} went to the {a}.", "{who} approached the {a}."),
    "Grab": ("{who} picked up the {a}.", "{who} grabbed the {a}.", "{who} took the {a}.", "{who} got the {a}."),
    "PutBack": ("{who} put the {a} on the {b}.", "{who} placed the {a} on the {b}.", "{who} left the {a} on the {b}."),
    "PutIn": ("{who} put the {a} in the {b}.", "{who} placed the {a} inside the {b}.", "{who} put the {a} into the {b}."),
    "Open": ("{who} opened the {a}.",),
    "Close": ("{who} closed the {a}.", "{who} shut the {a}."),
    "SwitchOn": ("{who} turned on the {a}.", "{who} switched on the {a}."),
    "SwitchOff": ("{who} turned off the {a}.", "{who} switched off the {a}."),
    "Drop": ("{who} dropped the {a}.", "{who} put down the {a}."),
}  # fmt: skip


def name_of(world: World, node: int) -> str:
    """How stories name things: ``kitchen_counter`` → ``kitchen counter``, ``food_apple`` → ``apple``,
    ``clothes_shirt`` → ``shirt``."""
    name = world.nodes[node].class_name
    for prefix in ("food_", "clothes_"):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
    return name.replace("_", " ")


def the(world: World, node: int) -> str:
    return f"the {name_of(world, node)}"


@dataclass
class Story:
    """A narrated exploration: its sentences, the world at the start and the end, who is who, and
    the room of every object that moved after each step."""

    episode: Episode
    names: dict[int, str]
    start: World
    end: World
    sentences: list[str] = field(default_factory=list)
    rooms: dict[int, list[int | None]] = field(default_factory=dict)  # node -> room after step t (t=0: start)
    mentioned: set[int] = field(default_factory=set)  # objects and furniture the story names

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def tell(episode: Episode, graph: dict[str, Any], rng: random.Random) -> Story:
    """Replay an exploration episode in its scene and narrate it."""
    world = World.from_dict(graph)
    names = dict(zip(world.characters, names_for(len(world.characters), rng), strict=True))
    movers = sorted(int(n) for n in episode.tracks)
    story = Story(episode, names, world.copy(), world, rooms={n: [world.room_of(n)] for n in movers})
    for action in episode.actions:
        line = parse_script_line(action)
        char = world.character(line.character)
        room_before = world.room_of(char)
        result = world.step(line, char, diff=False)
        if not result.success:  # episodes are verified; a failing step means the scene does not match
            raise ValueError(f"episode {episode.episode_id}: {action} does not replay: {result.reason}")
        who = names[char]
        ids = line.node_ids
        if line.verb in ("Walk", "Run", "WalkTowards"):
            room = world.room_of(char)
            if room != room_before and room is not None:
                story.sentences.append(rng.choice(_PHRASES["room"]).format(who=who, a=name_of(world, room)))
            if ids[0] != room:
                story.sentences.append(rng.choice(_PHRASES["walk"]).format(who=who, a=name_of(world, ids[0])))
                story.mentioned.add(ids[0])
        elif line.verb in _PHRASES:
            names_ = {"a": name_of(world, ids[0]), "b": name_of(world, ids[1]) if len(ids) > 1 else ""}
            story.sentences.append(rng.choice(_PHRASES[line.verb]).format(who=who, **names_))
            story.mentioned.update(ids)
        else:
            raise ValueError(f"episode {episode.episode_id}: no phrasing for [{line.verb}]")
        for node, history in story.rooms.items():
            history.append(world.room_of(node))
    return story
