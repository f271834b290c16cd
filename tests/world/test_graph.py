"""Graph JSON: validation errors name the position and what is wrong; round trips keep everything."""

from __future__ import annotations

import json

import pytest

from e2wm.world import GraphFormatError, World, read_graph_json
from tests.world.homes import small_home


def edge(a, rel, b):
    return {"from_id": a, "relation_type": rel, "to_id": b}


def broken(mutate):
    graph = small_home()
    mutate(graph)
    return graph


@pytest.mark.parametrize(
    ("mutate", "position", "message"),
    [
        (lambda g: g.pop("edges"), None, 'a "nodes" list and an "edges" list'),
        (lambda g: g["edges"].append(edge(20, "ON", 999)), "edges[", "refers to node 999, which does not exist"),
        (lambda g: g["edges"].append(edge(20, "NEAR", 10)), "edges[", "relation_type 'NEAR'"),
        (lambda g: g["edges"].append({"from_id": "20", "relation_type": "ON", "to_id": 10}), "edges[", "integer"),
        (lambda g: g["nodes"].append({"id": 20, "class_name": "plate"}), "nodes[", "node id 20 is used twice"),
        (lambda g: g["nodes"].append({"class_name": "plate"}), "nodes[", 'no integer "id"'),
        (lambda g: g["nodes"].append({"id": 500}), "nodes[", 'no "class_name"'),
        (lambda g: g["nodes"][7].update(states="DIRTY"), "nodes[7]", "states must be a list of strings"),
        (lambda g: g["nodes"].append(7), "nodes[", "a node is a JSON object"),
        (lambda g: g["edges"].append(edge(20, "INSIDE", 2)), "nodes[", "INSIDE several rooms"),
    ],
)
def test_malformed_graphs_are_rejected_with_position(mutate, position, message):
    with pytest.raises(GraphFormatError) as err:
        World.from_dict(broken(mutate), source="G.json")
    assert message in str(err.value)
    assert str(err.value).startswith("G.json")
    if position:
        assert position in str(err.value)


def test_invalid_json_reports_line_and_column(tmp_path):
    path = tmp_path / "g.json"
    path.write_text('{"nodes": [],\n "edges": [,]}')
    with pytest.raises(GraphFormatError, match=r"line 2 column \d+: invalid JSON"):
        World.from_json(path)
    with pytest.raises(GraphFormatError, match="no such file"):
        World.from_json(tmp_path / "missing.json")


def test_round_trip_keeps_nodes_edges_and_extra_fields(tmp_path):
    graph = small_home()
    graph["nodes"][0]["prefab_name"] = "Kitchen_1"
    graph["nodes"][0]["bounding_box"] = {"center": [0, 0, 0], "size": [1, 1, 1]}
    graph["edges"].append(graph["edges"][0])  # duplicates are dropped, as VirtualHome does
    world = World.from_dict(graph)
    out = world.to_dict()
    assert out["nodes"] == graph["nodes"]
    as_set = {(e["from_id"], e["relation_type"], e["to_id"]) for e in graph["edges"]}
    assert {(e["from_id"], e["relation_type"], e["to_id"]) for e in out["edges"]} == as_set
    assert len(out["edges"]) == len(as_set)
    path = tmp_path / "out" / "final.json"
    world.write_json(path)
    assert json.loads(path.read_text()) == out
    assert [p.name for p in path.parent.iterdir()] == ["final.json"], "no temporary file is left behind"


def test_robothow_files_read_their_initial_graph(tmp_path):
    path = tmp_path / "program.json"
    path.write_text(json.dumps({"init_graph": small_home(), "final_graph": small_home()}))
    assert read_graph_json(path)["nodes"] == small_home()["nodes"]


def test_relation_and_property_names_are_normalised_to_upper_case():
    graph = small_home()
    graph["edges"][0]["relation_type"] = "inside"
    graph["nodes"][3]["properties"] = ["surfaces"]
    world = World.from_dict(graph)
    assert "SURFACES" in world.nodes[graph["nodes"][3]["id"]].properties
