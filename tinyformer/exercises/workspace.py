"""A learner's workspace: the exercise files they edit, and what the runner remembers.

    my-course/
        README.md                  how to work through the course
        01_vectors/one_hot.py      the exercise files, one folder per chapter
        ...
        pictures/                  what `tinyformer exercises draw N` drew of the learner's code
        .tinyformer/progress.json  which exercises passed (and the file's hash when they did),
                                   how many hints were shown, which solutions were shown,
                                   each chapter's prediction and whether it was right
        .tinyformer/progress.lock  held while a command changes progress.json
        .tinyformer/backups/       a learner's file as it was before `reset`

An exercise is done when its last check passed and the file has not changed since: the hash
tells. Everything stays in the workspace; nothing needs a network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from ..files import (EDITABLE_JSON, NotRegularFile, StrPath, atomic_write, command_line,
                     describe_os_error, first_existing, open_regular, shell_path,
                     why_not_a_directory)
from ..resources import usable_cores
from ..schema import BadInput
from .catalogue import CHAPTERS, Exercise, exercises
from .isolated import check_in_subprocess, stop_running

try:
    import fcntl
except ImportError:                    # Windows: the lock is msvcrt's (see held_lock)
    fcntl = None
    import msvcrt

STATE_DIR = ".tinyformer"
PROGRESS = "progress.json"
PROGRESS_LOCK = "progress.lock"
PICTURES = "pictures"
DEFAULT_DIR = "tinyformer-exercises"


class Checked(NamedTuple):
    """One check's outcome: `message` None when it passed, else what is still wrong."""
    ex: Exercise
    message: str | None
    printed: str
    seconds: float


def timed_check(ex: Exercise, path: Path, timeout: float) -> tuple[str | None, str, float]:
    """check_in_subprocess, and the seconds it took (checks run side by side: each is timed
    in its own thread)."""
    start = time.perf_counter()
    message, printed = check_in_subprocess(ex, path, timeout)
    return message, printed, time.perf_counter() - start


class WorkspaceError(BadInput):
    """Something about the workspace the learner must fix; the message says what to do."""


def file_hash(path: StrPath) -> str:
    """The SHA-256 of the file at `path`, read a block at a time. WorkspaceError, before
    anything is read, if it is not a regular file (a folder, a pipe, a device, or a link to
    one: open_regular)."""
    try:
        f = open_regular(path)
    except NotRegularFile as e:
        raise WorkspaceError(str(e)) from None
    digest = hashlib.sha256()
    with f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def init_workspace(directory: StrPath) -> Workspace:
    """Copy a fresh set of exercise files into `directory` (new or empty) and start the
    progress file. Refuses a directory with anything in it, so nothing is overwritten."""
    root = Path(directory).resolve()          # checks run elsewhere: the path must be whole
    if is_workspace(root):
        raise WorkspaceError(f"{root} is already an exercise workspace; "
                             f"`{command_line('exercises', 'reset', 'N')}` restores one "
                             f"exercise's file")
    if root.exists() and not root.is_dir():
        raise WorkspaceError(f"{root} is a file; give a new directory for the workspace")
    if not root.exists() and not os.path.isdir(first_existing(root)):
        # (mkdir said only "not a directory", naming no file and no way out)
        raise WorkspaceError(f"cannot make {root}: {why_not_a_directory(root)}; give a path "
                             f"for the new workspace that no file is part of")
    if root.exists() and any(root.iterdir()):
        raise WorkspaceError(f"{root} is not empty; give a new or empty directory, so that "
                             f"no file of yours is overwritten")
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        for ex in exercises():
            target = root / ex.file
            target.parent.mkdir(exist_ok=True)
            try:
                shutil.copyfile(ex.source, target)
            except OSError as error:           # a full disk's names the course's own file
                raise OSError(error.errno, error.strerror, str(target)) from None
        (root / "README.md").write_text(workspace_readme(), encoding="utf-8")
        (root / STATE_DIR).mkdir()      # made last: its presence marks a complete workspace
        workspace = Workspace(root, fresh_progress())
        workspace.save()
    except BaseException:
        # What is in the folder now is this init's (it was new or empty): all of it goes, so
        # that init can run there again. A folder the learner made stays, empty.
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for made in root.iterdir():
                if made.is_dir():
                    shutil.rmtree(made, ignore_errors=True)
                else:
                    made.unlink(missing_ok=True)
        raise
    return workspace


def is_workspace(root: StrPath) -> bool:
    """A workspace is marked by its .tinyformer folder; its progress.json may be missing (a
    learner deleted a damaged one, as its error advises), which is progress started afresh."""
    return (Path(root) / STATE_DIR).is_dir()


def find_workspace(directory: StrPath | None = None, required: bool = True) -> Workspace | None:
    """The workspace in `directory`, or else the one holding the current directory (None when
    there is none and it is not `required`). Its root is an absolute path: checks run in
    another directory, where a relative one would point elsewhere."""
    if directory is not None:
        root = Path(directory).resolve()
        if not is_workspace(root):
            # The advice must work: init makes a workspace only in a new or empty folder.
            if root.exists() and not root.is_dir():
                raise WorkspaceError(f"{directory} is a file, not an exercise workspace; give "
                                     f"the workspace's folder")
            if any((root / folder).is_dir() for folder, _ in CHAPTERS):
                # A copy that left hidden folders out (a zip, an upload): the files are here.
                raise WorkspaceError(f"{directory} holds exercise files but no {STATE_DIR} "
                                     f"folder, which marks a workspace (copied without its "
                                     f"hidden folders?); make an empty one: `mkdir "
                                     f"{shell_path(Path(directory) / STATE_DIR)}`")
            if root.is_dir() and any(root.iterdir()):
                raise WorkspaceError(f"{directory} is not an exercise workspace; give the "
                                     f"workspace's folder, or make one in a new folder with "
                                     f"`{command_line('exercises', 'init', 'DIR')}`")
            raise WorkspaceError(f"{directory} is not an exercise workspace; make one with "
                                 f"`{command_line('exercises', 'init', directory)}`")
        return Workspace.load(root)
    here = Path.cwd().resolve()
    for root in [here, *here.parents]:
        if is_workspace(root):
            return Workspace.load(root)
    if not required:
        return None
    raise WorkspaceError(f"no exercise workspace here or in any parent directory; make one "
                         f"with `{command_line('exercises', 'init')}`, or pass --workspace DIR")


@contextlib.contextmanager
def held_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on the file at `path` (made if missing), once another process has let
    go of it: flock; on Windows, msvcrt's lock of the file's first byte."""
    with open(path, "a+b") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)       # closing the file lets go
            yield
            return
        f.seek(0)                               # msvcrt locks from the file's position
        msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)
        try:
            yield
        finally:
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)


class Workspace:
    def __init__(self, root: StrPath, progress: dict[str, Any]) -> None:
        self.root, self.progress = Path(root), progress
        # Why the checks' outcomes could not be saved (check_each), or None.
        self.unsaved: OSError | None = None
        # Why the progress file could not be read (it is damaged, or the user may not read
        # it), or None. Such a file is left as it is, never written over: what the learner had
        # in it may yet be mended.
        self.unread: str | None = None

    @classmethod
    def load(cls, root: StrPath) -> Workspace:
        """The workspace at `root` with its saved progress. A progress file that is damaged
        or cannot be read stops nothing (checks do not need it; a teacher grades a student's
        folder all the same): the progress starts empty, in memory only, and `unread` says
        why."""
        path = Path(root) / STATE_DIR / PROGRESS
        if not path.exists():
            return cls(root, fresh_progress())
        try:
            progress = json.loads(path.read_text(encoding=EDITABLE_JSON))
            # A workspace made before a key existed lacks it; one of the wrong type is damage.
            for key, empty in fresh_progress().items():
                if not isinstance(progress.setdefault(key, empty), type(empty)):
                    raise ValueError
        except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
            workspace = cls(root, fresh_progress())
            workspace.unread = (f"{path} is damaged, so it is neither read nor written; "
                                f"delete it to start the progress afresh (your exercise "
                                f"files are kept)")
            return workspace
        except OSError as error:            # a folder in its place, a file of another's
            workspace = cls(root, fresh_progress())
            workspace.unread = describe_os_error(error)
            return workspace
        return cls(root, progress)

    def save(self) -> None:
        with atomic_write(self.root / STATE_DIR / PROGRESS, encoding="utf-8") as f:
            json.dump(self.progress, f, indent=1, sort_keys=True)

    @contextlib.contextmanager
    def changing(self) -> Iterator[dict[str, Any]]:
        """The progress as saved now, to change in the block, then saved. Read again, under a
        lock, rather than kept from when the workspace was opened: another command on it (a
        `hint` while `watch` runs, checks that a script runs side by side) may have changed it
        since, and writing back the older copy would undo that.

        A workspace that may be read but not written (a teacher grading a student's folder,
        one shared read-only): the change is made to the progress in memory only, and
        `unsaved` says why it was not kept; what the command shows stands. So too where the
        progress file could not be read (`unread`): saving over it would lose what it held."""
        with contextlib.ExitStack() as lock:
            try:
                (self.root / STATE_DIR).mkdir(exist_ok=True)
                lock.enter_context(held_lock(self.root / STATE_DIR / PROGRESS_LOCK))
                saved = Workspace.load(self.root)
                self.unread = saved.unread            # as it is now, mended or not
                if saved.unread is None:
                    self.progress = saved.progress
                locked = saved.unread is None
            except OSError as error:
                self.unsaved, locked = self.unsaved or error, False
            yield self.progress
            try:
                if locked:
                    self.save()
            except OSError as error:
                self.unsaved = self.unsaved or error

    def path(self, ex: Exercise) -> Path:
        return self.root / ex.file

    def status(self, ex: Exercise) -> str:
        """'done', 'not done', 'edited' (it passed, and the file changed since), or 'missing'
        (no file there: a check cannot run, and `reset` brings a fresh copy back)."""
        path = self.path(ex)
        # Missing as check, draw and watch see it: a link to nothing too, which they each
        # call missing, with the same reset.
        if not path.exists():
            return "missing"
        passed_hash = self.progress["passed"].get(ex.slug)
        if passed_hash is None:
            return "not done"
        # A folder, a pipe or a device where the file was is not what passed: edited, unread.
        if path.is_file() and file_hash(path) == passed_hash:
            return "done"
        return "edited"

    def next_unfinished(self) -> Exercise | None:
        """The first exercise in course order that is not done, or None when all are."""
        return next((ex for ex in exercises() if self.status(ex) != "done"), None)

    def check(self, ex: Exercise, timeout: float = 120) -> tuple[str | None, str]:
        """Check the learner's file and remember the outcome. Returns (message or None when it
        passes, what the learner's code printed)."""
        [checked] = self.check_each([ex], timeout)
        return checked.message, checked.printed

    def check_each(self, chosen: list[Exercise], timeout: float = 120,
                   keep_going: bool = False) -> Iterator[Checked]:
        """Check the learner's files of `chosen` and remember each outcome: yields a Checked
        (the exercise, message or None when it passes, what the learner's code printed, the
        seconds its check took) in the order given. Each check is a fresh process, so up to
        one per core run at once. A file that is missing or cannot be read stops them all
        before any starts (WorkspaceError), or with `keep_going` is that exercise's failure,
        and the others are checked: one deleted file hides nothing of the rest. Progress that
        cannot be saved stops nothing (changing's): `unsaved` says why."""
        paths = [self.path(ex) for ex in chosen]
        # Hashed before the checks: a file saved during its check must be checked again.
        hashes: list[str | None] = []
        unreadable: dict[int, str] = {}          # index in `chosen` -> why
        for i, (ex, path) in enumerate(zip(chosen, paths)):
            try:
                hashes.append(file_hash(path))
            except (OSError, WorkspaceError) as error:
                if not path.exists():
                    reset = command_line("exercises", "reset", str(ex.number))
                    why = f"{path} is missing; `{reset}` brings back a fresh copy"
                elif isinstance(error, WorkspaceError):      # a folder, a pipe, a device
                    reset = command_line("exercises", "reset", str(ex.number))
                    why = f"{error}, or `{reset}` puts a fresh copy in its place"
                else:
                    why = describe_os_error(error)
                if not keep_going:
                    raise WorkspaceError(why) from None
                hashes.append(None)
                unreadable[i] = why
        pool = ThreadPoolExecutor(max_workers=max(1, min(len(chosen), usable_cores())))
        try:
            checks = [None if i in unreadable else pool.submit(timed_check, ex, path, timeout)
                      for i, (ex, path) in enumerate(zip(chosen, paths))]
            for i, (ex, checked_hash, check) in enumerate(zip(chosen, hashes, checks)):
                message, printed, seconds = (unreadable[i], "", 0.0) if check is None \
                    else check.result()
                self.record(ex, checked_hash if message is None else None)
                yield Checked(ex, message, printed, seconds)
        except BaseException:           # stopped early (Ctrl-C): start no check that waits,
            pool.shutdown(wait=False, cancel_futures=True)
            stop_running()              # and stop those running, which Ctrl-C does not reach
            raise
        finally:
            pool.shutdown()

    def record(self, ex: Exercise, passed_hash: str | None) -> None:
        with self.changing() as progress:
            if passed_hash:
                progress["passed"][ex.slug] = passed_hash
            else:
                progress["passed"].pop(ex.slug, None)

    def take_hint(self, ex: Exercise) -> list[str]:
        """The hints shown so far, one more each call (up to all of them)."""
        with self.changing() as progress:
            shown = min(progress["hints"].get(ex.slug, 0) + 1, len(ex.hints))
            progress["hints"][ex.slug] = shown
        return ex.hints[:shown]

    def mark_solution_shown(self, ex: Exercise) -> None:
        with self.changing() as progress:
            if ex.slug not in progress["solutions"]:
                progress["solutions"].append(ex.slug)

    def solution_shown(self, ex: Exercise) -> bool:
        return ex.slug in self.progress["solutions"]

    def record_prediction(self, folder: str, answer: str, right: bool) -> None:
        """Remember a chapter's prediction (the chapter by its folder, `04_autograd`)."""
        with self.changing() as progress:
            progress["predictions"][folder] = {"answer": answer, "right": bool(right)}

    def prediction(self, folder: str) -> dict[str, Any] | None:
        """{"answer": ..., "right": ...} of the chapter's last prediction, or None."""
        found = self.progress["predictions"].get(folder)
        return found if isinstance(found, dict) else None

    def pictures_dir(self) -> Path:
        return self.root / PICTURES

    def reset(self, ex: Exercise) -> Path | None:
        """Restore the exercise's file to its untouched state. The learner's version is kept
        in .tinyformer/backups/ (returned), so a reset never loses work; an untouched file has
        nothing to keep (None)."""
        path = self.path(ex)
        backup = None
        # A link is moved aside as it is (writing through it would change the file it points
        # to, outside the workspace perhaps); a folder, a pipe or a device is, unread.
        if path.is_symlink() or path.exists() and not path.is_file():
            backup = self._backup_path(ex)
            os.replace(path, backup)
        elif path.exists() and path.read_bytes() != ex.source.read_bytes():
            backup = self._backup_path(ex)
            copy_whole(path, backup)
        path.parent.mkdir(parents=True, exist_ok=True)
        copy_whole(ex.source, path)
        with self.changing() as progress:
            progress["passed"].pop(ex.slug, None)
            progress["hints"].pop(ex.slug, None)
        return backup

    def _backup_path(self, ex: Exercise) -> Path:
        """A new name in .tinyformer/backups/ for the learner's version of `ex`'s file."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = self.root / STATE_DIR / "backups" / f"{ex.file[:-3]}-{stamp}.py"
        n = 1
        while backup.exists() or backup.is_symlink():   # two resets in one second: keep both
            n += 1
            backup = backup.with_name(f"{Path(ex.file).stem}-{stamp}-{n}.py")
        backup.parent.mkdir(parents=True, exist_ok=True)
        return backup


def copy_whole(source: Path, target: Path) -> None:
    """Copy `source` to `target` all or nothing (atomic_write): a full disk leaves the file
    that was at `target` as it was, not half of the new one, and its error names `target`."""
    with atomic_write(target, "wb") as f:
        f.write(source.read_bytes())


def fresh_progress() -> dict[str, Any]:
    """The progress of a workspace where nothing has happened yet."""
    return {"version": 1, "passed": {}, "hints": {}, "solutions": [], "predictions": {}}


def workspace_readme() -> str:
    lines = ["# The tinyformer course", "",
             "Each file here is one exercise: its docstring explains the idea, and its TODOs say",
             "what to write. Edit a file, then let the runner check it:", "",
             "    tinyformer exercises list        every exercise, done or not",
             "    tinyformer exercises show N      the explanation of exercise N",
             "    tinyformer exercises check       check the next unfinished exercise",
             "    tinyformer exercises watch       re-check on every save (Ctrl-C stops)",
             "    tinyformer exercises hint N      one more hint for exercise N",
             "    tinyformer exercises draw N      a picture of what your code for exercise N does",
             "    tinyformer exercises predict C   chapter C's question: what will this print?",
             "    tinyformer exercises solution N  the reference solution, after asking",
             "    tinyformer exercises reset N     restore exercise N's file (yours is backed up)",
             "", "Run them from anywhere inside this folder. The chapters:", ""]
    for number, (folder, title) in enumerate(CHAPTERS, start=1):
        names = ", ".join(ex.slug for ex in exercises() if ex.chapter == number)
        lines.append(f"{number:2d}. {title} (`{folder}/`: {names})")
    return "\n".join(lines) + "\n"
