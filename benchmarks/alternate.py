"""Time each engine alone, in a process of its own, the engines taking turns block by block.

A benchmark script that compares engines has a child mode, `python SCRIPT --engine NAME --json
PATH ...`, which builds that one engine, times it and writes its figures as JSON. `alternate`
runs that child for each engine in turn, block after block (ours, torch, ours, torch, ...), and
returns every engine's list of child results.

Why not time both engines in one process, step by step, as these scripts once did? Because they
disturb each other. Measured alone, a training step (benchmarks/train_step.py) took ours 71 ms
and PyTorch 66 ms on one thread; interleaved in one process, 79 and 82 ms. On two threads, alone
55 and 45 ms; interleaved 64 and 111 ms: OpenBLAS's threads and PyTorch's OpenMP threads fight
over the two cores, and each engine evicts the other's data from the shared caches. Alternating
whole blocks, each in a fresh process, keeps what taking turns was for: a busy spell on a
shared machine still falls on both engines alike, as long as it lasts longer than a block.

The threads: every script's `--threads` takes a count, fixed for both engines, or `auto`: each
engine as a user gets it. For ours that is what `tinyformer` does by default (training and
generating time their own steps to choose their threads, tinyformer.resources.AdaptiveThreads);
for PyTorch, its defaults (no set_num_threads). The helpers below are the one place
where a count becomes the thread-count variables of a process's environment.
"""

import argparse
import contextlib
import datetime
import functools
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile

# The repository made importable, as every script here does for itself, for write_figures's
# tinyformer.files in a checkout not installed with pip. Nothing of tinyformer is imported at
# the top of this module: the scripts import it before numpy, whose thread count
# set_thread_variables must fix first.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
AUTO = "auto"
# The suite's own command line, which it sets for the scripts it runs: each script's JSON
# records its own command too, which names a scratch file the suite chose.
RUN_BY = "TINYFORMER_BENCHMARKS_RUN_BY"


def thread_count(text):
    """The type of every script's --threads: a whole number of threads, or "auto"."""
    if text == AUTO:
        return AUTO
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--threads takes a whole number of threads (1 or "
                                         f"more) or {AUTO!r}")
    return int(text)


def counted(n, noun):
    """n and the noun, in the singular for one: '1 block', '3 blocks' (as tinyformer.summary's
    counted, which this module cannot import at its top: importing tinyformer imports numpy,
    before the scripts have set its thread count)."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def at_least(minimum):
    """The type of a count option: a whole number, `minimum` or more."""
    def count(text):
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"takes a whole number, {minimum} or more; got "
                                             f"{text!r}")
        return int(text)
    return count


def json_file(text):
    """The type of every script's --json: a path that write_figures can write, checked before
    the run: a folder (or a path ending in a separator), or a path inside a file or in a folder
    that cannot be written to, was found only at the end of the run, in a traceback, the file
    of its figures lost. A folder of the path that does not exist yet is made at the end; a
    device or a pipe that is there (/dev/stdout) is written to as it is."""
    if os.path.exists(text) and not os.path.isfile(text) and not os.path.isdir(text):
        return text
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give the path of a file")
    if text.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        raise argparse.ArgumentTypeError(f"{text!r} ends in {text[-1]!r}, as a folder's path "
                                         f"does; give the path of a file")
    folder = os.path.dirname(os.path.abspath(text))
    while not os.path.exists(folder):           # the folder that is there, the rest made
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {folder!r} is a file, not a "
                                         f"folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: folder {folder!r} is not "
                                         f"writable; give a path in a folder you can write to")
    return text


@contextlib.contextmanager
def settings_refused_as_usage(script):
    """Around the building of what the options describe (a model, a corpus): a ValueError there
    is the settings' fault (an n_head that does not divide d_model), so it ends as argparse's
    usage errors do, in one line with status 2, not a traceback."""
    try:
        yield
    except ValueError as error:
        print(f"{os.path.basename(script)}: error: {error}", file=sys.stderr)
        sys.exit(2)


def set_thread_variables(environment, threads):
    """Write `threads` into a process's environment (a dict, or os.environ before numpy is
    imported): a fixed count into every thread-count variable, or, for "auto", none of them at
    all (removing those the caller had), so that OpenBLAS and PyTorch choose as they would for a
    user. Returns the environment."""
    for name in THREAD_VARIABLES:
        if threads == AUTO:
            environment.pop(name, None)
        else:
            environment[name] = str(threads)
    return environment


def set_torch_threads(torch, threads):
    """PyTorch's intra-op threads: the fixed count, or for "auto" its own default, untouched."""
    if threads != AUTO:
        torch.set_num_threads(threads)


class Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help with each option's default, and the description as written: a script's whole
    docstring, which says what it measures and how to read what it prints."""


def step_options(description, engines, blocks):
    """The options of a script that times training steps engine by engine, in blocks that take
    turns (train_step.py, envelope.py); `engines` are its child modes."""
    p = argparse.ArgumentParser(description=description, formatter_class=Help)
    p.add_argument("--threads", type=thread_count, default=1,
                   help="BLAS threads, and torch's threads; auto: each engine as a user gets it")
    p.add_argument("--blocks", type=at_least(1), default=blocks, help="turns of each engine, "
                   "each its own process")
    p.add_argument("--reps", type=at_least(1), default=30,
                   help="timed steps of each engine per block")
    p.add_argument("--warmup", type=at_least(0), default=5,
                   help="untimed steps first, in every block")
    p.add_argument("--json", type=json_file, help="also write the figures to this file")
    p.add_argument("--tiny", action="store_true",
                   help="the same step at tiny sizes (d_model 8, MLP 16, context 2, batch 2): "
                   "the arithmetic is almost nothing, so what is timed is each engine's fixed "
                   "cost per step, its ops' bookkeeping and its cost per call of numpy or of "
                   "PyTorch's kernels")
    p.add_argument("--engine", choices=engines,
                   help="child mode: time this engine alone and write its figures to --json "
                   "(without it, print them as JSON)")
    return p


def block_ratios(ours_ms, theirs_ms):
    """Each block of ours (its median) against the block of theirs that ran just after it: a
    spell of the shared machine falls on both, so how far these spread says how noisy the
    run was."""
    return [o / t for o, t in zip(ours_ms, theirs_ms)]


def alternate(script, engines, blocks, threads, arguments=(), show_output=False):
    """{engine: [the JSON each of its `blocks` children wrote, in order]}.

    Each child runs `python script --engine ENGINE --json PATH --threads THREADS *arguments`
    with the thread-count variables set in its environment, or none of them for "auto" (OpenBLAS
    reads them when numpy is imported, before the child has parsed its arguments). With
    show_output the children print to our stdout; otherwise their output is kept out of the
    way. A child that fails raises RuntimeError with the end of its stderr."""
    env = set_thread_variables(dict(os.environ), threads)
    results = {engine: [] for engine in engines}
    with tempfile.TemporaryDirectory() as directory:
        for block in range(blocks):
            for engine in engines:
                json_path = os.path.join(directory, f"{engine}-{block}.json")
                command = [sys.executable, script, "--engine", engine, "--json", json_path,
                           "--threads", str(threads), *map(str, arguments)]
                done = subprocess.run(command, env=env, text=True, stderr=subprocess.PIPE,
                                      stdout=None if show_output else subprocess.DEVNULL)
                if done.returncode != 0:
                    tail = "\n".join(done.stderr.splitlines()[-20:])
                    raise RuntimeError(f"{' '.join(command)}\nfailed with exit status "
                                       f"{done.returncode}:\n{tail}")
                with open(json_path) as f:
                    results[engine].append(json.load(f))
    return results


@functools.cache
def torch_import_error():
    """Where PyTorch is installed but does not import (a broken install: a library of its
    missing, a build for another Python), the last line of what importing it says; else None
    (imported, or not installed). Tried once, in a process of its own: this one stays without
    PyTorch, as ours is timed."""
    if importlib.util.find_spec("torch") is None:
        return None
    done = subprocess.run([sys.executable, "-c", "import torch"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]


def write_child_figures(path, figures):
    """A child's figures as JSON: into `path`, where its parent reads them; without one (the
    child mode run by hand, to time one engine alone) on the screen."""
    if path:
        with open(path, "w") as f:
            json.dump(figures, f)
    else:
        print(json.dumps(figures))


def command_of(argv):
    """A process's `argv` as typed in the repository's root: python benchmarks/SCRIPT.py ...
    for a script here, else the program's name and its arguments (tinyformer bench ...)."""
    program = os.path.basename(argv[0])
    if os.path.basename(os.path.dirname(os.path.abspath(argv[0]))) == "benchmarks":
        program = os.path.join("benchmarks", program)
    return shlex.join((["python"] if program.endswith(".py") else []) + [program, *argv[1:]])


def about_this_run():
    """What a benchmark's figures were measured on, by what and when, for its JSON: read on
    another day or machine, figures without it cannot be compared (BENCHMARKS.md compares
    runs by their CPU, their BLAS kernels and their versions)."""
    import numpy as np                        # here: a script sets its threads before numpy loads
    import threadpoolctl
    from tinyautograd import kernels
    from tinyformer.resources import usable_cores
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):        # Linux names the CPU model here
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    pools = [pool for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
    blas = [f"{pool['internal_api']} {pool['version']} ({pool.get('architecture')} kernels)"
            for pool in pools]
    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = None
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": command_of(sys.argv), "run by": os.environ.get(RUN_BY),
            # The cores this process may use (affinity, a container's quota), not the machine's.
            "cpu": cpu, "cores": usable_cores(), "system": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__,
            "blas": ", ".join(blas) or None,
            "blas threads": [pool["num_threads"] for pool in pools], "torch": torch,
            "our ops": "compiled loops" if kernels.in_use() else "numpy forms"}


def finite_or_null(value):
    """`value` (numbers, strings, lists and dicts of them) with each float that is not finite
    (NaN, an infinity) as None: JSON has no such numbers, and Python's NaN and Infinity, which
    it writes for them by default, make a file that strict readers (JavaScript's JSON.parse)
    refuse. None is written null, as JavaScript writes them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value


def write_figures(path, figures):
    """A benchmark's figures as JSON at `path`, its directory made if need be, with what they
    were measured on, by what and when (`about`); says so. All or nothing: with --save it
    replaces the repository's own figures, which a write that fails part way (a full disk,
    Ctrl-C) would leave cut short. Standard JSON: a figure that is not a finite number (the
    free kernels' losses of envelope.py) is null."""
    from tinyformer.files import atomic_write
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # A device or a pipe (--json /dev/stdout) is written to as it is: never replaced by a file.
    replaced = os.path.isfile(path) or not os.path.exists(path)
    with atomic_write(path) if replaced else open(path, "w") as f:
        json.dump(finite_or_null({"about": about_this_run(), **figures}), f, indent=1,
                  allow_nan=False)
    print(f"written: {path}")
