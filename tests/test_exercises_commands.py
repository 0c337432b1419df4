"""`tinyformer exercises predict`, `solution` and `draw`, and what `list` shows of them, on a
real workspace in tmp_path (as tests/test_cli_exercises.py does for the other commands)."""

import json
import re
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from full_disk import files_limited_to
from solutions import write_solved

from tinyformer_cli import main
from tinyformer.exercises import exercises, find
from tinyformer.exercises.catalogue import CHAPTERS, question
from tinyformer.exercises.runner import _TOKEN, same_output
from tinyformer.exercises.workspace import PROGRESS_LOCK, STATE_DIR, Workspace, held_lock


def run(*args, input=None):
    return CliRunner().invoke(main, ["exercises", *map(str, args)], input=input)


def assert_input_error(result, *words):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    assert run("init", tmp_path / "course").exit_code == 0
    monkeypatch.chdir(tmp_path / "course")
    return tmp_path / "course"


def progress(workspace):
    return json.loads((workspace / STATE_DIR / "progress.json").read_text())


def listed_line(text, slug):
    return next(line for line in text.splitlines() if f" {slug} " in line)


# -- predict ----------------------------------------------------------------------------------

def test_predict_shows_the_code_runs_it_and_judges_a_typed_prediction(workspace):
    result = run("predict", 4, input="6.0\n12.0\n\n")
    assert result.exit_code == 0, result.output
    assert "Chapter 4, Autograd by hand: what will this print?" in result.output
    assert "    (a * a).backward()" in result.output             # the code, indented
    assert result.output.index("(a * a).backward()") < result.output.index("It printed:")
    assert "Right." in result.output
    assert " ".join(question(4).why.split()) in " ".join(result.output.split())
    assert progress(workspace)["predictions"] == {
        "04_autograd": {"answer": "6.0\n12.0", "right": True}}
    heading = next(line for line in run("list").output.splitlines() if "Autograd by" in line)
    assert "(prediction: right)" in heading


def test_the_course_shows_predicts_question_as_it_is_asked(workspace):
    # The course's "Predict, then run" quotes chapter 4's question, from the command to the
    # prompt for an answer: no test compared it with what predict prints.
    page = (Path(__file__).resolve().parent.parent / "docs" / "course.md").read_text()
    command, shown = re.search(r"```\n\$ tinyformer exercises (predict \d+)\n(.*?)```", page,
                               re.S).groups()
    result = run(*command.split(), input="6.0\n12.0\n\n")
    assert result.exit_code == 0 and result.output.startswith(shown), result.output


def test_a_wrong_prediction_is_shown_beside_the_output(workspace):
    result = run("predict", "04_autograd", "--answer", "6.0 6.0")
    assert result.exit_code == 0
    row = next(line for line in result.output.splitlines() if line.startswith("  6.0"))
    assert row.split() == ["6.0", "6.0", "6.0"]               # yours, then what it printed
    assert "Not quite." in result.output
    assert progress(workspace)["predictions"]["04_autograd"]["right"] is False
    heading = next(line for line in run("list").output.splitlines() if "Autograd by" in line)
    assert "(prediction: wrong)" in heading


def test_predict_without_a_chapter_asks_the_next_unfinished_exercises_chapter(workspace):
    write_solved(exercises()[0], workspace / exercises()[0].file)
    assert "Chapter 1," in run("predict", "--answer", "1").output
    for ex in exercises()[:3]:                                 # chapter 1 done
        write_solved(ex, workspace / ex.file)
        assert run("check", ex.number).exit_code == 0
    assert "Chapter 2," in run("predict", "--answer", "1").output


def test_predict_works_outside_a_workspace_and_remembers_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("predict", 1, "--answer", "[[5 6] [1 2]]")
    assert result.exit_code == 0 and "Right." in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, words", [
    (["predict", 16, "--answer", "x"], ["no chapter '16'", "1 to 15"]),
    (["predict", 4, "--answer", "  "], ["no prediction given"]),
])
def test_predict_input_errors(workspace, args, words):
    assert_input_error(run(*args), *words)


def test_no_help_gives_away_a_chapters_prediction():
    # predict's help once showed `--answer "6.0 12.0"`: chapter 4's question, answered.
    helps = " ".join(run(*command, "--help").output for command in
                     [[], *([name] for name in main.commands["exercises"].commands)])
    words = _TOKEN.findall(helps)
    for chapter in range(1, len(CHAPTERS) + 1):
        answer = _TOKEN.findall(question(chapter).output)
        for start in range(len(words) - len(answer) + 1):
            window = " ".join(words[start:start + len(answer)])
            assert not same_output(window, question(chapter).output), (chapter, window)


def test_an_empty_typed_prediction_is_an_input_error(workspace):
    assert_input_error(run("predict", 4, input="\n"), "no prediction given")


# -- solution ---------------------------------------------------------------------------------

def test_solution_asks_first_and_shows_nothing_on_no(workspace):
    ex = find("scalar_engine")
    result = run("solution", ex.number, input="n\n")
    assert result.exit_code == 0
    assert "Show the reference solution?" in result.output and "Not shown." in result.output
    assert "def backward(self):" not in result.output
    assert progress(workspace)["solutions"] == []
    assert "[solution shown]" not in run("list").output


def test_solution_on_yes_shows_it_remembers_it_and_list_marks_it(workspace):
    ex = find("scalar_engine")
    result = run("solution", "scalar_engine", input="y\n")
    assert result.exit_code == 0
    assert ex.solution.read_text().rstrip() in result.output
    assert f"replace the TODO ones in {ex.file}" in result.output
    assert progress(workspace)["solutions"] == ["scalar_engine"]
    listed = run("list").output
    assert "[solution shown]" in listed_line(listed, "scalar_engine")
    assert "[solution shown]" not in listed_line(listed, "one_hot")
    run("solution", ex.number, "--yes")                        # remembered once
    assert progress(workspace)["solutions"] == ["scalar_engine"]


def test_solution_with_yes_does_not_ask(workspace):
    result = run("solution", 1, "--yes")
    assert result.exit_code == 0 and "Show the reference solution?" not in result.output
    assert find("one_hot").solution.read_text().rstrip() in result.output


def test_progress_that_cannot_be_saved_leaves_the_old_file_and_no_other(workspace):
    state = workspace / STATE_DIR
    before = (state / "progress.json").read_bytes()
    with files_limited_to(len(before) - 1):                 # the disk fills up
        result = run("solution", 1, "--yes")
    # Shown all the same, as check's outcomes are, with a note saying why it is not kept.
    assert result.exit_code == 0 and find("one_hot").solution.read_text().rstrip() in \
        result.stdout, result.output
    assert result.stderr.startswith("Note: the solution is shown, but the progress was not "
                                    "saved") and "progress.json" in result.stderr
    assert (state / "progress.json").read_bytes() == before
    assert sorted(p.name for p in state.iterdir()) == ["progress.json", "progress.lock"]


def test_two_commands_on_one_workspace_keep_each_others_changes(workspace):
    # `watch` keeps the workspace it opened; a `hint` taken meanwhile in another terminal was
    # undone at watch's next check, which wrote back the progress it had read at its start.
    watching, hinting = Workspace.load(workspace), Workspace.load(workspace)
    hinting.take_hint(find("one_hot"))
    watching.record(find("one_hot"), "its hash")
    assert progress(workspace)["hints"] == {"one_hot": 1}
    assert progress(workspace)["passed"] == {"one_hot": "its hash"}


def test_a_change_to_the_progress_waits_for_another_in_progress(workspace):
    # Checks a script ran side by side (`make -j`) each wrote the progress as it was before
    # the others' passes: all but one were lost.
    recording = threading.Thread(target=Workspace.load(workspace).record,
                                 args=(find("one_hot"), "its hash"))
    with held_lock(workspace / STATE_DIR / PROGRESS_LOCK):    # another command's change
        recording.start()
        recording.join(0.2)
        assert recording.is_alive() and progress(workspace)["passed"] == {}
    recording.join()
    assert progress(workspace)["passed"] == {"one_hot": "its hash"}


def test_solution_without_an_answer_to_the_question_shows_nothing(workspace):
    result = run("solution", 1)                                # no input at all: end of file
    assert result.exit_code == 0 and "Not shown." in result.output
    assert progress(workspace)["solutions"] == []
    result = run("solution", 1, input="\n")                   # Enter takes the N of [y/N]
    assert result.exit_code == 0 and "Not shown." in result.output
    assert progress(workspace)["solutions"] == []


def test_a_workspace_from_before_these_commands_still_loads(workspace):
    path = workspace / STATE_DIR / "progress.json"
    path.write_text(json.dumps({"version": 1, "passed": {}, "hints": {}}))
    assert run("solution", 1, "--yes").exit_code == 0
    assert progress(workspace)["solutions"] == ["one_hot"]


def test_a_progress_file_with_a_damaged_new_key_is_said_to_be_damaged(workspace):
    path = workspace / STATE_DIR / "progress.json"
    path.write_text(json.dumps({"version": 1, "passed": {}, "hints": {}, "solutions": {}}))
    result = run("list")
    assert result.exit_code == 0, result.output
    assert "progress.json is damaged" in result.stderr and "delete it" in result.stderr


def test_reset_on_a_full_disk_leaves_the_learners_file_as_it_was(workspace):
    """reset keeps the learner's version aside, then writes the fresh copy: a disk full by
    then leaves their file whole (not the fresh copy's first part), and the error names it,
    not the course's own copy inside tinyformer."""
    ex = find("one_hot")
    mine = "x = 1  # my work so far\n"
    (workspace / ex.file).write_text(mine)
    with files_limited_to(len(mine) + 10):           # the backup fits, the fresh copy not
        result = run("reset", ex.number)
    assert_input_error(result, f"{workspace / ex.file}: file too large")
    assert (workspace / ex.file).read_text() == mine
    assert run("reset", ex.number).exit_code == 0                   # once there is room
    assert (workspace / ex.file).read_bytes() == ex.source.read_bytes()


def test_reset_on_a_disk_full_before_the_backup_is_written_leaves_no_part_of_one(workspace):
    """The backup of the learner's file fails part way: no half of it is left in
    .tinyformer/backups/ (where a later look would take it for their work), and their file is
    as it was."""
    ex = find("one_hot")
    mine = "x = 1  # my work so far\n" * 10
    (workspace / ex.file).write_text(mine)
    with files_limited_to(len(mine) // 2):            # not even the backup fits
        result = run("reset", ex.number)
    assert_input_error(result, f"{workspace / STATE_DIR / 'backups'}", "file too large")
    assert [p for p in (workspace / STATE_DIR / "backups").rglob("*") if not p.is_dir()] == []
    assert (workspace / ex.file).read_text() == mine


def test_init_on_a_full_disk_names_the_file_it_could_not_write_and_leaves_nothing(tmp_path):
    with files_limited_to(100):
        result = run("init", tmp_path / "course")
    assert_input_error(result, f"{tmp_path / 'course'}", "file too large")
    assert not (tmp_path / "course").exists()
