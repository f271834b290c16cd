"""VirtualHome environment graphs: the JSON format, its validation, and the node record.

A graph is ``{"nodes": [...], "edges": [...]}``. A node is
``{"id", "class_name", "category", "properties": [...], "states": [...]}`` (VirtualHome also writes
``prefab_name`` and ``bounding_box``; e2wm keeps any extra field and writes it back). An edge is
``{"from_id", "relation_type", "to_id"}`` with a relation among :data:`RELATIONS`.

Rooms are the nodes of category ``"Rooms"``. Every other node is in at most one room: its single
``INSIDE`` edge to a room node.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeGuard

__all__ = [
    "RELATIONS",
    "ROOM_CATEGORY",
    "GraphFormatError",
    "Node",
    "parse_graph",
    "read_graph_json",
]

#: Relation types of VirtualHome graphs (``SITTING`` is in VirtualHome's enum, never produced).
RELATIONS = ("ON", "INSIDE", "BETWEEN", "CLOSE", "FACING", "HOLDS_RH", "HOLDS_LH", "SITTING")
ROOM_CATEGORY = "Rooms"
_NODE_FIELDS = ("id", "class_name", "category", "properties", "states")


class GraphFormatError(ValueError):
    """A graph file or dict is not a valid VirtualHome environment graph.

    ``source`` is the file (if any), ``position`` where in it (``"edges[17]"`` or ``"line 3 column 5"``).
    """

    def __init__(self, message: str, *, source: str | None = None, position: str | None = None):
        self.source = source
        self.position = position
        prefix = ": ".join(p for p in (source, position) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class Node:
    """One graph node. ``properties`` never change; ``states`` is an ordered set (a dict)."""

    __slots__ = ("_property_order", "category", "class_name", "extra", "id", "properties", "states")

    def __init__(
        self,
        id: int,
        class_name: str,
        category: str | None = None,
        properties: tuple[str, ...] | list[str] = (),
        states: tuple[str, ...] | list[str] = (),
        extra: dict[str, Any] | None = None,
    ):
        self.id = id
        self.class_name = class_name
        self.category = category
        self._property_order = tuple(properties)
        self.properties = frozenset(self._property_order)
        self.states: dict[str, None] = dict.fromkeys(states)
        self.extra = extra or {}

    @property
    def is_room(self) -> bool:
        return self.category == ROOM_CATEGORY

    @property
    def name(self) -> str:
        """Readable name: ``class_name`` with spaces (``kitchen table``)."""
        return self.class_name.replace("_", " ")

    def __str__(self) -> str:
        return f"{self.class_name} ({self.id})"

    def __repr__(self) -> str:
        return f"Node({self.id}, {self.class_name!r}, states={list(self.states)})"

    def copy(self) -> Node:
        return Node(self.id, self.class_name, self.category, self._property_order, tuple(self.states), dict(self.extra))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "class_name": self.class_name,
            "category": self.category,
            "properties": list(self._property_order),
            "states": list(self.states),
        }
        out.update(self.extra)
        return out


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _string_list(value: Any, what: str, where: str, source: str | None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraphFormatError(f"{what} must be a list of strings, got {value!r}", source=source, position=where)
    return [v.upper() for v in value]


def parse_graph(data: Any, source: str | None = None) -> tuple[list[Node], list[tuple[int, str, int]]]:
    """Validate a graph dict and return its nodes and de-duplicated ``(from, relation, to)`` edges.

    Raises :class:`GraphFormatError` naming the position and what is wrong; never a bare KeyError.
    """
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not isinstance(data.get("edges"), list):
        raise GraphFormatError('a graph is a JSON object with a "nodes" list and an "edges" list', source=source)
    nodes: list[Node] = []
    seen: dict[int, int] = {}
    for index, raw in enumerate(data["nodes"]):
        where = f"nodes[{index}]"
        if not isinstance(raw, dict):
            raise GraphFormatError(f"a node is a JSON object, got {raw!r}", source=source, position=where)
        node_id = raw.get("id")
        if not _is_int(node_id):
            raise GraphFormatError(f'node has no integer "id" (got {node_id!r})', source=source, position=where)
        class_name = raw.get("class_name")
        if not isinstance(class_name, str) or not class_name.strip():
            raise GraphFormatError(f'node {node_id} has no "class_name"', source=source, position=where)
        if node_id in seen:
            raise GraphFormatError(
                f"node id {node_id} is used twice (nodes[{seen[node_id]}] and {where})", source=source, position=where
            )
        seen[node_id] = index
        category = raw.get("category")
        if category is not None and not isinstance(category, str):
            raise GraphFormatError(f"node {node_id}: category must be a string", source=source, position=where)
        properties = _string_list(raw.get("properties", []), f"node {node_id}: properties", where, source)
        states = _string_list(raw.get("states", []), f"node {node_id}: states", where, source)
        extra = {k: v for k, v in raw.items() if k not in _NODE_FIELDS}
        nodes.append(Node(node_id, class_name, category, properties, states, extra))

    edges = _fast_edges(data["edges"], seen)
    if edges is None:  # something is wrong: find the first bad edge and say what it is
        edges = _checked_edges(data["edges"], seen, source)
    by_id = {n.id: n for n in nodes}
    _check_rooms(edges, by_id, seen, source)
    return nodes, list(edges)


_CANONICAL = {**{r: r for r in RELATIONS}, **{r.lower(): r for r in RELATIONS}}


def _fast_edges(raw_edges: list[Any], seen: dict[int, int]) -> dict[tuple[int, str, int], None] | None:
    """All edges at once when every one is well formed (the common case); None otherwise."""
    try:
        triples = [(e["from_id"], _CANONICAL[e["relation_type"]], e["to_id"]) for e in raw_edges]
    except (TypeError, KeyError):
        return None
    for frm, _, to in triples:
        if type(frm) is not int or type(to) is not int or frm not in seen or to not in seen:
            return None
    return dict.fromkeys(triples)


def _checked_edges(raw_edges: list[Any], seen: dict[int, int], source: str | None) -> dict[tuple[int, str, int], None]:
    edges: dict[tuple[int, str, int], None] = {}
    for index, raw in enumerate(raw_edges):
        where = f"edges[{index}]"
        if not isinstance(raw, dict):
            raise GraphFormatError(f"an edge is a JSON object, got {raw!r}", source=source, position=where)
        frm, rel, to = raw.get("from_id"), raw.get("relation_type"), raw.get("to_id")
        if not _is_int(frm) or not _is_int(to):
            raise GraphFormatError(
                f'edge {index} needs integer "from_id" and "to_id" (got {frm!r}, {to!r})', source=source, position=where
            )
        if not isinstance(rel, str) or rel.upper() not in RELATIONS:
            raise GraphFormatError(
                f"edge {index} has relation_type {rel!r}; known relations: {', '.join(RELATIONS)}",
                source=source,
                position=where,
            )
        for end in (frm, to):
            if end not in seen:
                raise GraphFormatError(
                    f"edge {index} refers to node {end}, which does not exist", source=source, position=where
                )
        edges[(frm, rel.upper(), to)] = None
    return edges


def _check_rooms(
    edges: dict[tuple[int, str, int], None], by_id: dict[int, Node], seen: dict[int, int], source: str | None
) -> None:
    rooms_of: dict[int, list[int]] = {}
    for frm, rel, to in edges:
        if rel == "INSIDE" and by_id[to].is_room and not by_id[frm].is_room:
            rooms_of.setdefault(frm, []).append(to)
    for node_id, rooms in rooms_of.items():
        if len(rooms) > 1:
            names = ", ".join(str(by_id[r]) for r in rooms)
            raise GraphFormatError(
                f"node {by_id[node_id]} is INSIDE several rooms ({names}); a node is in exactly one room: "
                "keep one of these INSIDE edges",
                source=source,
                position=f"nodes[{seen[node_id]}]",
            )


def read_graph_json(path: str | Path) -> dict[str, Any]:
    """Read a graph JSON file; also accepts RobotHow's ``{"init_graph": ...}`` files (the initial graph)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a UTF-8 byte order mark (Windows editors) is fine
    except FileNotFoundError:
        if path.is_symlink():
            raise GraphFormatError(
                f"a broken symbolic link (to {os.readlink(path)}, which does not exist): fix or remove the link",
                source=str(path),
            ) from None
        raise GraphFormatError("no such file", source=str(path)) from None
    except OSError as err:
        raise GraphFormatError(f"cannot read the file: {err.strerror}", source=str(path)) from None
    except UnicodeDecodeError:
        raise GraphFormatError("the file is not UTF-8 text", source=str(path)) from None
    if not text.strip():
        raise GraphFormatError("the file is empty (a graph is a JSON object with nodes and edges)", source=str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise GraphFormatError(
            f"invalid JSON: {err.msg}", source=str(path), position=f"line {err.lineno} column {err.colno}"
        ) from None
    except RecursionError:
        raise GraphFormatError(
            "the JSON is nested too deeply to be a graph (a graph is an object of two flat lists)", source=str(path)
        ) from None
    if isinstance(data, dict) and "nodes" not in data and isinstance(data.get("init_graph"), dict):
        data = data["init_graph"]
    return data
