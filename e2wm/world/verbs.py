"""One small handler per VirtualHome verb: its preconditions (``check``) and its effects (``apply``).

Semantics follow VirtualHome's evolving-graph simulator (``virtualhome`` 2.3.0), verb by verb, with
its known defects fixed (see ``docs/world.md``: a far ``[Find]`` walks to the object instead of
crashing, ``[PutOff]`` works, carried objects change room with their carrier, a character who stands up
leaves the seat, and a failed precondition always fails the step).

``check(world, character, *nodes)`` returns None when the step can run, else a readable reason
("character (65) is not close to plate (54)"). ``apply`` changes the world through its journaled
primitives only, so every step can be undone and diffed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from e2wm.world.state import World

__all__ = ["NO_EFFECT_VERBS", "VERBS", "StepFailure", "Verb", "canonical_verb"]


class StepFailure(Exception):
    """A script line cannot be executed in this world (the message is the reason)."""


VERBS: dict[str, Verb] = {}
_ALIASES: dict[str, str] = {}


class Verb:
    """Base of the verb handlers. Subclasses set ``name`` (and ``arity``) and are registered."""

    name: ClassVar[str]
    arity: ClassVar[int] = 1
    aliases: ClassVar[tuple[str, ...]] = ()
    #: False for verbs that never change the graph (LookAt, Touch, Watch, …): planners skip them.
    changes_state: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            instance = cls()
            VERBS[cls.name] = instance
            for alias in (cls.name, *cls.__dict__.get("aliases", ())):
                _ALIASES[alias.upper()] = cls.name

    def check(self, w: World, c: int, *nodes: int) -> str | None:
        return None

    def apply(self, w: World, c: int, *nodes: int) -> None:
        return None


def canonical_verb(raw: str) -> str | None:
    """``"PUTBACK"``, ``"putback"``, ``"PutBack"`` → ``"PutBack"``; None for an unknown verb."""
    return _ALIASES.get(raw.upper())


# ---------------------------------------------------------------------- shared preconditions
def _not_close(w: World, c: int, n: int) -> str | None:
    return None if w.is_close(c, n) else f"{w.describe(c)} is not close to {w.describe(n)}"


def _not_holding(w: World, c: int, n: int) -> str | None:
    return None if w.hand_holding(c, n) else f"{w.describe(c)} is not holding {w.describe(n)}"


def _no_free_hand(w: World, c: int) -> str | None:
    return None if w.free_hand(c) else f"{w.describe(c)} does not have a free hand"


def _in_closed(w: World, n: int) -> str | None:
    container = w.closed_container_of(n)
    return None if container is None else f"{w.describe(n)} is inside {w.describe(container)}, which is closed"


def _lacks(w: World, n: int, prop: str, what: str, also: tuple[str, ...] = ()) -> str | None:
    node = w.nodes[n]
    return None if prop in node.properties or node.class_name in also else f"{w.describe(n)} is not {what}"


def _posture(w: World, c: int) -> str | None:
    states = w.nodes[c].states
    if "SITTING" in states:
        return "sitting"
    if "LYING" in states:
        return "lying"
    return None


def _first(*reasons: str | None) -> str | None:
    return next((r for r in reasons if r is not None), None)


# ---------------------------------------------------------------------- moving around
class Walk(Verb):
    """Go to a room or an object: INSIDE its room, CLOSE to it and to what contains or supports it."""

    name = "Walk"
    aliases = ("WalkTo",)
    changes_state = True

    def check(self, w: World, c: int, target: int) -> str | None:  # type: ignore[override]
        posture = _posture(w, c)
        if posture is not None:
            return f"{w.describe(c)} is {posture}"
        if w.room_of(c) is None:
            return f"{w.describe(c)} is not in any room"
        if w.room_of(target) is None:
            return f"{w.describe(target)} is not in any room"
        return None

    def apply(self, w: World, c: int, target: int) -> None:  # type: ignore[override]
        room = w.room_of(target)
        assert room is not None
        w.remove_edges_of(c, ("INSIDE", "CLOSE", "FACING"))
        w.add_edge(c, "INSIDE", room)
        if target != room:
            for container in list(w.targets(target, "INSIDE")):
                if container not in w.rooms:
                    w.add_close(c, container)
            for part in w.body_parts:
                w.add_close(c, part)
            w.add_close(c, target)
        for held in w.holding(c):
            # VirtualHome detaches what was close to (or inside) a carried object; it stays in hand.
            w.remove_edges_of(held, ("INSIDE", "CLOSE", "FACING"))
            w.add_close(c, held)
        w.move_to_room(c, room)  # the character, what it carries and wears (VirtualHome left these behind)
        if "CAN_OPEN" in w.nodes[target].properties:
            for inside in list(w.sources(target, "INSIDE")):
                w.add_close(c, inside)
        for support in list(w.targets(target, "ON")):
            w.add_close(c, support)


class Run(Walk):
    name = "Run"


class WalkTowards(Walk):
    name = "WalkTowards"


class Find(Verb):
    """Find an object: close to it already (or worn, or a body part) it is found where one stands;
    otherwise the character walks to it first."""

    name = "Find"
    changes_state = True

    def _in_reach(self, w: World, c: int, target: int) -> bool:
        return (
            w.has_edge(target, "ON", c)
            or "BODY_PART" in w.nodes[target].properties
            or w.is_close(c, target)
            or _posture(w, c) is not None
        )

    def check(self, w: World, c: int, target: int) -> str | None:  # type: ignore[override]
        if self._in_reach(w, c, target):
            return _not_close(w, c, target)
        return VERBS["Walk"].check(w, c, target)

    def apply(self, w: World, c: int, target: int) -> None:  # type: ignore[override]
        if self._in_reach(w, c, target):
            w.remove_edges_of(c, ("FACING",), both_directions=False)
            w.add_close(c, target)
        else:
            VERBS["Walk"].apply(w, c, target)


class TurnTo(Verb):
    name = "TurnTo"
    changes_state = True

    def apply(self, w: World, c: int, target: int) -> None:  # type: ignore[override]
        w.remove_edges_of(c, ("FACING",), both_directions=False)
        w.add_edge(c, "FACING", target)


class LookAt(Verb):
    name = "LookAt"
    aliases = ("LookAt_Short", "LookAt_Medium", "LookAt_Long")

    def check(self, w: World, c: int, target: int) -> str | None:  # type: ignore[override]
        return None if w.is_facing(c, target) else f"{w.describe(c)} does not face {w.describe(target)}"


class PointAt(LookAt):
    name = "PointAt"


# ---------------------------------------------------------------------- hands
class Grab(Verb):
    """Take an object into a free hand (right first). Things on or in it stay where they were."""

    name = "Grab"
    changes_state = True

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        holder = w.holder_of(obj)
        return _first(
            _lacks(w, obj, "GRABBABLE", "grabbable", also=("water", "child")),
            None if holder is None else f"{w.describe(obj)} is already held by {w.describe(holder[0])}",
            _not_close(w, c, obj),
            _in_closed(w, obj),
            _no_free_hand(w, c),
        )

    def apply(self, w: World, c: int, obj: int) -> None:  # type: ignore[override]
        hand = w.free_hand(c)
        assert hand is not None
        room = w.room_of(c)
        origin = _grab_origin(w, obj)
        previous_room = w.room_of(obj)
        w.remove_edges_of(obj, ("ON", "INSIDE", "CLOSE", "HOLDS_LH", "HOLDS_RH"))
        w.add_close(c, obj)
        w.add_edge(c, hand, obj)
        if room is not None:
            w.add_edge(obj, "INSIDE", room)
        if origin is not None:
            if origin[0] != c:
                w.add_close(c, origin[0])
            w.set_grab_origin(obj, (*origin, previous_room))


def _grab_origin(w: World, obj: int) -> tuple[int, str] | None:
    """Where ``[PutObjBack]`` returns an object: what it is on, else in, else close to (never a room;
    a character only when nothing else is close)."""
    for rel in ("ON", "INSIDE", "CLOSE"):
        candidates = [n for n in w.targets(obj, rel) if n not in w.rooms]
        if candidates:
            return min(candidates, key=lambda n: (w.nodes[n].class_name == "character", n)), rel
    return None


class _Put(Verb):
    """Put a held object ON a surface (PutBack) or INSIDE a container (PutIn)."""

    arity = 2
    changes_state = True
    relation: ClassVar[str]

    def check(self, w: World, c: int, obj: int, dest: int) -> str | None:  # type: ignore[override]
        return _check_put(w, c, obj, dest, self.relation)

    def apply(self, w: World, c: int, obj: int, dest: int) -> None:  # type: ignore[override]
        _put(w, c, obj, dest, self.relation)


def _check_put(w: World, c: int, obj: int, dest: int, relation: str) -> str | None:
    if obj == dest:
        return f"{w.describe(obj)} cannot be put {relation.lower()} itself"
    reason = _first(_not_holding(w, c, obj), _not_close(w, c, dest))
    if reason is None and relation == "INSIDE":
        node = w.nodes[dest]
        if "CAN_OPEN" in node.properties and "OPEN" not in node.states:
            return f"{w.describe(dest)} is not open"
    return reason


def _put(w: World, c: int, obj: int, dest: int, relation: str, room: int | None = None) -> None:
    """Move a held object ``relation`` (ON, INSIDE or, back where it was, CLOSE) ``dest``; it ends in
    ``room``, by default the destination's room."""
    for hand in ("HOLDS_LH", "HOLDS_RH"):
        w.remove_edge(c, hand, obj)
    if dest != c:
        w.add_close(c, dest)
    w.add_close(obj, dest)
    w.add_edge(obj, relation, dest)
    w.set_grab_origin(obj, None)
    w.move_to_room(obj, room if room is not None else w.room_of(dest))


class PutBack(_Put):
    name = "PutBack"
    aliases = ("Put", "PutOn_Surface")
    relation = "ON"


class PutIn(_Put):
    name = "PutIn"
    relation = "INSIDE"


class PutObjBack(Verb):
    """Return a held object to where it was grabbed from."""

    name = "PutObjBack"
    changes_state = True

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        origin = w.grab_origin.get(obj)
        if origin is None:
            return f"{w.describe(obj)} was not grabbed"
        return _check_put(w, c, obj, origin[0], origin[1])

    def apply(self, w: World, c: int, obj: int) -> None:  # type: ignore[override]
        dest, relation, room = w.grab_origin[obj]
        _put(w, c, obj, dest, relation, room)


class Drop(Verb):
    """Let go of a held object: it stays in the room."""

    name = "Drop"
    changes_state = True

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        return _not_holding(w, c, obj)

    def apply(self, w: World, c: int, obj: int) -> None:  # type: ignore[override]
        for hand in ("HOLDS_LH", "HOLDS_RH"):
            w.remove_edge(c, hand, obj)
        w.move_to_room(obj, w.room_of(c))
        w.set_grab_origin(obj, None)


class Release(Drop):
    name = "Release"


class PutOn(Verb):
    """Put on held clothes: they go ON the character."""

    name = "PutOn"
    changes_state = True

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        return _first(_not_holding(w, c, obj), _lacks(w, obj, "CLOTHES", "clothes"))

    def apply(self, w: World, c: int, obj: int) -> None:  # type: ignore[override]
        w.add_edge(obj, "ON", c)
        for hand in ("HOLDS_LH", "HOLDS_RH"):
            w.remove_edge(c, hand, obj)
        w.set_grab_origin(obj, None)


class PutOff(Verb):
    """Take off worn clothes: they are no longer ON the character (they stay in its room)."""

    name = "PutOff"
    changes_state = True

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        if not w.has_edge(obj, "ON", c):
            return f"{w.describe(obj)} is not on {w.describe(c)}"
        return _lacks(w, obj, "CLOTHES", "clothes")

    def apply(self, w: World, c: int, obj: int) -> None:  # type: ignore[override]
        w.remove_edge(obj, "ON", c)


class Pour(Verb):
    """Pour a liquid (POURABLE or DRINKABLE, held) into a RECIPIENT close by."""

    name = "Pour"
    arity = 2
    changes_state = True

    def check(self, w: World, c: int, src: int, dest: int) -> str | None:  # type: ignore[override]
        node = w.nodes[src]
        if "POURABLE" not in node.properties and "DRINKABLE" not in node.properties:
            return f"{w.describe(src)} is not pourable or drinkable"
        return _first(
            _lacks(w, dest, "RECIPIENT", "a recipient", also=("hands_both", "sponge", "face")),
            _not_holding(w, c, src),
            _not_close(w, c, dest),
        )

    def apply(self, w: World, c: int, src: int, dest: int) -> None:  # type: ignore[override]
        w.add_edge(src, "INSIDE", dest)
        if w.nodes[src].class_name == "water":  # water leaves the hand; a bottle stays in it
            for hand in ("HOLDS_LH", "HOLDS_RH"):
                w.remove_edge(c, hand, src)
            w.set_grab_origin(src, None)
        if w.holder_of(src) is None:
            w.move_to_room(src, w.room_of(dest))


# ---------------------------------------------------------------------- states of things
class Open(Verb):
    name = "Open"
    changes_state = True
    closing: ClassVar[bool] = False

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        node = w.nodes[obj]
        if "CAN_OPEN" not in node.properties and node.class_name not in ("desk", "window"):
            return f"{w.describe(obj)} cannot be opened"
        reason = _not_close(w, c, obj)
        if reason is None and not self.closing:
            reason = _no_free_hand(w, c)
        if reason is not None:
            return reason
        needed = "OPEN" if self.closing else "CLOSED"
        if needed not in node.states:
            return f"{w.describe(obj)} is not {needed.lower()}"
        if not self.closing and "ON" in node.states:
            return f"{w.describe(obj)} is still on"
        return None

    def apply(self, w: World, c: int, obj: int) -> None:  # type: ignore[override]
        if self.closing:
            w.replace_state(obj, "OPEN", "CLOSED")
        else:
            w.replace_state(obj, "CLOSED", "OPEN")


class Close(Open):
    name = "Close"
    closing = True


class SwitchOn(Verb):
    name = "SwitchOn"
    changes_state = True
    on: ClassVar[bool] = True

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        node = w.nodes[obj]
        if "HAS_SWITCH" not in node.properties:
            return f"{w.describe(obj)} does not have a switch"
        reason = _not_close(w, c, obj)
        if reason is not None:
            return reason
        needed = "OFF" if self.on else "ON"
        if needed not in node.states:
            return f"{w.describe(obj)} is not {needed.lower()}"
        if self.on and "PLUGGED_OUT" in node.states:
            return f"{w.describe(obj)} is unplugged"
        return None

    def apply(self, w: World, c: int, obj: int) -> None:  # type: ignore[override]
        if self.on:
            w.replace_state(obj, "OFF", "ON")
        else:
            w.replace_state(obj, "ON", "OFF")


class SwitchOff(SwitchOn):
    name = "SwitchOff"
    on = False


class PlugIn(Verb):
    name = "PlugIn"
    changes_state = True
    plug_in: ClassVar[bool] = True

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        reason = _first(_lacks(w, obj, "HAS_PLUG", "pluggable"), _not_close(w, c, obj), _no_free_hand(w, c))
        if reason is not None:
            return reason
        states = w.nodes[obj].states
        needed = "PLUGGED_OUT" if self.plug_in else "PLUGGED_IN"
        if needed not in states:
            return f"{w.describe(obj)} is not {needed.lower().replace('_', ' ')}"
        if not self.plug_in and "ON" in states:
            return f"{w.describe(obj)} is still on"
        return None

    def apply(self, w: World, c: int, obj: int) -> None:  # type: ignore[override]
        if self.plug_in:
            w.replace_state(obj, "PLUGGED_OUT", "PLUGGED_IN")
        else:
            w.replace_state(obj, "PLUGGED_IN", "PLUGGED_OUT")


class PlugOut(PlugIn):
    name = "PlugOut"
    plug_in = False


class Wash(Verb):
    """Wash, rinse or scrub something close by: it becomes CLEAN."""

    name = "Wash"
    changes_state = True

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        return _not_close(w, c, obj)

    def apply(self, w: World, c: int, obj: int) -> None:  # type: ignore[override]
        w.replace_state(obj, "DIRTY", "CLEAN")


class Rinse(Wash):
    name = "Rinse"


class Scrub(Wash):
    name = "Scrub"


class Wipe(Wash):
    """Wipe something close by while holding something (a rag, a towel): it becomes CLEAN."""

    name = "Wipe"

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        return _first(
            _not_close(w, c, obj),
            None if w.holding(c) else f"{w.describe(c)} does not hold anything",
        )


# ---------------------------------------------------------------------- posture
_SIT_CAPACITY = {"couch": 4, "bed": 4, "chair": 1, "loveseat": 2, "sofa": 4, "toilet": 1, "pianobench": 2, "bench": 2}
_LIE_CAPACITY = {"couch": 2, "bathtub": 2, "bed": 3, "loveseat": 2, "sofa": 2, "bench": 1}


def _full(w: World, seat: int, capacity: dict[str, int]) -> str | None:
    if len(w.sources(seat, "ON")) >= capacity.get(w.nodes[seat].class_name, 1):
        return f"there is no room left on {w.describe(seat)}"
    return None


class Sit(Verb):
    """Sit on something SITTABLE close by; the character faces what the seat faces."""

    name = "Sit"
    changes_state = True

    def check(self, w: World, c: int, seat: int) -> str | None:  # type: ignore[override]
        return _first(
            _not_close(w, c, seat),
            f"{w.describe(c)} is sitting" if "SITTING" in w.nodes[c].states else None,
            _lacks(w, seat, "SITTABLE", "sittable"),
            _full(w, seat, _SIT_CAPACITY),
        )

    def apply(self, w: World, c: int, seat: int) -> None:  # type: ignore[override]
        w.add_edge(c, "ON", seat)
        for faced in list(w.targets(seat, "FACING")):
            w.add_edge(c, "FACING", faced)
        w.replace_state(c, "LYING", "SITTING")


class Lie(Verb):
    name = "Lie"
    changes_state = True

    def check(self, w: World, c: int, bed: int) -> str | None:  # type: ignore[override]
        return _first(
            _not_close(w, c, bed),
            f"{w.describe(c)} is lying" if "LYING" in w.nodes[c].states else None,
            _lacks(w, bed, "LIEABLE", "lieable"),
            _full(w, bed, _LIE_CAPACITY),
        )

    def apply(self, w: World, c: int, bed: int) -> None:  # type: ignore[override]
        w.add_edge(c, "ON", bed)
        w.replace_state(c, "SITTING", "LYING")


class StandUp(Verb):
    """Stand up from sitting or lying: the character leaves the seat."""

    name = "StandUp"
    arity = 0
    changes_state = True

    def check(self, w: World, c: int) -> str | None:  # type: ignore[override]
        return None if _posture(w, c) else f"{w.describe(c)} is not sitting or lying"

    def apply(self, w: World, c: int) -> None:  # type: ignore[override]
        w.remove_state(c, "SITTING")
        w.remove_state(c, "LYING")
        w.remove_edges_of(c, ("ON",), both_directions=False)


class Sleep(Verb):
    name = "Sleep"
    arity = 0

    def check(self, w: World, c: int) -> str | None:  # type: ignore[override]
        return None if _posture(w, c) else f"{w.describe(c)} is not lying or sitting"


class WakeUp(Sleep):
    name = "WakeUp"


# ---------------------------------------------------------------------- verbs without effects
class Drink(Verb):
    name = "Drink"

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        node = w.nodes[obj]
        if "DRINKABLE" not in node.properties and "RECIPIENT" not in node.properties:
            return f"{w.describe(obj)} is not drinkable or a recipient"
        return _not_holding(w, c, obj)


class Eat(Verb):
    name = "Eat"

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        reason = _not_close(w, c, obj)
        if reason is not None or "EATABLE" in w.nodes[obj].properties:
            return reason
        on_it = w.sources(obj, "ON")
        if any("EATABLE" in w.nodes[n].properties for n in on_it):
            return None
        return f"{w.describe(obj)} is not eatable" if not on_it else f"nothing on {w.describe(obj)} is eatable"


class Read(Verb):
    name = "Read"

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        return _first(_lacks(w, obj, "READABLE", "readable"), _not_holding(w, c, obj))


class Touch(Verb):
    name = "Touch"

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        return _first(_not_close(w, c, obj), _in_closed(w, obj))


class Type(Verb):
    name = "Type"

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        reason = _not_close(w, c, obj)
        if reason is None and w.nodes[obj].class_name != "keyboard":
            reason = _lacks(w, obj, "HAS_SWITCH", "something to type on")
        return reason


class Watch(Verb):
    name = "Watch"

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        reason = _lacks(w, obj, "LOOKABLE", "lookable")
        if reason is not None:
            return reason
        if w.room_of(obj) != w.room_of(c):
            return f"{w.describe(obj)} is not in the same room as {w.describe(c)}"
        if not w.is_facing(c, obj):
            return f"{w.describe(c)} does not face {w.describe(obj)}"
        if w.nodes[obj].class_name != "computer" and _posture(w, c) is not None and not w.has_edge(c, "FACING", obj):
            return f"{w.describe(c)} is not facing {w.describe(obj)} while {_posture(w, c)}"
        return _in_closed(w, obj)


class Push(Verb):
    name = "Push"

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        return _first(self._movable(w, obj), _not_close(w, c, obj), _in_closed(w, obj), _no_free_hand(w, c))

    def _movable(self, w: World, obj: int) -> str | None:
        return None  # VirtualHome lets anything be pushed


class Pull(Push):
    name = "Pull"

    def _movable(self, w: World, obj: int) -> str | None:
        return _lacks(w, obj, "MOVABLE", "movable", also=("button", "chair", "curtain"))


class Move(Pull):
    name = "Move"


_SQUEEZABLE = (
    "cleaning_solution", "tooth_paste", "shampoo", "food_peanut_butter", "dish_soap", "soap",
    "towel", "rag", "paper", "sponge", "food_lemon", "check",
)  # fmt: skip


class Squeeze(Verb):
    name = "Squeeze"

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        return _first(_no_free_hand(w, c), _not_close(w, c, obj), _lacks(w, obj, "CLOTHES", "squeezable", _SQUEEZABLE))


class Cut(Verb):
    name = "Cut"

    def check(self, w: World, c: int, obj: int) -> str | None:  # type: ignore[override]
        return _first(
            _no_free_hand(w, c),
            _not_close(w, c, obj),
            _lacks(w, obj, "EATABLE", "eatable"),
            _lacks(w, obj, "CUTTABLE", "cuttable"),
            None
            if any("knife" in w.nodes[h].class_name for h in w.holding(c))
            else f"{w.describe(c)} is not holding a knife",
        )


class Greet(Verb):
    name = "Greet"

    def check(self, w: World, c: int, other: int) -> str | None:  # type: ignore[override]
        return _lacks(w, other, "PERSON", "a person")


NO_EFFECT_VERBS = frozenset(name for name, verb in VERBS.items() if not verb.changes_state)
