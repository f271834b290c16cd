"""Procedurally generated homes in VirtualHome graph format, deterministic per seed.

A home has a kitchen, a living room, a bedroom and a bathroom, and sometimes a dining room and a home
office; furniture and appliances (surfaces, containers that open, switchable devices), grabbable props
placed on or in furniture, doors between rooms, and one or more characters. Class names, categories
and properties are VirtualHome's (its ``properties_data.json``), so VirtualHome scripts read naturally
against these graphs: ``[PutBack] <plate> (54) <kitchen_counter> (12)``.

Every scene satisfies the world's invariants: each non-room node has exactly one ``INSIDE`` edge to a
room, props are ``ON`` a surface or ``INSIDE`` a container of their own room and ``CLOSE`` to it, a
device that is on is closed.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["CATALOG", "GENERATOR_VERSION", "ROOM_KINDS", "generate_scene", "generate_scenes"]

GENERATOR_VERSION = 1

_FURNITURE = "Furniture"
_APPLIANCE = "Appliances"
_ELECTRONICS = "Electronics"
_PROPS = "Props"
_FOOD = "Food"
_LAMPS = "Lamps"

#: class_name -> (category, VirtualHome properties)
CATALOG: dict[str, tuple[str, tuple[str, ...]]] = {
    # furniture and appliances
    "kitchen_counter": (_FURNITURE, ("SURFACES",)),
    "kitchen_cabinet": (_FURNITURE, ("SURFACES", "CAN_OPEN", "CONTAINERS")),
    "sink": (_FURNITURE, ("RECIPIENT", "CONTAINERS")),
    "faucet": (_FURNITURE, ("HAS_SWITCH",)),
    "fridge": (_APPLIANCE, ("CAN_OPEN", "HAS_SWITCH", "CONTAINERS", "HAS_PLUG")),
    "stove": (_APPLIANCE, ("SURFACES", "CAN_OPEN", "HAS_SWITCH", "CONTAINERS")),
    "microwave": (_APPLIANCE, ("CAN_OPEN", "HAS_SWITCH", "CONTAINERS", "HAS_PLUG")),
    "dishwasher": (_APPLIANCE, ("CAN_OPEN", "HAS_SWITCH", "CONTAINERS")),
    "toaster": (_APPLIANCE, ("HAS_SWITCH", "CONTAINERS", "HAS_PLUG", "MOVABLE")),
    "coffe_maker": (_APPLIANCE, ("RECIPIENT", "CAN_OPEN", "HAS_SWITCH", "CONTAINERS", "HAS_PLUG", "MOVABLE")),
    "table": (_FURNITURE, ("SURFACES", "MOVABLE")),
    "chair": (_FURNITURE, ("SURFACES", "GRABBABLE", "SITTABLE", "MOVABLE")),
    "trashcan": (_FURNITURE, ("CAN_OPEN", "CONTAINERS", "MOVABLE")),
    "cupboard": (_FURNITURE, ("CAN_OPEN", "CONTAINERS")),
    "sofa": (_FURNITURE, ("SURFACES", "SITTABLE", "LIEABLE", "MOVABLE")),
    "coffee_table": (_FURNITURE, ("SURFACES", "MOVABLE")),
    "tvstand": (_FURNITURE, ("SURFACES",)),
    "television": (_ELECTRONICS, ("HAS_SWITCH", "LOOKABLE", "HAS_PLUG")),
    "bookshelf": (_FURNITURE, ("SURFACES", "CONTAINERS")),
    "floor_lamp": (_LAMPS, ("HAS_SWITCH", "MOVABLE")),
    "bed": (_FURNITURE, ("SURFACES", "SITTABLE", "LIEABLE")),
    "nightstand": (_FURNITURE, ("SURFACES", "CAN_OPEN", "CONTAINERS")),
    "dresser": (_FURNITURE, ("CAN_OPEN", "CONTAINERS")),
    "closet": (_FURNITURE, ("CAN_OPEN", "CONTAINERS")),
    "lamp": (_LAMPS, ("HAS_SWITCH", "HAS_PLUG")),
    "desk": (_FURNITURE, ("SURFACES", "MOVABLE")),
    "computer": (_ELECTRONICS, ("HAS_SWITCH", "LOOKABLE")),
    "toilet": (_FURNITURE, ("SITTABLE", "CAN_OPEN", "CONTAINERS")),
    "bathtub": (_FURNITURE, ("SITTABLE", "LIEABLE")),
    "bathroom_counter": (_FURNITURE, ("SURFACES",)),
    "bathroom_cabinet": (_FURNITURE, ("SURFACES", "CAN_OPEN", "CONTAINERS")),
    "towel_rack": (_FURNITURE, ("SURFACES",)),
    "washing_machine": (_APPLIANCE, ("RECIPIENT", "CAN_OPEN", "HAS_SWITCH", "CONTAINERS", "HAS_PLUG")),
    "filing_cabinet": (_FURNITURE, ("SURFACES", "CAN_OPEN", "CONTAINERS")),
    "light": (_ELECTRONICS, ("HAS_SWITCH", "HAS_PLUG")),
    "floor": ("Floor", ("SURFACES",)),
    "door": ("Doors", ("CAN_OPEN",)),
    # props
    "plate": (_PROPS, ("SURFACES", "GRABBABLE", "RECIPIENT", "MOVABLE")),
    "bowl": (_PROPS, ("GRABBABLE", "RECIPIENT", "MOVABLE")),
    "cup": (_PROPS, ("GRABBABLE", "RECIPIENT", "POURABLE", "MOVABLE")),
    "mug": (_PROPS, ("GRABBABLE", "RECIPIENT", "POURABLE", "MOVABLE")),
    "water_glass": (_PROPS, ("GRABBABLE", "RECIPIENT", "POURABLE", "MOVABLE")),
    "wine_glass": (_PROPS, ("GRABBABLE", "RECIPIENT", "POURABLE", "MOVABLE")),
    "fork": (_PROPS, ("GRABBABLE", "MOVABLE")),
    "knife": (_PROPS, ("GRABBABLE", "MOVABLE")),
    "spoon": (_PROPS, ("GRABBABLE", "MOVABLE")),
    "pot": (_PROPS, ("GRABBABLE", "RECIPIENT", "CAN_OPEN", "MOVABLE")),
    "kettle": (_PROPS, ("GRABBABLE", "RECIPIENT", "HAS_SWITCH", "HAS_PLUG", "MOVABLE")),
    "cutting_board": (_PROPS, ("SURFACES", "GRABBABLE", "MOVABLE")),
    "dish_soap": (_PROPS, ("GRABBABLE", "POURABLE", "MOVABLE", "CREAM")),
    "sponge": (_PROPS, ("GRABBABLE", "MOVABLE")),
    "food_apple": (_FOOD, ("GRABBABLE", "EATABLE", "CUTTABLE", "MOVABLE")),
    "food_banana": (_FOOD, ("GRABBABLE", "EATABLE", "CUTTABLE", "MOVABLE")),
    "food_bread": (_FOOD, ("GRABBABLE", "EATABLE", "CUTTABLE", "MOVABLE")),
    "food_cheese": (_FOOD, ("GRABBABLE", "EATABLE", "CUTTABLE", "MOVABLE", "CREAM")),
    "food_egg": (_FOOD, ("GRABBABLE", "EATABLE", "CUTTABLE", "MOVABLE")),
    "food_cereal": (_FOOD, ("GRABBABLE", "EATABLE", "POURABLE", "CAN_OPEN", "MOVABLE")),
    "milk": (_FOOD, ("GRABBABLE", "DRINKABLE", "POURABLE", "CAN_OPEN", "MOVABLE")),
    "juice": (_FOOD, ("GRABBABLE", "DRINKABLE", "POURABLE", "MOVABLE")),
    "wine": (_FOOD, ("GRABBABLE", "DRINKABLE", "POURABLE", "MOVABLE")),
    "remote_control": (_ELECTRONICS, ("GRABBABLE", "HAS_SWITCH", "MOVABLE")),
    "novel": (_PROPS, ("GRABBABLE", "CUTTABLE", "CAN_OPEN", "READABLE", "HAS_PAPER", "MOVABLE")),
    "magazine": (_PROPS, ("GRABBABLE", "CAN_OPEN", "READABLE", "HAS_PAPER", "MOVABLE")),
    "newspaper": (_PROPS, ("GRABBABLE", "CAN_OPEN", "READABLE", "COVER_OBJECT", "HAS_PAPER", "MOVABLE")),
    "pillow": (_PROPS, ("GRABBABLE", "MOVABLE")),
    "candle": (_PROPS, ("GRABBABLE", "HAS_SWITCH", "MOVABLE")),
    "phone": (_ELECTRONICS, ("GRABBABLE", "HAS_SWITCH", "HAS_PLUG", "MOVABLE")),
    "board_game": (_PROPS, ("SURFACES", "GRABBABLE", "LOOKABLE", "MOVABLE")),
    "toy": (_PROPS, ("GRABBABLE", "MOVABLE")),
    "clothes_shirt": (_PROPS, ("GRABBABLE", "HANGABLE", "CLOTHES", "MOVABLE")),
    "clothes_pants": (_PROPS, ("GRABBABLE", "HANGABLE", "CLOTHES", "MOVABLE")),
    "clothes_socks": (_PROPS, ("GRABBABLE", "HANGABLE", "CLOTHES", "MOVABLE")),
    "clothes_jacket": (_PROPS, ("GRABBABLE", "HANGABLE", "CLOTHES", "MOVABLE")),
    "shoes": (_PROPS, ("GRABBABLE", "CLOTHES", "MOVABLE")),
    "alarm_clock": (_ELECTRONICS, ("GRABBABLE", "HAS_SWITCH", "LOOKABLE", "HAS_PLUG", "MOVABLE")),
    "blanket": (_PROPS, ("GRABBABLE", "HANGABLE", "COVER_OBJECT", "MOVABLE")),
    "towel": (_PROPS, ("GRABBABLE", "COVER_OBJECT", "MOVABLE")),
    "toothbrush": (_PROPS, ("GRABBABLE", "RECIPIENT", "MOVABLE")),
    "tooth_paste": (_PROPS, ("GRABBABLE", "POURABLE", "CAN_OPEN", "MOVABLE", "CREAM")),
    "soap": (_PROPS, ("GRABBABLE", "MOVABLE", "CREAM")),
    "shampoo": (_PROPS, ("GRABBABLE", "POURABLE", "CAN_OPEN", "MOVABLE")),
    "comb": (_PROPS, ("GRABBABLE", "MOVABLE")),
    "razor": (_PROPS, ("GRABBABLE", "MOVABLE")),
    "toilet_paper": (_PROPS, ("GRABBABLE", "HANGABLE", "CUTTABLE", "COVER_OBJECT", "HAS_PAPER", "MOVABLE")),
    "laundry_detergent": (_PROPS, ("GRABBABLE", "POURABLE", "MOVABLE")),
    "keyboard": (_ELECTRONICS, ("GRABBABLE", "HAS_PLUG", "MOVABLE")),
    "mouse": (_ELECTRONICS, ("GRABBABLE", "HAS_PLUG", "MOVABLE")),
    "laptop": (_ELECTRONICS, ("GRABBABLE", "HAS_SWITCH", "LOOKABLE", "HAS_PLUG", "MOVABLE")),
    "notebook": (_PROPS, ("GRABBABLE", "CUTTABLE", "CAN_OPEN", "READABLE", "HAS_PAPER", "MOVABLE")),
    "pencil": (_PROPS, ("GRABBABLE", "MOVABLE")),
    "folder": (_PROPS, ("GRABBABLE", "CAN_OPEN", "READABLE", "CONTAINERS", "HAS_PAPER", "MOVABLE")),
    "keys": (_PROPS, ("GRABBABLE", "MOVABLE")),
    "bag": (_PROPS, ("GRABBABLE", "RECIPIENT", "CAN_OPEN", "CONTAINERS", "COVER_OBJECT", "MOVABLE")),
}


@dataclass(frozen=True)
class _Piece:
    """A furniture piece of a room: how likely, how many, and what it stands in or faces."""

    class_name: str
    chance: float = 1.0
    count: tuple[int, int] = (1, 1)
    inside: str | None = None  # a piece it is INSIDE (a sink in a counter)
    on: str | None = None  # a piece it stands ON (a TV on its stand)
    near: tuple[str, ...] = ()  # pieces it is CLOSE to
    facing: str | None = None  # the piece it faces (sitting on it faces that piece)


@dataclass(frozen=True)
class _RoomKind:
    furniture: tuple[_Piece, ...]
    props: tuple[tuple[str, int, int], ...]  # class, min count, max count (before the chance draw)
    prop_chance: float


ROOM_KINDS: dict[str, _RoomKind] = {
    "kitchen": _RoomKind(
        (
            _Piece("kitchen_counter"),
            _Piece("sink", inside="kitchen_counter"),
            _Piece("faucet", on="kitchen_counter", near=("sink",)),
            _Piece("fridge"),
            _Piece("stove", near=("kitchen_counter",)),
            _Piece("kitchen_cabinet", count=(1, 2), near=("kitchen_counter",)),
            _Piece("microwave", 0.7, on="kitchen_counter"),
            _Piece("dishwasher", 0.7, near=("sink",)),
            _Piece("toaster", 0.5, on="kitchen_counter"),
            _Piece("coffe_maker", 0.5, on="kitchen_counter"),
            _Piece("table", 0.7),
            _Piece("chair", 0.7, count=(1, 3), near=("table",), facing="table"),
            _Piece("trashcan", 0.6),
        ),
        (
            ("plate", 1, 4), ("bowl", 0, 3), ("cup", 1, 3), ("mug", 0, 2), ("water_glass", 0, 3),
            ("fork", 0, 3), ("knife", 0, 2), ("spoon", 0, 3), ("pot", 0, 2), ("kettle", 0, 1),
            ("cutting_board", 0, 1), ("dish_soap", 0, 1), ("sponge", 0, 1), ("food_apple", 0, 3),
            ("food_banana", 0, 2), ("food_bread", 0, 1), ("food_cheese", 0, 1), ("food_egg", 0, 3),
            ("food_cereal", 0, 1), ("milk", 0, 1), ("juice", 0, 1),
        ),
        0.8,
    ),
    "living_room": _RoomKind(
        (
            _Piece("sofa", facing="television"),
            _Piece("coffee_table", near=("sofa",)),
            _Piece("tvstand"),
            _Piece("television", on="tvstand"),
            _Piece("bookshelf", 0.8),
            _Piece("floor_lamp", 0.5, near=("sofa",)),
            _Piece("chair", 0.4, count=(1, 2), near=("coffee_table",), facing="television"),
            _Piece("cupboard", 0.4),
        ),
        (
            ("remote_control", 1, 1), ("novel", 0, 3), ("magazine", 0, 2), ("newspaper", 0, 1),
            ("pillow", 0, 3), ("candle", 0, 2), ("phone", 0, 1), ("board_game", 0, 1), ("toy", 0, 2),
            ("cup", 0, 1), ("mug", 0, 1), ("wine_glass", 0, 2), ("wine", 0, 1), ("keys", 0, 1), ("bag", 0, 1),
        ),
        0.7,
    ),
    "bedroom": _RoomKind(
        (
            _Piece("bed"),
            _Piece("nightstand", count=(1, 2), near=("bed",)),
            _Piece("lamp", on="nightstand"),
            _Piece("dresser", 0.8),
            _Piece("closet", 0.7),
            _Piece("desk", 0.4),
            _Piece("chair", 0.4, near=("desk",), facing="desk"),
            _Piece("bookshelf", 0.3),
        ),
        (
            ("pillow", 1, 2), ("clothes_shirt", 0, 3), ("clothes_pants", 0, 2), ("clothes_socks", 0, 2),
            ("clothes_jacket", 0, 1), ("shoes", 0, 1), ("alarm_clock", 0, 1), ("blanket", 0, 1),
            ("novel", 0, 2), ("phone", 0, 1), ("laptop", 0, 1), ("toy", 0, 2), ("water_glass", 0, 1), ("bag", 0, 1),
        ),
        0.7,
    ),
    "bathroom": _RoomKind(
        (
            _Piece("toilet"),
            _Piece("bathroom_counter"),
            _Piece("sink", inside="bathroom_counter"),
            _Piece("faucet", on="bathroom_counter", near=("sink",)),
            _Piece("bathtub", 0.8),
            _Piece("bathroom_cabinet", 0.8, near=("bathroom_counter",)),
            _Piece("towel_rack", 0.8),
            _Piece("washing_machine", 0.5),
        ),
        (
            ("towel", 1, 3), ("toothbrush", 0, 2), ("tooth_paste", 0, 1), ("soap", 0, 2), ("shampoo", 0, 1),
            ("comb", 0, 1), ("razor", 0, 1), ("toilet_paper", 0, 2), ("laundry_detergent", 0, 1),
            ("clothes_socks", 0, 1),
        ),
        0.7,
    ),
    "dining_room": _RoomKind(
        (
            _Piece("table"),
            _Piece("chair", count=(2, 4), near=("table",), facing="table"),
            _Piece("cupboard", 0.8),
            _Piece("bookshelf", 0.3),
        ),
        (
            ("plate", 0, 4), ("bowl", 0, 2), ("cup", 0, 2), ("wine_glass", 0, 3), ("water_glass", 0, 2),
            ("fork", 0, 3), ("knife", 0, 2), ("spoon", 0, 2), ("candle", 0, 2), ("wine", 0, 1),
            ("food_apple", 0, 2), ("food_bread", 0, 1),
        ),
        0.7,
    ),
    "home_office": _RoomKind(
        (
            _Piece("desk"),
            _Piece("chair", near=("desk",), facing="computer"),
            _Piece("computer", on="desk"),
            _Piece("keyboard", on="desk", near=("computer",)),
            _Piece("mouse", on="desk", near=("keyboard",)),
            _Piece("bookshelf", 0.8),
            _Piece("filing_cabinet", 0.7),
            _Piece("sofa", 0.3),
        ),
        (
            ("notebook", 0, 2), ("pencil", 0, 3), ("folder", 0, 2), ("novel", 0, 2), ("laptop", 0, 1),
            ("phone", 0, 1), ("mug", 0, 1), ("magazine", 0, 1), ("keys", 0, 1), ("bag", 0, 1),
        ),
        0.7,
    ),
}  # fmt: skip
_ALWAYS = ("kitchen", "living_room", "bedroom", "bathroom")
_SOMETIMES = ("dining_room", "home_office")

# Where props go: (relation, furniture classes) in order of preference.
_PLACES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "dishes": (
        ("ON", ("kitchen_counter", "table")),
        ("INSIDE", ("kitchen_cabinet", "dishwasher", "cupboard", "sink")),
    ),
    "food": (
        ("INSIDE", ("fridge",)),
        ("ON", ("kitchen_counter", "table")),
        ("INSIDE", ("kitchen_cabinet", "cupboard")),
    ),
    "drinks": (("INSIDE", ("fridge",)), ("ON", ("kitchen_counter", "table")), ("INSIDE", ("cupboard",))),
    "cleaning": (
        ("ON", ("kitchen_counter", "bathroom_counter")),
        ("INSIDE", ("sink", "kitchen_cabinet", "bathroom_cabinet")),
    ),
    "reading": (("ON", ("bookshelf", "coffee_table", "nightstand", "desk", "sofa", "bed")), ("INSIDE", ("bookshelf",))),
    "living": (("ON", ("coffee_table", "sofa", "tvstand", "bookshelf", "table", "desk", "nightstand", "bed")),),
    "clothes": (("INSIDE", ("closet", "dresser")), ("ON", ("bed", "chair", "sofa")), ("INSIDE", ("washing_machine",))),
    "bathroom": (("ON", ("bathroom_counter", "towel_rack")), ("INSIDE", ("bathroom_cabinet",))),
    "office": (("ON", ("desk", "bookshelf", "filing_cabinet")), ("INSIDE", ("filing_cabinet", "bookshelf"))),
}
_PROP_PLACES = {
    **dict.fromkeys(("plate", "bowl", "cup", "mug", "water_glass", "wine_glass", "fork", "knife", "spoon", "pot",
                     "kettle", "cutting_board"), "dishes"),
    **dict.fromkeys(("food_apple", "food_banana", "food_bread", "food_cheese", "food_egg", "food_cereal"), "food"),
    **dict.fromkeys(("milk", "juice", "wine"), "drinks"),
    **dict.fromkeys(("dish_soap", "sponge", "laundry_detergent"), "cleaning"),
    **dict.fromkeys(("novel", "magazine", "newspaper"), "reading"),
    **dict.fromkeys(("remote_control", "pillow", "candle", "phone", "board_game", "toy", "alarm_clock", "blanket",
                     "keys", "bag", "laptop"), "living"),
    **dict.fromkeys(("clothes_shirt", "clothes_pants", "clothes_socks", "clothes_jacket", "shoes"), "clothes"),
    **dict.fromkeys(("towel", "toothbrush", "tooth_paste", "soap", "shampoo", "comb", "razor", "toilet_paper"),
                    "bathroom"),
    **dict.fromkeys(("notebook", "pencil", "folder"), "office"),
}  # fmt: skip
_DISHES = {k for k, v in _PROP_PLACES.items() if v == "dishes"}


class _Builder:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[tuple[int, str, int]] = []
        self.room_of: dict[int, int] = {}
        self.class_of: dict[int, str] = {}

    def node(self, class_name: str, category: str, properties: tuple[str, ...], states: list[str]) -> int:
        node_id = len(self.nodes) + 1
        self.nodes.append(
            {
                "id": node_id,
                "class_name": class_name,
                "category": category,
                "properties": list(properties),
                "states": states,
            }
        )
        self.class_of[node_id] = class_name
        return node_id

    def edge(self, a: int, rel: str, b: int) -> None:
        self.edges.append((a, rel, b))

    def close(self, a: int, b: int) -> None:
        self.edge(a, "CLOSE", b)
        self.edge(b, "CLOSE", a)

    def thing(self, class_name: str, room: int) -> int:
        category, properties = CATALOG[class_name]
        node_id = self.node(class_name, category, properties, self.states(class_name, properties))
        self.edge(node_id, "INSIDE", room)
        self.room_of[node_id] = room
        return node_id

    def states(self, class_name: str, properties: tuple[str, ...]) -> list[str]:
        rng, states = self.rng, []
        switched_on = "HAS_SWITCH" in properties and rng.random() < (0.5 if class_name in ("light", "lamp") else 0.15)
        if "CAN_OPEN" in properties:
            states.append("OPEN" if not switched_on and rng.random() < 0.2 else "CLOSED")
        if "HAS_SWITCH" in properties:
            states.append("ON" if switched_on else "OFF")
        if "HAS_PLUG" in properties:
            states.append("PLUGGED_IN" if switched_on or rng.random() < 0.9 else "PLUGGED_OUT")
        states.append("DIRTY" if class_name in _DISHES and rng.random() < 0.3 else "CLEAN")
        return states


def generate_scene(seed: int, index: int = 0, characters: int = 1) -> dict[str, Any]:
    """One home as a VirtualHome graph dict; the same ``(seed, index, characters)`` gives the same graph."""
    if characters < 1:
        raise ValueError(f"characters must be at least 1, got {characters}")
    rng = random.Random(f"e2wm-scene:{GENERATOR_VERSION}:{seed}:{index}")
    b = _Builder(rng)
    kinds = list(_ALWAYS) + [k for k in _SOMETIMES if rng.random() < 0.5]
    rooms = {kind: b.node(kind, "Rooms", (), ["CLEAN"]) for kind in kinds}
    for kind, room in rooms.items():
        floor = b.thing("floor", room)
        placed: dict[str, list[int]] = {}
        for piece in ROOM_KINDS[kind].furniture:
            if rng.random() >= piece.chance:
                continue
            for _ in range(rng.randint(*piece.count)):
                node = b.thing(piece.class_name, room)
                placed.setdefault(piece.class_name, []).append(node)
                if piece.inside and piece.inside in placed:
                    b.edge(node, "INSIDE", placed[piece.inside][0])
                    b.close(node, placed[piece.inside][0])
                if piece.on and piece.on in placed:
                    support = rng.choice(placed[piece.on])
                    b.edge(node, "ON", support)
                    b.close(node, support)
                for other in piece.near:
                    for near in placed.get(other, [])[:1]:
                        b.close(node, near)
        # Facing is added once everything stands, so a sofa can face a TV placed after it.
        for piece in ROOM_KINDS[kind].furniture:
            if piece.facing:
                for node in placed.get(piece.class_name, []):
                    for faced in placed.get(piece.facing, [])[:1]:
                        b.edge(node, "FACING", faced)
        light = b.thing("light", room)
        b.close(light, floor)
        placed["floor"] = [floor]
        _place_props(b, kind, room, placed)
    kind_list = list(rooms)
    for first, second in itertools.pairwise(kind_list):
        door = b.thing("door", rooms[first])
        b.nodes[door - 1]["states"] = ["OPEN", "CLEAN"]
        b.edge(door, "BETWEEN", rooms[first])
        b.edge(door, "BETWEEN", rooms[second])
    for _ in range(characters):
        char = b.node("character", "Characters", (), [])
        b.edge(char, "INSIDE", rooms[rng.choice(kind_list)])
    edges = list(dict.fromkeys(b.edges))
    return {
        "nodes": b.nodes,
        "edges": [{"from_id": f, "relation_type": r, "to_id": t} for f, r, t in edges],
    }


# VirtualHome counts everything ON a seat as an occupant: keep seats sittable.
_MAX_PROPS_ON = {"chair": 0, "sofa": 1, "bed": 1}


def _place_props(b: _Builder, kind: str, room: int, placed: dict[str, list[int]]) -> None:
    rng = b.rng
    spec = ROOM_KINDS[kind]
    on_count: dict[int, int] = {}
    for class_name, low, high in spec.props:
        count = rng.randint(low, high) if rng.random() < spec.prop_chance else low
        for _ in range(count):
            options = [
                (rel, node)
                for rel, classes in _PLACES[_PROP_PLACES[class_name]]
                for cls in classes
                for node in placed.get(cls, [])
                if rel != "ON" or on_count.get(node, 0) < _MAX_PROPS_ON.get(cls, 1 << 30)
            ]
            if not options:
                options = [("ON", placed["floor"][0])]
            # Prefer the first places listed (a plate is more often on the counter than in the sink).
            weights = [1.0 / (1 + i) for i in range(len(options))]
            relation, support = rng.choices(options, weights)[0]
            prop = b.thing(class_name, room)
            if relation == "ON":
                on_count[support] = on_count.get(support, 0) + 1
            b.edge(prop, relation, support)
            b.close(prop, support)


def generate_scenes(seed: int, count: int, characters: int = 1) -> list[dict[str, Any]]:
    """``count`` homes for ``seed``; scene ``i`` is the same whatever ``count`` is."""
    return [generate_scene(seed, i, characters) for i in range(count)]
