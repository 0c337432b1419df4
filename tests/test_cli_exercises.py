"""`tinyformer exercises`: the runner a learner works with (init, list, show, hint, check,
watch, reset), on a real workspace in tmp_path. Checks run in a subprocess, as for a learner."""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from command_lines import commands
from solutions import solution_text, write_solved

from tinyformer_cli import example_lines, main
from tinyformer.exercises import catalogue, exercises, find, run_check, runner
from tinyformer.exercises import workspace as workspace_module
from tinyformer.exercises.checking import CheckFailure, load_learner_file
from tinyformer.exercises.workspace import STATE_DIR, Workspace, WorkspaceError

FIRST = exercises()[0]


def run(*args):
    return CliRunner().invoke(main, ["exercises", *map(str, args)])


def snapshot(directory):
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in Path(directory).rglob("*") if p.is_file()}


def assert_input_error(result, *words):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh workspace, with the current directory inside it."""
    assert run("init", tmp_path / "course").exit_code == 0
    monkeypatch.chdir(tmp_path / "course")
    return tmp_path / "course"


def solve(workspace, ex):
    """Write the exercise with its reference solution into the workspace."""
    write_solved(ex, workspace / ex.file)


def progress(workspace):
    return json.loads((workspace / STATE_DIR / "progress.json").read_text())


# -- init -------------------------------------------------------------------------------------

def test_init_copies_every_exercise_and_says_where_to_start(tmp_path):
    result = run("init", tmp_path / "course")
    assert result.exit_code == 0, result.output
    for ex in exercises():
        assert (tmp_path / "course" / ex.file).read_bytes() == ex.source.read_bytes()
    assert "tinyformer exercises show 1" in result.output
    readme = (tmp_path / "course" / "README.md").read_text()
    assert "tinyformer exercises check" in readme and FIRST.slug in readme
    assert progress(tmp_path / "course")["passed"] == {}


@pytest.mark.parametrize("name, cd_to", [("my course", "my course"),
                                         ("-course", "./-course"),
                                         ("it's", "it's")])
def test_init_says_a_cd_that_a_shell_reads_back(tmp_path, monkeypatch, name, cd_to):
    # The line was `cd my course` (two words to a shell) and `cd -course` (options to cd).
    monkeypatch.chdir(tmp_path)
    result = run("init", "--", name)
    assert result.exit_code == 0, result.output
    cd_line = next(line for line in result.output.splitlines() if line.strip().startswith("cd "))
    assert shlex.split(cd_line) == ["cd", cd_to]


def test_an_init_that_fails_midway_leaves_no_half_made_workspace(tmp_path, monkeypatch):
    def disk_full(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(workspace_module.shutil, "copyfile", disk_full)
    (tmp_path / "empty").mkdir()
    for place in ("new", "empty"):
        with pytest.raises(OSError, match="No space left"):
            workspace_module.init_workspace(tmp_path / place)
    assert not (tmp_path / "new").exists()                  # made by init: gone again
    assert list((tmp_path / "empty").iterdir()) == []       # the learner's own: kept, empty


def test_every_example_in_the_exercises_help_runs_in_a_fresh_workspace(workspace, monkeypatch):
    """As a learner copies them, in a workspace just made (my-course is it): none is refused;
    a check or a picture of the starter code does not pass yet (3). init's run in test_cli;
    watch stops after its first check here. The checks' own processes are the tests' below
    (`check --all` starts one for each exercise, twice here: 10 s of the suite)."""
    fake_checks(monkeypatch, 2, lambda ex: (f"{ex.slug} does not pass yet", ""))
    ran = set()
    for line in dict.fromkeys(line for _, command in commands(main.commands["exercises"])
                              for line in example_lines(command.epilog or "")):
        words = [str(workspace) if word == "my-course" else word
                 for word in shlex.split(line)[2:]]
        if words[0] == "init":
            continue
        result = run(*words, *(["--max-checks", 1] if words[0] == "watch" else []))
        assert result.exit_code in (0, 3), (line, result.output)
        ran.add(words[0])
    assert ran == set(main.commands["exercises"].commands) - {"init"}


def test_init_refuses_a_directory_with_files_and_changes_nothing(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    assert_input_error(run("init", tmp_path / "mine"), "not empty")
    assert snapshot(tmp_path) == before


def test_init_inside_a_file_says_which_file_and_what_to_give(tmp_path):
    # mkdir said only "not a directory", naming neither the file nor what to do.
    (tmp_path / "afile.txt").write_text("keep me")
    before = snapshot(tmp_path)
    assert_input_error(run("init", tmp_path / "afile.txt" / "x"),
                       f"{str(tmp_path / 'afile.txt')!r} is a file, not a directory; give a "
                       f"path for the new workspace that no file is part of")
    assert snapshot(tmp_path) == before


def test_init_refuses_an_existing_workspace(workspace):
    before = snapshot(workspace)
    assert_input_error(run("init", workspace), "already an exercise workspace", "reset")
    assert snapshot(workspace) == before


@pytest.mark.parametrize("place, words", [
    ("new", ["is not an exercise workspace", "`tinyformer exercises init {dir}`"]),
    ("a-file", ["is a file, not an exercise workspace"]),
    ("full", ["is not an exercise workspace", "in a new folder", "init DIR"]),
    ("handed-in", ["holds exercise files but no .tinyformer folder",
                   f"make an empty one: `mkdir {{dir}}{os.sep}{STATE_DIR}`"]),
])
def test_a_workspace_option_that_is_not_one_gets_advice_that_works(tmp_path, place, words):
    (tmp_path / "a-file").write_text("mine")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    # A student's workspace as a teacher may get it: copied without its hidden folder.
    assert run("init", tmp_path / "handed-in").exit_code == 0
    shutil.rmtree(tmp_path / "handed-in" / STATE_DIR)
    target = tmp_path / place
    assert_input_error(run("list", "-w", target), *[w.format(dir=target) for w in words])
    if place == "new":                                     # the advice, followed, works
        assert run("init", target).exit_code == 0 and run("list", "-w", target).exit_code == 0
    if place == "handed-in":
        (target / STATE_DIR).mkdir()
        assert run("list", "-w", target).exit_code == 0


@pytest.mark.parametrize("name", ["handed in", "-handed-in", "jo's"])
def test_the_mkdir_a_workspace_without_its_folder_is_told_runs_in_a_shell(tmp_path,
                                                                          monkeypatch, name):
    # It was `mkdir handed in/.tinyformer`: two folders to a shell, "handed" and a failure.
    monkeypatch.chdir(tmp_path)
    assert run("init", "--", name).exit_code == 0
    shutil.rmtree(tmp_path / name / STATE_DIR)
    refused = run("list", "-w", name)
    assert refused.exit_code == 2
    advised = re.search(r"make an empty one: `(mkdir [^`]*)`", refused.stderr).group(1)
    subprocess.run(["bash", "-c", advised], check=True, cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert run("list", "-w", name).exit_code == 0


# -- list, show, hint --------------------------------------------------------------------------

def test_list_shows_every_exercise_by_chapter_done_or_not(workspace):
    result = run("list")
    assert result.exit_code == 0
    for ex in exercises():
        assert ex.slug in result.output
    assert "0 of" in result.output and "not done" in result.output
    solve(workspace, FIRST)
    assert run("check", 1).exit_code == 0
    line = next(li for li in run("list").output.splitlines() if FIRST.slug in li)
    assert "done" in line and "not done" not in line
    (workspace / FIRST.file).write_text((workspace / FIRST.file).read_text() + "\n# later\n")
    line = next(li for li in run("list").output.splitlines() if FIRST.slug in li)
    assert "edited" in line


def test_list_outside_a_workspace_shows_the_course(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("list")
    assert result.exit_code == 0 and FIRST.slug in result.output
    assert "tinyformer exercises init" in result.output


def test_show_prints_the_explanation_by_number_or_name(workspace):
    by_number, by_name = run("show", 1), run("show", FIRST.slug)
    assert by_number.exit_code == 0 and by_number.output == by_name.output
    assert f"tinyformer exercises check {FIRST.slug}" in by_number.output
    assert str(workspace / FIRST.file) in by_number.output
    title = FIRST.source.read_text().splitlines()[0].strip('"')
    assert f"\n{title}\n" not in by_number.output          # the title: in the heading only


@pytest.mark.parametrize("name", ["0", "9999", "no_such_exercise"])
def test_show_an_unknown_exercise_is_an_input_error(workspace, name):
    assert_input_error(run("show", name), "exercises list")


@pytest.mark.parametrize("name, meant", [
    ("one_hto", "(did you mean one_hot?)"),                             # a slip
    ("one-hot", "(did you mean one_hot?)"),                             # a dash
    ("01_vectors/one_hot.py", "(did you mean one_hot?)"),               # the file
    ("Embedding", "(did you mean embedding?)"),
    ("dot", "(did you mean dot_and_matmul or scaled_dot_product?)"),    # a part of the name
])
@pytest.mark.parametrize("command", ["show", "check"])
def test_a_name_near_an_exercise_s_is_suggested(workspace, command, name, meant):
    assert_input_error(run(command, name), f"no exercise called {name!r} {meant}",
                       "exercises list")


def test_the_commands_advised_name_the_program_as_it_was_run(tmp_path, monkeypatch):
    # From a clone, `python cli.py exercises ...` was told to run `tinyformer exercises ...`,
    # which is not installed there; `show` printed it from the lesson's last line.
    def run_as(*args):
        return CliRunner().invoke(main, ["exercises", *map(str, args)], prog_name="python cli.py")
    monkeypatch.chdir(tmp_path)
    results = [run_as("list"), run_as("show", 1), run_as("show", "no_such_exercise"),
               run_as("show", 9999), run_as("predict", "no_chapter"),
               run_as("list", "-w", tmp_path / "new"), run_as("init", tmp_path / "course")]
    monkeypatch.chdir(tmp_path / "course")
    results += [run_as("init", "."), run_as("check", 1)]
    # The messages of a check and a drawing are written in a process of their own, which
    # named the program `tinyformer` beside the runner's own `python cli.py` hint.
    (tmp_path / "course" / find(1).file).write_text("")
    lookup = tmp_path / "course" / find(3).file
    lookup.write_text(lookup.read_text().replace("raise NotImplementedError",
                                                 "return np.zeros((1, 1))"))
    results += [run_as("check", 1), run_as("draw", 3, "--out", tmp_path / "lookup.png")]
    for result in results:
        assert "python cli.py exercises " in result.output, result.output
        assert "tinyformer exercises " not in result.output, result.output


def test_the_commands_advised_by_python_cli_py_run_where_they_are_typed(tmp_path):
    # From a clone, init said `cd course` and then `python cli.py exercises show 1`, and every
    # message inside the workspace said `python cli.py ...`: there, no cli.py is to be found.
    cli_py = str(Path(__file__).resolve().parent.parent / "cli.py")

    def typed(words, cwd):
        return subprocess.run([sys.executable, *shlex.split(words)[1:]] if words.startswith(
            "python ") else shlex.split(words), cwd=cwd, capture_output=True, text=True)
    made = subprocess.run([sys.executable, cli_py, "exercises", "init", "course"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    cd, show = (line.strip().split("  ")[0] for line in made.stdout.splitlines()[1:3])
    assert cd == "cd course"
    workspace = tmp_path / "course"
    assert typed(show, workspace).returncode == 0, show
    checked = typed(f"python {shlex.quote(cli_py)} exercises check", workspace)
    hint = re.search(r"\(a hint: (.*)\)", checked.stdout)[1]
    assert typed(hint, workspace).stdout.startswith("Hint 1 of "), hint


@pytest.mark.parametrize("command", ["show", "hint", "check", "solution", "draw", "reset"])
@pytest.mark.parametrize("number", ["-1", "-15"])
def test_a_negative_number_is_no_exercise_not_an_unknown_option(workspace, command, number):
    # Click names an unknown short option by its first character alone ('-1' of '-15'): the
    # message quotes the number as it was typed.
    assert_input_error(run(command, "-w", workspace, number), f"no exercise {number}:",
                       f"numbered 1 to {len(exercises())}")
    assert_input_error(run("predict", number), f"no chapter '{number}'", "a number from 1 to")



@pytest.mark.parametrize("args", [["show", "1"], ["show", "-1"], ["predict", "1"]])
def test_a_value_error_from_finding_an_exercise_is_a_bug_of_ours_not_the_learners(
        tmp_path, monkeypatch, args):
    """No such exercise or chapter is the learner's input (exit 2); a ValueError from the
    finding itself is ours (exit 1), where it was said as the learner's bad input."""
    monkeypatch.chdir(tmp_path)
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")
    with monkeypatch.context() as deep_inside_the_finding:
        deep_inside_the_finding.setattr(catalogue, "exercises", broken)
        deep_inside_the_finding.setattr(runner, "find_chapter", broken)
        result = run(*args)
    assert result.exit_code == 1, result.output
    assert "internal error (ValueError: operands" in result.stderr
    refused = {"show": "no exercise", "predict": "no chapter"}[args[0]]
    assert_input_error(run(args[0], {"1": "9999", "-1": "-1"}[args[1]]), refused)

def test_show_and_hint_without_n_take_the_next_unfinished_exercise(workspace, monkeypatch):
    # Both said only "Missing argument 'N'.", where `check` without N checks the next one.
    following = exercises()[1]
    monkeypatch.setattr(workspace_module.Workspace, "next_unfinished", lambda self: following)
    shown = run("show")
    assert shown.exit_code == 0 and shown.output == run("show", following.number).output
    hinted = run("hint")
    assert hinted.exit_code == 0, hinted.output
    assert f"Hint 1 of {len(following.hints)}: {following.hints[0]}" in hinted.output
    assert progress(workspace)["hints"] == {following.slug: 1}


def test_show_without_n_outside_a_workspace_shows_the_first_exercise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("show")
    assert result.exit_code == 0 and result.output == run("show", 1).output


def test_show_and_hint_without_n_once_all_pass_say_how_to_name_one(workspace, monkeypatch):
    monkeypatch.setattr(workspace_module.Workspace, "next_unfinished", lambda self: None)
    for command in ("show", "hint"):
        assert_input_error(run(command), f"all {len(exercises())} exercises pass",
                           f"`tinyformer exercises {command} N`", "`tinyformer exercises list`")


@pytest.mark.parametrize("command", ["reset", "solution", "draw"])
def test_a_command_missing_its_n_says_how_to_find_one(workspace, command):
    assert_input_error(run(command), "Missing argument 'N'", "`tinyformer exercises list` lists",
                       f"For example: `tinyformer exercises {command} ")


def test_each_hint_call_shows_one_more_hint(workspace):
    n = len(FIRST.hints)
    for shown in range(1, n + 2):
        result = run("hint", 1)
        assert result.exit_code == 0
        assert result.output.count("Hint ") == min(shown, n)
        assert ("that was the last hint" in result.output) == (shown >= n)
    assert FIRST.hints[-1] in result.output and "exercises solution 1" in result.output
    asked = run("solution", 1)                        # no answer to its question: not shown
    assert f"You have seen {n} of its {n} hints" in asked.output


def test_reset_starts_the_hints_again(workspace):
    run("hint", 1)
    run("hint", 1)
    assert run("reset", 1).exit_code == 0
    assert run("hint", 1).output.count("Hint ") == 1


# -- check ------------------------------------------------------------------------------------

def test_check_goes_to_the_next_unfinished_exercise_and_says_what_is_wrong(workspace):
    result = run("check")
    assert result.exit_code == 3
    assert f"FAIL 1 {FIRST.slug}" in result.output and "not written yet" in result.output
    solve(workspace, FIRST)
    result = run("check")
    assert result.exit_code == 0 and f"PASS 1 {FIRST.slug}" in result.output
    second = exercises()[1] if len(exercises()) > 1 else None
    if second is not None:
        assert f"Next: 2 {second.slug}" in result.output
        assert "FAIL 2" in run("check").output       # the next unfinished one now
    assert FIRST.slug in progress(workspace)["passed"]
    with open(workspace / FIRST.file, "a") as f:
        f.write("# changed since it passed\n")
    assert f"PASS 1 {FIRST.slug}" in run("check").output     # edited: not done, so first again


def test_a_wrong_answer_is_reported_with_the_call_and_the_worst_element(workspace):
    path = workspace / "01_vectors" / "one_hot.py"
    path.write_text(path.read_text().replace(
        "    raise NotImplementedError",
        "    out = np.zeros((len(ids), vocab_size), dtype=np.float32)\n"
        "    out[np.arange(len(ids)), vocab_size - 1 - np.asarray(ids)] = 1.0\n"
        "    return out"))
    result = run("check", "one_hot")
    assert result.exit_code == 3
    assert "one_hot(ids=[2, 0, 3], vocab_size=4) returned a wrong value" in result.output
    assert "at [0, 1]: expected 0, got 1" in result.output


def test_check_all_reports_one_line_per_exercise(workspace, monkeypatch):
    """The real checks, each in its own process, two at a time: a course of three exercises,
    the first solved, the first and last of the rest untouched. (Every exercise of the course
    cost a process, six seconds; that `check --all` takes each exercise of the catalogue is
    the faked checks' tests' to see, and that each untouched file fails its check is
    test_exercises.py's.)"""
    course = [FIRST, exercises()[1], exercises()[-1]]
    monkeypatch.setattr(runner, "exercises", lambda: course)
    monkeypatch.setattr(workspace_module, "usable_cores", lambda: 2)
    solve(workspace, FIRST)
    result = run("check", "--all")
    assert [line.split(" (")[0] for line in result.output.splitlines()
            if line.startswith(("PASS ", "FAIL "))] == [
        f"PASS 1 {FIRST.slug}", f"FAIL 2 {course[1].slug}",
        f"FAIL {course[2].number} {course[2].slug}"]
    assert "1 of 3 pass" in result.output
    assert result.exit_code == 3
    result = run("check", "one_hot", "--all")                # which did the user mean?
    assert result.exit_code == 2 and "give an exercise N or --all, not both" in result.output


def test_check_all_says_the_first_line_of_each_failure_cut_to_the_terminal(workspace,
                                                                           monkeypatch):
    """One run tells where each exercise stands, without `check N` for each failure."""
    def check(ex):
        if ex.number == 2:
            return "x" * 300 + "\n  the second line", ""
        return (None if ex == FIRST else f"{ex.slug} is wrong\n  at [0]: expected 1"), ""

    fake_checks(monkeypatch, 2, check)
    monkeypatch.setenv("COLUMNS", "60")
    lines = run("check", "--all").output.splitlines()
    assert lines[:6] == [f"PASS 1 {FIRST.slug} ({FIRST.file})",
                         f"FAIL 2 {exercises()[1].slug} ({exercises()[1].file})",
                         "  " + "x" * 54 + "...",
                         f"FAIL 3 {exercises()[2].slug} ({exercises()[2].file})",
                         f"  {exercises()[2].slug} is wrong",
                         f"FAIL 4 {exercises()[3].slug} ({exercises()[3].file})"]
    assert all(len(line) < 60 for line in lines if line.startswith("  "))
    assert "the second line" not in "\n".join(lines)


def test_check_json_prints_one_object_for_a_grading_script(workspace, monkeypatch):
    """--json: nothing but the object on stdout, the exit status as without it."""
    fake_checks(monkeypatch, 2, lambda ex: (None if ex.number < 3 else f"{ex.slug} is wrong",
                                            "what the code printed"))
    result = run("check", "--all", "--json")
    assert result.exit_code == 3, result.output
    graded = json.loads(result.stdout)
    assert graded["workspace"] == str(workspace)
    assert [(e["number"], e["name"], e["passed"], e["reason"]) for e in graded["exercises"]] \
        == [(ex.number, ex.slug, ex.number < 3, None if ex.number < 3 else f"{ex.slug} is wrong")
            for ex in exercises()]
    assert all(e["seconds"] >= 0 for e in graded["exercises"])
    assert (graded["passed"], graded["total"]) == (2, len(exercises()))

    one = run("check", 2, "--json")
    assert one.exit_code == 0, one.output
    [checked] = json.loads(one.stdout)["exercises"]
    assert (checked["number"], checked["passed"], json.loads(one.stdout)["total"]) == (2, True, 1)
    assert run("check", "--all", "--json").exit_code == 3
    fake_checks(monkeypatch, 2, lambda ex: (None, ""))
    assert run("check", "--all", "--json").exit_code == 0


def test_check_json_runs_the_real_check_and_times_it(workspace):
    solve(workspace, FIRST)
    result = run("check", 1, "--json")
    assert result.exit_code == 0, result.output
    [checked] = json.loads(result.stdout)["exercises"]
    assert checked["passed"] and checked["reason"] is None and checked["seconds"] > 0


def test_the_course_shows_the_json_a_grading_script_gets(workspace, monkeypatch):
    """The course's grading section names the keys --json really prints."""
    fake_checks(monkeypatch, 2, lambda ex: (None, ""))
    graded = json.loads(run("check", 1, "--json").stdout)
    keys = set(graded) | set(graded["exercises"][0])
    page = (Path(__file__).parent.parent / "docs" / "course.md").read_text()
    shown = page.split("$ tinyformer exercises check --all --json")[1].split("```")[0]
    assert set(re.findall(r'"(\w+)":', shown)) == keys


def test_the_course_shows_what_the_check_of_its_slip_prints(workspace, monkeypatch):
    # The course's "What a failing check tells you" quotes exercise 15's check of a backward
    # written with a slip, word for word: what `check 15` prints of that slip today.
    page = (Path(__file__).parent.parent / "docs" / "course.md").read_text()
    slip = re.search(r"the embedding's backward\s+written\s+as\s+`([^`]+)`", page).group(1)
    command, shown = re.search(r"```\n\$ tinyformer exercises (check 15)\n(.*?)```", page,
                               re.S).groups()
    ex = find("embedding")
    right = "np.add.at(table_grad, ctx.ids, grad)"
    assert right in solution_text(ex)
    write_solved(ex, workspace / ex.file, solution_text(ex).replace(right, slip))
    monkeypatch.setattr(workspace_module, "check_in_subprocess",     # the same check, at once
                        lambda ex, path, timeout: (run_check(ex, path), ""))
    result = run(*command.split())
    assert result.exit_code == 3 and result.stdout == shown


def fake_checks(monkeypatch, cores, check):
    """`check(ex)` -> (message, printed) in place of the subprocess; `cores` cores."""
    monkeypatch.setattr(workspace_module, "usable_cores", lambda: cores)
    monkeypatch.setattr(workspace_module, "check_in_subprocess",
                        lambda ex, path, timeout: check(ex))


def test_a_check_is_stopped_after_the_timeout_the_course_gives_as_the_default(workspace,
                                                                             monkeypatch):
    # docs/course.md: "A check is stopped after `--timeout` seconds (120 by default ...)".
    given = []
    monkeypatch.setattr(workspace_module, "check_in_subprocess",
                        lambda ex, path, timeout: given.append(timeout) or (None, ""))
    run("check", 1)
    run("check", 1, "--timeout", 30)
    assert given == [120, 30]


def test_the_checks_run_one_per_core_at_once_and_report_in_course_order(workspace, monkeypatch):
    together = threading.Barrier(2, timeout=20)     # broken unless two checks run at once

    def check(ex):
        if ex in exercises()[:2]:
            together.wait()
            time.sleep(0.2 if ex == FIRST else 0.0)     # the first finishes last
        return (None if ex == FIRST else f"{ex.slug} is wrong"), ""

    fake_checks(monkeypatch, 2, check)
    checked = list(Workspace.load(workspace).check_each(exercises()))
    assert [c.ex for c in checked] == exercises()
    assert [c.message for c in checked][:2] == [None, f"{exercises()[1].slug} is wrong"]
    assert list(progress(workspace)["passed"]) == [FIRST.slug]


def test_checks_stopped_early_start_no_more(workspace, monkeypatch):
    started, gate = [], threading.Event()

    def check(ex):                  # the second check is still running when the loop stops
        started.append(ex)
        if ex != FIRST:
            gate.wait(timeout=20)
        return "wrong", ""

    fake_checks(monkeypatch, 1, check)
    checks = Workspace.load(workspace).check_each(exercises())
    next(checks)
    threading.Timer(0.3, gate.set).start()          # lets the running check end
    checks.close()                                  # as Ctrl-C leaves the loop
    assert started in (exercises()[:1], exercises()[:2])     # the second may not have begun


def test_a_missing_file_is_said_before_any_check_starts(workspace, monkeypatch):
    """As `check N` does it: the file to check is not there, which is the input's fault."""
    started = []
    fake_checks(monkeypatch, 2, lambda ex: started.append(ex) or (None, ""))
    (workspace / exercises()[2].file).unlink()
    with pytest.raises(WorkspaceError, match="is missing; `tinyformer exercises reset 3`"):
        list(Workspace.load(workspace).check_each(exercises()))
    assert started == []
    assert_input_error(run("check", 3), "is missing; `tinyformer exercises reset 3`")
    # A grading script reads stdout: the object is there, the error in it, the status 2.
    result = run("check", 3, "--json")
    assert result.exit_code == 2, result.output
    graded = json.loads(result.stdout)
    assert "is missing; `tinyformer exercises reset 3`" in graded["error"]
    assert [(e["number"], e["passed"], e["reason"]) for e in graded["exercises"]] == \
        [(3, False, graded["error"])]
    assert (graded["workspace"], graded["passed"], graded["total"]) == (str(workspace), 0, 1)
    assert result.stderr == f"Error: {graded['error']}\n"


@pytest.mark.parametrize("args", [["check", "--json", "-w", "nowhere"], ["check", "--json"],
                                  ["check", "99", "--json"], ["check", "--all", "--json", "3"],
                                  ["check", "--json", "--timeout", "0"],
                                  ["check", "--json", "--bogus"], ["check", "--json", "-1"]])
def test_check_json_that_cannot_check_still_prints_its_object(tmp_path, monkeypatch, args):
    """No workspace, no such exercise, N and --all: the object, its error the one line."""
    monkeypatch.chdir(tmp_path)             # no workspace here
    if args[1:] != ["--json"]:
        assert run("init", tmp_path / "course").exit_code == 0
        monkeypatch.chdir(tmp_path / "course")
    result = run(*args)
    assert result.exit_code == 2, result.output
    graded = json.loads(result.stdout)
    assert graded["error"] and result.stderr.startswith(f"Error: {graded['error']}")
    assert graded["passed"] == 0 and graded["total"] == len(graded["exercises"]) <= 1


@pytest.mark.parametrize("where", [["-w", "student"], ["--workspace=student"], []])
def test_check_json_fails_the_exercise_asked_for_when_the_workspace_cannot_be_used(
        tmp_path, monkeypatch, where):
    # docs/course.md: exit 2 "when the workspace cannot be used ...: then --json still prints
    # its object, ... and the exercise asked for, if any, failed with that reason". Given by
    # -w, as the course's grading loop gives it, the object had no exercise at all.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "student").mkdir()                 # a folder that is no workspace
    monkeypatch.setenv("TINYFORMER_EXERCISES", "student")
    result = run("check", "3", "--json", *where)
    assert result.exit_code == 2, result.output
    graded = json.loads(result.stdout)
    assert "is not an exercise workspace" in graded["error"]
    assert [(e["number"], e["passed"], e["reason"]) for e in graded["exercises"]] == \
        [(3, False, graded["error"])]
    assert (graded["workspace"], graded["passed"], graded["total"]) == (None, 0, 1)


def test_check_all_fails_a_missing_or_unreadable_file_and_checks_the_rest(workspace,
                                                                          monkeypatch):
    """A teacher grading a class: one student's deleted file hides none of the rest."""
    started = []
    fake_checks(monkeypatch, 2, lambda ex: started.append(ex) or (None, ""))
    missing, unreadable = exercises()[2], exercises()[4]
    (workspace / missing.file).unlink()
    (workspace / unreadable.file).unlink()
    (workspace / unreadable.file).mkdir()           # a folder where the file was
    monkeypatch.setenv("COLUMNS", "400")
    result = run("check", "--all")
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    at = lines.index(f"FAIL 3 {missing.slug} ({missing.file})")
    assert lines[at + 1] == (f"  {workspace / missing.file} is missing; `tinyformer exercises "
                             f"reset 3` brings back a fresh copy")
    at = lines.index(f"FAIL 5 {unreadable.slug} ({unreadable.file})")
    assert lines[at + 1] == (f"  {workspace / unreadable.file} is a directory, not a regular "
                             f"file; put the file itself there, or `tinyformer exercises "
                             f"reset 5` puts a fresh copy in its place")
    assert f"{len(exercises()) - 2} of {len(exercises())} pass" in result.output
    assert sorted(ex.number for ex in started) == \
        [ex.number for ex in exercises() if ex not in (missing, unreadable)]
    # The advice works: reset puts a fresh file where the folder was, the folder kept aside.
    reset = run("reset", unreadable.number)
    assert reset.exit_code == 0, reset.output
    path = workspace / unreadable.file
    assert path.is_file() and path.read_bytes() == unreadable.source.read_bytes()


def pipe_that_ends(path, after=3.0):
    """A named pipe at `path`. Should something wait to read it, a writer comes `after`
    seconds and leaves at once (the reader sees an empty file), so that a test of code that
    should never open it fails instead of waiting forever."""
    os.mkfifo(path)

    def writer():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))     # no reader: nothing
        except OSError:
            pass
    threading.Timer(after, writer).start()


def test_check_all_fails_a_pipe_or_a_device_unread_and_checks_the_rest(workspace,
                                                                        monkeypatch):
    """A pipe would be waited on forever, a link to /dev/zero read until memory runs out
    (/dev/null stands for it here: it ends)."""
    started = []
    fake_checks(monkeypatch, 2, lambda ex: started.append(ex) or (None, ""))
    pipe, device = exercises()[2], exercises()[4]
    for ex in (pipe, device):
        (workspace / ex.file).unlink()
    pipe_that_ends(workspace / pipe.file)
    (workspace / device.file).symlink_to(os.devnull)
    result = run("check", "--all", "--json")
    assert result.exit_code == 3, result.output
    reasons = {outcome["number"]: outcome["reason"]
               for outcome in json.loads(result.stdout)["exercises"]}
    for ex, what in ((pipe, "a named pipe (FIFO)"),
                     (device, f"a link to {os.path.realpath(os.devnull)}, a device")):
        assert reasons[ex.number] == (f"{workspace / ex.file} is {what}, not a regular file; "
                                      f"put the file itself there, or `tinyformer exercises "
                                      f"reset {ex.number}` puts a fresh copy in its place")
    assert sorted(ex.number for ex in started) == \
        [ex.number for ex in exercises() if ex not in (pipe, device)]
    assert_input_error(run("check", device.number), "a device, not a regular file")
    # Passed once, then replaced: `list` shows them edited, without reading them.
    ours = Workspace.load(workspace)
    for ex in (pipe, device):
        ours.progress["passed"][ex.slug] = "0" * 64
    ours.save()
    result = run("list")
    assert result.exit_code == 0, result.output
    for ex in (pipe, device):
        assert "edited" in next(li for li in result.output.splitlines() if ex.slug in li)


def test_list_shows_a_passed_exercise_whose_file_is_now_a_folder_as_edited(workspace):
    solve(workspace, FIRST)
    assert run("check", 1).exit_code == 0
    (workspace / FIRST.file).unlink()
    (workspace / FIRST.file).mkdir()
    result = run("list")
    assert result.exit_code == 0, result.output
    assert "edited" in next(li for li in result.output.splitlines() if FIRST.slug in li)


def test_list_shows_a_deleted_file_as_missing_with_the_reset_that_brings_it_back(workspace):
    # It showed a passed exercise whose file was deleted as "edited ... check it again", and
    # an unpassed one as "not done": a check of either only says the file is missing.
    solve(workspace, FIRST)
    assert run("check", 1).exit_code == 0
    for ex in (FIRST, exercises()[1]):
        (workspace / ex.file).unlink()
    result = run("list")
    assert result.exit_code == 0, result.output
    for ex in (FIRST, exercises()[1]):
        assert " missing " in next(li for li in result.output.splitlines() if ex.slug in li)
    assert "(missing: its file is gone; `tinyformer exercises reset 1` brings back a fresh " \
           "copy)" in result.output
    assert run("reset", 1).exit_code == 0
    assert "not done" in next(li for li in run("list").output.splitlines() if FIRST.slug in li)


def test_list_says_missing_where_check_does_of_a_link_to_nothing(workspace, tmp_path):
    # list showed such a file as "not done" (or "edited"), where check said it was missing.
    path = workspace / FIRST.file
    path.unlink()
    path.symlink_to(tmp_path / "moved.py")
    reset = "`tinyformer exercises reset 1` brings back a fresh copy"
    assert_input_error(run("check", 1), f"{path} is missing; {reset}")
    assert " missing " in next(li for li in run("list").output.splitlines() if FIRST.slug in li)
    assert run("reset", 1).exit_code == 0
    assert "not done" in next(li for li in run("list").output.splitlines() if FIRST.slug in li)


def test_reset_moves_a_pipe_or_a_device_aside_unread(workspace):
    for ex, make in ((exercises()[2], pipe_that_ends),
                     (exercises()[4], lambda path: path.symlink_to(os.devnull))):
        path = workspace / ex.file
        path.unlink()
        make(path)
        result = run("reset", ex.number)
        assert result.exit_code == 0, result.output
        assert path.is_file() and not path.is_symlink()
        assert path.read_bytes() == ex.source.read_bytes()
    assert os.path.samefile(next((workspace / STATE_DIR / "backups").rglob(
        f"{exercises()[4].slug}-*")), os.devnull)        # the link itself, kept


def test_reset_moves_a_link_aside_and_leaves_the_file_it_points_to(workspace, tmp_path):
    # It copied the fresh exercise through the link, over the learner's file elsewhere.
    elsewhere = tmp_path / "notes.py"
    elsewhere.write_text("MY NOTES")
    path = workspace / FIRST.file
    path.unlink()
    path.symlink_to(elsewhere)
    result = run("reset", FIRST.number)
    assert result.exit_code == 0, result.output
    assert elsewhere.read_text() == "MY NOTES"
    assert not path.is_symlink() and path.read_bytes() == FIRST.source.read_bytes()
    backup, = (workspace / STATE_DIR / "backups").rglob(f"{FIRST.slug}-*")
    assert backup.is_symlink() and os.path.samefile(backup, elsewhere)


def test_a_file_saved_during_its_passing_check_is_not_done(workspace, monkeypatch):
    """The check passed the file as it was when the check began: a version saved meanwhile
    is unchecked, so the exercise shows as edited, not done."""
    def check(ex):
        path = workspace / ex.file
        path.write_text(path.read_text() + "\n# saved while it was checked\n")
        return None, ""

    fake_checks(monkeypatch, 1, check)
    ours = Workspace.load(workspace)
    assert ours.check(FIRST) == (None, "")
    assert ours.status(FIRST) == "edited"


def test_a_fix_saved_in_the_same_second_at_the_same_size_is_the_one_checked(workspace,
                                                                             monkeypatch):
    """Python trusts a cached .pyc while the file's size and whole-second time are unchanged:
    under `watch` a one-character fix easily keeps both, and the check ran the old code."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)    # as on a learner's machine
    path = workspace / "01_vectors" / "one_hot.py"
    original = path.read_text()
    for shift, fails in (("- 1", True), ("+ 0", False)):            # wrong, then right
        path.write_text(original.replace(
            "    raise NotImplementedError",
            "    out = np.zeros((len(ids), vocab_size), dtype=np.float32)\n"
            f"    out[np.arange(len(ids)), np.asarray(ids) {shift}] = 1.0\n"
            "    return out"))
        os.utime(path, (1_700_000_000, 1_700_000_000))
        result = run("check", "one_hot")
        assert result.exit_code == (3 if fails else 0), result.output
    assert not (path.parent / "__pycache__").exists()      # nothing written beside their files


def test_what_the_learners_code_prints_is_shown(workspace):
    path = workspace / FIRST.file
    path.write_text(path.read_text().replace("    raise NotImplementedError",
                                             "    print('ids are', ids)\n"
                                             "    raise NotImplementedError"))
    result = run("check", 1)
    assert "Your code printed:" in result.output and "ids are [2 0 3]" in result.output


def test_a_check_runs_beside_the_learners_file_on_this_tinyformer(workspace, tmp_path,
                                                                   monkeypatch):
    """As `python 01_vectors/one_hot.py` would, with this tinyformer, not one found first on
    the learner's PYTHONPATH."""
    path = workspace / FIRST.file
    path.write_text(path.read_text().replace("    raise NotImplementedError",
                                             "    import os; print('in', os.getcwd())\n"
                                             "    raise NotImplementedError"))
    (tmp_path / "elsewhere" / "tinyformer").mkdir(parents=True)
    (tmp_path / "elsewhere" / "tinyformer" / "__init__.py").write_text(
        "raise ImportError('another tinyformer')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "elsewhere"))
    result = run("check", 1)
    assert f"in {path.parent}\n" in result.output and "is not written yet" in result.output, \
        result.output


def test_a_long_print_shows_its_last_20_lines(capsys):
    runner.report_check(FIRST, None, "".join(f"line {i}\n" for i in range(30)))
    shown = capsys.readouterr().out
    assert "Your code printed: (the last 20 of 30 lines)" in shown
    assert "  line 10\n" in shown and "  line 29\n" in shown and "  line 9\n" not in shown


def test_a_learner_file_that_prints_without_end_is_not_all_kept(workspace, capsys):
    """What a loop prints (about 5 MB here, several of the MiB the runner counts lines in at a
    time) goes to a file; the runner reads back its end only, and still counts every line."""
    path = workspace / FIRST.file
    path.write_text("for i in range(100_000):\n    print('line', i, '-' * 40)\n"
                    + path.read_text())
    message, printed = Workspace.load(workspace).check(FIRST)
    assert "is not written yet" in message and len(printed) < 1_000_000
    runner.report_check(FIRST, message, printed)
    shown = capsys.readouterr().out
    assert "Your code printed: (the last 20 of 100000 lines)" in shown
    assert f"  line 99980 {'-' * 40}\n" in shown and f"  line 99999 {'-' * 40}\n" in shown
    assert "  line 99979 " not in shown


# The end of the line is an odd number of bytes, so that what is kept begins inside an é.
@pytest.mark.parametrize("last, end", [("the end.", "\n"), ("the end", "")])
def test_one_printed_line_longer_than_what_is_kept_shows_its_end(workspace, capsys, last, end):
    """A list of 30,000 ids printed whole is one line of more than the bytes read back: its end
    is shown, from a whole character, where it was once left out altogether."""
    path = workspace / FIRST.file
    path.write_text(f"print('é' * 100_000 + {last!r}, end={end!r})\n" + path.read_text())
    message, printed = Workspace.load(workspace).check(FIRST)
    assert "is not written yet" in message and printed.endswith("é" + last + end)
    assert printed.startswith("é") and printed.lines_before == 0
    runner.report_check(FIRST, message, printed)
    assert "Your code printed:\n  éé" in capsys.readouterr().out


def test_a_learner_file_that_exits_or_never_ends_cannot_stop_the_runner(workspace):
    path = workspace / FIRST.file
    original = path.read_text()
    path.write_text(original.replace("    raise NotImplementedError", "    raise SystemExit(3)"))
    result = run("check", 1)
    assert result.exit_code == 3 and "ended the check early (exit status 3): it calls exit()" \
        in result.output
    path.write_text("import os\n" + original.replace("    raise NotImplementedError",
                                                     "    os._exit(4)"))
    result = run("check", 1)
    assert result.exit_code == 3 and "ended the check early (exit status 4), before it could " \
        "finish; does it call os._exit()?" in result.output
    path.write_text("import os, signal\n" + original.replace(
        "    raise NotImplementedError", "    os.kill(os.getpid(), signal.SIGTERM)"))
    result = run("check", 1)
    assert result.exit_code == 3 and f"your code's process was stopped by signal " \
        f"{int(signal.SIGTERM)} (Terminated) before the check could finish" in result.output, \
        result.output
    path.write_text(original.replace("    raise NotImplementedError", "    while True: pass"))
    result = run("check", 1, "--timeout", 1)
    # Fair to code that is right but slow: the limit stopped it, for one reason or the other.
    assert result.exit_code == 3 and "the check did not finish within its time limit of 1 s, " \
        "so it was stopped: your code may be in a loop that never ends, or right but slower " \
        "than that; --timeout SECONDS gives it more time" in result.output, result.output


@pytest.mark.parametrize("before, after, who, line", [
    # It took the machine's memory until the timeout. The arrays are never written to, so
    # they take address space, which the limit counts, and no memory of this machine's.
    ("", "\n\nblocks = []\n\n\ndef one_hot(ids, vocab_size):\n    for _ in range(1 << 20):\n"
     "        blocks.append(np.empty(1 << 30))\n", "one_hot(ids=[2, 0, 3], vocab_size=4)",
     ", in one_hot: blocks.append(np.empty(1 << 30))"),
    ("table = bytearray(1 << 62)\n", "", "one_hot.py, as it is imported,",
     "line 1, in <module>: table = bytearray(1 << 62)"),
], ids=["in a call", "as it is imported"])
def test_a_learner_file_that_takes_too_much_memory_is_stopped_at_a_limit(workspace, before,
                                                                         after, who, line):
    from tinyformer.exercises.isolated import memory_limit
    from tinyformer.files import size_said
    path = workspace / FIRST.file
    path.write_text(before + path.read_text() + after)
    result = run("check", 1, "--timeout", 60)
    assert result.exit_code == 3, result.output
    # In the units of every other size said ("8.59 GB"), not GiB alone.
    assert f"{who} needed more than the {size_said(memory_limit())} of memory a check may " \
        f"use" in result.output
    assert line in result.output


def test_a_check_that_runs_out_of_memory_after_the_learners_code_says_so(tmp_path):
    # The learner's code may take nearly all the memory and leave the checker's own arrays
    # none: that is still the learner's to mend, not the checker's error.
    import dataclasses

    from tinyformer.exercises import run_check

    def check(learner):
        raise MemoryError

    path = tmp_path / "one_hot.py"
    path.write_text(FIRST.source.read_text())
    message = run_check(dataclasses.replace(FIRST, check=check), path)
    assert message.startswith("the check ran out of memory") or \
        message.startswith("the check needed more than the"), message
    assert "checker error" not in message


def test_a_learner_file_that_asks_for_input_fails_at_once_with_its_line(workspace):
    """input() gets nothing to read, where it waited on the teacher's terminal (here a pipe
    that nobody writes to) until the timeout."""
    path = workspace / FIRST.file
    path.write_text("name = input('your name? ')\n" + path.read_text())
    terminal, (waiting, never_written) = os.dup(0), os.pipe()
    os.dup2(waiting, 0)
    try:
        result = run("check", 1, "--timeout", 20)
    finally:
        os.dup2(terminal, 0)
        for fd in (terminal, waiting, never_written):
            os.close(fd)
    assert result.exit_code == 3 and "line 1, in <module>: name = input('your name? ')" \
        in result.output and "EOFError" in result.output, result.output


# Learner code that starts a process of its own, which would sleep for two minutes.
STARTS_A_SLEEPER = ("import subprocess, sys\n"
                    "sleeper = subprocess.Popen([sys.executable, '-c', "
                    "'import time; time.sleep(120)'])\n"
                    "open('sleeper.pid', 'w').write(str(sleeper.pid))\n")


def running(pid):
    """Whether process `pid` runs (one that ended, even if not yet waited for, does not)."""
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True,
                           text=True).stdout.strip()
    return state != "" and not state.startswith("Z")


def sleeper_outlives(path):
    """Whether the sleeper that the learner's file `path` started still runs a moment after
    its check (it is stopped then, if it does)."""
    pid = int((path.parent / "sleeper.pid").read_text())
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    outlives = running(pid)
    if outlives:
        os.kill(pid, signal.SIGKILL)
    return outlives


@pytest.mark.parametrize("then, said", [("while True: pass\n", "time limit of 2 s"),
                                        ("", "is not written yet")])
def test_what_the_learners_code_starts_ends_with_its_check(workspace, then, said):
    """Be it a loop that never ends, stopped at the timeout, or a check that fails."""
    path = workspace / FIRST.file
    path.write_text(STARTS_A_SLEEPER + then + path.read_text())
    # 2 s: the loop keeps a core busy until then, and the sleeper starts well before (the
    # check that fails ends in under half a second on a busy machine).
    result = run("check", 1, "--timeout", 2)
    assert result.exit_code == 3 and said in result.output, result.output
    assert not sleeper_outlives(path)


def test_a_thread_the_learners_code_leaves_running_does_not_hold_up_its_check(workspace):
    """A thread that never ends (not a daemon): the check ends with its result, where it
    waited for the thread until the timeout and then said it did not finish."""
    path = workspace / FIRST.file
    solve(workspace, FIRST)
    path.write_text("import threading\nthreading.Thread(target=threading.Event().wait).start()\n"
                    "print('started a thread')\n" + path.read_text())
    started = time.monotonic()
    result = run("check", 1, "--timeout", 10)
    assert result.exit_code == 0 and "started a thread" in result.output, result.output
    assert time.monotonic() - started < 9


def test_checks_stopped_early_stop_those_running_with_what_they_started(workspace,
                                                                        monkeypatch):
    """Ctrl-C does not reach the checks' processes (each is a session of its own): the runner
    stops them, where it waited for each to finish."""
    monkeypatch.setattr(workspace_module, "usable_cores", lambda: 2)
    first, second = exercises()[:2]
    path = workspace / second.file
    path.write_text(STARTS_A_SLEEPER + "while True: pass\n" + path.read_text())
    checks = Workspace.load(workspace).check_each([first, second], timeout=100)
    assert next(checks)[0] == first
    deadline = time.monotonic() + 60
    while not (path.parent / "sleeper.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    checks.close()                      # as Ctrl-C would, while the second one runs
    assert time.monotonic() - started < 20
    assert not sleeper_outlives(path)


def test_a_file_that_is_not_python_is_reported_with_its_line(workspace):
    path = workspace / FIRST.file
    path.write_text(path.read_text() + "\ndef broken(:\n")
    result = run("check", 1)
    assert result.exit_code == 3 and "is not valid Python" in result.output


@pytest.mark.parametrize("raised", ["BaseException('not sure')", "KeyboardInterrupt"])
@pytest.mark.parametrize("where", ["in one_hot", "as it is imported"])
def test_code_raising_what_is_no_exception_fails_its_check_not_the_runner(workspace, raised,
                                                                          where):
    # These are not Exceptions: they went past the checks' handlers, and the runner called
    # them a bug of its own (exit 1, ending a class's grading) or an os._exit().
    solution = solution_text(FIRST)
    if where == "in one_hot":
        solution = solution.replace("    ids = np.asarray(ids)\n", f"    raise {raised}\n")
    else:
        solution += f"\nraise {raised}\n"
    write_solved(FIRST, workspace / FIRST.file, solution)
    result = run("check", 1)
    assert result.exit_code == 3, result.output
    said = ("one_hot(ids=[2, 0, 3], vocab_size=4) raised an error:" if where == "in one_hot"
            else f"{Path(FIRST.file).name} fails as soon as it is imported:")
    # The error as Python writes it: its name alone, without a colon, when it says nothing.
    error = {"KeyboardInterrupt": "KeyboardInterrupt",
             "BaseException('not sure')": "BaseException: not sure"}[raised]
    assert said in result.output and f"    {error}\n" in result.output, result.output
    assert "Traceback" not in result.output


def test_a_value_error_raised_by_the_learners_code_fails_its_check(workspace):
    # The learner's errors are caught in the check's own process and said there (exit 3):
    # a ValueError of theirs is no bad input to the command (2), nor a bug of ours (1).
    solution = solution_text(FIRST).replace("    ids = np.asarray(ids)\n",
                                            "    raise ValueError('ids out of range')\n")
    write_solved(FIRST, workspace / FIRST.file, solution)
    result = run("check", 1)
    assert result.exit_code == 3, result.output
    assert "one_hot(ids=[2, 0, 3], vocab_size=4) raised an error:" in result.output
    assert "    ValueError: ids out of range\n" in result.output, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output

@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_an_empty_file_is_reported_as_empty_with_the_way_back(workspace, text):
    # Not "has no `one_hot`: keep the name the exercise gave it": nothing was renamed.
    (workspace / FIRST.file).write_text(text)
    result = run("check", 1)
    assert result.exit_code == 3
    assert (f"{Path(FIRST.file).name} is empty: `tinyformer exercises reset 1` brings back the "
            f"exercise as it came.") in result.output, result.output


def test_a_file_with_a_nul_byte_is_reported_with_its_line(workspace):
    path = workspace / FIRST.file
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + "x = 1\0\n" + "".join(lines[2:]))
    result = run("check", 1)
    assert result.exit_code == 3
    assert f"{path.name} line 3 is not valid Python" in result.output, result.output
    assert "None" not in result.output


def test_a_file_that_is_not_text_is_said_so_not_shown(workspace):
    """Bytes that are not text (a file overwritten by a binary one) are not echoed to the
    terminal, where they could change its colours or clear it."""
    path = workspace / FIRST.file
    path.write_bytes(b"\x1b[2J\x00\xff\xfe" * 50)
    result = run("check", 1)
    assert result.exit_code == 3
    assert f"{path.name} is not a text file: Python cannot read it as source" in result.output
    assert f"`tinyformer exercises reset {FIRST.number}` restores" in result.output  # not "N"
    assert "\x1b" not in result.output and "\ufffd" not in result.output


def test_a_link_to_a_file_not_named_py_is_read_as_python_all_the_same(workspace, tmp_path):
    """The link is followed (a traceback names the file itself), to a name Python's import
    takes for no source: read as source all the same, it fails as any text that is not
    Python does, not as a checker error."""
    notes = tmp_path / "notes"
    notes.write_text("root:x:0:0:root:/root:/bin/bash\n")
    path = workspace / FIRST.file
    path.unlink()
    path.symlink_to(notes)
    result = run("check", 1)
    assert result.exit_code == 3
    assert "notes line 1 is not valid Python" in result.output, result.output
    assert "checker error" not in result.output


@pytest.mark.parametrize("make", [pipe_that_ends, lambda path: path.symlink_to(os.devnull)],
                         ids=["pipe", "device"])
def test_a_pipe_or_a_device_is_not_loaded_as_the_learners_file(tmp_path, make):
    # `draw` loads the file with no hash taken first.
    make(tmp_path / "one_hot.py")
    with pytest.raises(CheckFailure, match=r"^one_hot.py is not a regular file"):
        load_learner_file(tmp_path / "one_hot.py")


@pytest.mark.parametrize("encoding, said", [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_a_file_saved_as_utf_16_is_said_so_not_called_binary(workspace, encoding, said):
    # PowerShell 5's `>` writes UTF-16: the learner's code is all there, only saved otherwise.
    path = workspace / FIRST.file
    path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))   # with its BOM
    result = run("check", 1)
    assert result.exit_code == 3
    assert f"{path.name} is saved as {said}, and Python reads source as UTF-8: save it " \
           f"again as UTF-8" in result.output
    assert "not a text file" not in result.output


def test_the_line_shown_of_a_file_that_is_not_python_cannot_drive_the_terminal(workspace):
    path = workspace / FIRST.file
    path.write_text("x = 1 +\x1b[31m\n")
    result = run("check", 1)
    assert result.exit_code == 3 and "    x = 1 +\\x1b[31m\n" in result.output, result.output


@pytest.mark.parametrize("command", [["check"], ["hint", 1], ["reset", 1], ["draw", 1],
                                     ["watch", "--max-checks", 1]])
def test_a_command_on_your_files_outside_a_workspace_is_an_input_error(tmp_path, monkeypatch,
                                                                       command):
    monkeypatch.chdir(tmp_path)
    assert_input_error(run(*command), "no exercise workspace", "tinyformer exercises init")
    assert_input_error(run(*command, "--workspace", tmp_path), "not an exercise workspace")


def test_the_workspace_can_be_named_from_elsewhere(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    solve(workspace, FIRST)
    assert run("check", 1, "--workspace", workspace).exit_code == 0
    monkeypatch.setenv("TINYFORMER_EXERCISES", str(workspace))
    assert "done" in run("list").output


def test_a_workspace_named_by_the_environment_that_is_none_says_where_it_came_from(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYFORMER_EXERCISES", "nope")
    assert_input_error(run("list"), "TINYFORMER_EXERCISES=nope: ", "not an exercise workspace")
    # Typed on the command line, the folder is the learner's own words: said as they are.
    result = run("list", "--workspace", "nope")
    assert_input_error(result, "nope is not an exercise workspace")
    assert "TINYFORMER_EXERCISES" not in result.stderr


def test_the_workspace_is_found_from_a_folder_inside_it(workspace, monkeypatch):
    monkeypatch.chdir(workspace / FIRST.file.split("/")[0])
    result = run("list")
    assert result.exit_code == 0 and f"0 of {len(exercises())} done, in {workspace}" in \
        result.output


def test_a_relative_workspace_path_is_joined_once(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    solve(workspace, FIRST)
    result = run("check", 1, "-w", "course")
    assert result.exit_code == 0 and "PASS" in result.output, result.output
    listed = run("list", "-w", "course").output
    assert f"  {FIRST.number:3d}  done" in listed         # and it stays finished


def test_a_damaged_progress_file_stops_nothing_is_left_as_it_is_and_says_what_to_do(workspace):
    """A damaged progress file (a hand edit gone wrong) is not needed to list or check: the
    command goes on as if nothing were done yet, with a note saying so, and the file is left
    as it is rather than written over, which would lose what it held."""
    solve(workspace, FIRST)
    path = workspace / STATE_DIR / "progress.json"
    path.write_text("{not json")
    note = (f"without the progress: {path} is damaged, so it is neither read nor written; "
            f"delete it to start the progress afresh (your exercise files are kept)\n")
    listed = run("list", "--workspace", workspace)
    assert listed.exit_code == 0 and f"0 of {len(exercises())} done" in listed.stdout
    assert listed.stderr == f"Note: the exercises are listed, {note}"
    checked = run("check", 1, "--workspace", workspace)
    assert checked.exit_code == 0 and f"PASS 1 {FIRST.slug}" in checked.stdout, checked.output
    assert checked.stderr == f"Note: the checks ran, {note}"
    assert path.read_text() == "{not json"                 # not saved over
    path.unlink()                                          # the advice, taken
    listed = run("list", "--workspace", workspace)
    assert listed.exit_code == 0 and f"0 of {len(exercises())} done" in listed.output
    assert listed.stderr == ""
    assert run("check", "--workspace", workspace).exit_code == 0    # progress starts afresh
    assert progress(workspace)["passed"] == {FIRST.slug: progress(workspace)["passed"][FIRST.slug]}


@pytest.mark.parametrize("command, shown, done", [
    (["hint", 1], FIRST.hints[0], "the hints are shown"),
    (["show", 1], "Your file: ", "the exercise is shown"),
    (["solution", 1, "--yes"], "Reference solution of exercise 1", "the solution is shown"),
], ids=["hint", "show", "solution"])
def test_a_damaged_progress_file_is_said_by_each_command_and_kept(workspace, command, shown,
                                                                  done):
    path = workspace / STATE_DIR / "progress.json"
    path.write_text("{not json")
    result = run(*command)
    assert result.exit_code == 0, result.output
    assert shown in result.stdout and "ask again" not in result.stdout   # it would not count
    assert result.stderr.startswith(f"Note: {done}, without the progress: {path} is damaged")
    assert path.read_text() == "{not json"


def test_a_solution_declined_beside_a_damaged_progress_file_does_not_count_the_hints_seen(
        workspace):
    # The hints seen are counted in the file not read: "0 of 3" would be a guess.
    path = workspace / STATE_DIR / "progress.json"
    path.write_text("{not json")
    result = run("solution", 1)                       # no answer to its question: not shown
    assert result.exit_code == 0, result.output
    assert f"It has {len(FIRST.hints)} hints" in result.stdout
    assert "You have seen" not in result.stdout and "Not shown." in result.stdout
    assert result.stderr.startswith(f"Note: nothing is shown, without the progress: {path} "
                                    f"is damaged")
    assert path.read_text() == "{not json"


def test_a_progress_file_that_cannot_be_read_does_not_stop_grading(workspace, monkeypatch):
    """One the grader may not read (another user's), or a folder in its place: every exercise
    is graded all the same, with a note saying why the progress was not used."""
    fake_checks(monkeypatch, 2, lambda ex: (None if ex == FIRST else "wrong", ""))
    path = workspace / STATE_DIR / "progress.json"
    path.unlink()
    path.mkdir()
    result = run("check", "--all", "--json", "-w", workspace)
    assert result.exit_code == 3, result.output
    graded = json.loads(result.stdout)
    assert (graded["passed"], graded["total"], graded["error"]) == (1, len(exercises()), None)
    assert result.stderr == f"Note: the checks ran, without the progress: {path}: is a directory\n"
    assert path.is_dir()


def test_watch_says_first_that_a_damaged_progress_file_is_not_used(workspace, monkeypatch):
    """watch ends with Ctrl-C, past any note at the end: it says so before its first check."""
    fake_checks(monkeypatch, 1, lambda ex: ("wrong", ""))
    path = workspace / STATE_DIR / "progress.json"
    path.write_text("{not json")
    result = run("watch", 1, "--max-checks", 1)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"Note: the checks run, without the progress: {path} is "
                                    f"damaged") and result.stderr.count("\n") == 1
    assert path.read_text() == "{not json"


def test_a_damaged_progress_file_does_not_stop_grading(workspace, monkeypatch):
    """`check --all --json` on a student's folder whose progress file is damaged: every
    exercise is graded (the checks do not need the file), with a note on stderr."""
    fake_checks(monkeypatch, 2, lambda ex: (None if ex == FIRST else "wrong", ""))
    path = workspace / STATE_DIR / "progress.json"
    path.write_text('{"version": 1, "passed": []}')        # a key of the wrong type
    result = run("check", "--all", "--json", "-w", workspace)
    assert result.exit_code == 3, result.output
    graded = json.loads(result.stdout)
    assert (graded["passed"], graded["total"], graded["error"]) == (1, len(exercises()), None)
    assert result.stderr.startswith(f"Note: the checks ran, without the progress: {path} is "
                                    f"damaged") and result.stderr.count("\n") == 1
    assert path.read_text() == '{"version": 1, "passed": []}'


def test_a_progress_file_saved_again_on_windows_is_the_same_progress(workspace):
    """The progress file, which a student may edit, opened and saved by a Windows editor (a
    byte order mark, \\r\\n line ends) says the same: it was "damaged"."""
    solve(workspace, FIRST)
    assert run("check", "--workspace", workspace).exit_code == 0
    path = workspace / STATE_DIR / "progress.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    listed = run("list", "--workspace", workspace)
    assert listed.exit_code == 0, listed.output
    assert f"  {FIRST.number:3d}  done" in listed.output


def test_a_damaged_prediction_is_not_shown_and_stops_nothing(workspace):
    path = workspace / STATE_DIR / "progress.json"
    path.write_text(json.dumps({**progress(workspace), "predictions": {"04_autograd": "right"}}))
    result = run("list")
    assert result.exit_code == 0 and "(prediction" not in result.output, result.output


# -- watch and reset --------------------------------------------------------------------------

def test_watch_checks_again_when_the_file_is_saved(workspace, monkeypatch):
    waiting, wait_for_save = threading.Event(), runner.wait_for_save

    def wait_and_say_so(*args):          # the learner saves once watch waits, however slow
        waiting.set()                     # the first check was (not after a fixed time)
        wait_for_save(*args)

    def save_the_solution_once_watched():
        assert waiting.wait(timeout=120)
        time.sleep(0.05)                  # a save a moment later, as an editor's
        solve(workspace, FIRST)
    monkeypatch.setattr(runner, "wait_for_save", wait_and_say_so)
    saver = threading.Thread(target=save_the_solution_once_watched)
    saver.start()
    result = run("watch", 1, "--max-checks", 2)
    saver.join()
    assert result.exit_code == 0, result.output
    assert result.output.index(f"FAIL 1 {FIRST.slug}") < result.output.index("Watching")
    assert result.output.index("Watching") < result.output.index(f"PASS 1 {FIRST.slug}")


def test_watch_checks_a_save_made_while_it_was_checking(workspace, monkeypatch):
    check, saves = Workspace.check, []

    def check_while_the_learner_saves(self, ex, timeout):
        outcome = check(self, ex, timeout)          # the file as it was when the check read it
        if not saves:                               # saved before the check has reported
            saves.append(solve(workspace, ex))
        return outcome
    polls = []

    def sleep(seconds):
        polls.append(seconds)
        assert len(polls) < 50, "watch waits for a save that it has not checked"
    monkeypatch.setattr(Workspace, "check", check_while_the_learner_saves)
    monkeypatch.setattr(runner, "time", SimpleNamespace(sleep=sleep))
    result = run("watch", 1, "--max-checks", 2)
    assert result.exit_code == 0, result.output
    assert result.output.index(f"FAIL 1 {FIRST.slug}") < result.output.index(f"PASS 1 {FIRST.slug}")


def test_watch_waits_for_a_file_deleted_while_it_watches(workspace, monkeypatch):
    """An editor may delete the file before writing the new one: a watch that checked the
    missing file in between ended with an error."""
    wait_for_save = runner.wait_for_save

    def delete_then_wait(path, *args):
        path.unlink()
        wait_for_save(path, *args)

    def sleep(seconds):                   # the editor writes the new file
        solve(workspace, FIRST)
    monkeypatch.setattr(runner, "wait_for_save", delete_then_wait)
    monkeypatch.setattr(runner, "time", SimpleNamespace(sleep=sleep))
    result = run("watch", 1, "--max-checks", 2)
    assert result.exit_code == 0, result.output
    assert f"{workspace / FIRST.file} is missing: waiting for it to come back " \
        f"(`tinyformer exercises reset 1` brings back a fresh copy)" in result.output
    assert result.output.index("is missing") < result.output.index(f"PASS 1 {FIRST.slug}")


def test_watch_stops_after_its_last_check_even_a_failing_one(workspace, monkeypatch):
    def sleep(seconds):
        raise AssertionError("watch waited for a save after its last check")
    monkeypatch.setattr(runner, "time", SimpleNamespace(sleep=sleep))
    result = run("watch", 1, "--max-checks", 1)
    assert result.exit_code == 0 and f"FAIL 1 {FIRST.slug}" in result.output, result.output


def test_watch_stopped_by_ctrl_c_says_so_and_exits_130(workspace, monkeypatch):
    def ctrl_c(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(runner, "wait_for_save", ctrl_c)
    result = run("watch", 1)
    assert result.exit_code == 130, result.output
    assert result.output.rstrip().endswith("Stopped watching."), result.output
    assert "Traceback" not in result.output


def test_reset_restores_the_file_and_keeps_the_learners_version(workspace):
    path = workspace / FIRST.file
    solve(workspace, FIRST)
    mine = path.read_text()
    assert run("check", 1).exit_code == 0
    result = run("reset", FIRST.slug)
    assert result.exit_code == 0
    assert path.read_bytes() == find(FIRST.slug).source.read_bytes()
    backups = list((workspace / STATE_DIR / "backups").rglob("*.py"))
    assert [b.read_text() for b in backups] == [mine]
    assert FIRST.slug not in progress(workspace)["passed"]
    again = run("reset", FIRST.slug)                  # untouched now: nothing to keep
    assert again.exit_code == 0 and "your version" not in again.output
    assert len(list((workspace / STATE_DIR / "backups").rglob("*.py"))) == 1
    path.write_text(mine)
    run("reset", FIRST.slug)
    assert len(list((workspace / STATE_DIR / "backups").rglob("*.py"))) == 2


def test_the_readme_shows_a_real_failed_check(workspace):
    """The README's example message is what a slip in exercise 2 really prints."""
    solve(workspace, FIRST)
    assert run("check", 1).exit_code == 0
    second = find("dot_and_matmul")
    text = solution_text(second)
    assert "dot(A[i, :], B[:, j])" in text
    write_solved(second, workspace / second.file,
                 text.replace("dot(A[i, :], B[:, j])", "dot(A[i], B[j])"))
    result = run("check")
    assert result.exit_code == 3
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    shown = readme.split("# the next unfinished one: 1 has passed, 2 has a slip\n")[1]
    shown = shown.split("```")[0]
    assert result.output == shown


@pytest.mark.parametrize("command", [["check", 1], ["watch", 1, "--max-checks", 1],
                                     ["draw", 1]])
def test_a_timeout_beyond_a_day_is_a_usage_error(workspace, command):
    """A limit the operating system's timers cannot hold is refused as the option's range,
    before any check runs, not as an internal error from inside the check."""
    for beyond in (2147484, 86_401):         # a day and a second: as the help says, a day
        result = run(*command, "--timeout", beyond)
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '--timeout': {beyond} is not in the range 1<=x<=86400." \
            in result.stderr


def test_check_json_prints_its_object_when_the_machine_refuses(workspace, monkeypatch):
    """A full disk while checking: a grading script still reads the object from stdout."""
    def disk_full(ex):
        raise OSError(28, "No space left on device")
    fake_checks(monkeypatch, 1, disk_full)
    result = run("check", 1, "--json")
    assert result.exit_code == 2, result.output
    graded = json.loads(result.stdout)
    assert graded["error"] == "no space left on device; free some disk space and try again"
    assert result.stderr == f"Error: {graded['error']}\n"


def test_a_workspace_the_grader_may_not_write_is_checked_all_the_same(workspace, monkeypatch):
    """A teacher grading a student's folder they may read, not write: every outcome, and a
    note that the progress was not saved."""
    fake_checks(monkeypatch, 2, lambda ex: (None if ex == FIRST else "wrong", ""))

    def read_only(self):
        raise PermissionError(13, "Permission denied", str(self.root / STATE_DIR / "x.json"))
    monkeypatch.setattr(Workspace, "save", read_only)
    result = run("check", "--all", "--json")
    assert result.exit_code == 3, result.output
    graded = json.loads(result.stdout)
    assert (graded["passed"], graded["total"], graded["error"]) == (1, len(exercises()), None)
    assert result.stderr == (f"Note: the checks ran, but the progress was not saved "
                             f"({workspace / STATE_DIR / 'x.json'}: permission denied; check "
                             f"the permissions)\n")
    one = run("check", 1)
    assert one.exit_code == 0 and f"PASS 1 {FIRST.slug}" in one.stdout, one.output
    assert one.stderr.startswith("Note: the checks ran, but the progress was not saved")


@pytest.mark.parametrize("command, shown", [
    (["hint", 1], FIRST.hints[0]),
    (["solution", 1, "--yes"], f"Reference solution of exercise 1, {FIRST.slug}"),
    (["predict", 1, "--answer", "1"], "Why: "),
], ids=["hint", "solution", "predict"])
def test_a_workspace_one_may_only_read_still_shows_hints_solutions_and_answers(
        workspace, monkeypatch, command, shown):
    """Another's workspace, shared read-only: its progress cannot be locked or saved, but
    what a command shows is shown, with a note, as check does."""
    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(workspace_module, "held_lock", read_only)
    result = run(*command)
    assert result.exit_code == 0, result.output
    assert shown in result.stdout and "ask again" not in result.stdout  # it would not count
    assert re.fullmatch(r"Note: .*, but the progress was not saved \(.*progress.lock: "
                        r"permission denied; check the permissions\)\n", result.stderr)
