"""A folder for matplotlib where the home folder cannot be written: a container run as another
user (`docker run --user`), a read-only home, or no home at all.

matplotlib keeps its settings and its list of the installed fonts in folders of the home
(on Linux ~/.config/matplotlib and ~/.cache/matplotlib, or under $XDG_CONFIG_HOME and
$XDG_CACHE_HOME; ~/.matplotlib on macOS), unless MPLCONFIGDIR names one folder for both.
Where it cannot make or write them it works all the same, in a temporary folder of its own, but
says so in two long warnings ("mkdir -p failed ...", "Matplotlib created a temporary cache
directory ...") on every command that draws a picture, which read as if the picture had failed.

So the program, before any command runs, gives matplotlib the folder it would have settled on,
without the warnings: where one of its two folders can be written, that one for both (the font
list under $XDG_CACHE_HOME, the variable the compiled loops' line advises, is then kept from
run to run), else a temporary folder that the program removes as it exits. Nothing changes
where matplotlib's folders can be written, or where MPLCONFIGDIR is set: the user's choice,
warnings and all. matplotlib is not imported here (most commands never draw).

Only the program does this. A program of the user's that calls viz has matplotlib find its
folders itself, and read its warning, which says to set MPLCONFIGDIR: the environment is theirs.
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tinyformer.files import first_existing

VARIABLE = "MPLCONFIGDIR"


def give_matplotlib_a_folder() -> None:
    """Set MPLCONFIGDIR, for this process and those it starts, where matplotlib's own folders
    cannot all be written and it is not set: to the one of them that can be, else to a new
    temporary folder, removed at exit. On Windows matplotlib's folder is under LOCALAPPDATA,
    which its user may write: left to it."""
    if os.environ.get(VARIABLE) or sys.platform == "win32":
        return
    folders = matplotlib_folders()
    writable = [folder for folder in folders if folder is not None and may_write(folder)]
    if len(writable) == len(folders):
        return                                  # matplotlib's own folders work as they are
    if writable:       # its settings (read as ever) or its cache (as XDG_CACHE_HOME says)
        os.environ[VARIABLE] = writable[0]
        return
    try:
        temporary = tempfile.mkdtemp(prefix="tinyformer-matplotlib-")
    except OSError:
        return          # no temporary folder either: matplotlib tries too, and says what to do
    atexit.register(shutil.rmtree, temporary, ignore_errors=True)
    os.environ[VARIABLE] = temporary


def matplotlib_folders() -> list[str | None]:
    """The folders where matplotlib keeps its settings and its font list while MPLCONFIGDIR is
    unset (matplotlib.get_configdir and get_cachedir), each None where there is no home to
    find it in."""
    if sys.platform.startswith(("linux", "freebsd")):
        return [_inside(_variable_else_home("XDG_CONFIG_HOME", ".config"), "matplotlib"),
                _inside(_variable_else_home("XDG_CACHE_HOME", ".cache"), "matplotlib")]
    return [_inside(home_folder(), ".matplotlib")]


def _variable_else_home(variable: str, in_home: str) -> str | None:
    """The folder the environment `variable` names, else `in_home` inside the home folder, as
    matplotlib reads them (an empty variable counts as unset)."""
    return os.environ.get(variable) or _inside(home_folder(), in_home)


def _inside(folder: str | None, name: str) -> str | None:
    return os.path.join(folder, name) if folder is not None else None


def home_folder() -> str | None:
    """The home folder as matplotlib finds it, by Path.home() (HOME, else the system's list of
    users); None where there is none (HOME unset, and a user the system does not list)."""
    try:
        return str(Path.home())
    except RuntimeError:
        return None


def may_write(folder: str) -> bool:
    """Whether `folder` is one this user may write, or could be made as one: matplotlib makes
    it (mkdir -p), then asks that of it. Nothing is made here."""
    there = first_existing(folder)              # the nearest part of the path that is there
    return os.path.isdir(there) and os.access(there, os.W_OK | os.X_OK)
