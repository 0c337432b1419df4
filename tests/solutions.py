"""The reference solutions, composed with their exercises.

A file in tinyformer/exercises/solutions/ (shipped with the package: `tinyformer exercises
solution N` shows it) holds only what a learner writes: the functions (or the whole class, where
the learner writes some of its methods) that the exercise leaves as TODOs.
`solved_text` appends it to the untouched exercise file, so that its definitions replace the
exercise's TODO ones and everything else (the exercise's given helpers, data and imports) is
the exercise's own: a change to a given helper is tested against the solution at once.

The exercise's `if __name__ == "__main__":` block stays where it is, above the solution; it
does not run, since a checker imports the file as the module `learner`.
"""

from pathlib import Path

from tinyformer.exercises import find, run_check
from tinyformer.exercises.catalogue import SOLUTIONS_DIR
from tinyformer.exercises.checking import CHECKER_ERROR



def solution_path(ex):
    """The reference solution of exercise `ex`: only the learner's part."""
    return SOLUTIONS_DIR / ex.file


def solution_text(ex):
    return solution_path(ex).read_text()


def solved_text(ex, solution=None):
    """The exercise file followed by its solution (`solution`, text to use in place of the
    solution file's, lets a test write a wrong answer)."""
    return ex.solved_text(solution)


def write_solved(ex, path, solution=None):
    """Write the solved exercise file to `path`; returns `path`."""
    path = Path(path)
    path.write_text(solved_text(ex, solution))
    return path


def edited_message(tmp_path, slug, old, new, *more_edits):
    """The checker's message for exercise `slug` solved by its reference solution with `old`
    replaced by `new` (and each further (old, new) pair of `more_edits`): a realistic wrong
    answer. Each `old` must occur in the solution, the wrong answer must fail, and by a message
    of the checker's, not a checker error."""
    ex = find(slug)
    text = solution_text(ex)
    for before, after in [(old, new), *more_edits]:
        assert before in text, f"the solution of {slug} no longer contains {before!r}"
        text = text.replace(before, after)
    message = run_check(ex, write_solved(ex, Path(tmp_path) / Path(ex.file).name, text))
    assert message is not None, f"a wrong answer to {slug} passed its checker"
    assert CHECKER_ERROR not in message, message
    return message


def expect_changed_in_place(message, opening, changed, advice=None):
    """`message` is a check's refusal of the call it opens with, `opening`, for writing into
    `changed` (`the x`, or `the q and the k`), arguments the checker goes on to use; it ends
    with `advice`, the exercise's own sentence on what to do instead, where one is given."""
    assert message.startswith(opening), message
    assert f"changed {changed} it was given, in place" in message, message
    assert "the caller still needs what it passed in." in message, message
    if advice is not None:
        assert message.endswith(advice), message
