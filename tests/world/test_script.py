"""Script lines: parse, format, round trips and errors that say what is wrong."""

from __future__ import annotations

import pytest

from e2wm.world import ScriptLine, ScriptParseError, format_script, parse_script, parse_script_line, read_script

ROUND_TRIPS = [
    "[Walk] <kitchen> (11)",
    "[PutBack] <plate> (54) <kitchentable> (226)",
    "[PutIn] <cup> (12) <dishwasher> (80)",
    "[StandUp]",
    "<char1> [Grab] <cup> (12)",
    "[GRAB] <water_glass> (1.1000)",
    "[PUTBACK] <water_glass> (1.1000) <cupboard> (1.229)",
    "[SwitchOn] <television> (410)",
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_parse_format_round_trip(text):
    line = parse_script_line(text)
    assert str(line) == text
    assert parse_script_line(str(line)) == line


def test_fields_of_a_parsed_line():
    line = parse_script_line("  [putback] <Kitchen Table> (1.226)  <plate> (54) ")
    assert line.verb == "PutBack"
    assert line.node_ids == (226, 54)
    assert line.args[0].class_name == "kitchen_table" and line.args[0].script_id == 1
    assert line.args[1].script_id is None and line.character is None


def test_character_prefix():
    assert parse_script_line("<char2> [walk] <kitchen> (1)").character == 2


def test_make_builds_lines_and_checks_arity():
    assert str(ScriptLine.make("putback", ("plate", 5), ("table", 6))) == "[PutBack] <plate> (5) <table> (6)"
    with pytest.raises(ScriptParseError, match="takes two objects"):
        ScriptLine.make("PutBack", ("plate", 5))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Walk to the kitchen", "not a script line"),
        ("[Teleport] <kitchen> (1)", "unknown verb [Teleport]"),
        ("[Walk] <kitchen>", "cannot read the object"),
        ("[Walk] <kitchen> (one)", "cannot read the object"),
        ("[Walk]", "takes one object, got 0"),
        ("[StandUp] <chair> (3)", "takes no object, got 1"),
        ("[PutBack] <plate> (5)", "takes two objects, got 1"),
    ],
)
def test_malformed_lines_say_what_is_wrong(text, message):
    with pytest.raises(ScriptParseError) as err:
        parse_script_line(text)
    assert message in str(err.value)


def test_parse_script_skips_blanks_and_comments_and_numbers_errors():
    assert len(parse_script("# plan\n[Walk] <kitchen> (1)\n\n[Grab] <cup> (2)\n")) == 2
    with pytest.raises(ScriptParseError) as err:
        parse_script("[Walk] <kitchen> (1)\n\n[Grab] cup\n", source="plan.txt")
    assert err.value.line_number == 3 and str(err.value).startswith("plan.txt:3: ")


def test_format_script_is_the_inverse_of_parse_script():
    text = "[Walk] <kitchen> (1)\n[Grab] <cup> (2)\n"
    assert format_script(parse_script(text)) == text


def test_read_script_accepts_robothow_program_files(tmp_path):
    path = tmp_path / "file1_1.txt"
    path.write_text("Drink\nI drink water\n\n\n[WALK] <dining_room> (1.201)\n[GRAB] <cup> (1.1000)\n")
    program = read_script(path)
    assert program.title == "Drink" and program.description == "I drink water"
    assert [line.node_ids for line in program.lines] == [(201,), (1000,)]


def test_read_script_errors_name_file_and_line(tmp_path):
    path = tmp_path / "plan.txt"
    path.write_text("[Walk] <kitchen> (1)\n[Grab <cup> (2)\n")
    with pytest.raises(ScriptParseError, match=r"plan.txt:2: not a script line"):
        read_script(path)
    with pytest.raises(ScriptParseError, match="cannot read the script"):
        read_script(tmp_path / "missing.txt")
