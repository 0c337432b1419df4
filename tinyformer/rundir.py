"""The run directory: every file a `tinyformer train` run writes, and one writer at a time.

    runs/shakespeare/
        manifest.json      what the run owns: the names of its files; its settings (with
                           the parameters frozen at its first step), and its tokens.bin's
                           length and SHA-256 and its tokenizer.json's, to start it again
                           on them; the step of its last checkpoint, and of the one being
                           written; and, where it diverged, the step and the trainer's
                           message (`--resume` would only repeat it)
        run.lock           there while a process trains here; holds that process's id
        config.json        the checkpoint: the model's class and arguments (and the
                           modules of your own in it), the training settings, the step,
                           the optimizer's and random generators' small state, which
                           parameters are frozen, and the name and SHA-256 of each file
                           below; written last
        weights-NNNNNN.npz     the parameters by dotted name, one array each
        optimizer-NNNNNN.npz   the optimizer's arrays (Adam's moments), for --resume
        tokenizer.json     the tokenizer (tokenizers.py's JSON)
        tokens.bin         the tokenised corpus (train, then validation), memory-mapped
        tokens.bin.new     a new run's tokens.bin while a previous run's files are still here
        metrics.jsonl      one JSON line a step, appended as training goes
        loss.png           the curves (viz draws them)
        notes.txt          a user's own file: never touched

This module is the one place that reads and writes these files.

Ownership is recorded, never guessed from a name: a file is the run's when manifest.json lists
it, and a name is listed before the file is first written, so a crash at any moment leaves
nothing of ours unlisted. `--force` removes exactly the listed files (never a folder, never
anything else); a file of the user's that has a name the run is about to write is "in the
way", and named in the error instead.

The lock is an advisory lock (flock; msvcrt's on Windows) on run.lock, held from the moment a
run claims the directory until it ends. The operating system drops it when the process dies,
however it dies, so a run.lock left by a killed process is recognised as stale (its lock is
free) and reclaimed, with a note naming the process that left it (none for one this process
could not remove as a run of its ended: a read-only folder's). A second writer meanwhile
gets one line naming the process that holds it. A flock belongs to the open file, which a
forked process shares, so a process forked while a run holds its lock (the trainer's
micro-batch workers) lets go of it at once: otherwise a worker outliving its killed trainer
would keep the run locked.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import stat
import zipfile
from typing import IO, Any, Callable, Collection, Iterable, Iterator, Mapping

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .files import (EDITABLE_JSON, NotRegularFile, StrPath, atomic_write, broken_link,
                    command_line, dangling_link, folder_of, not_a_directory, open_regular,
                    unreadable_folder, temporary_prefix, version_problem, why_not_a_directory)
from .schema import BadInput, is_finite_number, is_number
from .tokenizers import Tokenizer, load_tokenizer

try:
    import fcntl
except ImportError:                    # Windows: the lock is msvcrt's (see _try_lock)
    fcntl = None
    import msvcrt

MANIFEST = "manifest.json"
LOCK = "run.lock"
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
TOKENS = "tokens.bin"
METRICS = "metrics.jsonl"
PLOT = "loss.png"


def staged(name: str) -> str:
    """The name a new run writes its file `name` under while a previous run's files are still
    in the directory (see `RunDirectory.replace_previous`)."""
    return f"{name}.new"


# Every name a run writes, besides its checkpoints' weights and optimizer files (whose names
# carry the step). A new run owns them all from the start, written or not yet.
RUN_FILES = (CONFIG, TOKENIZER, TOKENS, staged(TOKENS), METRICS, PLOT)
CHECKPOINT_FILE = re.compile(r"(weights|optimizer)-\d{6}\.npz")   # only to refuse, not to delete
FORMAT, VERSION = "tinyformer-run", 1
# config.json's "format": what a checkpoint of ours says it is (save_checkpoint writes it, and
# pretrained.py tells our folders from Hugging Face's by it)
CHECKPOINT_FORMAT, CHECKPOINT_VERSION = "tinyformer-checkpoint", 1


_LOCKS_HELD: set[int] = set()      # the descriptors of the run.lock files this process holds
# The run.lock files (device, inode) this process gave up but could not remove (a read-only
# folder, a Ctrl-C): left with its own process id in, which its next claim takes over quietly,
# no note saying another process left them.
_LOCKS_LEFT_BEHIND: set[tuple[int, int]] = set()


def _let_go_of_locks_in_forked_child():
    """Close a forked child's copies of the lock files (not removing them: the parent still
    holds them)."""
    for fd in _LOCKS_HELD:
        os.close(fd)
    _LOCKS_HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_let_go_of_locks_in_forked_child)


class RunDirectoryError(BadInput):
    """A run directory that cannot be used as asked; the message says what to do."""


class RunDirectoryInUse(RunDirectoryError):
    """A run directory that another process (or another Trainer of this one) holds."""


def read_manifest(directory: StrPath) -> dict[str, Any] | None:
    """The manifest.json of the run in `directory` as a dict, checked as a run of ours writes
    it (its format; its `owns`, a list of names; its `checkpoint`, a step or None): the one
    place that reads the file. None where there is none; ValueError where it is damaged (the
    callers say what that means to them), RunDirectoryError (a ValueError too, saying what to
    do) where it is of a format version this tinyformer does not read; OSError where it
    cannot be read."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        with open_regular(path, "r", encoding="utf-8") as f:    # not a link to /dev/zero
            manifest = json.load(f)
        if manifest.get("format") == FORMAT:
            # First: a later version may keep what it records under other names, and is not
            # damaged (to be removed) but for a newer tinyformer to read.
            problem = version_problem(path, "run format", manifest.get("version"), VERSION,
                                      f"put back the {MANIFEST} this run wrote, or train "
                                      f"again in another --out")
            if problem:
                raise RunDirectoryError(problem)
        owns, step = manifest["owns"], manifest.get("checkpoint")
        diverged = manifest.get("diverged")
        # A list of names: a string would pass as the list of its characters.
        if manifest.get("format") == FORMAT and isinstance(owns, list) \
                and all(isinstance(n, str) for n in owns) \
                and (step is None or type(step) is int) \
                and (diverged is None or isinstance(diverged, dict)
                     and type(diverged.get("step")) is int
                     and isinstance(diverged.get("error"), str)):
            return manifest
    except RunDirectoryError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        pass                          # not UTF-8, not JSON, nested too deep, or not an object
    raise BadInput(f"{path} is damaged")


def recorded_checkpoint(directory: StrPath, manifest: dict[str, Any]) -> int | None:
    """The step of the last complete checkpoint of the run in `directory`, as its `manifest`
    records it: its `checkpoint`; or the checkpoint it was `writing`, where config.json names
    that step. config.json is a checkpoint's last file, and the manifest's write that records
    it comes after: a full disk or a kill between the two would otherwise lose the checkpoint
    (the first one: --resume would start the run again from step 0, removing it)."""
    step, writing = manifest.get("checkpoint"), manifest.get("writing")
    if type(writing) is not int or writing == step:
        return step
    try:
        config = read_config_json(directory, pretrained=False)
    except (OSError, ValueError):                        # none, or damaged: not written
        return step
    return writing if is_ours(config) and config.get("step") == writing else step


class RunDirectory:
    """A run directory claimed by this process (locked), and what it owns."""

    def __init__(self, path: StrPath, log: Callable[[str], None] = print) -> None:
        self.path, self.log = path, log
        self.owned, self.settings = set(), None
        # The data info of the tokens.bin the run wrote (TextData.prepare's): a run that
        # stopped before its first checkpoint starts again on it, not reading its corpus again.
        self.data = None
        # The SHA-256 of the tokenizer.json that wrote those tokens: they are reused only with it.
        self.tokenizer_sha256 = None
        self.checkpoint = None          # the step of the last complete checkpoint, if any
        self.writing = None             # the step of the checkpoint being written, if any
        # Where the run diverged: {"step": N, "error": the trainer's message}, else None.
        self.diverged = None
        self.has_manifest = False
        self._lock = None
        self.taken_over = False         # from a writer that stopped without releasing it

    def file(self, name: str) -> str:
        """The path of the run's file `name`."""
        return os.path.join(self.path, name)

    # -- claiming: the lock ----------------------------------------------------------------------

    @classmethod
    def claim(cls, path: StrPath, log: Callable[[str], None] = print,
              create: bool = False, chosen: bool = False) -> RunDirectory:
        """Lock the run directory `path` for this process (creating it first if `create`).
        RunDirectoryError if it cannot be written; RunDirectoryInUse if another process holds
        it. Returns the RunDirectory, with what its manifest says it owns. `chosen`: a new
        run's `path` is the default one, chosen because no --out was given."""
        run = cls(path, log)
        # A new run's directory is --out (or the default folder), one to continue --resume's.
        option, instead = (("the default run folder", "give --out DIR") if chosen else
                           ("--out", "choose another --out") if create else
                           ("--resume", "give the directory of a `tinyformer train` run"))
        link = dangling_link(path, option, instead)
        if link:
            # A link to nothing is there, as `ls` shows: not followed to make the folder it
            # names, and named as a link, where mkdir's "File exists" or "does not exist"
            # would not say what is wrong.
            raise RunDirectoryError(link)
        if os.path.exists(path) and not os.path.isdir(path):
            folder = None if create else _model_directory_holding(path)
            if folder is not None:
                instead = f"give the run's directory, {folder!r}"
            raise RunDirectoryError(f"{option} {path!r} is a file, not a directory; {instead}")
        if not create and not os.path.isdir(path):
            # A folder above it that may not be entered says what to do itself: check it.
            unreadable = unreadable_folder(path)
            if unreadable:
                raise RunDirectoryError(f"{option} {unreadable}")
            raise RunDirectoryError(not_a_directory(path, option, instead))
        run.created = None
        try:
            run._make_directories()
            run._acquire()
        except BaseException as e:
            # Whatever stops the claim (a Ctrl-C too), a folder this process made goes again.
            run._remove_created()
            if not isinstance(e, OSError):
                raise
            # A file where a folder of the path goes (or a link to nothing: "File exists")
            if e.errno == errno.ENOTDIR or e.errno == errno.EEXIST:
                raise RunDirectoryError(f"cannot write to {option} {path!r}: "
                                        f"{why_not_a_directory(path)}; {instead}") from None
            if e.errno == errno.ENOSPC:
                advice = "free some disk space and try again"
            elif chosen:                  # the user chose no directory: say how to choose one
                advice = "give --out DIR, in a directory you can write to"
            elif create:
                advice = "choose a directory you can write to"
            else:       # a run one may read but not write (another's, an archive's): a copy
                advice = ("to go on from it, copy it to a directory you can write to and "
                          "resume the copy")
            raise RunDirectoryError(f"cannot write to {option} {path!r} ({e.strerror}); "
                                    f"{advice}") from None
        try:
            run._read_manifest()
        except BaseException:
            run._remove_created()
            raise
        if run.taken_over:
            # Its writer was killed, maybe part way through writing a file: atomic_write's
            # temporary is never read, and can be as large as the file (a corpus's tokens),
            # one more after each such kill.
            run._remove_temporaries(run.owned | {MANIFEST})
        return run

    def _acquire(self):
        path = self.file(LOCK)
        left = ""              # the process id in another user's stale run.lock, replaced
        while True:
            try:
                fd, ours = _open_lock_file(path, os.O_RDWR | os.O_CREAT), True
            except PermissionError:
                if fcntl is None or not os.path.isfile(path):
                    raise                                # a folder this user may not write
                # Another user's run.lock, which this one may not write (made under umask 022
                # in a folder the group may write): locked all the same, to tell a run that
                # trains now from a killed one, whose lock file is then replaced by ours.
                fd, ours = _open_lock_file(path, os.O_RDONLY), False
            if fd is None:
                raise RunDirectoryError(f"{path} is a link, a named pipe or a device, not the "
                                        f"file a run locks; remove it and try again")
            try:
                _try_lock(fd, exclusive=True)
            except OSError as e:
                holder = _process_id_in(fd) or "unknown"
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if holder == str(os.getpid()):   # kill would stop this very Python (a notebook's)
                    raise RunDirectoryInUse(f"{self.path!r} is in use by this process: a Trainer "
                                            f"started on it earlier (a notebook cell run again, "
                                            f"say) holds it until it trains or closes; call its "
                                            f"close() and try again") from None
                stop = ("ask its owner to stop it" if _another_users(holder) else
                        f"stop it (kill {holder})")
                raise RunDirectoryInUse(f"{self.path!r} is in use: process {holder} is "
                                        f"training in it; wait for it to end, or {stop} and "
                                        f"try again") from None
            # The holder removes run.lock as it ends; if it did so between our open and our
            # lock, we hold a file no longer there, and must take the new one.
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    if ours:
                        break
                    left = _process_id_in(fd)
                    try:
                        os.remove(path)            # while locked, as its holder removes it
                    except PermissionError:        # nor the folder: this user cannot take it
                        os.close(fd)
                        raise
            os.close(fd)
        left = _process_id_in(fd) or left
        if left == str(os.getpid()) and _identity(fd) in _LOCKS_LEFT_BEHIND:
            # This process's own, from a run it ended, which could not remove it: the run
            # released the lock as it ended, and wrote all it was writing.
            _LOCKS_LEFT_BEHIND.discard(_identity(fd))
            left = ""
        self.taken_over = bool(left)
        if left == str(os.getpid()):
            # A process killed before this one was given its id (in a container, where every
            # run's process may get the same id): not this one, which holds no such file.
            self.log(f"note: {path} was left by an earlier process with this one's id, "
                     f"{left}, which has stopped without releasing it; taking it over")
        elif left:
            self.log(f"note: {path} was left by process {left}, which has stopped without "
                     f"releasing it; taking it over")
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BaseException:
            # A full disk: a run.lock left with no process id in it would keep a new --out's
            # folder from being removed, and make the folder look like a run. A Ctrl-C here
            # (a notebook's) would leave the lock held by a descriptor no one closes, the
            # directory "in use" until Python ends.
            _unlock_and_remove(fd, path)
            raise
        self._lock = fd
        _LOCKS_HELD.add(fd)

    def hold(self) -> None:
        """Lock the directory again after release(): a Trainer that trains again after a stop
        (a notebook's cell run again). RunDirectoryError if another process holds it now."""
        if self._lock is not None:
            return
        try:
            self._acquire()
        except OSError as e:
            raise RunDirectoryError(f"cannot lock {self.path!r} again ({e.strerror}); "
                                    f"resume the run from its directory, or start a new "
                                    f"one") from None
        # Meanwhile another process may have resumed the run and gone on: going on from this
        # one's older state would write over that run's checkpoints and metrics.
        try:
            now = recorded_checkpoint(self.path, read_manifest(self.path) or {})
        except (OSError, ValueError):
            now = None
        if now != self.checkpoint:
            self.release()
            where = "it has none now" if now is None else f"its checkpoint is at step {now}"
            raise RunDirectoryError(f"the run in {self.path!r} went on without this process "
                                    f"({where}, this one's at step {self.checkpoint}); "
                                    f"continue it from there: Trainer.resume({self.path!r})")

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """The lock for what is written inside the `with`: kept if held already (a run
        training, or claimed and not yet released), else taken by hold(), with its checks,
        and given up after (Trainer.save between runs of train())."""
        holding = self._lock is not None
        self.hold()
        try:
            yield
        finally:
            if not holding:
                self.release()

    def release(self) -> None:
        """Give up the lock (at the end of the run, or when it fails to start), and remove
        run.lock. (In a process forked from the holder, there is nothing left to give up.)"""
        fd, self._lock = self._lock, None      # first: not held, whatever the removal meets
        if fd in _LOCKS_HELD:
            _LOCKS_HELD.discard(fd)
            _unlock_and_remove(fd, self.file(LOCK))

    def _make_directories(self):
        """os.makedirs(self.path), one folder at a time, recording in `created` the topmost
        folder this process made: the one _remove_created removes after a failure, never one
        that was there before (another process's, made meanwhile, say)."""
        missing, folder = [], os.path.abspath(self.path)
        while not os.path.exists(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        for folder in reversed(missing):                 # outermost first
            # Recorded before it is made: a Ctrl-C just after the mkdir still finds it.
            first = self.created is None
            if first:
                self.created = folder
            try:
                os.mkdir(folder)
            except FileExistsError:
                if first:
                    self.created = None                  # not ours: made meanwhile
                if not os.path.isdir(folder):            # a file, or a broken link
                    raise

    def _remove_created(self):
        """After a failure to start: remove the directories this run created, if still empty
        but for our lock, so a mistake leaves nothing behind."""
        self.release()
        created = getattr(self, "created", None)
        if created and os.path.isdir(created):
            with contextlib.suppress(OSError):
                for folder, _, _ in sorted(os.walk(created), reverse=True):
                    os.rmdir(folder)           # refuses a folder that is not empty

    # -- the manifest --------------------------------------------------------------------------

    def _read_manifest(self):
        try:
            manifest = read_manifest(self.path)
        except RunDirectoryError:                 # of another version: it says what to do
            raise
        except ValueError:
            raise RunDirectoryError(f"{self.file(MANIFEST)} is damaged, so tinyformer cannot "
                                    f"tell the run's files from yours; move out what you want "
                                    f"to keep and remove {self.path!r}, or choose another "
                                    f"--out") from None
        self.has_manifest = manifest is not None
        if not self.has_manifest:
            self._adopt_checkpoint()
            return
        # A name is a plain file name in this directory, never a path out of it; nor the
        # manifest or the lock, which a run removes only as it ends (an edited manifest that
        # listed run.lock would have a resumed run remove its own lock, letting a second
        # writer in).
        self.owned = {name for name in manifest["owns"] if name == os.path.basename(name) and
                      name not in ("", ".", "..", MANIFEST, LOCK)}
        self.settings = manifest.get("settings")
        self.data = manifest.get("data")
        self.tokenizer_sha256 = manifest.get("tokenizer_sha256")
        self.checkpoint = recorded_checkpoint(self.path, manifest)
        self.writing = self.checkpoint
        self.diverged = manifest.get("diverged")

    def _adopt_checkpoint(self):
        """A run written before manifests existed: its config.json lists its checkpoint's
        files, and the run's other names are fixed."""
        try:
            config = read_config_json(self.path)
            files = list(config["files"].values())
            settings = config["train"]
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        if is_ours(config) and all(
                isinstance(n, str) and n == os.path.basename(n) for n in files):
            self.owned, self.settings = set(RUN_FILES) | set(files), settings
            self.checkpoint, self.has_manifest = config.get("step"), True

    def write_manifest(self) -> None:
        """Write what the run owns and records (its settings, data, tokenizer's digest,
        checkpoint, what it is writing, and where it diverged) to its manifest, all or
        nothing."""
        with atomic_write(self.file(MANIFEST)) as f:
            json.dump({"format": FORMAT, "version": VERSION, "owns": sorted(self.owned),
                       "settings": self.settings, "data": self.data,
                       "tokenizer_sha256": self.tokenizer_sha256,
                       "checkpoint": self.checkpoint, "writing": self.writing,
                       "diverged": self.diverged}, f, indent=1)

    def record_divergence(self, step: int, error: str) -> None:
        """Record that the run diverged at `step`, with the trainer's message `error`: the run
        is exactly deterministic, so --resume would only repeat the same steps to the same
        end, and what reads the run says so instead (new_run_advice)."""
        self.diverged = {"step": step, "error": error}
        self.write_manifest()

    def own(self, names: Collection[str]) -> None:
        """Record `names` as the run's, before they are written."""
        if not set(names) <= self.owned:
            self.owned |= set(names)
            self.write_manifest()

    def begin_checkpoint(self, step: int, names: Collection[str]) -> None:
        """Record that the checkpoint of `step` is being written, as the files `names` (its
        config.json aside), before they are: then its config.json, once written, is the
        run's last checkpoint even where the manifest cannot record it so (recorded_checkpoint).
        """
        self.owned |= set(names)
        self.writing = step
        self.write_manifest()

    def remove(self, names: Collection[str], checkpoint: int | None = None) -> None:
        """Remove files of the run's (and their temporaries left by a crash), then drop them
        from the manifest, recording `checkpoint` as the step of the last complete checkpoint
        when given."""
        # First: config.json names that checkpoint already, whatever the removal meets (a file
        # Windows keeps while a reader has it open); the run's step on disk, which hold()
        # compares with this one's to tell whether another process went on with the run.
        self.checkpoint = self.checkpoint if checkpoint is None else checkpoint
        for name in names:
            self._remove_file(name)
        self.owned -= set(names)
        self.write_manifest()

    def _remove_file(self, name):
        path = self.file(name)
        if os.path.isfile(path) or os.path.islink(path):
            os.remove(path)
        self._remove_temporaries([name])

    def _remove_temporaries(self, names):
        """atomic_write's temporaries for the files `names`, which a kill left (files.py)."""
        prefixes = tuple(temporary_prefix(name) for name in names)
        for other in os.listdir(self.path):
            if other.startswith(prefixes):
                with contextlib.suppress(OSError):
                    os.remove(self.file(other))

    def save_tokenizer(self, tokenizer: Tokenizer) -> None:
        """Write the run's tokenizer.json, and record its SHA-256 beside the data info of the
        tokens.bin it encoded (where there is one): a run restarted before its first
        checkpoint reuses those tokens only with the tokenizer that wrote them, not with a
        tokenizer.json changed since, which would decode them as other text."""
        tokenizer.save(self.file(TOKENIZER))
        if self.data is not None:
            self.tokenizer_sha256 = sha256(self.file(TOKENIZER))
            self.write_manifest()

    # -- what is there -------------------------------------------------------------------------

    def has_checkpoint(self) -> bool:
        """Whether the run has completed a checkpoint: one is once its config.json is written,
        before the manifest records it (recorded_checkpoint); a run with a manifest and none
        stopped before its first."""
        return recorded_checkpoint(self.path, {"checkpoint": self.checkpoint,
                                               "writing": self.writing}) is not None

    def has_finished(self) -> bool:
        """Whether the run's last checkpoint is at its planned --iters: --resume has nothing
        left to do."""
        iters = self.settings.get("iters") if isinstance(self.settings, dict) else None
        return self.has_checkpoint() and self.checkpoint == iters

    def others(self) -> list[str]:
        """The entries that are not the run's (nor its manifest and lock), sorted."""
        ours = self.owned | {MANIFEST, LOCK}
        return sorted(name for name in os.listdir(self.path)
                      if name not in ours and not name.startswith(
                          tuple(temporary_prefix(n) for n in ours)))

    def prepare_new_run(self, settings: dict[str, Any], force: bool) -> None:
        """Check that a new run may start here, before anything is written: an empty
        directory, or with `force` a previous run's, whose files will be replaced (see
        `replace_previous`). RunDirectoryError saying what to do otherwise."""
        here = self.path
        resume = f"`{command_line('train', '--resume', here)}`"
        if not force:
            if self.has_manifest and self.has_finished():
                raise RunDirectoryError(f"--out {here!r} holds a finished run; give another "
                                        f"--out, or --force to replace it")
            if self.has_manifest and self.diverged:
                raise RunDirectoryError(f"--out {here!r} holds a run that diverged at step "
                                        f"{self.diverged['step']}; give another --out, or "
                                        f"--force to replace it")
            if self.has_manifest and self.has_checkpoint():
                raise RunDirectoryError(f"--out {here!r} holds a run; continue it with "
                                        f"{resume}, or give --force to replace it")
            if self.has_manifest:
                raise RunDirectoryError(f"--out {here!r} holds a run that stopped before its "
                                        f"first checkpoint; {resume} starts it again, or give "
                                        f"--force to replace it")
            if self.others():
                raise RunDirectoryError(f"--out {here!r} is not empty; give another --out, or "
                                        f"--force to start a run there (only files a run "
                                        f"wrote are replaced)")
        in_the_way = [name for name in self.others()
                      if name in RUN_FILES or CHECKPOINT_FILE.fullmatch(name)]
        in_the_way += sorted(name for name in self.owned if os.path.isdir(self.file(name)))
        if in_the_way:
            shown = ", ".join(in_the_way[:3]) + (", ..." if len(in_the_way) > 3 else "")
            raise RunDirectoryError(f"--out {here!r} holds {shown}, which no run wrote (or a "
                                    f"folder), where the run would write; move "
                                    f"{'it' if len(in_the_way) == 1 else 'them'} away or "
                                    f"choose another --out")
        self.is_new = not self.has_manifest
        if self.is_new:
            self.settings = settings
            self.has_manifest = True
        # The new run owns its names before writing (a previous run's manifest may not list
        # the staged ones yet).
        self.own(RUN_FILES)

    def abandon(self) -> None:
        """After a new run failed to start (a corpus too short, or a Ctrl-C, say): remove what
        it wrote, its manifest, and the directories it created, so the mistake leaves nothing
        behind. A previous run forced over is left as it was, if the new one failed before
        `replace_previous`: only the new run's staged files go."""
        with contextlib.suppress(OSError):
            if getattr(self, "is_new", False):
                for name in self.owned:
                    self._remove_file(name)
                os.remove(self.file(MANIFEST))
            else:
                self._remove_file(staged(TOKENS))          # the one file it stages
        self._remove_created()

    def replace_previous(self, settings: dict[str, Any], new: Iterable[str] = (),
                         keep: Iterable[str] = (), data: dict[str, Any] | None = None) -> None:
        """Remove the previous run's files (but `keep`: a restarted run's own tokens), move the
        new run's files `new` (written under their `staged` names) into place, and record the
        new run's names, settings and `data` (its tokens.bin's data info).

        Until this is called the previous run is whole: a new run that fails or is stopped
        before then leaves it as it was, to resume. The manifest names the new run first, so
        that a stop part way through leaves the new run, which --resume starts again."""
        new = set(new)
        self.settings, self.data, self.checkpoint = settings, data, None
        self.diverged = None                           # the previous run's
        self.writing = None                            # the previous run's config.json is not
        self.tokenizer_sha256 = None                   # save_tokenizer records the new one
        self.write_manifest()
        self.remove(self.owned - set(keep) - {staged(name) for name in new} - {MANIFEST, LOCK})
        # Listed before they are moved in: a full disk or a kill after a move would leave a
        # tokens.bin that no manifest lists, which --resume and --force refuse as the user's.
        self.owned = set(RUN_FILES)
        self.write_manifest()
        for name in new:
            os.replace(self.file(staged(name)), self.file(name))


# ---------------------------------------------------------------------------------------------
# The checkpoint: config.json, the weights, the optimizer's arrays and the tokenizer
#
# Saving is atomic. The step's weights and optimizer go to new files first; only then is
# config.json replaced (atomic_write) to point at them, and only after that are the previous
# step's files removed. A crash or kill at any moment leaves a config.json that names a
# complete, earlier or later, checkpoint. Nothing here unpickles: arrays load with
# `allow_pickle=False`, the rest is JSON.

MODEL_KINDS = ("gpt", "bert", "transformer")       # config.json's "model"
RUN_TABLES = ("train", "resume", "engine")     # config.json's objects of a run ("data" may be null)


class CheckpointError(BadInput):
    """A checkpoint directory that cannot be used; the message says why and what to do."""


def open_run_file(path: StrPath, mode: str = "rb", **open_kwargs: Any) -> IO:
    """open_regular (files.py) for a file of a run or a checkpoint: what is not a regular
    file is refused as a CheckpointError, which the callers pass on as it is."""
    try:
        return open_regular(path, mode, **open_kwargs)
    except ValueError as e:
        raise CheckpointError(str(e)) from None


def sha256(path: StrPath) -> str:
    """The SHA-256 of the file at `path`, in hex, read a MiB at a time."""
    digest = hashlib.sha256()
    with open_run_file(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_arrays(path: StrPath, arrays: Mapping[str, ArrayLike]) -> None:
    """Write named `arrays` to `path` as an .npz file, all or nothing (atomic_write)."""
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def checkpoint_files(step: int) -> dict[str, str]:
    """The names of the files a checkpoint at `step` is written as (its config.json aside)."""
    return {"weights": f"weights-{step:06d}.npz", "optimizer": f"optimizer-{step:06d}.npz",
            "tokenizer": "tokenizer.json"}


def save_checkpoint(directory: StrPath, config: dict[str, Any], weights: dict[str, np.ndarray],
                    optimizer_arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """Write one checkpoint into `directory` (which already holds tokenizer.json), its
    config.json last: until then the previous checkpoint is the one config.json names. The
    previous checkpoint's files are left for the caller, which knows what it owns, to remove.

    config: a JSON-able dict (the caller's: model, settings, step, small state).
    weights, optimizer_arrays: dicts of name -> numpy array."""
    files = checkpoint_files(config["step"])
    save_arrays(os.path.join(directory, files["weights"]), weights)
    save_arrays(os.path.join(directory, files["optimizer"]), optimizer_arrays)
    config = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **config, "files": files,
              "sha256": {name: sha256(os.path.join(directory, name)) for name in files.values()}}
    with atomic_write(os.path.join(directory, CONFIG)) as f:
        json.dump(config, f, indent=2)
    return files


HUGGING_FACE_MODEL = ", or a Hugging Face model's directory (GPT-2, Llama or Qwen3)"


def _model_directory_holding(path: StrPath) -> str | None:
    """The directory of a run or a model (its config.json or manifest.json there) that holds
    the file `path` (its config.json, its weights), given where the directory is asked for:
    what to give instead, as the path was given ("." for a file of the current one). None
    where `path` is no such file."""
    folder = folder_of(path)
    if os.path.isdir(path) or not os.path.exists(path):
        return None
    return folder if any(os.path.isfile(os.path.join(folder, name))
                         for name in (CONFIG, MANIFEST)) else None


def hub_snapshots(directory: StrPath) -> list[str] | None:
    """Where the files are, if `directory` is a model's folder in the Hugging Face hub's cache
    (models--ORG--NAME, which keeps them in snapshots/REVISION, the latest named by
    refs/main): that snapshot, or every snapshot if it cannot tell which (sorted). Else None,
    an empty snapshots folder included: it holds no files to point to."""
    snapshots = os.path.join(directory, "snapshots")
    if not os.path.isdir(snapshots):
        return None
    found = sorted(path for path in (os.path.join(snapshots, name)
                                     for name in os.listdir(snapshots)) if os.path.isdir(path))
    try:
        # Not a pipe or a device (a link to /dev/zero): reading one waits or fills the memory.
        with open_regular(os.path.join(directory, "refs", "main"), "r", encoding="utf-8") as f:
            latest = os.path.join(snapshots, f.read().strip())
    except (OSError, ValueError):           # ValueError: not UTF-8, or not a regular file
        latest = None
    # refs/main may name a snapshot that is gone (deleted by hand): then every one is offered.
    return [latest] if latest in found else found or None


def hub_cache_advice(directory: StrPath, snapshots: list[str]) -> str:
    """The one line that points from a model's folder in the hub's cache to its files."""
    give = (repr(snapshots[0]) if len(snapshots) == 1
            else "one of " + ", ".join(map(repr, snapshots)))
    return (f"{os.fspath(directory)!r} is a model's folder in the Hugging Face hub's cache, "
            f"which keeps the files in a snapshot: give {give}")


def check_not_a_run_file(path: StrPath, what: str = "--out") -> None:
    """ValueError where the file at `path` (`what` the user called it) is a file of a run of
    ours: its folder's manifest.json lists its name among those the run owns, or, for a run
    from before manifests, its config.json names it among its checkpoint's files. A command
    that writes a file there, forced or not, would leave the run's checkpoint refused as
    corrupted (its tokenizer no longer the one its model was trained with)."""
    folder, name = folder_of(path), os.path.basename(os.fspath(path))
    owned: list[Any] = []
    with contextlib.suppress(OSError, ValueError):    # no run there, or one damaged: not ours
        owned = (read_manifest(folder) or {}).get("owns", [])
    if not owned and os.path.isfile(os.path.join(folder, CONFIG)):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            config = read_config_json(folder, pretrained=False)
            owned = list(config.get("files", {}).values()) if is_ours(config) else []
    if name in owned:
        raise BadInput(f"{what} {os.fspath(path)!r} is a file of the run in {folder!r}, "
                       f"whose checkpoint needs it as the run wrote it; write to another "
                       f"file")


def read_config_json(directory: StrPath, pretrained: bool = True) -> dict[str, Any]:
    """The config.json of a model's directory, ours or Hugging Face's, as a dict: the one
    place that reads the file. CheckpointError (one line) when the directory or the file is
    missing, or the file is not a JSON object; its advice offers a Hugging Face model's
    directory only where the caller takes one (`pretrained`: not --resume, not export)."""
    ours = "the --out directory of a `tinyformer train` run"
    folder = _model_directory_holding(directory)
    if folder is not None:
        raise CheckpointError(f"checkpoint {directory!r} is a file of the checkpoint in "
                              f"{folder!r}; give that directory")
    # Not "does not exist" or "has no config.json" where the permission is what is wrong.
    unreadable = unreadable_folder(directory)
    if unreadable:
        raise CheckpointError(f"checkpoint {unreadable}")
    if not os.path.isdir(directory):
        raise CheckpointError(not_a_directory(directory, "checkpoint", f"give {ours}"
                                              f"{HUGGING_FACE_MODEL if pretrained else ''}"))
    path = os.path.join(directory, CONFIG)
    link = broken_link(path)
    if link:
        raise CheckpointError(link)
    if not os.path.exists(path) and before_first_checkpoint(directory):
        if is_training(directory):
            raise CheckpointError(f"{directory!r} is a run training now that has no checkpoint "
                                  f"yet; wait for its first (every --checkpoint-every steps, "
                                  f"--eval-every by default) and try again")
        diverged = recorded_divergence(directory)
        if diverged:                      # --resume would diverge again, as exactly
            raise CheckpointError(f"{directory!r} is a run that diverged before its first "
                                  f"checkpoint, so there is no model to load: "
                                  f"{new_run_advice(directory, diverged['error'])}")
        raise CheckpointError(f"{directory!r} is a run that stopped before its first "
                              f"checkpoint, so there is no model to load; "
                              f"`{command_line('train', '--resume', directory)}` starts it again")
    snapshots = hub_snapshots(directory) if pretrained else None
    if not os.path.exists(path) and snapshots is not None:
        raise CheckpointError(hub_cache_advice(directory, snapshots))
    left = not os.path.exists(path) and checkpoint_left(directory)
    if left:                                    # deleted by hand, or lost in a copy
        raise CheckpointError(f"{path} is missing, though {left}: config.json describes its "
                              f"model; put back the config.json this run wrote (from a copy "
                              f"of the run), or train again")
    if not os.path.exists(path):
        pretrained_files = (", or a Hugging Face model's directory (GPT-2, Llama or Qwen3: "
                            "config.json, model.safetensors, and vocab.json + merges.txt or "
                            "tokenizer.json)")
        raise CheckpointError(f"{directory!r} is not a checkpoint: it has no config.json; give "
                              f"{ours}{pretrained_files if pretrained else ''}")
    advice = _config_advice(directory, pretrained)
    try:
        with open_run_file(path, "r", encoding=EDITABLE_JSON) as f:
            config = json.load(f)
    except CheckpointError:                        # a link to /dev/zero, say: not a file
        raise
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read ({e.strerror})") from None
    except (ValueError, RecursionError):           # not UTF-8, not JSON, or nested too deep
        raise CheckpointError(f"{path} is corrupted: not valid JSON; {advice}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} is not a JSON object; {advice}")
    return config


def _config_advice(directory, pretrained):
    """What to do about a directory's config.json that cannot be read, by what the directory
    is: beside a Hugging Face model's weights (model.safetensors, or its shards' index) the
    file came from the model's page; a run of ours (its manifest, its weights) wrote its own;
    a folder with neither is a Hugging Face model's where the caller takes one (`pretrained`),
    its weights not downloaded yet, say."""
    try:
        names = set(os.listdir(directory))
    except OSError:
        names = set()
    from_a_page = holds_pretrained_weights(directory)
    ours = MANIFEST in names or any(CHECKPOINT_FILE.fullmatch(name) for name in names)
    if from_a_page or (pretrained and not ours):
        return "download it again from the model's page, or restore it"
    return "restore it, or train again"


def before_first_checkpoint(directory: StrPath) -> bool:
    """Whether `directory` holds a run of ours that has not written its first checkpoint: its
    manifest.json records none (a run whose config.json went missing after one is damaged)."""
    try:
        manifest = read_manifest(directory)
    except (OSError, ValueError):
        return False
    return manifest is not None and manifest.get("checkpoint") is None


def checkpoint_left(directory: StrPath) -> str | None:
    """What shows that `directory` holds a checkpoint of a run of ours, its config.json aside:
    "the run's manifest records a checkpoint at step 2", or where no manifest tells, "the
    directory holds weights-000002.npz"; None where nothing does."""
    try:
        manifest = read_manifest(directory)
    except (OSError, ValueError):
        manifest = None
    if manifest is not None and manifest.get("checkpoint") is not None:
        return f"the run's manifest records a checkpoint at step {manifest['checkpoint']}"
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        names = []
    weights = [name for name in names
               if CHECKPOINT_FILE.fullmatch(name) and name.startswith("weights-")]
    return f"the directory holds {weights[-1]}" if weights else None


def recorded_divergence(directory: StrPath) -> dict[str, Any] | None:
    """Where the run in `directory` diverged, as its manifest records it ({"step": N, "error":
    the trainer's message}); None where it did not, or there is no run's manifest to tell."""
    try:
        manifest = read_manifest(directory)
    except (OSError, ValueError):
        return None
    return manifest.get("diverged") if manifest is not None else None


def new_run_advice(directory: StrPath, problem: str) -> str:
    """`problem` (what stopped the run in `directory`, and which settings to change: the
    trainer's message) said as advice to start a new run in its place: the run's own settings
    would meet it again, so --resume cannot help."""
    return (f"{problem}, with the run's other settings, in a new run: "
            f"`{command_line('train', '--out', directory, '--force')} ...` replaces this one")


def holds_pretrained_weights(directory: StrPath) -> bool:
    """Whether `directory` holds a Hugging Face model's weights: model.safetensors, or the
    index of its shards (a run of ours keeps its weights in files of its own)."""
    return any(os.path.isfile(os.path.join(directory, name))
               for name in ("model.safetensors", "model.safetensors.index.json"))


def is_ours(config: dict[str, Any]) -> bool:
    """Whether a config.json (read_config_json) is one of our checkpoints' rather than a
    Hugging Face model's: ours names its "format", theirs a "model_type"."""
    return config.get("format") == CHECKPOINT_FORMAT


def read_config(directory: StrPath) -> dict[str, Any]:
    """The checkpoint's config.json as a dict, with the files a model is built from present
    and intact: its weights and tokenizer. The optimizer's state is for resuming only (see
    check_checkpoint_file): a model shared without it generates."""
    config = read_config_json(directory)
    path = os.path.join(directory, CONFIG)
    if not is_ours(config):
        raise CheckpointError(f"{path} is not a tinyformer checkpoint config; give the --out "
                              f"directory of a `tinyformer train` run")
    problem = version_problem(path, "checkpoint format", config.get("version"),
                              CHECKPOINT_VERSION, "put back the config.json this run wrote, or "
                                                  "train again")
    if problem:
        raise CheckpointError(problem)
    files, digests = config.get("files"), config.get("sha256")
    if not (isinstance(files, dict) and isinstance(digests, dict)
            and {"weights", "tokenizer"} <= set(files)
            and all(isinstance(n, str) and n == os.path.basename(n) and n in digests
                    for n in files.values())
            and all(isinstance(d, str) for d in digests.values())
            and config.get("model") in MODEL_KINDS
            # a run's tables, where there are: read as tables (a number in their place would
            # fail as an internal error); model_config is checkpoint.py's to check
            and all(isinstance(config.get(table, {}), dict) for table in RUN_TABLES)):
        raise CheckpointError(f"{path} is damaged (its model, files, checksums or settings are "
                              f"not as tinyformer wrote them); put back the config.json this "
                              f"run wrote, or train again")
    if "eos_ids" in config:
        # The ids that end a text come from a Hugging Face model's own files (load_model reads
        # them there); ours end at <|endoftext|>, and tinyformer writes no eos_ids here.
        raise CheckpointError(f"{path} has an eos_ids entry, which tinyformer does not write; "
                              f"remove it, or put back the config.json this run wrote")
    for kind in ("weights", "tokenizer"):
        check_checkpoint_file(directory, config, kind)
    return config


def check_checkpoint_file(directory: StrPath, config: dict[str, Any], kind: str) -> None:
    """CheckpointError unless the checkpoint's file of `kind` ("weights", "tokenizer",
    "optimizer") is there, with the SHA-256 its config.json (read by read_config) recorded."""
    name = config["files"][kind]
    file = os.path.join(directory, name)
    if not os.path.exists(file):
        raise CheckpointError(f"checkpoint {directory!r} is missing {name}; it is "
                              f"incomplete, train again or restore the file")
    if kind != "tokenizer" and sha256(file) != config["sha256"][name]:   # tokenizer: see below
        raise CheckpointError(f"{file} is truncated or corrupted (its SHA-256 differs from "
                              f"the one config.json recorded); restore it or train again")


def array_shapes(path: StrPath) -> dict[str, tuple[int, ...]]:
    """name -> shape of each array in an .npz file, from the members' .npy headers alone (no
    array's data is read): what a caller needs to know what to expect from load_arrays.
    The same checks as load_arrays, and the same CheckpointError."""
    return _read_npz(path, None, read_data=False)


def load_arrays(path: StrPath,
                shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    """name -> array from an .npz file (as np.savez writes one), refusing pickled data and
    anything but floats, each array in this machine's byte order.

    Each member's .npy header is read before its data, and the data is read only when its
    shape fits the bytes the member holds and, where `shapes` is given (name -> the shape the
    model expects), when the model expects that array with that shape. The bytes a member
    holds are what the archive says they are once decompressed, so a header claiming a huge
    shape can fit them: the model's shapes are what refuses it before anything that size is
    allocated. Anything wrong is a CheckpointError of one line naming the file."""
    return _read_npz(path, shapes, read_data=True)


def _read_npz(path, shapes, read_data):
    """array_shapes (read_data False) and load_arrays (True): the one reader of .npz files."""
    def damaged(why):
        return CheckpointError(f"{path} {why}; restore it, or train again")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len({m.filename for m in members}) != len(members):
                raise damaged("is damaged: it holds an array twice")
            found = {m.filename.removesuffix(".npy"): _check_npy_header(archive, m, damaged)
                     for m in members}
            if shapes is not None:
                _check_expected_shapes(path, found, shapes)
            if not read_data:
                return found
            return {m.filename.removesuffix(".npy"):
                    _native(np.lib.format.read_array(archive.open(m), allow_pickle=False))
                    for m in members}
    except CheckpointError:
        raise
    except ValueError as e:        # numpy refused it: pickled data, or a malformed array
        raise damaged(f"cannot be read ({' '.join(str(e).split())})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise damaged(f"is not a readable .npz archive ({e})") from None
    except Exception as e:         # a header numpy could not parse, say: the file, not us
        raise damaged(f"is not a readable .npz archive ({type(e).__name__}: "
                      f"{' '.join(str(e).split())})") from None


def _native(array):
    """`array` in this machine's byte order: an .npz written on a machine of the other
    (np.savez keeps its order, '>f4') gives the same numbers, and a model built from it holds
    them as every other does, not as parameters of an order of their own."""
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _check_npy_header(archive, member, damaged):
    """load_arrays' look at one member before its data is read: an array (.npy) of numbers
    whose shape its bytes can hold. Returns that shape."""
    name = member.filename.removesuffix(".npy")
    if name == member.filename:
        raise damaged(f"is not an archive of arrays: it holds {member.filename!r}")
    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise damaged(f"holds {name} in .npy format version {version}, which np.savez "
                          f"does not write")
        header_size = f.tell()
    if dtype.hasobject:
        # Object arrays are stored pickled, and unpickling can run code.
        raise damaged(f"holds {name} as pickled data (an object array), which tinyformer "
                      f"never loads (unpickling can run code): use a checkpoint written by "
                      f"`tinyformer train`")
    # Weights and moments are floats: integers or booleans (quantised weights, a mask) would
    # load as their numbers, a model that runs and says nothing; text, dates, raw bytes none.
    if dtype.kind != "f":
        raise damaged(f"holds {name} as {dtype} data, where a checkpoint holds floating-point "
                      f"numbers")
    claimed = math.prod(shape) * dtype.itemsize
    if claimed != member.file_size - header_size:
        raise damaged(f"is truncated or damaged: {name}'s header says {tuple(shape)} "
                      f"({claimed:,} bytes), it holds {member.file_size - header_size:,}")
    return tuple(shape)


def _check_expected_shapes(path, found, shapes):
    """load_arrays' comparison of the shapes the headers declare (`found`) with the model's
    (`shapes`), before any array's data is read. Arrays the model expects but the file lacks
    are the caller's to notice (load_state_dict names them all)."""
    for name, shape in found.items():
        if name not in shapes:
            raise CheckpointError(f"{path} does not match the model config.json describes: "
                                  f"it holds {name}, which the model has no place for; put "
                                  f"back the files this run wrote, or train again")
        if shape != tuple(shapes[name]):
            raise CheckpointError(f"{path} does not match the model config.json describes: "
                                  f"{name} has shape {shape}, the model expects "
                                  f"{tuple(shapes[name])}; put back the files this run wrote, "
                                  f"or train again")


def load_tokenizer_for(directory: StrPath, config: dict[str, Any],
                       vocab_size: int) -> Tokenizer:
    """The checkpoint's tokenizer, checked against the model it belongs to."""
    path = os.path.join(directory, config["files"]["tokenizer"])
    recorded = config["sha256"][config["files"]["tokenizer"]]
    try:
        tokenizer = load_tokenizer(path)
    except NotRegularFile:                 # a folder in its place, say: said as it is
        raise
    except ValueError:
        # A file no tokenizer reads, where the run wrote its own: its reader's words would take
        # a tokenizer.json for a Hugging Face one, and send the user to the folder they gave.
        if sha256(path) == recorded:       # the run's own file: those words are the reason
            raise
        raise CheckpointError(f"{path} is truncated or corrupted (its SHA-256 differs from the "
                              f"one config.json recorded); put back the tokenizer.json this "
                              f"run was trained with, or train again") from None
    if tokenizer.vocab_size != vocab_size:
        raise CheckpointError(f"{path} does not match the model: it has {tokenizer.vocab_size} "
                              f"tokens, the model {vocab_size}; put back the tokenizer.json "
                              f"this run was trained with")
    if sha256(path) != recorded:
        raise CheckpointError(f"{path} does not match the model: it is not the tokenizer this "
                              f"run was trained with (SHA-256 differs); put that one back")
    return tokenizer


# -- run.lock: the one place where the platforms differ ---------------------------------------
#
# flock (Linux, macOS) is advisory, belongs to the open file and is dropped when the file is
# closed. Windows has no fcntl module; its msvcrt.locking locks a range of bytes, exclusively
# only, and keeps every other process from reading or writing that range: so it locks a byte
# well past the holder's process id (a few bytes, of which a second writer reads up to 100, to
# name the holder); Windows allows locking past the end of a file. Windows has no O_NOFOLLOW
# (its links need an administrator to make) and no named pipes among files (so no O_NONBLOCK).
_LOCKED_BYTE = 4096


def _try_lock(fd, exclusive):
    """Lock run.lock, open as `fd`, without waiting: OSError (EAGAIN or EACCES) where another
    open file holds it. A shared lock is only to ask whether a run holds it: where there is
    none (Windows), the exclusive one answers as well."""
    if fcntl is not None:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return
    os.lseek(fd, _LOCKED_BYTE, os.SEEK_SET)          # msvcrt locks from the file's position
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    finally:
        os.lseek(fd, 0, os.SEEK_SET)


def _unlock_and_close(fd):
    """Let go of the lock _try_lock took, and close `fd`. (Closing drops a flock at once;
    Windows drops a lock left on a closed file only when it gets round to it.)"""
    if fcntl is None:
        os.lseek(fd, _LOCKED_BYTE, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    os.close(fd)


def _unlock_and_remove(fd, path):
    """Give up the lock on run.lock, open as `fd`, and remove the file at `path`. With flock,
    run.lock is removed while still locked, so that no one can lock the old file after us.
    Windows removes no file that is open, so there it is closed first; and if another process
    opened it meanwhile (to take the lock next), it stays, for that process to lock."""
    # Recorded as left behind until it is gone: see _LOCKS_LEFT_BEHIND.
    identity = _identity(fd)
    _LOCKS_LEFT_BEHIND.add(identity)
    if fcntl is not None:
        # Closed whatever the removal meets (a folder made read-only meanwhile, a Ctrl-C): an
        # open descriptor would hold the lock until Python ends, where a run.lock left behind
        # unlocked is only a stale one, which the next run takes over.
        try:
            with contextlib.suppress(FileNotFoundError):      # gone already
                os.remove(path)
            _LOCKS_LEFT_BEHIND.discard(identity)
        except OSError:                                       # a read-only folder's: left
            pass
        finally:
            os.close(fd)
        return
    _unlock_and_close(fd)
    with contextlib.suppress(PermissionError):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        _LOCKS_LEFT_BEHIND.discard(identity)


def _open_lock_file(path, flags):
    """os.open(path, flags) of run.lock, or None where it is not a regular file. Not through
    a link (the lock's holder writes its process id into it, which would land in the file
    linked to), nor waiting on a named pipe for a writer (O_NONBLOCK, which does nothing to
    a regular file). Windows has neither flag (see above)."""
    nofollow, nonblock = getattr(os, "O_NOFOLLOW", 0), getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | nofollow | nonblock, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:                     # a link
            return None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _identity(fd: int) -> tuple[int, int]:
    """The (device, inode) of the file open as `fd`: the same file, whatever its path."""
    status = os.fstat(fd)
    return status.st_dev, status.st_ino


def _process_id_in(fd: int) -> str:
    """The process id written in run.lock, open as `fd` at its start ("" where none is)."""
    return os.read(fd, 100).decode("ascii", "replace").strip()


def _another_users(pid: str) -> bool:
    """Whether process `pid` is another user's (on a shared machine), which this user's kill
    cannot stop. (Signal 0 only asks; Windows has no such signal: os.kill would end it.)"""
    if fcntl is None or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except PermissionError:
        return True
    except (OSError, OverflowError):          # gone meanwhile, or not a process id
        pass
    return False


def is_training(path: StrPath) -> bool:
    """Whether a process is training in the run directory now: run.lock exists and is locked.
    (A killed trainer's run.lock stays behind, unlocked.)"""
    try:
        fd = _open_lock_file(os.path.join(path, LOCK), os.O_RDONLY)
    except OSError:
        return False
    if fd is None:                                      # not a run's lock file
        return False
    try:
        _try_lock(fd, exclusive=False)
    except OSError as e:
        os.close(fd)
        return e.errno in (errno.EAGAIN, errno.EACCES)
    _unlock_and_close(fd)
    return False


def run_status(path: StrPath, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Where the run in directory `path` stands, as a dict: `step` (the last step in its
    metrics), `iters` (the steps it plans, from manifest.json; None without one), `state`:

        finished   it has trained all its planned steps
        running    a process is training in it now
        diverged   it stopped as its loss (or gradient, or weights) became NaN or infinite;
                   resuming would repeat that, so `diverged` holds its manifest's record
                   (the step, and the trainer's message: what to change in a new run)
        stopped    none of those: interrupted or killed; `tinyformer train --resume`
                   continues it
        unknown    no manifest.json (a metrics file on its own): nothing tells
    """
    if records is None:
        records = read_metrics(os.path.join(path, METRICS))
    step = records[-1]["step"]
    try:
        manifest = read_manifest(path)
        iters = manifest["settings"]["iters"]
    except (OSError, ValueError, KeyError, TypeError):      # TypeError: no manifest (None)
        iters = None
    if not (isinstance(iters, int) and not isinstance(iters, bool)):
        return {"state": "unknown", "step": step, "iters": None}
    state = ("finished" if step >= iters else "running" if is_training(path) else
             "diverged" if manifest.get("diverged") else "stopped")
    if state == "diverged":
        return {"state": state, "step": step, "iters": iters, "diverged": manifest["diverged"]}
    return {"state": state, "step": step, "iters": iters}


# ---------------------------------------------------------------------------------------------
# metrics.jsonl: one JSON object a line, appended as training goes

def read_metrics(path: StrPath, pipe: bool = False) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file, as a list of dicts in file order, their steps
    rising. With `pipe`, `path` may be a pipe, read once (a shell's <(...), for a path the
    user named); else a pipe is refused, as a file that is not a regular one.

    A step at or below one before it starts the steps from there again, as a run started
    again from an earlier step does (a file appended to by an older trainer, or two files put
    together): its lines replace those written before it for that step on, as TensorBoard
    reads such a log, so that a curve neither doubles back nor ends at an older line.
    A run killed mid-write can leave its last line cut off; that line is dropped. Anything
    else wrong (no file, no records, a bad line in the middle, a line without a finite `step`
    and a numeric `train_loss`) is a ValueError of one line. A diverged run logs a NaN loss,
    which stays in its record: what draws the records draws only `is_finite_number` values."""
    path = os.fspath(path)                      # a pathlib.Path is named as its text
    unreadable = unreadable_folder(path)           # a run's folder: not "does not exist"
    if unreadable:
        raise BadInput(f"run directory {unreadable}")
    if not os.path.exists(path):
        raise BadInput(f"metrics file {path!r} does not exist; train a run first "
                       f"({command_line('train', '--out', 'DIR')})")
    if os.path.isdir(path):
        raise BadInput(f"metrics file {path!r} is a directory; give a run directory or its "
                       f"{METRICS}")
    try:
        with open_regular(path, "r", pipe=pipe, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise BadInput(f"metrics file {path!r} is not UTF-8 text; is it a metrics.jsonl?") \
            from None
    lines = text.splitlines()
    # A last line with no line end is one being written (read between a training run's
    # append and its line end) or cut off by a kill: not yet a record.
    cut_off = not text.endswith("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        # RecursionError: nested too deeply; ValueError: not JSON, or a whole number of more
        # digits than Python converts (4300)
        except (ValueError, RecursionError):
            # The last line, cut off by a crash, is ignored; but a file whose only line is
            # not JSON is more likely not a metrics file at all, unless it is a record's
            # start without its end (a run's first, being written now).
            if number == len(lines) and (records or cut_off and line.lstrip().startswith("{")):
                break
            raise BadInput(f"metrics file {path!r} line {number} is not JSON; is it a "
                           f"metrics.jsonl?") from None
        if not (isinstance(record, dict) and is_finite_number(record.get("step"))
                and is_number(record.get("train_loss"))):
            raise BadInput(f"metrics file {path!r} line {number} has no finite 'step' and "
                           f"numeric 'train_loss'; is it a metrics.jsonl?")
        while records and records[-1]["step"] >= record["step"]:
            records.pop()                         # written again by the run started again
        records.append(record)
    if not records:
        raise BadInput(f"metrics file {path!r} has no records yet; train for at least one "
                       f"step")
    return records


def append_metrics(path: StrPath, record: dict[str, Any]) -> None:
    """Append `record` to metrics.jsonl as one line. The file is opened for each line, so that
    a failed write (a full disk) is raised once, naming the file (a full disk's error, raised
    by write, names none), and leaves no rest of the line buffered, to be tried again as the
    file closes; what part of the line it wrote is a line cut short, which truncate_metrics
    drops as the run resumes."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as error:
        raise OSError(error.errno, error.strerror, os.fspath(path)) from None


def truncate_metrics(path: StrPath, step: int) -> int:
    """Drop the lines of metrics.jsonl past `step` (written after the checkpoint a run resumes
    from, before a crash), so that the resumed run's lines follow on without a repeat. Returns
    the step of the last line kept (0 for none): below `step` where lines were lost."""
    if not os.path.exists(path):
        return 0
    kept, last = [], 0
    with open_run_file(path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                written = json.loads(line)["step"]
                if written <= step:
                    kept.append(line if line.endswith("\n") else line + "\n")
                    last = written
            # a line cut short by the crash, or no record (ValueError: not JSON, or a number of
            # more digits than Python converts; RecursionError: nested too deeply)
            except (ValueError, RecursionError, KeyError, TypeError):
                continue
    with atomic_write(path, encoding="utf-8") as f:
        f.writelines(kept)
    return last


# ---------------------------------------------------------------------------------------------
# tokens.bin: the tokenised corpus as one flat array of ids (train, then validation), which
# training reads as a memory map, so the text's size is bounded by the disk, not the memory

# The types write_tokens stores ids as, the smallest that holds the vocabulary's: what a run's
# data info may name (an integer type that holds no negative id, and no fraction).
TOKEN_DTYPES = ("uint16", "uint32")


def write_tokens(path: StrPath, id_chunks: Iterable[ArrayLike], vocab_size: int,
                 check_length: Callable[[int], None]) -> tuple[str, int, str]:
    """Write the ids, chunk by chunk, as one flat array file; returns (dtype name, length,
    the file's SHA-256, computed as it is written). `check_length(n)` may refuse the result,
    in which case no file is left behind."""
    dtype = np.dtype(TOKEN_DTYPES[0] if vocab_size <= 1 << 16 else TOKEN_DTYPES[1])
    n, digest = 0, hashlib.sha256()
    with atomic_write(path, "wb") as f:
        for ids in id_chunks:
            ids = np.asarray(ids, dtype=dtype)
            f.write(ids)          # (not tofile: its error names neither file nor cause)
            digest.update(ids)
            n += len(ids)
        check_length(n)
    return np.dtype(dtype).name, n, digest.hexdigest()


def open_tokens(path: StrPath, dtype: DTypeLike, n_tokens: int) -> np.ndarray:
    """The ids that write_tokens wrote, as a read-only memory map (never read whole).
    CheckpointError if the file is gone, or is not of the size written."""
    expected = n_tokens * np.dtype(dtype).itemsize
    try:
        f = open_run_file(path)             # a pipe or a device refused, as every run file
    except FileNotFoundError:
        raise CheckpointError(f"{path} (the tokenised corpus) is missing; restore it, or start "
                              f"the run again with --force") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size != expected:
            raise CheckpointError(f"{path} (the tokenised corpus) is truncated or changed: "
                                  f"{size:,} bytes where the run wrote {expected:,}; restore "
                                  f"it, or start the run again with --force")
        return np.memmap(f, dtype=dtype, mode="r", shape=(n_tokens,))
