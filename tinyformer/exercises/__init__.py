"""The exercise course: files a learner edits, checkers that say what is still wrong, and the
workspace that remembers progress. `tinyformer exercises --help` is the way in.

- `catalogue.py`: the chapters, and every exercise with its hints and checker.
- `checking.py`: what checkers use to compare a learner's answers and word the failures.
- `checks/`: the checkers, a module per chapter.
- `course/`: the exercise files, copied into a workspace by `tinyformer exercises init`.
- `workspace.py`: a learner's workspace: copying files in, progress, hints, resetting.
- `isolated.py`: runs one check in a fresh process, so the learner's code cannot stop the runner.
"""

from .catalogue import CHAPTERS, Exercise, exercises, find
from .checking import CheckFailure, run_check

__all__ = ["CHAPTERS", "Exercise", "exercises", "find", "CheckFailure", "run_check"]
