"""Conformance with VirtualHome's reference simulator (virtualhome 2.3.0, installed with --no-deps).

Synthetic programs pin each known defect of the reference as an *intended* difference; a sample of
real RobotHow programs (fetched by ``e2wm scenes fetch robothow``; CI fetches them in ``.ci/run``)
must show no disagreement. The full 518-program run is ``bench/world_conformance.py``.
"""

from __future__ import annotations

import pytest

from bench.conformance import ReferenceSimulator, compare_program
from e2wm.world import parse_script
from e2wm.world.scenes import RobotHowUnavailableError, load_robothow
from tests.conftest import require
from tests.world.homes import (
    CHAIR,
    COFFEE_TABLE,
    COUNTER,
    LIGHT,
    NOVEL,
    PLATE,
    SHIRT,
    SOFA,
    line,
    small_home,
)


@pytest.fixture(scope="module")
def reference() -> ReferenceSimulator:
    try:
        return ReferenceSimulator()
    except ImportError as err:
        require(str(err))
        raise


def single_character_home():
    graph = small_home()
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] != 101]
    graph["edges"] = [e for e in graph["edges"] if 101 not in (e["from_id"], e["to_id"])]
    return graph


PROGRAMS = {
    "agree": [line("Walk", COUNTER), line("Grab", PLATE), line("PutBack", PLATE, COUNTER)],
    "find_crash": [line("Find", NOVEL), line("Grab", NOVEL)],
    "putoff_crash": [line("Walk", SHIRT), line("Grab", SHIRT), line("PutOn", SHIRT), line("PutOff", SHIRT)],
    "stale_room": [
        line("Walk", COUNTER),
        line("Grab", PLATE),
        line("Walk", COFFEE_TABLE),
        line("PutBack", PLATE, COFFEE_TABLE),
    ],
    "stale_character_state": [line("Walk", SOFA), line("Lie", SOFA), "[Sleep]"],
    "stale_seat": [line("Walk", CHAIR), line("Sit", CHAIR), "[StandUp]"],
    "logged_but_executed": [
        line("Walk", LIGHT),
        line("PlugIn", LIGHT),
        line("SwitchOn", LIGHT),
        line("PlugOut", LIGHT),
    ],
}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_each_known_defect_of_the_reference_is_an_intended_difference(reference, name):
    lines = parse_script("\n".join(PROGRAMS[name]))
    result = compare_program(reference, name, single_character_home(), lines)
    if name == "agree":
        assert result.verdict == "agree"
    else:
        assert result.verdict == "intended", (result.e2wm, result.reference)
        # Standing up in the reference also reads the stale character state: two defects at once.
        expected = ["stale_character_state", name] if name == "stale_seat" else [name]
        assert result.defects == expected


def test_an_unexplained_difference_is_a_disagreement(reference, monkeypatch):
    from e2wm.world import verbs

    # Break e2wm on purpose: washing no longer cleans. The comparison must catch it.
    monkeypatch.setattr(verbs.Wash, "apply", lambda self, w, c, obj: None)
    lines = parse_script("\n".join([line("Walk", PLATE), line("Wash", PLATE)]))
    assert compare_program(reference, "broken", single_character_home(), lines).verdict == "disagree"


@pytest.fixture(scope="module")
def robothow():
    try:
        return load_robothow()
    except RobotHowUnavailableError as err:
        require(str(err))
        raise


# A spread of real programs: every 20th, plus ones that hit each defect of the reference.
DEFECT_PROGRAMS = ["file1027_2", "file1045_2", "file538_1", "file430_2", "file416_2"]


def test_robothow_sample_has_no_disagreement_and_reaches_recorded_final_graphs(reference, robothow):
    by_id = {p.id: p for p in robothow}
    sample = robothow[::20] + [by_id[i] for i in DEFECT_PROGRAMS if i in by_id]
    assert len(sample) >= 30
    verdicts, final_e2wm, final_ref = {}, 0, 0
    for program in sample:
        graphs = program.graphs()
        result = compare_program(reference, program.id, graphs["init_graph"], program.lines, graphs["final_graph"])
        verdicts[program.id] = (result.verdict, result.defects)
        final_e2wm += bool(result.final_match_e2wm)
        final_ref += bool(result.final_match_reference)
    disagreements = {k: v for k, v in verdicts.items() if v[0] == "disagree"}
    assert not disagreements
    assert sum(v[0] == "agree" for v in verdicts.values()) >= len(sample) // 2
    assert final_e2wm >= final_ref
