"""Running the learner's code, and the chapters' questions, in a fresh Python process.

Whatever the learner's code does (loops forever, calls exit(), prints without end, reads
input, starts processes) cannot take the runner down with it or outlive its check, and every
run sees a freshly imported file. The runner calls the functions at the top of this module;
they start this same module as a program:

    python -m tinyformer.exercises.isolated check SLUG FILE RESULT.json
        check the learner's FILE; writes {"message": null, or the failure}
    python -m tinyformer.exercises.isolated draw SLUG FILE PICTURE RESULT.json
        draw what FILE computes into PICTURE; writes {"message": null, or why it could not}
    python -m tinyformer.exercises.isolated predict CHAPTER
        run chapter CHAPTER's "predict, then run" question; it prints its answer

Before `check` or `draw`, `--memory BYTES` limits the memory the process may use (on Linux),
so that code that keeps allocating fails with a MemoryError, which the check explains, before
it has taken the machine's memory; and `--program NAME` names the program as the user ran it
(`python cli.py` from a clone), in the commands that a failure's message advises.

The learner's code calling exit() is written as {"exited": its status}. A failure of
tinyformer's own there, not of the learner's code (whose errors the check and the drawing
catch and explain), is written as {"bug": its traceback}, or {"os_error": [errno, strerror,
filename]} for the machine's answer (a full disk, no graphviz), and raised again here, as is
an exception that nothing caught there: the command line then says it is a bug of ours
(exit 1), or what the machine said (exit 2), not that the learner's code failed (exit 3).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from ..files import StrPath, command_line, program_named
from .catalogue import Exercise

# The folder holding this tinyformer package: the fresh process imports tinyformer from there
# too, so it runs the same code as the runner, whatever else is installed or on the path.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent

# ---------------------------------------------------------------------------------------------
# The runner's side
# ---------------------------------------------------------------------------------------------


def check_in_subprocess(ex: Exercise, path: StrPath,
                        timeout: float = 120) -> tuple[str | None, str]:
    """Run the exercise's checker on `path` in a fresh process. Returns (message or None when
    it passes, what the learner's code printed)."""
    return _run_learner(["check", ex.slug, str(path)], path, timeout, "check")


def draw_in_subprocess(ex: Exercise, path: StrPath, picture: StrPath,
                       timeout: float = 120) -> tuple[str | None, str]:
    """Draw what the learner's file `path` computes into the file `picture`, in a fresh
    process. Returns (message or None when it was drawn, what the learner's code printed)."""
    return _run_learner(["draw", ex.slug, str(path), str(picture)], path, timeout, "drawing")


def _run_learner(arguments: list[str], path: StrPath, timeout: float,
                 what: str) -> tuple[str | None, str]:
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        # What the child prints goes to files, not to this process's memory: a learner's loop
        # can print gigabytes, of which the runner shows the last lines only.
        out_file, err_file = Path(tmp) / "stdout", Path(tmp) / "stderr"
        command = [sys.executable, "-m", "tinyformer.exercises.isolated",
                   "--memory", str(memory_limit()), "--program", command_line(),
                   *arguments, str(result_file)]
        with out_file.open("wb") as out, err_file.open("wb") as err:
            # Run beside the learner's file, as `python 04_autograd/scalar_engine.py` would;
            # with nothing to read: input() fails at once (EOFError), where it waited on the
            # terminal until the timeout. In a session of its own, so that what the learner's
            # code starts can be stopped with it.
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                     cwd=Path(path).parent, env=_environment(),
                                     start_new_session=True)
        _running.add(child)
        try:
            returncode: int | None = child.wait(timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            _stop(child)
        printed = _printed(out_file, err_file)
        if returncode is None:
            # Fair to code that is right but slow (or a machine that is busy): the limit
            # cannot tell it from a loop that never ends, so say both, and how to wait longer.
            return (f"the {what} did not finish within its time limit of {timeout} s, so it "
                    f"was stopped: your code may be in a loop that never ends, or right but "
                    f"slower than that; --timeout SECONDS gives it more time"), printed
        if not result_file.exists():
            errors = _printed(err_file)
            if returncode == 1 and "Traceback (most recent call last)" in errors:
                # An exception nothing caught, where the learner's are caught: tinyformer's
                # own, before or after it could write the result. Its traceback is no print
                # of the learner's.
                cut = printed.rfind("Traceback (most recent call last)")
                shown = Printed(printed[:cut], printed.lines_before) if cut >= 0 else printed
                return _failure_before_result(what, errors, path), shown
            if returncode < 0:          # stopped by a signal, not an exit status
                return (f"your code's process was stopped by signal {-returncode} "
                        f"({signal.strsignal(-returncode)}) before the {what} could finish"
                        ), printed
            return (f"your code ended the {what} early (exit status {returncode}), before "
                    f"it could finish; does it call os._exit()?"), printed
        result = json.loads(result_file.read_text(encoding="utf-8"))
        if "os_error" in result:
            raise OSError(*result["os_error"])
        if "bug" in result:
            return _failure_before_result(what, result["bug"], path), printed
        if "exited" in result:
            return (f"your code ended the {what} early (exit status {result['exited']}): it "
                    f"calls exit() or raises SystemExit; return, or raise an error, "
                    f"instead"), printed
        return result["message"], printed


GiB = 1 << 30


def memory_limit() -> int:
    """The bytes of address space a check may use: half the machine's memory, and at least
    4 GiB; and besides, for each core, room for what its threads reserve and barely touch (a
    stack, BLAS's buffers), which the limit counts too. A check needs far less than this."""
    try:
        machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):      # no such figure here
        machine = 8 * GiB
    return max(machine // 2, 4 * GiB) + (os.cpu_count() or 1) * GiB // 4


# How much of what the learner's code printed (of each of stdout and stderr) is read back: far
# more than the last 20 lines the runner shows.
KEPT_BYTES = 64 * 1024


class Printed(str):
    """What the learner's code printed: all of it, or its last part when it printed more than
    KEPT_BYTES, with `lines_before` the number of lines left out before it."""

    lines_before: int

    def __new__(cls, text: str, lines_before: int = 0) -> Printed:
        printed = super().__new__(cls, text)
        printed.lines_before = lines_before
        return printed


def _printed(*paths: Path) -> Printed:
    """What the child wrote to the files `paths` (its stdout, then its stderr), one after the
    other, as text; of each, only its last KEPT_BYTES are read, from the start of a line."""
    texts, lines_before = [], 0
    for path in paths:
        size = path.stat().st_size
        start = max(0, size - KEPT_BYTES)
        with path.open("rb") as file:
            for offset in range(0, start, 1 << 20):       # count the lines left out, a MiB
                lines_before += file.read(min(1 << 20, start - offset)).count(b"\n")  # at once
            kept = file.read()
        if start:
            cut = kept.find(b"\n") + 1
            if 0 < cut < len(kept):        # begin at a whole line (and a whole character)
                kept, lines_before = kept[cut:], lines_before + 1
            else:       # one line longer than all that is kept: its end, from a whole character
                kept = kept.lstrip(bytes(range(0x80, 0xC0)))     # UTF-8's continuation bytes
        texts.append(kept.decode(PRINTED_ENCODING, errors="replace"))
    # As Python reads a pipe as text: any line ending as "\n".
    text = "".join(texts).replace("\r\n", "\n").replace("\r", "\n")
    return Printed(text, lines_before)


# The checks and drawings running now, for stop_running().
_running: set[subprocess.Popen] = set()


def stop_running() -> None:
    """Stop every check and drawing running now, with what the learner's code started: each
    runs in a session of its own, which the terminal's Ctrl-C does not reach."""
    for child in list(_running):
        _stop(child)


def _stop(child: subprocess.Popen) -> None:
    """Stop `child`, and every process the learner's code started there (a subprocess, a
    multiprocessing worker), however it ended; then wait for it."""
    _running.discard(child)
    try:
        if hasattr(os, "killpg"):
            os.killpg(child.pid, signal.SIGKILL)     # its process group, the child's own
        else:                                        # Windows: no groups; the child alone
            child.kill()
    except (ProcessLookupError, PermissionError):   # all of them had ended (macOS answers
        pass                                        # the second for a group of zombies)
    child.wait()


class HarnessError(RuntimeError):
    """tinyformer's own code failed in the fresh process: a bug, reported as one."""


def _failure_before_result(what: str, trace: str, path: StrPath) -> str:
    """Why the fresh process failed in tinyformer's own code, as the learner's failure where a
    file beside theirs has the name of a module it imports (math.py, numpy.py): the process
    runs in their folder, as `python one_hot.py` would, and Python imports their file in the
    module's place. Otherwise it is a bug of ours, and HarnessError is raised."""
    shadowing = _shadowing_files(Path(path))
    if shadowing:
        names = ", ".join(shadowing)
        return (f"the {what} could not run: beside your file is {names}, with the name of a "
                f"module that Python, numpy or tinyformer imports, so Python imported your "
                f"file in its place (as it would running `python {Path(path).name}`). Rename "
                f"{'it' if len(shadowing) == 1 else 'them'}, for instance to "
                f"my_{shadowing[0]}.")
    last = trace.strip().splitlines()[-1]          # the exception, as Python printed it
    raise HarnessError(f"the {what}'s own code failed, not yours ({last})\n{trace}")


def _shadowing_files(path: Path) -> list[str]:
    """The files (`math.py`) and packages beside the learner's file `path` named as a module
    that this process has imported: the fresh one imports the same (tinyformer, numpy, and the
    standard modules they use), but looks in the learner's folder first. (A module built into
    Python is found before any file.)"""
    try:
        entries = sorted(path.resolve().parent.iterdir())
    except OSError:                 # a folder that may be read from but not listed
        return []
    names = []
    for entry in entries:
        is_module = entry.suffix == ".py" and entry.is_file() and entry != path.resolve()
        name = entry.stem if is_module else entry.name
        if not (is_module or (entry / "__init__.py").is_file()):
            continue
        if name in sys.modules and name not in sys.builtin_module_names:
            names.append(entry.name)
    return names


# What the fresh process prints goes to files that the runner reads back, in this encoding,
# whatever the system's: in an ASCII locale (or on Windows, whose files take the ANSI code page)
# a learner's print("→") raised UnicodeEncodeError, and their right answer failed its check.
PRINTED_ENCODING = "utf-8"


def _environment() -> dict[str, str]:
    """This process's environment, with this tinyformer first on the module path, and what
    the fresh process prints written in PRINTED_ENCODING."""
    paths = [str(PACKAGE_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                   if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths),
            "PYTHONIOENCODING": PRINTED_ENCODING}


def run_question(chapter: int, timeout: float = 60) -> str:
    """What chapter `chapter`'s question prints, run in a fresh process (the learner sees that
    the answer is computed, not stored)."""
    command = [sys.executable, "-m", "tinyformer.exercises.isolated", "predict", str(chapter)]
    # In an empty folder: `-m` puts the folder it runs in first on the module path, and a
    # learner's math.py or numpy.py in theirs would be imported in place of the module.
    with tempfile.TemporaryDirectory() as empty:
        run = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                             encoding=PRINTED_ENCODING, errors="replace", timeout=timeout,
                             env=_environment(), cwd=empty)
    if run.returncode != 0:
        raise RuntimeError(f"the question of chapter {chapter} failed: "
                           f"{run.stderr.strip().splitlines()[-1:]}")
    return run.stdout


# ---------------------------------------------------------------------------------------------
# The fresh process's side
# ---------------------------------------------------------------------------------------------

def limit_memory(limit: int) -> None:
    """Let this process have at most `limit` bytes of address space (or the lower limit it
    has already). Linux only: macOS does not hold a process to this limit, and Windows has
    none."""
    if not sys.platform.startswith("linux"):
        return
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main(*argv: str) -> None:
    if argv[:1] == ("--memory",):
        limit_memory(int(argv[1]))
        argv = argv[2:]
    program = "tinyformer"
    if argv[:1] == ("--program",):
        program, argv = argv[1], argv[2:]
    with program_named(program):
        _act(*argv)


def _act(action: str, *arguments: str) -> None:
    if action == "predict":
        from .catalogue import question
        code = question(int(arguments[0])).code
        exec(compile(code, f"<chapter {arguments[0]}>", "exec"), {"__name__": "__main__"})
        return
    if action not in ("check", "draw"):
        raise SystemExit(f"unknown action {action!r}: check, draw or predict")
    result_path = arguments[-1]
    try:
        from .catalogue import find
        if action == "check":
            from .checking import run_check
            slug, path, _ = arguments
            result = {"message": run_check(find(slug), path)}
        else:
            from .pictures import draw
            slug, path, picture, _ = arguments
            result = {"message": draw(find(slug), path, picture)}
    except SystemExit as exit:          # the learner's code called exit()
        code = exit.code if isinstance(exit.code, (int, str, type(None))) else repr(exit.code)
        result = {"exited": code}
    except OSError as error:            # the learner's code's errors are caught in there:
        where = None if error.filename is None else os.fspath(error.filename)
        result = {"os_error": [error.errno, error.strerror or str(error), where]}
    except Exception:                   # one that gets here is tinyformer's own
        result = {"bug": traceback.format_exc()}
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")


def end_now() -> None:
    """End this process at once, what the learner's code printed flushed to its files. Python's
    own exit first waits for every thread still running, and the learner's code may have left
    one that never ends (a threading.Thread that is not a daemon): the check, its result
    written, would wait for it until its timeout. The runner then stops whatever else the
    learner's code started (_stop)."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):   # replaced, or closed, by the learner
            pass
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:])
    end_now()                   # the result is written: nothing left to wait for
