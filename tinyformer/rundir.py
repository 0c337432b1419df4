"""A run directory: which files a `tinyformer train` run owns, and one writer at a time.

    runs/shakespeare/
        manifest.json      what the run owns: the names of its files, and its settings
        run.lock           there while a process trains here; holds that process's id
        config.json, weights-NNNNNN.npz, optimizer-NNNNNN.npz, tokenizer.json   the checkpoint
        tokens.bin, metrics.jsonl, loss.png
        notes.txt          a user's own file: never touched

Ownership is recorded, never guessed from a name: a file is the run's when manifest.json lists
it, and a name is listed before the file is first written, so a crash at any moment leaves
nothing of ours unlisted. `--force` removes exactly the listed files (never a folder, never
anything else); a file of the user's that has a name the run is about to write is "in the
way", and named in the error instead.

The lock is an advisory lock (flock) on run.lock, held from the moment a run claims the
directory until it ends. The operating system drops it when the process dies, however it dies,
so a run.lock left by a killed process is recognised as stale (its lock is free) and
reclaimed, with a note naming the process that left it. A second writer meanwhile gets one
line naming the process that holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
from typing import Any, Callable, Collection, Iterable

from .files import StrPath, atomic_write

MANIFEST = "manifest.json"
LOCK = "run.lock"
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
TOKENS = "tokens.bin"
METRICS = "metrics.jsonl"
PLOT = "loss.png"
# Every name a run writes, besides its checkpoints' weights and optimizer files (whose names
# carry the step). A new run owns them all from the start, written or not yet.
RUN_FILES = (CONFIG, TOKENIZER, TOKENS, METRICS, PLOT)
CHECKPOINT_FILE = re.compile(r"(weights|optimizer)-\d{6}\.npz")   # only to refuse, not to delete
FORMAT, VERSION = "tinyformer-run", 1
# config.json's "format": what a checkpoint of ours says it is (checkpoint.py writes it, and
# pretrained.py tells our folders from Hugging Face's by it)
CHECKPOINT_FORMAT, CHECKPOINT_VERSION = "tinyformer-checkpoint", 1


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked; the message says what to do."""


class RunDirectory:
    """A run directory claimed by this process (locked), and what it owns."""

    def __init__(self, path: StrPath, log: Callable[[str], None] = print) -> None:
        self.path, self.log = path, log
        self.owned, self.settings = set(), None
        self.checkpoint = None          # the step of the last complete checkpoint, if any
        self.has_manifest = False
        self._lock = None

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- claiming: the lock ----------------------------------------------------------------------

    @classmethod
    def claim(cls, path: StrPath, log: Callable[[str], None] = print,
              create: bool = False) -> RunDirectory:
        """Lock the run directory `path` for this process (creating it first if `create`).
        RunDirectoryError if it cannot be written, or another process holds it. Returns the
        RunDirectory, with what its manifest says it owns."""
        run = cls(path, log)
        if os.path.exists(path) and not os.path.isdir(path):
            raise RunDirectoryError(f"{path!r} is a file, not a directory; choose another "
                                    f"--out")
        if not create and not os.path.isdir(path):
            raise RunDirectoryError(f"{path!r} is not a directory; give the --out directory of "
                                    f"a `tinyformer train` run")
        run.created = None
        parent = os.path.abspath(path)
        while not os.path.exists(parent):
            run.created, parent = parent, os.path.dirname(parent)
        try:
            os.makedirs(path, exist_ok=True)
            run._acquire()
        except OSError as e:
            run._remove_created()
            raise RunDirectoryError(f"cannot write to --out {path!r} ({e.strerror}); choose "
                                    f"a directory you can write to") from None
        try:
            run._read_manifest()
        except BaseException:
            run.release()
            raise
        return run

    def _acquire(self):
        path = self.file(LOCK)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = os.read(fd, 100).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise RunDirectoryError(f"{self.path!r} is in use: process {holder} is "
                                        f"training in it; wait for it to end, or stop it "
                                        f"(kill {holder}) and try again") from None
            # The holder removes run.lock as it ends; if it did so between our open and our
            # lock, we hold a file no longer there, and must take the new one.
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            os.close(fd)
        left = os.read(fd, 100).decode("ascii", "replace").strip()
        if left:
            self.log(f"note: {path} was left by process {left}, which has stopped without "
                     f"releasing it; taking it over")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock = fd

    def release(self) -> None:
        """Give up the lock (at the end of the run, or when it fails to start). run.lock is
        removed while still locked, so that no one can lock the old file after us."""
        if self._lock is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.file(LOCK))
            os.close(self._lock)
            self._lock = None

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
        path = self.file(MANIFEST)
        self.has_manifest = os.path.exists(path)
        if not self.has_manifest:
            self._adopt_checkpoint()
            return
        try:
            with open(path, encoding="utf-8") as f:
                manifest = json.load(f)
            owns = manifest["owns"]
            step = manifest.get("checkpoint")
            if manifest.get("format") != FORMAT or not all(isinstance(n, str) for n in owns) \
                    or not (step is None or type(step) is int):
                raise ValueError
        except (ValueError, KeyError, TypeError, RecursionError):
            raise RunDirectoryError(f"{path} is damaged, so tinyformer cannot tell the run's "
                                    f"files from yours; move out what you want to keep and "
                                    f"remove {self.path!r}, or choose another --out") from None
        # A name is a plain file name in this directory, never a path out of it.
        self.owned = {name for name in owns if name == os.path.basename(name) and
                      name not in ("", ".", "..")}
        self.settings = manifest.get("settings")
        self.checkpoint = manifest.get("checkpoint")

    def _adopt_checkpoint(self):
        """A run written before manifests existed: its config.json lists its checkpoint's
        files, and the run's other names are fixed."""
        try:
            with open(self.file(CONFIG), encoding="utf-8") as f:
                config = json.load(f)
            files = list(config["files"].values())
            settings = config["train"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return
        if config.get("format") == "tinyformer-checkpoint" and all(
                isinstance(n, str) and n == os.path.basename(n) for n in files):
            self.owned, self.settings = set(RUN_FILES) | set(files), settings
            self.checkpoint, self.has_manifest = config.get("step"), True

    def write_manifest(self) -> None:
        with atomic_write(self.file(MANIFEST)) as f:
            json.dump({"format": FORMAT, "version": VERSION, "owns": sorted(self.owned),
                       "settings": self.settings, "checkpoint": self.checkpoint}, f, indent=1)

    def own(self, names: Collection[str]) -> None:
        """Record `names` as the run's, before they are written."""
        if not set(names) <= self.owned:
            self.owned |= set(names)
            self.write_manifest()

    def remove(self, names: Collection[str], checkpoint: int | None = None) -> None:
        """Remove files of the run's (and their temporaries left by a crash), then drop them
        from the manifest, recording `checkpoint` as the step of the last complete checkpoint
        when given."""
        for name in names:
            self._remove_file(name)
        self.owned -= set(names)
        self.checkpoint = self.checkpoint if checkpoint is None else checkpoint
        self.write_manifest()

    def _remove_file(self, name):
        path = self.file(name)
        if os.path.isfile(path) or os.path.islink(path):
            os.remove(path)
        # atomic_write's temporary for this file, if a kill left one (files.atomic_write).
        for other in os.listdir(self.path):
            if other.startswith(f".tmp-{name}-"):
                with contextlib.suppress(OSError):
                    os.remove(self.file(other))

    # -- what is there -------------------------------------------------------------------------

    def has_checkpoint(self) -> bool:
        """Whether the run has completed a checkpoint (recorded once its config.json is
        written); a run with a manifest and none stopped before its first."""
        return self.checkpoint is not None

    def others(self) -> list[str]:
        """The entries that are not the run's (nor its manifest and lock), sorted."""
        ours = self.owned | {MANIFEST, LOCK}
        return sorted(name for name in os.listdir(self.path)
                      if name not in ours and not name.startswith(
                          tuple(f".tmp-{n}-" for n in ours)))

    def prepare_new_run(self, settings: dict[str, Any], force: bool) -> None:
        """Check that a new run may start here, before anything is written: an empty
        directory, or with `force` a previous run's, whose files will be replaced (see
        `replace_previous`). RunDirectoryError saying what to do otherwise."""
        here = self.path
        if not force:
            if self.has_manifest and self.has_checkpoint():
                raise RunDirectoryError(f"--out {here!r} holds a run; continue it with "
                                        f"`tinyformer train --resume {here}`, or give --force "
                                        f"to replace it")
            if self.has_manifest:
                raise RunDirectoryError(f"--out {here!r} holds a run that stopped before its "
                                        f"first checkpoint; `tinyformer train --resume {here}` "
                                        f"starts it again, or give --force to replace it")
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
        if self.is_new:                           # a new run owns its names before writing
            self.settings = settings
            self.owned = set(RUN_FILES)
            self.write_manifest()
            self.has_manifest = True

    def abandon(self) -> None:
        """After a new run failed to start (a corpus too short, say): remove what it wrote, its
        manifest, and the directories it created, so the mistake leaves nothing behind. A
        previous run forced over is left as it was: nothing of it was removed yet."""
        if getattr(self, "is_new", False):
            with contextlib.suppress(OSError):
                for name in self.owned:
                    self._remove_file(name)
                os.remove(self.file(MANIFEST))
        self._remove_created()

    def replace_previous(self, settings: dict[str, Any], keep: Iterable[str] = ()) -> None:
        """Remove the previous run's files (but `keep`, just written for the new run) and
        record the new run's names and settings."""
        self.remove(self.owned - set(keep) - {MANIFEST, LOCK})
        self.owned, self.settings, self.checkpoint = set(RUN_FILES), settings, None
        self.write_manifest()
