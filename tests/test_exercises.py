"""The course proves itself: for every exercise, the untouched file fails its checker and the
reference solution (kept here, in tests/exercise_solutions/, never shipped in a workspace)
passes it."""

from pathlib import Path

import pytest

from tinyformer.exercises import CHAPTERS, exercises, run_check
from tinyformer.exercises.checking import CHECKER_ERROR

SOLUTIONS = Path(__file__).parent / "exercise_solutions"
COURSE = exercises()


@pytest.mark.parametrize("ex", COURSE, ids=[e.file.removesuffix(".py") for e in COURSE])
def test_untouched_file_fails(ex):
    message = run_check(ex, ex.source)
    assert message is not None, f"{ex.file}: the untouched exercise passes its checker"
    assert CHECKER_ERROR not in message, message


@pytest.mark.parametrize("ex", COURSE, ids=[e.file.removesuffix(".py") for e in COURSE])
def test_reference_solution_passes(ex):
    solution = SOLUTIONS / ex.file
    assert solution.exists(), f"no reference solution at {solution}"
    assert run_check(ex, solution) is None, run_check(ex, solution)


@pytest.mark.parametrize("ex", COURSE, ids=[e.file.removesuffix(".py") for e in COURSE])
def test_exercise_file_explains_itself(ex):
    import ast
    text = ex.source.read_text()
    doc = ast.get_docstring(ast.parse(text))
    assert doc and len(doc.splitlines()) >= 8, f"{ex.file}: the explanation is missing or thin"
    assert f"tinyformer exercises check {ex.slug}" in doc
    assert "TODO" in text
    assert ex.hints, f"{ex.slug} has no hints"


def test_the_course_has_every_chapter_and_enough_exercises():
    chapters = {ex.chapter for ex in COURSE}
    assert chapters == set(range(1, len(CHAPTERS) + 1))
    assert len(COURSE) >= 24
    assert len({ex.slug for ex in COURSE}) == len(COURSE), "two exercises share a name"
