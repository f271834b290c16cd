"""Script lines as English sentences, the way E2WM writes plans.

``[Walk] <home_office> (319)`` → "Walk to home office.", ``[PutBack] <cup> (5) <table> (6)`` →
"Put cup on table." (underscores become spaces; ids are dropped).
"""

from __future__ import annotations

from collections.abc import Iterable

from e2wm.world import ScriptLine

__all__ = ["SENTENCE_TEMPLATES", "line_to_sentence", "object_name", "plan_to_sentences"]

#: verb -> template over the objects' names ({0}, {1})
SENTENCE_TEMPLATES: dict[str, str] = {
    "Walk": "Walk to {0}",
    "Run": "Run to {0}",
    "WalkTowards": "Walk towards {0}",
    "Find": "Find {0}",
    "TurnTo": "Turn to {0}",
    "LookAt": "Look at {0}",
    "PointAt": "Point at {0}",
    "Grab": "Grab {0}",
    "PutBack": "Put {0} on {1}",
    "PutIn": "Put {0} in {1}",
    "PutObjBack": "Put back {0}",
    "Drop": "Drop {0}",
    "Release": "Release {0}",
    "PutOn": "Put on {0}",
    "PutOff": "Take off {0}",
    "Pour": "Pour {0} into {1}",
    "Open": "Open {0}",
    "Close": "Close {0}",
    "SwitchOn": "Switch on {0}",
    "SwitchOff": "Switch off {0}",
    "PlugIn": "Plug in {0}",
    "PlugOut": "Unplug {0}",
    "Wash": "Wash {0}",
    "Rinse": "Rinse {0}",
    "Scrub": "Scrub {0}",
    "Wipe": "Wipe {0}",
    "Sit": "Sit on {0}",
    "Lie": "Lie on {0}",
    "StandUp": "Stand up",
    "Sleep": "Sleep",
    "WakeUp": "Wake up",
    "Drink": "Drink {0}",
    "Eat": "Eat {0}",
    "Read": "Read {0}",
    "Touch": "Touch {0}",
    "Type": "Type on {0}",
    "Watch": "Watch {0}",
    "Push": "Push {0}",
    "Pull": "Pull {0}",
    "Move": "Move {0}",
    "Squeeze": "Squeeze {0}",
    "Cut": "Cut {0}",
    "Greet": "Greet {0}",
}


def object_name(class_name: str) -> str:
    """``kitchen_counter`` → ``kitchen counter``."""
    return class_name.replace("_", " ")


def line_to_sentence(line: ScriptLine) -> str:
    """One script line as a sentence, with its final period."""
    return SENTENCE_TEMPLATES[line.verb].format(*(object_name(a.class_name) for a in line.args)) + "."


def plan_to_sentences(lines: Iterable[ScriptLine]) -> list[str]:
    """A plan as a list of sentences (join them with spaces for E2WM's one-line form)."""
    return [line_to_sentence(line) for line in lines]
