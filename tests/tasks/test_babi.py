"""The bAbI text-format reader."""

from __future__ import annotations

import pytest

from e2wm.tasks.babi import BabiFormatError, parse_babi, read_babi

SAMPLE = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Daniel went back to the hallway.
5 Where is Daniel? \thallway\t4
1 Sandra travelled to the office.
2 Where is Sandra? \toffice\t1
"""


def test_stories_questions_answers_and_supporting_facts(tmp_path):
    path = tmp_path / "qa1_single-supporting-fact_test.txt"
    path.write_text(SAMPLE)
    examples = read_babi(path)
    assert len(examples) == 3
    first, second, third = examples
    assert first["story"] == "Mary moved to the bathroom. John went to the hallway."
    assert first["prompt"] == "Mary moved to the bathroom. John went to the hallway.\nQuestion: Where is Mary?\nAnswer:"
    assert first["completion"] == " bathroom" and first["supporting_facts"] == ["Mary moved to the bathroom."]
    assert second["story"].endswith("Daniel went back to the hallway.") and second["answer"] == "hallway"
    assert third["story"] == "Sandra travelled to the office.", "a new story starts at line 1"
    assert {e["task"] for e in examples} == {"qa1_single-supporting-fact_test"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Mary moved.\n", ":1: expected '<number> <text>'"),
        ("1 Mary moved.\n3 John left.\n2 Where? \tx\t1\n", ":3: line number 2 follows 3"),
        ("1 Mary moved.\n2 Where is Mary?\t\t1\n", ":2: a question line needs"),
        ("1 Mary moved.\n2 Where is Mary?\tbathroom\tone\n", ":2: supporting facts must be line numbers"),
        ("1 Mary moved.\n2 Where is Mary?\tbathroom\t7\n", ":2: supporting fact(s) [7]"),
    ],
)
def test_malformed_lines_name_the_line(text, message):
    with pytest.raises(BabiFormatError) as err:
        parse_babi(text, source="f.txt")
    assert message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(BabiFormatError, match="cannot read the file"):
        read_babi(tmp_path / "nope.txt")
