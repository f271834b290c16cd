"""The ``e2wm world`` and ``e2wm scenes`` commands: output, exit status, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from e2wm.cli import main
from tests.world.homes import COFFEE_TABLE, COUNTER, NOVEL, PLATE, line, small_home


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home.json"
    path.write_text(json.dumps(small_home()))
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_exec_runs_every_line_and_writes_the_final_graph(tmp_path, home, capsys):
    script = tmp_path / "plan.txt"
    script.write_text(
        "\n".join(
            [
                line("Walk", COUNTER),
                line("Grab", PLATE),
                line("Walk", COFFEE_TABLE),
                line("PutBack", PLATE, COFFEE_TABLE),
            ]
        )
    )
    out_path = tmp_path / "final.json"
    code, out, _ = run(capsys, "world", "exec", "--graph", home, "--script", script, "--out", out_path)
    assert code == 0
    assert out.count(" OK ") == 4 and "All 4 lines executed" in out
    final = json.loads(out_path.read_text())
    assert {"from_id": PLATE, "relation_type": "ON", "to_id": COFFEE_TABLE} in final["edges"]


def test_exec_stops_at_the_first_failing_line_and_keeps_the_graph_before_it(tmp_path, home, capsys):
    script = tmp_path / "plan.txt"
    script.write_text("\n".join([line("Walk", COUNTER), line("Grab", NOVEL), line("Walk", COFFEE_TABLE)]))
    out_path = tmp_path / "final.json"
    code, out, err = run(capsys, "world", "exec", "--graph", home, "--script", script, "--out", out_path)
    assert code == 1
    assert "   2 FAIL  [Grab] <novel> (41): character (100) is not close to novel (41)" in out
    assert "line 2 failed: character (100) is not close to novel (41)" in err
    assert "[Walk] <coffee_table>" not in out
    final = json.loads(out_path.read_text())
    assert {"from_id": 100, "relation_type": "CLOSE", "to_id": COUNTER} in final["edges"], (
        "the first line's effect is kept"
    )


@pytest.mark.parametrize(
    ("graph_text", "script_text", "message"),
    [
        ('{"nodes": [], "edges": [', "[Walk] <kitchen> (1)", "invalid JSON"),
        (None, "[Walk] <kitchen> (1)\n[Grab <plate> (20)", "plan.txt:2: not a script line"),
        (None, "[Fly] <kitchen> (1)", "unknown verb [Fly]"),
        ("EDGE", "[Walk] <kitchen> (1)", "edge 0 refers to node 999, which does not exist"),
        (
            '{"nodes": [{"id": 1, "class_name": "kitchen", "category": "Rooms"}], "edges": []}',
            "[Walk] <kitchen> (1)",
            "has no character",
        ),
    ],
)
def test_malformed_input_exits_2_with_file_position_and_problem(
    tmp_path, home, capsys, graph_text, script_text, message
):
    graph = home
    if graph_text == "EDGE":
        graph.write_text(
            json.dumps(
                {"nodes": small_home()["nodes"], "edges": [{"from_id": 20, "relation_type": "ON", "to_id": 999}]}
            )
        )
    elif graph_text is not None:
        graph.write_text(graph_text)
    script = tmp_path / "plan.txt"
    script.write_text(script_text)
    code, _, err = run(capsys, "world", "exec", "--graph", graph, "--script", script, "--out", tmp_path / "f.json")
    assert code == 2
    assert message in err and err.startswith("e2wm: error: ")
    assert not (tmp_path / "f.json").exists()


def test_missing_files_and_bad_character_exit_2(tmp_path, home, capsys):
    code, _, err = run(
        capsys,
        "world",
        "exec",
        "--graph",
        tmp_path / "nope.json",
        "--script",
        tmp_path / "s.txt",
        "--out",
        tmp_path / "f.json",
    )
    assert code == 2 and "nope.json: no such file" in err
    script = tmp_path / "s.txt"
    script.write_text(line("Walk", COUNTER))
    code, _, err = run(
        capsys, "world", "exec", "--graph", home, "--script", script, "--out", tmp_path / "f.json", "--character", 7
    )
    assert code == 2 and "--character: there is no character 7" in err


def test_demo_runs_and_writes_its_files(tmp_path, capsys):
    code, out, _ = run(capsys, "world", "demo", "--seed", 1, "--out", tmp_path / "demo")
    assert code == 0 and "FAIL" not in out
    assert {p.name for p in (tmp_path / "demo").iterdir()} == {"scene.json", "script.txt", "final.json"}


def test_scenes_generate_is_deterministic_and_writes_a_manifest(tmp_path, capsys):
    for name in ("a", "b"):
        assert run(capsys, "scenes", "generate", "--seed", 3, "--count", 2, "--out", tmp_path / name, "--quiet")[0] == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["scene-3-00000.json", "scene-3-00001.json", "scenes.json"]
    for file in files:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    manifest = json.loads((tmp_path / "a" / "scenes.json").read_text())
    assert manifest["seed"] == 3 and len(manifest["scenes"]) == 2
    code, _, err = run(capsys, "scenes", "generate", "--seed", 3, "--count", 0, "--out", tmp_path / "c")
    assert code == 2 and "--count must be at least 1" in err


def test_scenes_check_reports_good_and_bad_files(tmp_path, home, capsys):
    code, out, _ = run(capsys, "scenes", "check", home)
    assert code == 0 and out.startswith("OK ")
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"nodes": [{"id": 1, "class_name": "x"}], "edges": [{"from_id": 1, "relation_type": "ON", "to_id": 2}]}'
    )
    code, out, err = run(capsys, "scenes", "check", tmp_path)
    assert code == 2 and "BAD " in out and "refers to node 2" in out and "1 of 2 graph files are malformed" in err


def test_fetch_without_registry_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("E2WM_INDEX_URL", "http://127.0.0.1:9/simple")
    code, _, err = run(capsys, "scenes", "fetch", "robothow", "--cache-dir", tmp_path / "c", "--quiet")
    assert code == 2 and "cannot reach the package registry" in err


def test_the_console_script_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "e2wm.cli", "world", "exec", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "Exit 0 when every line executed" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "e2wm.cli", "world", "exec"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "required" in done.stderr
