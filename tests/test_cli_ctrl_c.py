"""Ctrl-C, in every command: exit status 130 (the shell's "stopped by Ctrl-C"), one line on
stderr and no traceback; a training run stopped says how to continue it (and, stopped by
SIGTERM, exits with 143; by SIGHUP, its terminal closed, with 129).

A real SIGINT goes to a process started with Python's own handlers (Popen, not `timeout -s
INT` or a shell's `&`, which start it with SIGINT ignored)."""

import io
import os
import random
import signal
import string
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import tinyformer_cli as cli
import viz.write
from tinyformer_cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--eval-iters", "2"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_ctrl_c_in_a_real_process_exits_130_with_one_line_and_writes_nothing(tmp_path):
    rng = random.Random(0)      # many distinct words: a BPE that takes minutes to learn
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 10)))
             for _ in range(5000)]
    (tmp_path / "big.txt").write_text(" ".join(rng.choice(words) for _ in range(50000)))
    out = tmp_path / "tok.json"
    process = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "tokenize", "train",
                                str(tmp_path / "big.txt"), "--vocab-size", "8000", "--out",
                                str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stderr.readline().startswith("Training a 8000-token BPE")   # at work
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["stopped by Ctrl-C"]
    assert not out.exists()


# Run by Python at its start, as sitecustomize: the import of one module (MODULE) says so on
# stderr and then waits, so that a test can press Ctrl-C while the program loads, at a moment
# it knows.
SLOW_IMPORT = """\
import sys, time
class SlowImport:
    def find_spec(self, name, path=None, target=None):
        if name == MODULE:
            sys.stderr.write("importing\\n")
            sys.stderr.flush()
            time.sleep(60)
sys.meta_path.insert(0, SlowImport())
"""
STARTS = {"cli.py": [str(ROOT / "cli.py")], "-m": ["-m", "tinyformer_cli"],
          # as the installed `tinyformer` runs it (pip's script for the entry point)
          "tinyformer": ["-c", "import sys; from tinyformer_cli import main; sys.exit(main())"]}


@pytest.mark.parametrize("start, module", [
    *[(start, "numpy") for start in STARTS],          # the longest import
    ("cli.py", "tinyformer_cli.loading"),            # before the package can catch it
])
def test_ctrl_c_while_the_program_loads_exits_130_without_a_traceback(tmp_path, start, module):
    """However the program is started, Ctrl-C while its imports run is said as at any other
    time."""
    (tmp_path / "sitecustomize.py").write_text(f"MODULE = {module!r}\n" + SLOW_IMPORT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    process = subprocess.Popen([sys.executable, *STARTS[start], "--version"], env=env,
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stderr.readline() == "importing\n"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    # Python ends a program that did not catch Ctrl-C by the signal itself, which a shell
    # shows as 130, as the status cli.py exits with after catching it.
    assert process.returncode in (130, -signal.SIGINT), stderr
    assert stderr.splitlines() == ["stopped by Ctrl-C"] and stdout == ""


def test_once_loaded_ctrl_c_is_pythons_keyboard_interrupt_again():
    """Nothing of the loading's is left behind in a program that imports tinyformer_cli (a
    test, a notebook): Ctrl-C raises KeyboardInterrupt, and Python prints what nothing
    caught."""
    from tinyformer_cli import loading
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sys.excepthook is not loading._said_as_ctrl_c


def test_a_program_whose_import_of_the_package_failed_has_its_ctrl_c_said_by_python(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nclass NoClick:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'click':\n            raise ImportError('no click here')\n"
        "sys.meta_path.insert(0, NoClick())\n")
    host = ("try:\n    import tinyformer_cli\nexcept ImportError:\n    pass\n"
            "raise KeyboardInterrupt\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    result = subprocess.run([sys.executable, "-c", host], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert "stopped by Ctrl-C" not in result.stderr
    assert result.stderr.splitlines()[-1] == "KeyboardInterrupt", result.stderr


def test_a_program_importing_the_package_still_catches_ctrl_c_while_it_loads(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("MODULE = 'numpy'\n" + SLOW_IMPORT)
    host = ("try:\n    import tinyformer_cli\nexcept KeyboardInterrupt:\n"
            "    print('caught it')\nprint('went on')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    process = subprocess.Popen([sys.executable, "-c", host], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr.readline() == "importing\n"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert (process.returncode, stdout) == (0, "caught it\nwent on\n"), stderr


def test_ctrl_c_before_training_starts_exits_130(monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):          # e.g. while a large corpus is tokenised
        raise KeyboardInterrupt
    monkeypatch.setattr(cli.Trainer, "open", interrupted)
    result = run("train", "--out", tmp_path / "run")
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines() == ["stopped by Ctrl-C"]
    monkeypatch.setattr(cli, "load_model", interrupted)
    result = run("generate", "--checkpoint", tmp_path)
    assert result.exit_code == 130 and "Traceback" not in result.output


# What the trainer calls each signal that stops a run.
SAID = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                            (signal.SIGHUP, 129)],
                         ids=["ctrl-c", "sigterm", "sighup"])
def test_a_second_stop_stops_training_at_once_and_says_how_to_resume(monkeypatch, tmp_path,
                                                                     signum, status):
    """A second Ctrl-C, SIGTERM or SIGHUP: the shell's status for the signal (128 + its
    number)."""
    out = tmp_path / "run"
    step = cli.Trainer.train_step
    def step_then_signal_twice(self, threads=1, workers=None):
        if self.step == 3:
            os.kill(os.getpid(), signum)             # finish this step and save ...
            os.kill(os.getpid(), signum)             # ... no: stop now
        return step(self, threads, workers)
    monkeypatch.setattr(cli.Trainer, "train_step", step_then_signal_twice)
    monkeypatch.setattr(viz.write, "plot_after_training", lambda directory: "")
    # This test process's own handler, for when the trainer's is not there: it must not end.
    previous = signal.signal(signum, lambda *_: None)
    try:
        result = run("train", *TINY, "--iters", 6, "--eval-every", 2, "--out", out)
    finally:
        signal.signal(signum, previous)
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    assert f"{SAID[signum]}: finishing this step and saving a checkpoint" in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert "stopped at once" in last and f"tinyformer train --resume {out}" in last
    monkeypatch.setattr(cli.Trainer, "train_step", step)
    result = run("train", "--resume", out)               # the advice works
    assert result.exit_code == 0 and "resuming at step 2 of 6" in result.output


def test_a_closed_terminal_after_a_ctrl_c_stops_at_once_and_leaves_the_terminal_first(
        monkeypatch):
    """A second stop need not be the first's signal: Ctrl-C, then the terminal closes. Its
    SIGHUP stops the run at once, and points the output away from the terminal first, or the
    line that says how to resume would fail on the terminal that is gone."""
    from tinyformer import stops
    left = []
    monkeypatch.setitem(stops.STOPS, signal.SIGHUP, stops.STOPS[signal.SIGHUP]._replace(
        first=lambda: left.append("left the terminal")))
    # This test process's own handlers, which the trainer's replace (none is ignored then).
    previous = {signum: signal.signal(signum, lambda *_: None)
                for signum in (signal.SIGINT, signal.SIGHUP)}
    said = []
    try:
        with stops.interrupt_between_steps(said.append) as stop_asked:
            os.kill(os.getpid(), signal.SIGINT)          # finish this step and save ...
            assert stop_asked() == "interrupted" and left == []
            with pytest.raises(stops.HungUp):
                os.kill(os.getpid(), signal.SIGHUP)      # ... the terminal closed: now
                raise AssertionError("SIGHUP did not stop at once")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert left == ["left the terminal"] and len(said) == 1

@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["sigterm", "sighup"])
def test_a_signal_before_training_starts_exits_with_its_status_and_one_line(monkeypatch,
                                                                           tmp_path, signum,
                                                                           status):
    """While a run builds its model or tokenises its corpus, SIGTERM or SIGHUP stops it as
    Ctrl-C would there, but says which (exit status 128 + its number) rather than ending
    without a word."""
    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signum)
        raise AssertionError(f"{SAID[signum]} did not stop the command")
    monkeypatch.setattr(cli.Trainer, "open", terminated)
    # This test process's own handler, for when the command's is not there: it must not end.
    ours = lambda *_: None                                        # noqa: E731
    previous = signal.signal(signum, ours)
    try:
        result = run("train", "--out", tmp_path / "run")
        after = signal.getsignal(signum)
    finally:
        signal.signal(signum, previous)
    assert result.exit_code == status, result.output
    assert result.stderr.strip().splitlines() == [f"stopped by {SAID[signum]}"]
    assert after is ours                                # the command's is gone again


# A caller stopped at once while its threads compute (a second Ctrl-C, on the threads that run
# the micro-batches where fork is not used), then the program's exit, timed.
STOPPED_WHILE_THREADS_COMPUTE = """\
import signal, threading, time
from tinyformer import parallel
main = threading.main_thread().ident
threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT)).start()   # Ctrl-C, soon
try:
    parallel.run_in_threads(lambda part: time.sleep(60), range(2), 2)     # a long part each
except KeyboardInterrupt:
    print("stopped", flush=True)
"""


def test_a_run_stopped_at_once_exits_without_waiting_for_the_parts_its_threads_compute():
    """Stopped at once, the program ends at once: Python's exit waited for the threads still
    computing their parts, and a Ctrl-C in that wait printed an "Exception ignored" traceback."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.run([sys.executable, "-c", STOPPED_WHILE_THREADS_COMPUTE], env=env,
                             capture_output=True, text=True, timeout=15)
    assert (process.returncode, process.stdout, process.stderr) == (0, "stopped\n", "")


def test_a_sighup_sent_by_hand_leaves_a_working_pipe_as_it_is(monkeypatch):
    """`kill -HUP` to a run piped into `tee`, whose terminal works: the pipe's reader is
    alive, and the run's output goes on reaching it (only a closed terminal's SIGHUP points
    stdout and stderr at /dev/null)."""
    from tinyformer.stops import leave_the_terminal
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as piped, os.fdopen(read_end, "rb") as reader:
        monkeypatch.setattr(sys, "stdin", io.StringIO())      # no terminal to hang up
        monkeypatch.setattr(sys, "stdout", piped)
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        leave_the_terminal()
        piped.write("still here\n")
        piped.flush()
        os.set_blocking(read_end, False)
        assert reader.read() == b"still here\n"
