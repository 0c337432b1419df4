"""The runner's parts that a learner meets outside a check: the chapters' "predict, then run"
questions and how a prediction is judged, and how messages describe the values they name."""

import re
import subprocess
import sys

import numpy as np
import pytest

from tinyautograd import Tensor
from tinyformer.exercises import CHAPTERS
from tinyformer.exercises.catalogue import Question, find_chapter, question
from tinyformer.exercises.checking import (CheckFailure, describe, describe_call, expect_array,
                                           expect_equal, expect_gradients)
from tinyformer.exercises.isolated import run_question
from tinyformer.exercises.runner import same_output, side_by_side

# -- describing values in a message -----------------------------------------------------------


def test_weights_in_a_message_are_named_by_shape():
    weights = {"w_q": Tensor(np.zeros((8, 8))), "b_q": np.zeros(8), "n_head": 2}
    assert describe(weights) == "{w_q: (8, 8), b_q: (8,), n_head: 2}"
    assert describe([np.zeros((2, 3))] * 8) == \
        "[(2, 3), (2, 3), (2, 3), (2, 3), (2, 3), (2, 3), ... 8 in all]"
    assert describe({"a": 1, "b": [1, 2]}) == "{'a': 1, 'b': [1, 2]}"      # no arrays: as is
    # A small Tensor as a call, to paste into Python; a big one by its shape.
    small = describe(Tensor(np.arange(4.0).reshape(2, 2)))
    assert small == "Tensor([[0., 1.], [2., 3.]])"
    assert np.array_equal(eval(small, {"Tensor": Tensor}).data, [[0, 1], [2, 3]])
    assert describe(Tensor(np.zeros((4, 4)))) == "Tensor of shape (4, 4), float32"

    def layer(x, w):
        return x
    assert describe_call("layer", layer, (np.zeros((4, 5)),), {"w": weights}) == \
        "layer(x=array of shape (4, 5), float64, w={w_q: (8, 8), b_q: (8,), n_head: 2})"



@pytest.mark.parametrize("got, expected, options, says", [
    (np.zeros(6), np.zeros((2, 3)), {}, "an array of shape (6,); expected shape (2, 3)"),
    (np.zeros((3, 2)), np.zeros((2, 3)), {}, "an array of shape (3, 2); expected shape (2, 3)"),
    (Tensor(np.zeros((3, 2))), np.zeros((2, 3)), {},
     "a Tensor of shape (3, 2); expected shape (2, 3)"),
    ([1.0, 2.0], [1.0, 2.0], {"dtype": np.float64},
     "returned a list; it should be an array of dtype float64"),
    (Tensor(np.ones(2)), np.ones(2), {"tensor": False}, "returned a Tensor; this exercise works"),
    (np.ones(2), np.ones(2), {"tensor": True}, "returned an ndarray; it should be a Tensor"),
    (np.array(["0.5"]), [0.5], {}, "which is not an array of numbers"),
])
def test_a_wrong_kind_of_answer_is_named_before_its_values(got, expected, options, says):
    with pytest.raises(CheckFailure, match=re.escape(says)):
        expect_array(got, expected, "f(x=1)", **options)


def test_a_wrong_number_is_not_counted_among_elements():
    with pytest.raises(CheckFailure) as raised:
        expect_array(np.float64(0.5), 0.25, "f(x=1)")
    assert str(raised.value).endswith("    the value: expected 0.25, got 0.5")
    with pytest.raises(CheckFailure, match=re.escape("at [1]: expected 3, got 4  (the only "
                                                     "wrong element of 2)")):
        expect_array([2.0, 4.0], [2.0, 3.0], "f(x=1)")


def test_a_missing_return_and_a_missing_gradient_are_named():
    with pytest.raises(CheckFailure, match=re.escape("f() returned None. Did you forget")):
        expect_equal(None, [1, 2], "f()")
    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(CheckFailure, match="`x` has no gradient: it is not connected"):
        expect_gradients({"x": x}, {"x": np.ones(2)}, "f(x)")


# -- the chapters' questions ------------------------------------------------------------------

RUN_ALL = """
import contextlib, io, json, sys
from tinyformer.exercises.catalogue import question
printed = {}
for chapter in range(1, int(sys.argv[1]) + 1):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(question(chapter).code, {"__name__": "__main__"})
    printed[chapter] = out.getvalue()
sys.stdout.write(json.dumps(printed))
"""


def printed_by_every_question(hash_seed):
    """{chapter: what its question printed}, all run in one fresh process."""
    import json
    import os
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    run = subprocess.run([sys.executable, "-c", RUN_ALL, str(len(CHAPTERS))], env=env,
                         capture_output=True, text=True, check=True)
    return {int(k): v for k, v in json.loads(run.stdout).items()}


def test_every_chapter_asks_a_well_formed_question_whose_answer_is_what_its_code_prints():
    first, second = printed_by_every_question(1), printed_by_every_question(2)
    assert first == second, "a question prints something else in another process"
    for chapter in range(1, len(CHAPTERS) + 1):
        asked = question(chapter)
        assert isinstance(asked, Question)
        compile(asked.code, f"chapter {chapter}", "exec")
        assert first[chapter] == asked.output, \
            f"chapter {chapter}: its code prints {first[chapter]!r}, its stored answer is " \
            f"{asked.output!r}"
        assert 1 <= len(asked.output.splitlines()) <= 6, f"chapter {chapter}: too long to guess"
        assert len(asked.code.splitlines()) <= 12, f"chapter {chapter}: too long to read"
        assert 100 <= len(asked.why) <= 400, f"chapter {chapter}: the why is thin or long"
        assert not asked.why.startswith(" ") and asked.why.endswith(".")
    assert len({question(c).code for c in range(1, len(CHAPTERS) + 1)}) == len(CHAPTERS)


def test_a_question_runs_in_its_own_process():
    assert run_question(4) == question(4).output


def test_a_question_asked_beside_a_learners_numpy_py_still_runs(tmp_path, monkeypatch):
    # `predict` from a chapter's folder that holds a file named as a module the question
    # imports: the fresh process runs elsewhere, where it was told a bug in tinyformer.
    (tmp_path / "numpy.py").write_text("raise ImportError('the learner numpy.py')\n")
    monkeypatch.chdir(tmp_path)
    assert run_question(1) == question(1).output


@pytest.mark.parametrize("name, number", [("4", 4), ("04_autograd", 4), ("15", 15),
                                          ("01_vectors", 1)])
def test_a_chapter_is_found_by_number_or_folder(name, number):
    assert find_chapter(name) == number


@pytest.mark.parametrize("name", ["0", "16", "autograd", ""])
def test_an_unknown_chapter_says_what_there_is(name):
    with pytest.raises(ValueError, match="give a number from 1 to 15 or a folder name"):
        find_chapter(name)


# -- judging a prediction ---------------------------------------------------------------------

@pytest.mark.parametrize("predicted, printed", [
    ("[[5 6]\n [1 2]]", "[[5 6]\n [1 2]]\n"),
    ("[[5, 6], [1, 2]]", "[[5 6]\n [1 2]]\n"),                    # commas and lines aside
    ("[down, home]", "['down', 'home']\n"),                       # quotes aside
    ("6\n12", "6.0\n12.0\n"),                                      # 6 is 6.0
    ("0.1 0.33", "0.1 0.3277\n"),                                  # within 1%
    ("[1 0 0 0]", "[1. 0. 0. 0.]\n"),
    ("-2.49", "-2.4883\n"),
    ("[[1 0 0] [0 1 0]]", "[[1.   0.   0.  ]\n [0.01 0.99 0.  ]]\n"),     # to within 0.01
    ("inf nan", "inf nan\n"),
    ("1000 -2.0e3", "1005 -2010\n"),                               # big numbers: 1% of them
])
def test_a_prediction_that_says_what_was_printed_is_right(predicted, printed):
    assert same_output(predicted, printed)


@pytest.mark.parametrize("predicted, printed", [
    ("[[1 2]\n [5 6]]", "[[5 6]\n [1 2]]\n"),                    # the rows swapped
    ("6.0", "6.0\n12.0\n"),                                        # a line missing
    ("0.1 0.35", "0.1 0.3277\n"),                                  # 7% off
    ("[0 1 0]", "[0.02 0.98 0.  ]\n"),                             # 0.02 off
    ("[0 1 0]", "[0.02 1.   0.  ]\n"),                             # one number 0.02 off
    ("0", "0.011\n"),                                               # just over 0.01 off
    ("[dog, hill]", "['down', 'home']\n"),
    ("2.49", "-2.4883\n"),                                         # the sign matters
    ("True False", "[ True False False]\n"),
])
def test_a_prediction_that_differs_is_wrong(predicted, printed):
    assert not same_output(predicted, printed)


def test_side_by_side_lines_up_the_second_column():
    text = side_by_side(("You predicted:", "6\n12"), ("It printed:", "6.0\n12.0\n"))
    lines = text.splitlines()
    assert [line.index("It printed:" if i == 0 else "6.0" if i == 1 else "12.0")
            for i, line in enumerate(lines)] == [18, 20, 20]


# -- tinyformer's own failures in the fresh process: a bug, or the machine's answer -------------

def test_a_failure_of_the_runners_own_code_is_a_bug_not_the_learners(tmp_path):
    # An exercise the fresh process cannot find: the runner's own code fails there. It says
    # so (the command line: a bug, exit 1), where it blamed the learner's exit() before.
    import dataclasses

    from tinyformer.exercises import find
    from tinyformer.exercises.isolated import HarnessError, check_in_subprocess
    ex = dataclasses.replace(find("one_hot"), slug="no_such_exercise")
    path = tmp_path / "one_hot.py"
    path.write_text("")
    with pytest.raises(HarnessError, match=r"^the check's own code failed, not yours "
                                           r"\(\S*BadInput: there is no exercise (.|\n)*\)\n"
                                           r"Traceback"):
        check_in_subprocess(ex, path)


def test_an_exception_that_nothing_caught_in_the_fresh_process_is_ours(tmp_path, monkeypatch):
    # A Python whose program fails before writing its result (tinyformer failing to import,
    # say): a traceback and exit status 1, which the learner's code cannot cause (its errors
    # are caught and explained), and calling exit() is told apart.
    from tinyformer.exercises import find
    from tinyformer.exercises.isolated import HarnessError, check_in_subprocess
    failing = tmp_path / "python"
    failing.write_text(f"#!/bin/sh\nexec {sys.executable} -c \"raise KeyError('ours')\"\n")
    failing.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(failing))
    path = tmp_path / "one_hot.py"
    path.write_text("")
    with pytest.raises(HarnessError, match=r"^the check's own code failed, not yours "
                                           r"\(KeyError: 'ours'\)"):
        check_in_subprocess(find("one_hot"), path)


def test_a_name_beside_the_learners_that_python_never_imports_from_there_is_not_blamed(
        tmp_path, monkeypatch):
    # sys.py (a module built into Python, found before any file) and a folder numpy/ without
    # __init__.py (no package: numpy's own is found first) shadow nothing, so a failure of
    # the fresh process stays ours, not a file for the learner to rename.
    from tinyformer.exercises import find
    from tinyformer.exercises.isolated import HarnessError, check_in_subprocess
    failing = tmp_path / "python"
    failing.write_text(f"#!/bin/sh\nexec {sys.executable} -c \"raise KeyError('ours')\"\n")
    failing.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(failing))
    (tmp_path / "sys.py").write_text("")
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "core.py").write_text("")
    path = tmp_path / "one_hot.py"
    path.write_text("")
    with pytest.raises(HarnessError, match=r"^the check's own code failed, not yours "):
        check_in_subprocess(find("one_hot"), path)


@pytest.mark.parametrize("beside", ["math.py", "numpy.py", "numpy/__init__.py"])
def test_a_file_beside_the_learners_named_as_a_module_it_imports_is_their_failure(tmp_path,
                                                                                   beside):
    # The fresh process runs in the learner's folder, as `python one_hot.py` would, so their
    # math.py is imported in place of Python's (in numpy, or in tinyformer as it starts): the
    # check says which file to rename, where it said that tinyformer had a bug. What the
    # import printed is shown; the traceback it ended in is not the learner's print.
    from solutions import write_solved
    from tinyformer.exercises import find
    from tinyformer.exercises.isolated import check_in_subprocess, draw_in_subprocess
    ex = find("one_hot")
    path = write_solved(ex, tmp_path / "one_hot.py")
    (tmp_path / beside).parent.mkdir(exist_ok=True)
    (tmp_path / beside).write_text("print('mine')\n")
    (tmp_path / "test.py").write_text("")      # a name no check imports: not mentioned
    name = beside.split("/")[0]
    for run, what in [(check_in_subprocess, "check"), (draw_in_subprocess, "drawing")]:
        extra = [tmp_path / "one_hot.png"] if what == "drawing" else []
        message, printed = run(ex, path, *extra)
        assert message.startswith(f"the {what} could not run: beside your file is {name}, ")
        assert f"Rename it, for instance to my_{name}." in message
        assert printed.strip() == "mine"


def test_a_picture_the_machine_refuses_to_write_is_its_answer_not_the_learners(tmp_path):
    from solutions import write_solved
    from tinyformer.exercises import find
    from tinyformer.exercises.isolated import draw_in_subprocess
    ex = find("causal_mask")
    path = write_solved(ex, tmp_path / "causal_mask.py")
    with pytest.raises(FileNotFoundError) as raised:
        draw_in_subprocess(ex, path, tmp_path / "gone" / "mask.png")
    assert raised.value.filename is not None and "gone" in raised.value.filename


# -- files, whatever the system's encoding ----------------------------------------------------

# A process whose system encoding is not UTF-8, as Windows' is cp1252: here an ASCII locale
# (Python would switch to UTF-8 in the C locale by itself, unless told not to).
NOT_UTF8 = {"PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "LC_ALL": "C",
            "PYTHONIOENCODING": "utf-8"}

# Run there: checks of learner files with a comment in Russian (the forbidden modules and
# methods are looked for in the source, and matmul_backward's .T hint reads it too), and the
# course's own files with an é in them.
READ_IN_ANY_ENCODING = """
import contextlib, io, json, locale, sys
from pathlib import Path
from tinyformer.exercises import catalogue, find, run_check, runner

here = Path(sys.argv[1])
said = {"encoding": locale.getpreferredencoding(False)}
comment = "# \\u041f\\u0440\\u0438\\u0437\\u043d\\u0430\\u043a\\u0438: the features\\n"
for case, slug, old, new in [("modules", "matmul_backward", "", ""),
                             ("methods", "feed_forward", "", ""),
                             (".T", "matmul_backward", "grad @ b.swapaxes(-1, -2)", "grad @ b.T")]:
    ex = find(slug)
    path = here / case / Path(ex.file).name
    path.parent.mkdir()
    path.write_text(comment + ex.solved_text().replace(old, new), encoding="utf-8")
    said[case] = run_check(ex, path)
ex = find("bpe_encode")
said["show"] = runner.explanation(ex)
catalogue.SOLUTIONS_DIR = here / "solutions"        # a solution with a comment in Russian
ex.solution.parent.mkdir(parents=True)
ex.solution.write_text(comment, encoding="utf-8")
said["solved"] = ex.solved_text()
out = io.StringIO()
with contextlib.redirect_stdout(out):
    runner.solution(None, ex, confirmed=True)
said["solution"] = out.getvalue()
sys.stdout.write(json.dumps(said))
"""


def test_files_are_read_as_utf8_whatever_the_systems_encoding(tmp_path):
    # They were read in the system's encoding: on Windows a learner's file with a comment in
    # Russian failed its check with "checker error: UnicodeDecodeError", and `exercises show`
    # printed the course's é as two letters.
    import json
    import os
    run = subprocess.run([sys.executable, "-c", READ_IN_ANY_ENCODING, str(tmp_path)],
                         env={**os.environ, **NOT_UTF8}, capture_output=True, encoding="utf-8")
    assert run.returncode == 0, run.stderr
    said = json.loads(run.stdout)
    # The C locale without UTF-8 mode reads ASCII on Linux: a test that proves nothing fails.
    assert said.pop("encoding").replace("-", "").lower() != "utf8", "the child read UTF-8"
    comment = "# \u041f\u0440\u0438\u0437\u043d\u0430\u043a\u0438: the features\n"
    assert said["modules"] is None and said["methods"] is None
    assert ".T reverses every axis of a batched array" in said[".T"]
    assert '("\u00e9" is 195 169)' in said["show"]
    assert said["solved"].startswith('"""Encoding') and '"\u00e9"' in said["solved"]
    assert said["solved"].endswith(comment) and said["solution"].endswith(comment)


def test_what_a_learner_prints_is_kept_whatever_the_systems_encoding(tmp_path, monkeypatch):
    # Under an ASCII output encoding (or on Windows, cp1252 into a file), a right answer that
    # printed "→" failed its check with UnicodeEncodeError, raised by the learner's print.
    from solutions import solved_text
    from tinyformer.exercises import find
    from tinyformer.exercises.isolated import check_in_subprocess
    monkeypatch.setenv("PYTHONIOENCODING", "ascii")
    ex = find("one_hot")
    path = tmp_path / "one_hot.py"
    path.write_text(solved_text(ex) + "\nprint('h\u00e9llo \u2192 \u2603')\n",
                    encoding="utf-8")
    message, printed = check_in_subprocess(ex, path)
    assert message is None
    assert "h\u00e9llo \u2192 \u2603" in printed


def test_a_learner_file_saved_with_a_bom_is_checked_as_python_runs_it(tmp_path):
    # Windows' Notepad may save UTF-8 with a BOM, which Python skips when it runs the file; the
    # source read for the forbidden modules kept it, and failed: "checker error: SyntaxError".
    from tinyformer.exercises import find, run_check
    ex = find("matmul_backward")
    path = tmp_path / "matmul_backward.py"
    path.write_text("\ufeff" + ex.solved_text(), encoding="utf-8")
    assert run_check(ex, path) is None


@pytest.mark.parametrize("machine_gib, cores", [(16, 4), (64, 16), (512, 2)])
def test_a_checks_memory_limit_leaves_the_machine_most_of_its_memory(monkeypatch, machine_gib,
                                                                     cores):
    # The limit is there to stop a learner's runaway loop before it takes the machine down:
    # past the machine's own memory it would stop nothing.
    from tinyformer.exercises import isolated
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": machine_gib * isolated.GiB // 4096}
    monkeypatch.setattr(isolated.os, "sysconf", lambda name: pages[name])
    monkeypatch.setattr(isolated.os, "cpu_count", lambda: cores)
    assert 4 * isolated.GiB <= isolated.memory_limit() < machine_gib * isolated.GiB


def test_a_failures_line_that_just_fits_is_shown_whole():
    from tinyformer.exercises.runner import shorten
    line = "one_hot(ids=[2, 0], vocab_size=3) returned a wrong value."
    assert shorten(line, len(line)) == line
    assert shorten(line, len(line) - 1) == line[:len(line) - 4].rstrip() + "..."


def test_a_failure_found_inside_a_call_of_the_learners_code_keeps_its_own_words(tmp_path):
    # A checker's probe that the learner's code calls (a model, a sub-layer) may itself find
    # what is wrong: that message reaches the learner as it is, not as an error it raised.
    from tinyformer.exercises.checking import run_learner_code

    def probe():
        raise CheckFailure("attn was called with x of shape (2, 3); expected (2, 4, 8).")

    with pytest.raises(CheckFailure) as caught:
        run_learner_code(tmp_path / "learner.py", probe, "pre_ln_block(x=...)")
    assert str(caught.value) == "attn was called with x of shape (2, 3); expected (2, 4, 8)."


@pytest.mark.parametrize("got, expected, says", [
    # A gradient left with the axes its input was broadcast along: summing them is the fix.
    (np.arange(24.0).reshape(2, 3, 4), np.arange(24.0).reshape(2, 3, 4).sum(axis=(0, 1)),
     "Summed over axes 0 and 1 it is exactly the expected value"),
    (np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3).sum(axis=1, keepdims=True),
     "Summed over axis 1 it is exactly the expected value"),
    # The right numbers, with axes of size 1 kept, lost or moved.
    (np.arange(1.0, 4.0), np.arange(1.0, 4.0)[:, None],
     "only the axes of size 1 differ: a sum keeps its axis, with size 1, given keepdims=True."),
    (np.arange(1.0, 4.0)[None, :], np.arange(1.0, 4.0),
     "only the axes of size 1 differ: drop the extra ones (a sum without keepdims=True, or a "
     "reshape to (3,))"),
    (np.arange(1.0, 4.0)[:, None], np.arange(1.0, 4.0)[None, :],
     "only the axes of size 1 differ: reshape to (1, 3)."),
])
def test_a_wrong_shape_that_a_sum_or_a_reshape_puts_right_says_which(got, expected, says):
    with pytest.raises(CheckFailure) as raised:
        expect_array(got, expected, "f(x=1)")
    message = str(raised.value)
    assert f"; expected shape {np.shape(expected)}.\n    " in message and says in message


@pytest.mark.parametrize("got, expected", [
    (np.ones((2, 3)), np.full(3, 5.0)),         # summed, other numbers
    (np.zeros((2, 3)), np.zeros(3)),            # zeros: a sum of zeros "fits" any shape
    (np.ones((3, 2)), np.ones((2, 3))),         # no sum or reshape of size-1 axes gets there
])
def test_a_wrong_shape_that_no_sum_explains_is_only_a_shape(got, expected):
    with pytest.raises(CheckFailure) as raised:
        expect_array(got, expected, "f(x=1)")
    assert str(raised.value).endswith(f"; expected shape {expected.shape}.")
