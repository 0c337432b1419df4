"""The exercise runner: what each `tinyformer exercises` command does and shows the learner.

The command line (cli.py) parses the options, finds the workspace and the exercise, and turns
the errors below into exit statuses; everything a learner reads is written here:

    init(directory)                      copy a fresh workspace, and say where to start
    list_course(workspace)               every exercise by chapter, done or not
    show(ex, workspace)                  an exercise's explanation (its file's docstring)
    hint(workspace, ex)                  one more hint each call
    asked_or_next(workspace, ex, command)  the exercise that show and hint mean without one
    check(workspace, ex, timeout)        check one exercise; True when it passes
    check_all(workspace, timeout)        check every exercise, one line each (or JSON)
    echo_json_error(workspace, ex, error)  the JSON of a check that could not be made
    watch(workspace, ex, timeout)        check again on every save, then move on
    predict(workspace, chapter, answer)  a chapter's question: predict, then run
    chapter_to_ask(workspace, name)      the chapter `predict` asks about
    solution(workspace, ex, confirmed)   the reference solution, after a confirmation
    draw(workspace, ex, out, timeout)    a picture of what the learner's code computes
    reset(workspace, ex)                 restore an exercise's file, keeping the learner's

`workspace` is a `workspace.Workspace`, or None where a command works without one. A learner's
mistake in using a command raises RunnerError, and one about the workspace WorkspaceError
(both BadInput: the input's fault, not a bug; both one line saying what to do); a failing
check is no error: `check` returns False.
"""

from __future__ import annotations

import ast
import json
import math
import re
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterable

import click

from ..files import (StrPath, command_line, command_line_in, describe_os_error, shell_path,
                     why_not_a_directory)
from ..schema import BadInput
from .catalogue import CHAPTERS, Exercise, exercises, find_chapter, question
from .isolated import Printed, draw_in_subprocess, run_question
from .workspace import Checked, Workspace, init_workspace

STATUS_STYLE = {"done": "green", "not done": None, "edited": "yellow", "missing": "red"}
PICTURE_SUFFIXES = (".png", ".svg")


class RunnerError(BadInput):
    """A command given in a way that cannot work; the message says what to give instead."""


# ---------------------------------------------------------------------------------------------
# init, list, show, hint, reset
# ---------------------------------------------------------------------------------------------

def init(directory: StrPath) -> None:
    workspace = init_workspace(directory)
    first = exercises()[0]
    # The commands are typed after the `cd`: a program run by its path is named from there.
    click.echo(f"Wrote {len(exercises())} exercises to {workspace.root}/. Start with:\n"
               f"  cd {shell_path(directory)}\n"
               f"  {command_line_in(directory, 'exercises', 'show', '1')}      then edit "
               f"{first.file}\n"
               f"  {command_line_in(directory, 'exercises', 'check')}       or `watch`, to "
               f"re-check on every save")


def list_course(workspace: Workspace | None) -> None:
    """Every exercise by chapter with its status, and what the learner has seen: the solutions
    shown and each chapter's prediction."""
    done = 0
    for chapter, (folder, title) in enumerate(CHAPTERS, start=1):
        heading = click.style(f"{chapter}. {title}", bold=True)
        guess = workspace.prediction(folder) if workspace else None
        if guess is not None:
            heading += click.style(f"  (prediction: {'right' if guess['right'] else 'wrong'})",
                                   dim=True)
        click.echo(heading)
        for ex in exercises():
            if ex.chapter != chapter:
                continue
            status = workspace.status(ex) if workspace else ""
            done += status == "done"
            mark = click.style(f"{status:9s}", fg=STATUS_STYLE.get(status))
            seen = click.style("  [solution shown]", fg="magenta") \
                if workspace and workspace.solution_shown(ex) else ""
            click.echo(f"  {ex.number:3d}  {mark} {ex.slug:32s} {ex.title}{seen}")
    if workspace is None:
        click.echo(f"\nNo workspace here: `{command_line('exercises', 'init', 'DIR')}` makes one.")
        return
    click.echo(f"\n{done} of {len(exercises())} done, in {workspace.root}")
    statuses = {ex.number: workspace.status(ex) for ex in exercises()}
    if "edited" in statuses.values():
        click.echo("(edited: it passed once and has changed since; check it again)")
    if "missing" in statuses.values():
        missing = next(number for number, status in statuses.items() if status == "missing")
        click.echo(f"(missing: its file is gone; "
                   f"`{command_line('exercises', 'reset', str(missing))}` brings back a fresh "
                   f"copy)")
    click.echo(f"Each chapter has a question to answer before you run it: "
               f"{command_line('exercises', 'predict', 'CHAPTER')}")
    say_unsaved(workspace, "the exercises are listed")


def explanation(ex: Exercise) -> str:
    """The lesson of exercise `ex`: its file's docstring without the first line (the title),
    the command it ends with ("Check it with:  tinyformer exercises check SLUG") naming the
    program as it was run (`python cli.py` from a clone), as the runner's own messages do."""
    doc = ast.get_docstring(ast.parse(ex.source.read_text(encoding="utf-8")))
    lesson = doc.split("\n", 1)[1].strip() if "\n" in doc else doc
    return re.sub(r"\btinyformer(?= exercises )", lambda _: command_line(), lesson)


def asked_or_next(workspace: Workspace | None, ex: Exercise | None, command: str) -> Exercise:
    """The exercise `ex`, or without one the next unfinished, as `check` picks it (outside a
    workspace, the first). RunnerError where every one passes: there is none to pick, and
    `command` (show, hint) is told how to name one."""
    if ex is not None:
        return ex
    following = workspace.next_unfinished() if workspace else exercises()[0]
    if following is None:
        raise RunnerError(f"all {len(exercises())} exercises pass, so none is next: name one, "
                          f"`{command_line('exercises', command, 'N')}` "
                          f"(`{command_line('exercises', 'list')}` lists them)")
    return following


def show(ex: Exercise | None, workspace: Workspace | None) -> None:
    """Print the explanation of `ex` (None: the next unfinished one)."""
    ex = asked_or_next(workspace, ex, "show")
    click.echo(click.style(f"Exercise {ex.number} of {len(exercises())}: {ex.title}  "
                           f"(chapter {ex.chapter}, {ex.chapter_title})", bold=True))
    click.echo(f"\n{explanation(ex)}\n")
    if workspace is None:
        click.echo(f"Your file: {ex.file}, in a workspace made by "
                   f"`{command_line('exercises', 'init')}`")
    else:
        click.echo(f"Your file: {workspace.path(ex)}  ({workspace.status(ex)})")
        say_unsaved(workspace, "the exercise is shown")


def hint(workspace: Workspace, ex: Exercise | None) -> None:
    """One more hint for `ex` (None: the next unfinished one)."""
    ex = asked_or_next(workspace, ex, "hint")
    shown = workspace.take_hint(ex)
    for i, text in enumerate(shown, start=1):
        click.echo(f"Hint {i} of {len(ex.hints)}: {text}")
    if len(shown) < len(ex.hints):
        # Where the count cannot be kept (another's workspace), asking again shows these again.
        if workspace.unsaved is None and workspace.unread is None:
            click.echo(f"(ask again for hint {len(shown) + 1})")
    else:
        solution = command_line("exercises", "solution", str(ex.number))
        click.echo(f"(that was the last hint; `{solution}` shows a solution)")
    say_unsaved(workspace, "the hints are shown")


def reset(workspace: Workspace, ex: Exercise) -> None:
    backup = workspace.reset(ex)
    click.echo(f"Restored {workspace.path(ex)}"
               + (f"; your version is in {backup}" if backup else ""))
    say_unsaved(workspace, "the file is restored")


# ---------------------------------------------------------------------------------------------
# check and watch
# ---------------------------------------------------------------------------------------------

def report_check(ex: Exercise, message: str | None, printed: str, quiet: bool = False,
                 failed: str = "FAIL ") -> bool:
    """Print one check's outcome (with what the learner's code printed, unless `quiet`); True
    when it passed. `failed` heads a failure's line."""
    name = f"{ex.number} {ex.slug} ({ex.file})"
    if printed.strip() and not quiet:
        lines = printed.rstrip().splitlines()
        # Of a long print only its last part is kept: the lines before it count too.
        total = len(lines) + (printed.lines_before if isinstance(printed, Printed) else 0)
        click.echo(click.style("Your code printed:", dim=True)
                   + (f" (the last 20 of {total} lines)" if total > 20 else ""))
        click.echo("\n".join("  " + line for line in lines[-20:]))
    if message is None:
        click.echo(click.style("PASS ", fg="green", bold=True) + name)
        return True
    click.echo(click.style(failed, fg="red", bold=True) + name)
    if not quiet:
        click.echo("\n".join("  " + line for line in message.splitlines()))
        click.echo(f"  (a hint: {command_line('exercises', 'hint', str(ex.number))})")
    return False


def say_next(workspace: Workspace) -> None:
    following = workspace.next_unfinished()
    if following is None:
        click.echo(f"All {len(exercises())} exercises pass. You have built a Transformer, "
                   f"piece by piece.")
    else:
        click.echo(f"Next: {following.number} {following.slug}, {following.title}: "
                   f"{command_line('exercises', 'show', str(following.number))}")


def check(workspace: Workspace, ex: Exercise | None, timeout: float = 120,
          as_json: bool = False) -> bool:
    """Check exercise `ex` (None: the next unfinished one) and say what is still wrong, or
    what comes next; `as_json` prints the outcome as check_all's JSON object instead. True
    when it passes (or nothing is left to check)."""
    ex = ex or workspace.next_unfinished()
    if as_json:
        passed = echo_json(workspace, workspace.check_each([ex] if ex else [], timeout))
        say_unsaved(workspace)
        return passed
    if ex is None:
        say_next(workspace)
        return True
    message, printed = workspace.check(ex, timeout)
    passed = report_check(ex, message, printed)
    if passed:
        say_next(workspace)
    say_unsaved(workspace)
    return passed


def check_all(workspace: Workspace, timeout: float = 120, as_json: bool = False) -> bool:
    """Check every exercise, one line each in course order (one check per core at once), a
    failure's with the first line of what is wrong under it; `as_json` prints one JSON object
    instead (see echo_json). A file missing or unreadable is its exercise's failure: the
    others are checked all the same. True when all pass."""
    checks = workspace.check_each(exercises(), timeout, keep_going=True)
    if as_json:
        passed = echo_json(workspace, checks)
        say_unsaved(workspace)
        return passed
    # Cut to the terminal, or to 100 characters where there is none (a file, a pipe).
    width = max(40, shutil.get_terminal_size((100, 24)).columns)
    passed = 0
    for ex, message, printed, _ in checks:
        passed += report_check(ex, message, printed, quiet=True)
        if message is not None:
            click.echo(shorten("  " + first_line(message), width - 1))
    click.echo(f"\n{passed} of {len(exercises())} pass")
    say_unsaved(workspace)
    return passed == len(exercises())


def say_unsaved(workspace: Workspace | None, done: str = "the checks ran") -> None:
    """A note on stderr, where what was `done` could not be saved in the workspace's progress
    (one the user may read but not write), or was done without it (its file is damaged or
    cannot be read)."""
    if workspace is not None and workspace.unread is not None:
        click.echo(f"Note: {done}, without the progress: {workspace.unread}", err=True)
    elif workspace is not None and workspace.unsaved is not None:
        click.echo(f"Note: {done}, but the progress was not saved "
                   f"({describe_os_error(workspace.unsaved)})", err=True)


def echo_json(workspace: Workspace | None, checks: Iterable[Checked],
              error: str | None = None) -> bool:
    """Print the checks' outcomes as one JSON object on one line, for a script that grades
    (nothing else goes to stdout): {"workspace": its folder, "exercises": [{"number", "name",
    "passed", "reason": what is wrong or null, "seconds"}, ...], "passed": how many passed,
    "total": how many were checked, "error": null, or why the checks could not be made (see
    echo_json_error)}. True when all passed."""
    done = [{"number": ex.number, "name": ex.slug, "passed": message is None,
             "reason": message, "seconds": round(seconds, 3)}
            for ex, message, _, seconds in checks]
    passed = sum(outcome["passed"] for outcome in done)
    click.echo(json.dumps({"workspace": None if workspace is None else str(workspace.root),
                           "exercises": done, "passed": passed, "total": len(done),
                           "error": error}))
    return passed == len(done)


def echo_json_error(workspace: Workspace | None, ex: Exercise | None, error: str) -> None:
    """echo_json's object for a check that could not be made (no workspace, the exercise's
    file missing, ...), whose one-line `error` goes to stderr too: a grading script that reads
    stdout gets an object to parse all the same. The exercise asked for, if known, is failed
    with `error` as its reason; the workspace is null where none was found."""
    echo_json(workspace, [] if ex is None else [Checked(ex, error, "", 0.0)], error)


def first_line(message: str) -> str:
    """The first line of a failure's message that says something."""
    return next((line.strip() for line in message.splitlines() if line.strip()), "")


def shorten(line: str, width: int) -> str:
    """`line`, cut to `width` characters with "..." when it is longer."""
    return line if len(line) <= width else line[:width - 3].rstrip() + "..."


def watch(workspace: Workspace, ex: Exercise | None, timeout: float = 120,
          max_checks: int | None = None, poll_seconds: float = 0.3) -> None:
    """Check `ex` (None: the next unfinished one) every time its file is saved; once it
    passes, go on to the next. Ctrl-C stops, saying so: the KeyboardInterrupt goes on to the
    caller (the command exits with Ctrl-C's status). So does `max_checks` checks (for
    tests)."""
    ex = ex or workspace.next_unfinished()
    if workspace.unread is not None:            # said first: a watch ends with Ctrl-C
        say_unsaved(workspace, "the checks run")
    checks = 0
    try:
        while ex is not None:
            checked = saved_at(workspace.path(ex))    # before the check: a save during it
            message, printed = workspace.check(ex, timeout)          # is one to check too
            checks += 1
            if report_check(ex, message, printed):
                say_next(workspace)
                ex = workspace.next_unfinished()
                if ex is None or (max_checks and checks >= max_checks):
                    return
                continue        # check the next one at once: it says what to write first
            if max_checks and checks >= max_checks:
                return
            reset = command_line("exercises", "reset", str(ex.number))
            wait_for_save(workspace.path(ex), checked, poll_seconds,
                          f"`{reset}` brings back a fresh copy")
            click.echo()
    except KeyboardInterrupt:
        click.echo("\nStopped watching.")
        raise
    if ex is None:                  # every exercise passes (from the start, or now)
        say_next(workspace)


def saved_at(path: Path) -> int | None:
    """When `path` was last saved (its modification time), or None if it is missing."""
    return path.stat().st_mtime_ns if path.exists() else None


def wait_for_save(path: Path, checked: int | None, poll_seconds: float,
                  restore: str = "") -> None:
    """Return once `path` has been saved since `checked` (saved_at when its check began).
    Polling needs nothing installed and sees every editor's way of saving. A missing file is
    waited for, saying once how to `restore` it: an editor may delete the file before it
    writes the new one, and a check of a missing file would end the watch."""
    click.echo(click.style(f"Watching {path}: save it to check again (Ctrl-C stops)", dim=True))
    missing_said = False
    while (saved := saved_at(path)) == checked or saved is None:
        if saved is None and not missing_said:
            click.echo(click.style(f"{path} is missing: waiting for it to come back"
                                   + (f" ({restore})" if restore else ""), dim=True))
            missing_said = True
        time.sleep(poll_seconds)


# ---------------------------------------------------------------------------------------------
# predict: a chapter's "predict, then run" question
# ---------------------------------------------------------------------------------------------

def predict(workspace: Workspace | None, chapter: int, answer: str | None = None) -> bool:
    """Show chapter `chapter`'s snippet, take the learner's prediction of what it prints
    (`answer`, or lines read from the terminal up to an empty one), run it in a fresh process,
    and show both side by side with the idea behind the answer. Returns whether the
    prediction was right; the workspace, if any, remembers it."""
    folder, title = CHAPTERS[chapter - 1]
    asked = question(chapter)
    click.echo(click.style(f"Chapter {chapter}, {title}: what will this print?", bold=True))
    click.echo()
    click.echo("\n".join(("    " + line).rstrip() for line in asked.code.rstrip().splitlines()))
    click.echo()
    if answer is None:
        click.echo("Your prediction (then an empty line):")
        answer = read_until_empty_line()
    if not answer.strip():
        raise RunnerError("no prediction given: write what you expect it to print, then an "
                          "empty line (or pass --answer TEXT)")
    printed = run_question(chapter)
    right = same_output(answer, printed)
    click.echo(side_by_side(("You predicted:", answer), ("It printed:", printed)))
    click.echo(click.style("Right." if right else "Not quite.", bold=True,
                           fg="green" if right else "yellow")
               + ("" if right else " They differ, even with spacing, commas and quotes set "
                                   "aside and numbers allowed 1% (or 0.01) off."))
    click.echo(textwrap.fill(f"Why: {asked.why}", width=92, subsequent_indent="     "))
    if workspace is not None:
        workspace.record_prediction(folder, answer, right)
        say_unsaved(workspace, "the prediction is marked")
    return right


def chapter_to_ask(workspace: Workspace | None, name: int | str | None = None) -> int:
    """The chapter a learner means by `name` (a number or a folder name), or without one the
    chapter of the next unfinished exercise (the first chapter outside a workspace)."""
    if name is None:
        following = workspace.next_unfinished() if workspace else None
        return following.chapter if following else 1
    try:
        return find_chapter(name)
    except BadInput as error:       # a bug's ValueError is no chapter refused
        raise RunnerError(str(error)) from None


def read_until_empty_line() -> str:
    """Lines typed by the learner, up to an empty line or the end of the input."""
    lines = []
    for line in iter(sys.stdin.readline, ""):
        if not line.strip():
            break
        lines.append(line.rstrip("\n"))
    return "\n".join(lines)


# A word, a number (as Python and numpy print them), or one sign. Commas and quotes are left
# out: `[5, 6]` and `[5 6]`, 'dog' and dog, say the same thing.
_TOKEN = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|\w+|[^\s\w,'\"]")


def same_output(predicted: str, printed: str) -> bool:
    """Whether a prediction says what was printed: the same words and signs in the same
    order, and numbers equal to within 1% or 0.01, whatever the spacing."""
    guessed, shown = _TOKEN.findall(predicted), _TOKEN.findall(printed)
    if len(guessed) != len(shown):
        return False
    return all(_same_token(x, y) for x, y in zip(guessed, shown))


def _same_token(guessed: str, shown: str) -> bool:
    try:
        x, y = float(guessed), float(shown)
    except ValueError:
        return guessed == shown
    if not (math.isfinite(x) and math.isfinite(y)):             # inf, -inf, nan
        return x == y or (math.isnan(x) and math.isnan(y))
    # + 1e-9: 1 and 0.99 are 0.01 apart, though not quite in binary floating point
    return abs(x - y) <= max(0.01, 0.01 * max(abs(x), abs(y))) + 1e-9


def side_by_side(left: tuple[str, str], right: tuple[str, str]) -> str:
    """Two (heading, text) columns next to each other."""
    (left_title, left_text), (right_title, right_text) = left, right
    lefts = [left_title] + ["  " + line for line in left_text.rstrip().splitlines()]
    rights = [right_title] + ["  " + line for line in right_text.rstrip().splitlines()]
    width = max(len(line) for line in lefts) + 4
    rows = max(len(lefts), len(rights))
    lefts += [""] * (rows - len(lefts))
    rights += [""] * (rows - len(rights))
    return "\n".join(f"{a:{width}s}{b}".rstrip() for a, b in zip(lefts, rights))


# ---------------------------------------------------------------------------------------------
# solution and draw
# ---------------------------------------------------------------------------------------------

def solution(workspace: Workspace | None, ex: Exercise, confirmed: bool = False) -> bool:
    """Print exercise `ex`'s reference solution once the learner confirms (or `confirmed`),
    and remember in the workspace that it was shown. Returns whether it was shown."""
    if not confirmed:
        if workspace is not None and workspace.unread is not None:
            # The count is in the progress file not read: 0 would be a guess said as a fact.
            seen = f"It has {len(ex.hints)} hints"
        else:
            hints = workspace.progress["hints"].get(ex.slug, 0) if workspace else 0
            seen = f"You have seen {hints} of its {len(ex.hints)} hints"
        click.echo(f"Exercise {ex.number}, {ex.slug}: working it out is what teaches. {seen} "
                   f"({command_line('exercises', 'hint', str(ex.number))}).")
        try:
            confirmed = click.confirm("Show the reference solution?", default=False)
        except click.Abort:         # no terminal to answer from, or Ctrl-C: a no
            click.echo()
            confirmed = False
        if not confirmed:
            click.echo("Not shown.")
            say_unsaved(workspace, "nothing is shown")
            return False
    if workspace is not None:
        workspace.mark_solution_shown(ex)
    click.echo(click.style(f"Reference solution of exercise {ex.number}, {ex.slug}: these "
                           f"definitions replace the TODO ones in {ex.file}", bold=True))
    click.echo()
    click.echo(ex.solution.read_text(encoding="utf-8").rstrip())
    say_unsaved(workspace, "the solution is shown")
    return True


def draw(workspace: Workspace, ex: Exercise, out: StrPath | None = None,
         timeout: float = 120) -> str | None:
    """Run the learner's file of exercise `ex` in a fresh process and draw what it computes
    into `out` (default: the workspace's pictures/ folder). Returns the message saying why it
    could not be drawn (the learner's code is not ready), or None once the path is printed."""
    from .pictures import DRAWERS
    if ex.slug not in DRAWERS:
        names = ", ".join(f"{e.number} {e.slug}" for e in exercises() if e.slug in DRAWERS)
        raise RunnerError(f"exercise {ex.number} ({ex.slug}) has no picture; these have: "
                          f"{names}")
    path = Path(out) if out is not None else \
        workspace.pictures_dir() / f"{ex.number:02d}_{ex.slug}.png"
    if path.is_dir():
        raise RunnerError(f"--out {out} is a directory; give a file name")
    if path.suffix.lower() not in PICTURE_SUFFIXES:
        raise RunnerError(f"--out {out}: give a file name ending in "
                          f"{' or '.join(PICTURE_SUFFIXES)}")
    if out is None:
        path.parent.mkdir(exist_ok=True)
    elif not path.parent.is_dir():
        raise RunnerError(f"--out {out}: {why_not_a_directory(path.parent)}; give a path in a "
                          f"directory that exists")
    source = workspace.path(ex)
    if not source.exists():
        reset = command_line("exercises", "reset", str(ex.number))
        raise RunnerError(f"{source} is missing; `{reset}` brings back a fresh copy")
    message, printed = draw_in_subprocess(ex, source, path.resolve(), timeout)
    if message is not None:
        report_check(ex, message, printed, failed="CANNOT DRAW ")   # as a check says why
        return message
    click.echo(f"Drew {DRAWERS[ex.slug].what} to {path}")
    return None
