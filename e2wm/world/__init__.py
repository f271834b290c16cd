"""The world model: a VirtualHome-compatible household simulator.

>>> from e2wm.world import World
>>> world = World.from_json("scene.json")
>>> result = world.step("[Walk] <kitchen> (11)")
>>> result.success, result.reason, result.diff
"""

from e2wm.world.graph import RELATIONS, GraphFormatError, Node, parse_graph, read_graph_json
from e2wm.world.script import (
    Program,
    ScriptArg,
    ScriptLine,
    ScriptParseError,
    format_script,
    parse_program,
    parse_script,
    parse_script_line,
    read_script,
)
from e2wm.world.state import Diff, Snapshot, StepResult, World
from e2wm.world.verbs import NO_EFFECT_VERBS, VERBS, Verb

__all__ = [
    "NO_EFFECT_VERBS",
    "RELATIONS",
    "VERBS",
    "Diff",
    "GraphFormatError",
    "Node",
    "Program",
    "ScriptArg",
    "ScriptLine",
    "ScriptParseError",
    "Snapshot",
    "StepResult",
    "Verb",
    "World",
    "format_script",
    "parse_graph",
    "parse_program",
    "parse_script",
    "parse_script_line",
    "read_graph_json",
    "read_script",
]
