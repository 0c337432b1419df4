"""The course: its chapters, and every exercise with its file, hints and checker.

Each chapter has a folder of exercise files under `course/` (copied into a learner's workspace),
a folder of reference solutions under `solutions/` (never copied: `tinyformer exercises solution
N` shows one, after asking) and a module of checkers under `checks/`. A checker module registers
its exercises, in the order a learner meets them, with the `exercise` decorator, and defines its
chapter's "predict, then run" question as `QUESTION`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from ..files import command_line
from ..schema import BadInput, nearest

if TYPE_CHECKING:                   # checking.py imports this module
    from .checking import Learner

# A checker: check(learner) returns when the learner's file is right, and raises CheckFailure
# saying what differs while it is not.
Checker = Callable[["Learner"], None]

COURSE_DIR = Path(__file__).parent / "course"
SOLUTIONS_DIR = Path(__file__).parent / "solutions"
SOLVED_MARKER = "# --- the reference solution: it replaces the TODOs ---"

# (folder under course/ and checks/, title): the order in which the ideas build.
CHAPTERS = [
    ("01_vectors", "One-hot vectors and matrix multiplication"),
    ("02_counting", "Sequence models by counting"),
    ("03_masking", "Masking as attention"),
    ("04_autograd", "Autograd by hand"),
    ("05_embeddings", "Embeddings and positions"),
    ("06_attention", "Attention"),
    ("07_block", "The Transformer block"),
    ("08_training", "Training"),
    ("09_generation", "Generation"),
    ("10_bpe", "Byte-pair encoding"),
    ("11_by_hand", "Weights by hand"),
    ("12_encoder", "The encoder and cross-attention"),
    ("13_bert_gpt", "GPT, BERT and the encoder-decoder"),
    ("14_your_gpt", "Your GPT"),
    ("15_learned_induction", "A learned induction head"),
]


@dataclass
class Exercise:
    slug: str                 # the name a learner can type: `check one_hot`
    chapter: int              # 1-based, into CHAPTERS
    title: str
    hints: list[str]
    check: Checker            # check(learner) raises CheckFailure while something is wrong
    forbid: tuple[str, ...] = ()    # modules the learner's file may not use: they hold the answer
    forbid_methods: tuple[str, ...] = ()    # methods it may not call: the engine's own answer
    number: int = 0           # 1-based position in the whole course, set by `exercises()`
    file: str = field(default="")   # path inside the workspace, e.g. "01_vectors/one_hot.py"

    @property
    def chapter_title(self) -> str:
        return CHAPTERS[self.chapter - 1][1]

    @property
    def source(self) -> Path:
        """The untouched exercise file shipped with the package."""
        return COURSE_DIR / self.file

    @property
    def solution(self) -> Path:
        """The reference solution: only what the learner writes (the functions, or the whole
        class, that the exercise leaves as TODOs), meant to replace the exercise's TODO ones."""
        return SOLUTIONS_DIR / self.file

    def solved_text(self, solution: str | None = None) -> str:
        """The exercise file with the reference solution (or `solution`, text to use in its
        place) appended: its definitions replace the TODO ones, and everything else (the
        given helpers, data and imports) is the exercise's own. The file's `if __name__ ==
        "__main__":` block stays above the solution; a checker imports the file, so it does
        not run."""
        if solution is None:
            solution = self.solution.read_text(encoding="utf-8")
        exercise = self.source.read_text(encoding="utf-8").rstrip()
        return f"{exercise}\n\n\n{SOLVED_MARKER}\n\n{solution}"


@dataclass
class Question:
    """A chapter's "predict, then run" question: a few lines that use the chapter's ideas,
    whose printed output the learner writes down before the runner runs them. A checker module
    defines its chapter's as `QUESTION`."""
    code: str                 # a self-contained snippet; what it prints is the answer
    output: str               # what it prints (the tests run `code` and compare)
    why: str                  # the idea behind the answer, shown once the learner has guessed


_registered: list[Exercise] = []


def exercise(slug: str, title: str, hints: Iterable[str], forbid: Iterable[str] = (),
             forbid_methods: Iterable[str] = ()) -> Callable[[Checker], Checker]:
    """Register the decorated function as the checker of exercise `slug`, whose file is
    `course/<chapter folder>/<slug>.py`; the chapter is the checker module's own. `forbid`
    names the modules that implement what the exercise asks for (e.g. "tinyformer.blocks"),
    and `forbid_methods` the methods that do (e.g. "gelu", for `x.gelu()`): a file that uses
    them is refused before it is checked."""
    def register(check: Checker) -> Checker:
        folder = check.__module__.rsplit(".", 1)[-1].removeprefix("ch")
        chapter = [name for name, _ in CHAPTERS].index(folder) + 1
        _registered.append(Exercise(slug, chapter, title, list(hints), check,
                                    forbid=tuple(forbid), forbid_methods=tuple(forbid_methods),
                                    file=f"{folder}/{slug}.py"))
        return check
    return register


_catalogue: list[Exercise] | None = None


def exercises() -> list[Exercise]:
    """Every exercise, numbered in course order."""
    global _catalogue
    if _catalogue is None:
        for folder, _ in CHAPTERS:
            importlib.import_module(f"tinyformer.exercises.checks.ch{folder}")
        ordered = sorted(_registered, key=lambda e: e.chapter)   # stable: keeps file order
        for number, ex in enumerate(ordered, start=1):
            ex.number = number
        _catalogue = ordered
    return _catalogue


def find(name: int | str) -> Exercise:
    """The exercise a learner means by `name`: its number (`3`) or its slug (`one_hot`).
    Raises BadInput (a ValueError) with what there is to choose from."""
    catalogue = exercises()
    if str(name).removeprefix("-").isdigit():           # -1 too: a number, if not an exercise's
        number = int(name)
        if 1 <= number <= len(catalogue):
            return catalogue[number - 1]
        raise BadInput(f"there is no exercise {number}: they are numbered 1 to "
                       f"{len(catalogue)} (see `{command_line('exercises', 'list')}`)")
    for ex in catalogue:
        if ex.slug == name:
            return ex
    raise BadInput(f"there is no exercise called {name!r}{_did_you_mean(str(name))}: give a "
                   f"number or a name from `{command_line('exercises', 'list')}`")


def _did_you_mean(name: str) -> str:
    """` (did you mean one_hot?)` for a name a learner typed that is near some slugs: a part of
    one (`dot`), a slip (`one_hto`), a dash for an underscore, or the file's name itself
    (`01_vectors/one_hot.py`); empty if none is near."""
    wanted = Path(name).stem.replace("-", "_")
    near = nearest(wanted, [ex.slug for ex in exercises()], most=4, parts=True)
    if not near:
        return ""
    *first, last = near
    return f" (did you mean {', '.join(first) + ' or ' if first else ''}{last}?)"


def question(chapter: int) -> Question:
    """The "predict, then run" question of `chapter` (1-based)."""
    folder = CHAPTERS[chapter - 1][0]
    return importlib.import_module(f"tinyformer.exercises.checks.ch{folder}").QUESTION


def find_chapter(name: int | str) -> int:
    """The chapter a learner means by `name`: its number (`4`) or its folder (`04_autograd`).
    Returns the 1-based number; raises BadInput (a ValueError) with what there is to choose
    from."""
    name = str(name)
    if name.isdigit() and 1 <= int(name) <= len(CHAPTERS):
        return int(name)
    for number, (folder, _) in enumerate(CHAPTERS, start=1):
        if name == folder:
            return number
    raise BadInput(f"there is no chapter {name!r}: give a number from 1 to {len(CHAPTERS)} "
                   f"or a folder name such as {CHAPTERS[0][0]} (see "
                   f"`{command_line('exercises', 'list')}`)")
