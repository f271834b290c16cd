"""Small hand-made VirtualHome graphs whose every node a test can name."""

from __future__ import annotations

from typing import Any

KITCHEN, LIVING, BATHROOM = 1, 2, 3
COUNTER, FRIDGE, LIGHT, SINK = 10, 11, 12, 13
PLATE, MILK, CUP, KNIFE, APPLE, WATER = 20, 21, 22, 23, 24, 25
COFFEE_TABLE, SOFA, TV, TVSTAND, CHAIR = 30, 31, 32, 33, 34
SHIRT, NOVEL, REMOTE = 40, 41, 42
TOWEL = 50
ALICE, BOB = 100, 101


def node(
    i: int, cls: str, cat: str, props: tuple[str, ...] = (), states: tuple[str, ...] = ("CLEAN",)
) -> dict[str, Any]:
    return {"id": i, "class_name": cls, "category": cat, "properties": list(props), "states": list(states)}


def small_home() -> dict[str, Any]:
    """Kitchen, living room and bathroom; Alice in the kitchen, Bob in the living room."""
    nodes = [
        node(KITCHEN, "kitchen", "Rooms"),
        node(LIVING, "living_room", "Rooms"),
        node(BATHROOM, "bathroom", "Rooms"),
        node(COUNTER, "kitchen_counter", "Furniture", ("SURFACES",)),
        node(
            FRIDGE,
            "fridge",
            "Appliances",
            ("CAN_OPEN", "CONTAINERS", "HAS_SWITCH", "HAS_PLUG"),
            ("CLOSED", "ON", "PLUGGED_IN"),
        ),
        node(LIGHT, "light", "Electronics", ("HAS_SWITCH", "HAS_PLUG"), ("OFF", "PLUGGED_OUT")),
        node(SINK, "sink", "Furniture", ("CONTAINERS", "RECIPIENT")),
        node(PLATE, "plate", "Props", ("GRABBABLE", "SURFACES", "RECIPIENT", "MOVABLE"), ("DIRTY",)),
        node(MILK, "milk", "Food", ("GRABBABLE", "DRINKABLE", "POURABLE")),
        node(CUP, "cup", "Props", ("GRABBABLE", "RECIPIENT", "POURABLE")),
        node(KNIFE, "knife", "Props", ("GRABBABLE",)),
        node(APPLE, "food_apple", "Food", ("GRABBABLE", "EATABLE", "CUTTABLE")),
        node(WATER, "water", "Food", ("DRINKABLE", "POURABLE")),
        node(COFFEE_TABLE, "coffee_table", "Furniture", ("SURFACES",)),
        node(SOFA, "sofa", "Furniture", ("SITTABLE", "LIEABLE", "SURFACES")),
        node(TV, "television", "Electronics", ("HAS_SWITCH", "LOOKABLE", "HAS_PLUG"), ("OFF", "PLUGGED_IN")),
        node(TVSTAND, "tvstand", "Furniture", ("SURFACES",)),
        node(CHAIR, "chair", "Furniture", ("SITTABLE", "SURFACES", "GRABBABLE")),
        node(SHIRT, "clothes_shirt", "Props", ("GRABBABLE", "CLOTHES")),
        node(NOVEL, "novel", "Props", ("GRABBABLE", "READABLE")),
        node(REMOTE, "remote_control", "Electronics", ("GRABBABLE", "HAS_SWITCH")),
        node(TOWEL, "towel", "Props", ("GRABBABLE",)),
        node(ALICE, "character", "Characters", (), ()),
        node(BOB, "character", "Characters", (), ()),
    ]
    rooms = {
        KITCHEN: (COUNTER, FRIDGE, LIGHT, SINK, PLATE, MILK, CUP, KNIFE, APPLE, WATER, ALICE),
        LIVING: (COFFEE_TABLE, SOFA, TV, TVSTAND, CHAIR, SHIRT, NOVEL, REMOTE, BOB),
        BATHROOM: (TOWEL,),
    }
    edges = [(n, "INSIDE", room) for room, members in rooms.items() for n in members]
    placed = [
        (PLATE, "ON", COUNTER), (CUP, "ON", COUNTER), (KNIFE, "ON", COUNTER), (APPLE, "ON", COUNTER),
        (MILK, "INSIDE", FRIDGE), (SINK, "INSIDE", COUNTER), (WATER, "INSIDE", SINK),
        (TV, "ON", TVSTAND), (SHIRT, "ON", SOFA), (NOVEL, "ON", COFFEE_TABLE), (REMOTE, "ON", COFFEE_TABLE),
    ]  # fmt: skip
    for a, rel, b in placed:
        edges += [(a, rel, b), (a, "CLOSE", b), (b, "CLOSE", a)]
    edges += [(SOFA, "FACING", TV), (CHAIR, "FACING", TV), (SOFA, "CLOSE", COFFEE_TABLE), (COFFEE_TABLE, "CLOSE", SOFA)]
    return {"nodes": nodes, "edges": [{"from_id": a, "relation_type": r, "to_id": b} for a, r, b in edges]}


def line(verb: str, *ids: int, home: dict[str, Any] | None = None) -> str:
    """A script line naming nodes of :func:`small_home` by id."""
    names = {n["id"]: n["class_name"] for n in (home or small_home())["nodes"]}
    return f"[{verb}]" + "".join(f" <{names[i]}> ({i})" for i in ids)
