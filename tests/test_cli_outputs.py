"""What the drawing commands write is written whole or not at all: a write that fails (a full
disk) leaves no file behind, and a file that was there as it was; the error is one line that
names the file, exit status 2."""

import os
import shutil

import pytest
from click.testing import CliRunner

from full_disk import files_limited_to
from tinyformer_cli import main

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--eval-iters", "2"]


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def run(two_step_gpt_run):
    """`train TINY --iters 2`, the run conftest trains once for every module that reads it."""
    import matplotlib.font_manager      # noqa: F401  its font cache, written before the limit
    return two_step_gpt_run.out


needs_dot = pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"),
                               reason="graphviz's dot is not installed (CI installs it)")
COMMANDS = {
    "graph .dot": ["graph", "--example", "gpt", "--out", "OUT.dot"],
    "graph .svg": pytest.param(["graph", "--example", "gpt", "--out", "OUT.svg"],
                               marks=needs_dot),
    "graph .png": pytest.param(["graph", "--example", "gpt", "--out", "OUT.png"],
                               marks=needs_dot),
    "graph .html": ["graph", "--example", "mlp", "--out", "OUT.html"],
    "lens .png": ["lens", "--checkpoint", "RUN", "--prompt", "eve has a", "--out",
                  "OUT.png"],
    "attention .png": ["attention", "--checkpoint", "RUN", "--prompt", "eve has a",
                       "--out", "OUT.png"],
}


@pytest.mark.parametrize("args", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize("there", [False, True], ids=["new", "replaced"])
def test_a_failed_write_leaves_no_file_and_an_existing_one_as_it_was(tmp_path, run, args,
                                                                     there):
    suffix = args[-1].split(".")[-1]
    out = tmp_path / f"out.{suffix}"
    if there:
        out.write_text("the user's old picture")
    args = [str(run) if a == "RUN" else str(out) if a.startswith("OUT.") else a for a in args]
    with files_limited_to(1000):
        result = tinyformer(*args)
    assert result.exit_code == 2, result.output
    line, = result.stderr.strip().splitlines()
    assert line == f"Error: {out}: file too large", line     # the file named, as for train's
    assert os.listdir(tmp_path) == ([out.name] if there else [])      # no temporary file left
    if there:
        assert out.read_text() == "the user's old picture"


@pytest.mark.parametrize("command", [
    ["attention", "--checkpoint", "RUN", "--prompt", "eve has a", "--out"],
    ["lens", "--checkpoint", "RUN", "--prompt", "eve has a", "--out"],
    ["plot", "RUN", "--out"],
    ["graph", "--example", "mlp", "--out"],
    ["tokenize", "train", "RUN/tokenizer.json", "--kind", "char", "--out"]])
def test_an_out_inside_a_file_is_said_to_be_inside_a_file(run, tmp_path, command):
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "deeper" / "x.png"
    suffix = ".json" if command[0] == "tokenize" else ".png"
    args = [a.replace("RUN", str(run)) for a in command]
    result = tinyformer(*args, out.with_suffix(suffix))
    assert result.exit_code == 2, result.output
    line, = result.stderr.strip().splitlines()
    assert f"{str(tmp_path / 'notes.txt')!r} is a file, not a directory" in line, line
    assert "does not exist" not in line
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_disk_that_fills_up_while_the_corpus_is_tokenised_is_said_with_the_file(tmp_path):
    """The tokenised corpus is the first large file a run writes (the built-in stories' is
    400 KB, the files before it a few KB): its error names it and the cause, as any other's."""
    with files_limited_to(100_000):
        result = tinyformer("train", *TINY, "--iters", 2, "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    line, = result.stderr.strip().splitlines()
    assert line == f"Error: {tmp_path / 'run' / 'tokens.bin.new'}: file too large", line


@pytest.mark.parametrize("cause", ["EROFS", "ENOSPC"])
def test_a_read_only_run_directory_is_plotted_elsewhere_with_out(tmp_path, monkeypatch, cause):
    """plot writes RUN_DIR/loss.png unless told otherwise: where it cannot (another's run, an
    archive mounted read-only), the error says how to draw the curves all the same. A full
    disk is not the directory's doing: elsewhere on it would be full too."""
    import errno
    import tempfile
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train_loss": 2.0, "lr": 0.1}\n')
    make_temporary = tempfile.mkstemp

    def refusing_run_directory(*args, dir=None, **kwargs):
        if os.path.samefile(dir, tmp_path):
            raise OSError(getattr(errno, cause), os.strerror(getattr(errno, cause)))
        return make_temporary(*args, dir=dir, **kwargs)
    monkeypatch.setattr(tempfile, "mkstemp", refusing_run_directory)
    result = tinyformer("plot", tmp_path)
    assert result.exit_code == 2
    elsewhere = "; give --out FILE.png (or .html) to draw the curves elsewhere"
    assert (elsewhere in result.stderr) == (cause == "EROFS"), result.stderr
    assert result.stderr.startswith(f"Error: {tmp_path / 'loss.png'}: ")
    # --out given, and refused there: the advice to give --out would be no way out.
    result = tinyformer("plot", tmp_path, "--out", tmp_path / "mine.png")
    assert result.exit_code == 2 and elsewhere not in result.stderr, result.stderr
    assert tinyformer("plot", tmp_path, "--out", tmp_path.parent / "loss.png").exit_code == 0


def test_a_full_disk_as_training_ends_leaves_the_run_saved_and_says_how_to_draw_its_curves(
        tmp_path, monkeypatch):
    """loss.png is drawn after the last checkpoint: a full disk there is a note, not an error
    (the run is saved, and the same command again would be refused as a finished run); the
    note says how to draw the curves once there is room."""
    import errno
    import tempfile
    make_temporary = tempfile.mkstemp

    def full_disk_for_the_picture(*args, prefix=None, **kwargs):
        if prefix and prefix.startswith(".tmp-loss.png-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return make_temporary(*args, prefix=prefix, **kwargs)
    out = tmp_path / "run"
    with monkeypatch.context() as patched:
        patched.setattr(tempfile, "mkstemp", full_disk_for_the_picture)
        result = tinyformer("train", *TINY, "--iters", 2, "--out", out)
    assert result.exit_code == 0, result.output
    assert (f"note: no loss plot ({out / 'loss.png'}: no space left on device; free some disk "
            f"space and draw it with `tinyformer plot {out}`)") in result.output
    assert f"done: checkpoint in {out}" in result.output and not (out / "loss.png").exists()
    assert tinyformer("plot", out).exit_code == 0 and (out / "loss.png").exists()  # the advice


@pytest.mark.parametrize("command, said", [
    (["plot", "locked"], "run directory 'locked'"),
    (["plot", "locked/metrics.jsonl", "--out", "x.png"], "run directory 'locked'"),
    (["generate", "--checkpoint", "locked"], "checkpoint 'locked'"),
    (["export", "--checkpoint", "locked", "--out", "exported"], "checkpoint 'locked'"),
    (["tokenize", "encode", "hi", "--tokenizer", "locked"], "'locked'"),
    # (its own advice alone: not "; give the directory of a `tinyformer train` run" after it)
    (["train", "--resume", "locked/run"], "--resume 'locked'")])
def test_a_folder_the_user_may_not_read_is_said_to_be_so(tmp_path, monkeypatch, command, said):
    """A run folder of mode 000 (or another user's) was said not to exist, or to have no
    config.json: in it every file seems missing. Simulated (the tests may run as root, whom
    no permission stops): the process may not read it, and it looks empty, as then."""
    locked = tmp_path / "locked"
    locked.mkdir()
    may_read = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: (
        os.path.abspath(path) != str(locked) and may_read(path, mode, **kwargs)))
    monkeypatch.chdir(tmp_path)
    result = tinyformer(*command)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"Error: {said} cannot be read: permission denied; check its "
                             f"permissions (ls -ld locked)\n"), result.stderr
    assert os.listdir(tmp_path) == ["locked"]
