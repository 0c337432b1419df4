"""The course proves itself: for every exercise, the untouched file fails its checker and the
file with the reference solution's definitions appended (the solutions are kept in
tinyformer/exercises/solutions/, never copied into a workspace; see tests/solutions.py) passes
it. The course's page, docs/course.md, numbers the exercises as the catalogue does."""

import ast
import keyword
import re
from pathlib import Path

import pytest
from solutions import solution_path, write_solved

from tinyformer.exercises import CHAPTERS, exercises, find, run_check
from tinyformer.exercises.catalogue import COURSE_DIR, SOLUTIONS_DIR
from tinyformer.exercises.checking import CHECKER_ERROR

COURSE = exercises()


@pytest.mark.parametrize("ex", COURSE, ids=[e.file.removesuffix(".py") for e in COURSE])
def test_untouched_file_fails(ex):
    message = run_check(ex, ex.source)
    assert message is not None, f"{ex.file}: the untouched exercise passes its checker"
    assert CHECKER_ERROR not in message, message


@pytest.mark.parametrize("ex", COURSE, ids=[e.file.removesuffix(".py") for e in COURSE])
def test_reference_solution_passes(ex, tmp_path):
    assert solution_path(ex).exists(), f"no reference solution at {solution_path(ex)}"
    solved = write_solved(ex, tmp_path / ex.file.split("/")[-1])
    assert run_check(ex, solved) is None, run_check(ex, solved)


def top_level_names(tree):
    """The names a module's top-level def, class and assignment statements bind."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def given_methods(cls):
    """{name: the method without its docstring} for the methods of a class that have no TODO."""
    methods = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            text = ast.unparse(node)
            if "TODO" not in text and "NotImplementedError" not in text:
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value,
                                                                          ast.Constant):
                    node.body = body[1:] or [ast.Pass()]
                methods[node.name] = ast.dump(node)
    return methods


@pytest.mark.parametrize("ex", COURSE, ids=[e.file.removesuffix(".py") for e in COURSE])
def test_reference_solution_defines_only_what_the_exercise_defines(ex):
    """A solution may not bring helpers of its own (it would pass where the learner's file,
    without them, fails), and a class it must redefine whole keeps the exercise's given
    methods unchanged."""
    stub = ast.parse(ex.source.read_text())
    solution = ast.parse(solution_path(ex).read_text())
    extra = top_level_names(solution) - top_level_names(stub)
    assert not extra, f"{ex.file}: the solution defines {sorted(extra)}, the exercise does not"
    stub_classes = {n.name: n for n in stub.body if isinstance(n, ast.ClassDef)}
    for cls in solution.body:
        if isinstance(cls, ast.ClassDef) and cls.name in stub_classes:
            given, solved = given_methods(stub_classes[cls.name]), given_methods(cls)
            for name in given:
                assert solved.get(name) == given[name], \
                    f"{ex.file}: {cls.name}.{name} differs from the exercise's given method"


@pytest.mark.parametrize("ex", COURSE, ids=[e.file.removesuffix(".py") for e in COURSE])
def test_exercise_file_explains_itself(ex):
    text = ex.source.read_text()
    doc = ast.get_docstring(ast.parse(text))
    assert doc and len(doc.splitlines()) >= 8, f"{ex.file}: the explanation is missing or thin"
    assert f"tinyformer exercises check {ex.slug}" in doc
    assert "TODO" in text
    assert ex.hints, f"{ex.slug} has no hints"


def test_the_course_has_every_chapter_and_enough_exercises():
    chapters = {ex.chapter for ex in COURSE}
    assert chapters == set(range(1, len(CHAPTERS) + 1))
    assert len(COURSE) >= 42 and len(CHAPTERS) >= 14
    assert len({ex.slug for ex in COURSE}) == len(COURSE), "two exercises share a name"


def test_every_file_of_the_course_and_its_solutions_is_an_exercise_of_the_catalogue():
    """A file in course/ or solutions/ that no checker registers (a checker forgotten, or in a
    module of a chapter missing from CHAPTERS) would be neither copied into a workspace nor
    tested."""
    files = {ex.file for ex in COURSE}
    for folder in (COURSE_DIR, SOLUTIONS_DIR):
        found = {path.relative_to(folder).as_posix() for path in folder.rglob("*.py")}
        assert found <= files, (
            f"{sorted(found - files)} in exercises/{folder.name}/ is no exercise's: register its "
            f"checker with @exercise in checks/chNN_chapter.py, the module of a chapter in "
            f"CHAPTERS")


def test_every_exercise_of_the_course_has_a_wrong_answer_in_the_message_tests():
    """A checker is shown to fail a wrong answer, with its message, by a test in
    tests/test_exercise_messages_*.py that names the exercise (edited_message writes one from
    the reference solution): the untouched file and the solution alone pass a checker that
    never compares anything."""
    named = set()
    for path in Path(__file__).parent.glob("test_exercise_messages_*.py"):
        named |= {node.value for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    missing = [ex.slug for ex in COURSE if ex.slug not in named]
    assert not missing, (f"no test in tests/test_exercise_messages_*.py gives {missing} a "
                         f"wrong answer: add one with edited_message (tests/solutions.py)")


def test_the_course_page_and_the_readme_number_the_exercises_as_the_catalogue_does():
    """docs/course.md lists every exercise under its chapter by the number `tinyformer exercises
    list` gives it, and the course's size and the failing checks that it and the README show
    are the catalogue's. An exercise added, moved or removed renumbers those after it: the
    pages must follow."""
    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "course.md").read_text()
    readme = (root / "README.md").read_text()
    listed = [(int(n), slug) for n, slug in re.findall(r"^\| (\d+) \| `(\w+)` \|", page, re.M)]
    numbered = [(ex.number, ex.slug) for ex in COURSE]
    first = next((i for i, (a, b) in enumerate(zip(listed, numbered)) if a != b),
                 min(len(listed), len(numbered)))
    assert listed == numbered, (
        f"docs/course.md's tables do not number the exercises as `tinyformer exercises list` "
        f"does: row {first + 1} lists {listed[first:first + 1]}, the catalogue has "
        f"{numbered[first:first + 1]}; give each exercise a row `| number | `slug` | what you "
        f"write |` in its chapter's table, and renumber the rows after a new one")
    headings = [page.index(f"## Chapter {n}. ") for n in range(1, len(CHAPTERS) + 1)] + [len(page)]
    for ex in COURSE:
        row = page.index(f"| {ex.number} | `{ex.slug}` |")
        assert headings[ex.chapter - 1] < row < headings[ex.chapter], \
            f"docs/course.md lists {ex.slug} outside chapter {ex.chapter}'s section"
    for text, name in ((page, "docs/course.md"), (readme, "README.md")):
        for count in re.findall(r"\b(\d+)\s+exercises?\s+(?:in|files|that)\b", text):
            assert int(count) == len(COURSE), \
                f"{name} says the course has {count} exercises; it has {len(COURSE)}"
        for count in re.findall(r'check --all --json.*\n\{.*"total": (\d+)', text):
            assert int(count) == len(COURSE), \
                f"{name} shows `check --all --json` with a total of {count}; the course has " \
                f"{len(COURSE)}"
        for count in re.findall(r"\b(\d+) chapters", text):
            assert int(count) == len(CHAPTERS), \
                f"{name} says the course has {count} chapters; it has {len(CHAPTERS)}"
        for number, slug in re.findall(r"^FAIL (\d+) (\w+)", text, re.M):
            assert find(int(number)).slug == slug, \
                f"{name} shows `FAIL {number} {slug}`, but exercise {number} is " \
                f"{find(int(number)).slug}"


def squashed(text):
    """`text` without spaces and backticks: code compares alike however it is spaced."""
    return re.sub(r"[\s`]", "", text)


def nameless(text):
    """`text` squashed, with every name but an attribute's and Python's keywords made `_`:
    code compares alike whatever its variables are called (`out[np.arange(len(x)), x]` is
    `out[np.arange(len(ids)), ids]`); words of prose become `_` too, and match no code."""
    keywords = "|".join(keyword.kwlist)
    return squashed(re.sub(rf"(?<![.\w])(?!(?:{keywords})\b)[A-Za-z_]\w*", "_", text))


def solution_statements(ex, shortest=14):
    """The simple statements of the reference solution (assignments, returns, calls) that the
    exercise file does not already hold, and the value each assigns or returns (the line
    without its `x =`), as `nameless` writes them, both as written and as Python prints them
    back. Statements shorter than `shortest` (`i += 1`, `return ids`) give nothing away, nor
    does a bare tuple of names (`return d_a, d_b`)."""
    text = ex.solution.read_text()
    given = squashed(ex.source.read_text())
    found = set()
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Expr)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue                                                  # a docstring
        parts = [node]
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.Return)) and node.value is not None:
            parts.append(node.value)
        for form in (f(text, part) for part in parts for f in (ast.get_source_segment,
                                                                lambda _, part: ast.unparse(part))):
            code = nameless(form)
            if (len(squashed(form)) >= shortest and squashed(form) not in given
                    and not re.fullmatch(r"[_,()]*", code)):
                found.add(code)
    return found


def given_away(ex, hint):
    """The statements of `ex`'s solution that `hint` holds, however spaced or named."""
    return sorted(s for s in solution_statements(ex) if s in nameless(hint))


@pytest.mark.parametrize("ex", COURSE, ids=[e.file.removesuffix(".py") for e in COURSE])
def test_no_hint_gives_away_a_line_of_the_solution(ex):
    """Hints escalate, but even the last one points to the idea: none holds a statement of
    the reference solution (`tinyformer exercises solution N` is there for that)."""
    assert solution_statements(ex), f"{ex.file}: no statement of the solution found to compare with"
    for number, hint in enumerate(ex.hints, start=1):
        assert not given_away(ex, hint), \
            f"{ex.slug} hint {number} holds the solution's {given_away(ex, hint)}"


@pytest.mark.parametrize("slug, hint", [
    ("one_hot", "Without a loop: `out[np.arange(len(ids)),ids] = 1.0` sets one 1.0 per row."),
    ("one_hot", "Without a loop: out[np.arange(len(x)), x] = 1.0 sets one element in each row."),
    # The value of `picked = log_probs[rows, cols, targets[rows, cols]]`, other names.
    ("masked_lm_loss", "Then log_probs[b, t, targets[b, t]] picks one number per position."),
])
def test_a_hint_holding_a_solution_line_is_caught_however_it_is_spaced_or_named(slug, hint):
    assert given_away(find(slug), hint)
    assert not given_away(find(slug), find(slug).hints[-1])


def test_a_checker_tripped_by_what_the_learners_code_returned_fails_the_exercise(tmp_path):
    """An answer the checker cannot even read (a list where it indexes an array) is no pass:
    the exercise fails, and the message says it was the checker that could not use it."""
    import dataclasses

    ex = find("one_hot")

    def check(learner):
        got = [[0.0, 1.0]]                  # as if returned by the learner's function
        return got[0, 1] == 1.0             # a checker indexing it as an array

    solved = write_solved(ex, tmp_path / "one_hot.py")
    message = run_check(dataclasses.replace(ex, check=check), solved)
    assert message is not None and CHECKER_ERROR in message
    assert "TypeError: list indices must be integers or slices, not tuple" in message


def test_a_function_that_leaves_a_nan_in_its_argument_has_not_changed_it(tmp_path):
    """on_copies compares each argument with its copy after the call: a nan is never equal to
    itself, yet one left where it was is no change (ch02's tables hold nan for rows of
    zeros). A value written into the argument is one."""
    import numpy as np
    from tinyformer.exercises.checking import Call, CheckFailure, on_copies

    table = np.array([[0.5, np.nan], [1.0, 0.0]])
    read = Call(lambda probs: probs.sum(axis=1), "read", tmp_path / "x.py")
    assert np.isnan(on_copies(read, table)[0])
    write = Call(lambda probs: probs.fill(0.0), "write", tmp_path / "x.py")
    with pytest.raises(CheckFailure, match="changed the probs it was given"):
        on_copies(write, table)


def test_a_change_in_place_is_told_with_the_exercises_own_advice(tmp_path):
    """on_copies ends its refusal with the advice it is given, `{name}` standing for the
    argument changed; without advice, the course's general one. One small changed argument
    is shown as it was left; of several, none (the message names them all)."""
    import numpy as np
    from tinyformer.exercises.checking import Call, CheckFailure, on_copies

    def scale(a, b):
        a *= 2
        return a

    def scale_both(a, b):
        a *= 2
        b *= 2

    with pytest.raises(CheckFailure) as told:
        on_copies(Call(scale, "scale", tmp_path / "x.py"), np.ones(2), np.ones(2),
                  advice="Write `{name} = {name} * 2`.")
    assert str(told.value) == ("scale(a=[1., 1.], b=[1., 1.]) changed the a it was given, in "
                               "place, to [2., 2.]: the caller still needs what it passed in. "
                               "Write `a = a * 2`.")
    with pytest.raises(CheckFailure) as told:
        on_copies(Call(scale_both, "scale_both", tmp_path / "x.py"), np.ones(2), np.ones(2))
    assert str(told.value) == ("scale_both(a=[1., 1.], b=[1., 1.]) changed the a and the b it "
                               "was given, in place: the caller still needs what it passed in. "
                               "Compute the answer into new arrays (or new lists), and leave "
                               "what you are given as it came.")
