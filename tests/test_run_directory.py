"""Run directories: a run owns what its manifest lists and nothing else; one process writes a
run at a time; every state a run can be left in has a way out, and each error's advice is
tested by taking it."""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinyformer_cli import main
from tinyformer.rundir import (RunDirectory, is_training, open_tokens, read_metrics,
                               truncate_metrics, write_tokens)
from tinyformer import rundir, train

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--eval-iters", "1"]


# The runs trained in this process: the stories' recall on 8 prompts, not 100, and no loss
# plot, but in the tests that read them (all_recall_prompts, loss_plots_drawn): the 100 and the
# plot were most of each tiny run's time.
pytestmark = pytest.mark.usefixtures("recall_on_eight_prompts", "short_samples",
                                     "loss_plots_left_out")


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, *phrases):
    """Exit status 2, and one line of error last on stderr (after the progress lines of a
    run that failed while training)."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    line = lines[-1]
    assert len(lines) <= 3 and all(x.startswith("step ") for x in lines[:-1]), lines
    assert line.startswith("Error: ") and "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in line, line
    return line


def files(directory):
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else "folder")
            for p in Path(directory).rglob("*")}


@pytest.fixture(scope="module")
def trained_run(two_step_gpt_run_evaluated_on_one_batch):
    """`train TINY --iters 2`, the run conftest trains once for every module that reads it."""
    return two_step_gpt_run_evaluated_on_one_batch.out


@pytest.fixture
def run(tmp_path, trained_run):
    """A run of its own for each test, to change: a copy of one trained once."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def test_token_ids_are_stored_in_the_smallest_type_that_holds_them(tmp_path):
    for vocab_size, dtype in ((65_536, "uint16"), (65_537, "uint32")):
        path = tmp_path / f"{vocab_size}.bin"
        ids = [0, vocab_size - 1]
        written = write_tokens(path, [ids], vocab_size, check_length=lambda n: None)
        assert written == (dtype, 2, hashlib.sha256(path.read_bytes()).hexdigest())
        assert open_tokens(path, dtype, 2).tolist() == ids


def test_force_removes_only_what_the_run_owns(run):
    (run / "weights-notes.txt").write_text("mine")            # looks like ours, is not
    (run / "optimizer-old").mkdir()                            # a folder, likewise
    (run / "optimizer-old" / "keep.txt").write_text("mine too")
    # A manifest that names files outside the run (edited, or damaged): never removed.
    (run.parent / "outside.txt").write_text("mine")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["owns"] += ["../outside.txt", "optimizer-old/keep.txt"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / ".tmp-weights-000002.npz-k1ll3d").write_bytes(b"half")   # a kill left it writing
    result = tinyformer("train", *TINY, "--iters", 3, "--out", run, "--force")
    assert result.exit_code == 0, result.output
    assert (run.parent / "outside.txt").read_text() == "mine"
    assert not (run / ".tmp-weights-000002.npz-k1ll3d").exists()
    assert (run / "weights-notes.txt").read_text() == "mine"
    assert (run / "optimizer-old" / "keep.txt").read_text() == "mine too"
    assert not (run / "weights-000002.npz").exists() and (run / "weights-000003.npz").exists()
    assert json.loads((run / "manifest.json").read_text())["checkpoint"] == 3


def test_a_manifest_that_lists_the_lock_and_itself_does_not_make_them_the_runs(run):
    # Edited by hand: were run.lock the run's, removing the files of other checkpoints (as a
    # resumed run does) would remove the lock it holds, and let a second writer in.
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["owns"] += ["run.lock", "manifest.json"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    claimed = RunDirectory.claim(run, log=lambda message: None)
    try:
        assert not {"run.lock", "manifest.json"} & claimed.owned
        claimed.remove(claimed.owned - set(rundir.RUN_FILES))
        assert (run / "run.lock").exists() and is_training(run)
    finally:
        claimed.release()


def test_a_full_disk_once_force_moved_the_new_tokens_in_leaves_a_run_to_resume(run,
                                                                              monkeypatch):
    """--force replaces a previous run: its files go, the new tokens.bin is moved in, and the
    manifest fails to be written at the first moment after (the disk fills up, or a kill).
    The new run must own its tokens.bin by then: else --resume and --force refuse it as a
    file "which no run wrote", and the run is stuck."""
    real_write_manifest = RunDirectory.write_manifest

    def full_disk_after_the_move(self):
        if (run / "tokens.bin").exists() and not (run / "tokens.bin.new").exists():
            raise OSError(errno.ENOSPC, "No space left on device", str(run / "manifest.json"))
        real_write_manifest(self)
    with monkeypatch.context() as patched:
        patched.setattr(RunDirectory, "write_manifest", full_disk_after_the_move)
        one_line_error(tinyformer("train", *TINY, "--iters", 2, "--seed", 1, "--out", run,
                                  "--force"), "no space left on device")
    resumed = tinyformer("train", "--resume", run)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 1


def test_force_names_a_folder_where_the_run_would_write_a_file_of_its_own(run):
    (run / "loss.png").unlink(missing_ok=True)
    (run / "loss.png").mkdir()
    before = files(run)
    one_line_error(tinyformer("train", *TINY, "--iters", 3, "--out", run, "--force"),
                   "loss.png", "(or a folder)", "move it away")
    assert files(run) == before


@pytest.mark.parametrize("name, folder", [("tokens.bin", True), ("weights-000003.npz", False),
                                          ("metrics.jsonl", False)])
def test_force_names_what_is_in_the_way_and_taking_the_advice_works(tmp_path, name, folder):
    out = tmp_path / "run"
    out.mkdir()
    (out / name).mkdir() if folder else (out / name).write_text("mine")
    before = files(out)
    line = one_line_error(tinyformer("train", *TINY, "--iters", 3, "--out", out, "--force"),
                          name, "which no run wrote", "move it away")
    assert "Traceback" not in line and files(out) == before       # nothing lost, no lock left
    (out / name).rename(tmp_path / "moved")                         # the advice, taken
    assert tinyformer("train", *TINY, "--iters", 3, "--out", out, "--force").exit_code == 0


def test_a_run_that_died_before_its_first_checkpoint_can_be_continued(tmp_path, monkeypatch):
    out = tmp_path / "run"
    def out_of_memory(*args):
        raise MemoryError
    with monkeypatch.context() as patch:
        patch.setattr(train, "save_checkpoint", out_of_memory)     # the first checkpoint's
        one_line_error(tinyformer("train", *TINY, "--iters", 2, "--out", out), "out of memory")
    assert (out / "manifest.json").exists() and not (out / "config.json").exists()
    line = one_line_error(tinyformer("generate", "--checkpoint", out),
                          "is a run that stopped before its first checkpoint, so there is no "
                          f"model to load; `tinyformer train --resume {out}` starts it again")
    line = one_line_error(tinyformer("train", *TINY, "--iters", 2, "--out", out),
                          "stopped before its first checkpoint")
    command = line.split("`")[1]                 # the advice: tinyformer train --resume DIR
    assert command == f"tinyformer train --resume {out}"
    result = tinyformer(*command.split()[1:])
    assert result.exit_code == 0, result.output
    assert "starting it again from step 0" in result.output
    assert json.loads((out / "config.json").read_text())["step"] == 2


# Unclipped, with no warmup, at an lr far too large: the loss of step 2 is NaN (of step 6, at
# --lr 1e4, after the checkpoint of step 4). The run is exactly deterministic: resumed, it takes
# the same steps to the same NaN.
DIVERGES_AT_STEP_2 = [*TINY, "--lr", "1e9", "--clip", "0", "--warmup", "0", "--iters", 10,
                      "--threads", 1]
DIVERGES_AFTER_A_CHECKPOINT = [*TINY, "--lr", "1e4", "--clip", "0", "--warmup", "0",
                               "--iters", 10, "--eval-every", 2, "--threads", 1]


def test_a_run_that_diverged_before_its_first_checkpoint_says_so_and_to_start_a_new_one(
        tmp_path):
    """The commands that load a model, and a new run without --force, said it stopped before
    its first checkpoint and that `train --resume` starts it again, which diverged again at
    the same step: they say it diverged, with the trainer's own advice for a new run."""
    out = tmp_path / "run"
    diverged = one_line_error(tinyformer("train", *DIVERGES_AT_STEP_2, "--out", out),
                              "the loss became nan at step 2; lower --lr")
    problem = diverged.removeprefix("Error: ")               # the trainer's message, as said
    assert json.loads((out / "manifest.json").read_text())["diverged"] == {
        "step": 2, "error": problem.split(", with the run's other settings")[0]}
    for command in (["generate"], ["attention", "--prompt", "a"], ["lens", "--prompt", "a"],
                    ["graph", "--prompt", "a"]):
        line = one_line_error(tinyformer(*command, "--checkpoint", out),
                              f"{str(out)!r} is a run that diverged before its first "
                              f"checkpoint, so there is no model to load: {problem}")
        assert "--resume" not in line
    one_line_error(tinyformer("train", "--resume", out),
                   f"the run in {str(out)!r} diverged, and resuming it would repeat the same "
                   f"steps to the same end: {problem}")
    one_line_error(tinyformer("train", *TINY, "--iters", 2, "--out", out),
                   "holds a run that diverged at step 2", "--force")
    command = problem.split("`")[1]            # the advice: tinyformer train --out DIR --force
    assert command == f"tinyformer train --out {out} --force ..."
    result = tinyformer(*command.split()[1:-1], *TINY, "--lr", "0.01", "--iters", 2)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["diverged"] is None
    assert tinyformer("generate", "--checkpoint", out, "--max-new-tokens", 2).exit_code == 0


def test_a_run_that_diverged_after_a_checkpoint_is_not_resumed_into_the_same_divergence(
        tmp_path):
    """Resumed from its checkpoint of step 4, the run repeated steps 5 and 6 to the same NaN:
    --resume says it diverged and what to change, and that checkpoint still generates."""
    out = tmp_path / "run"
    result = tinyformer("train", *DIVERGES_AFTER_A_CHECKPOINT, "--out", out)
    assert result.exit_code == 2, result.output       # after six progress lines
    problem = result.stderr.strip().splitlines()[-1].removeprefix("Error: ")
    assert problem.startswith("the loss became nan at step 6; lower --lr"), problem
    before = files(out)
    one_line_error(tinyformer("train", "--resume", out),
                   f"diverged, and resuming it would repeat the same steps to the same end: "
                   f"{problem} (its checkpoint of step 4, from before, still loads; another "
                   f"--out keeps it)")
    assert files(out) == before                                     # nothing replayed
    assert rundir.run_status(out)["state"] == "diverged"
    result = tinyformer("generate", "--checkpoint", out, "--max-new-tokens", 2)
    assert result.exit_code == 0, result.output


def test_a_manifests_record_of_a_divergence_is_checked_as_the_rest(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"format": "tinyformer-run", "version": 1, "owns": [], "checkpoint": None,
         "diverged": {"step": "2", "error": "the loss became nan at step 2"}}))
    with pytest.raises(ValueError, match="manifest.json is damaged"):
        rundir.read_manifest(tmp_path)


def test_a_run_killed_before_its_first_checkpoint_can_be_replaced(tmp_path):
    """A real process, killed: the run's files and its lock are left behind. --force clears
    them (the stale lock is taken over, with a note), and keeps the user's file."""
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "train", *TINY,
                                "--iters", "100000", "--eval-every", "100000", "--out",
                                str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.02)
    process.kill()
    process.wait()
    assert (out / "run.lock").read_text().strip() == str(process.pid)
    (out / "notes.txt").write_text("mine")
    refused = tinyformer("train", *TINY, "--iters", 2, "--out", out)
    one_line_error(refused, "stopped before its first checkpoint", "--force")
    assert f"left by process {process.pid}, which has stopped" in refused.stdout
    result = tinyformer("train", *TINY, "--iters", 2, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "mine" and not (out / "run.lock").exists()
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] \
        == [1, 2]


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(run, monkeypatch):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from tinyformer.rundir import RunDirectory\n"
         "RunDirectory.claim(sys.argv[1], log=lambda m: None)\n"
         "print('locked', flush=True); time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = files(run)
        for args in (["--resume", run], [*TINY, "--out", run, "--force"]):
            one_line_error(tinyformer("train", *args), "is in use: process "
                           f"{holder.pid} is training in it", f"kill {holder.pid}")
        assert files(run) == before
        # Another user's process, on a shared machine: this user's kill cannot stop it, and
        # may not write its run.lock either (made under umask 022).
        def not_permitted(pid, signal):
            raise PermissionError(1, "Operation not permitted")
        with monkeypatch.context() as patched:
            patched.setattr(os, "kill", not_permitted)
            patched.setattr(rundir, "_open_lock_file", anothers_lock_file())
            line = one_line_error(tinyformer("train", "--resume", run),
                                  f"process {holder.pid} is training in it",
                                  "ask its owner to stop it")
        assert "kill" not in line
    finally:
        holder.kill()
        holder.wait()
    assert tinyformer("train", "--resume", run).exit_code == 0      # free again


def anothers_lock_file():
    """rundir._open_lock_file where run.lock is another user's, which this one may read but
    not write (root writes anywhere: the open to write fails as it would for a user)."""
    real = rundir._open_lock_file

    def open_lock_file(path, flags):
        if flags & os.O_RDWR and os.path.exists(path):
            raise PermissionError(13, "Permission denied", path)
        return real(path, flags)
    return open_lock_file


def test_another_user_s_stale_lock_that_one_may_not_write_is_taken_over(run, monkeypatch):
    """A group's folder, and in it the run.lock of another member's run, killed, made under a
    umask that lets the group read it but not write it: taken over, with the note."""
    (run / "run.lock").write_text("999999\n")
    monkeypatch.setattr(rundir, "_open_lock_file", anothers_lock_file())
    result = tinyformer("train", "--resume", run)
    assert result.exit_code == 0, result.output
    assert "run.lock was left by process 999999, which has stopped" in result.output
    assert not (run / "run.lock").exists()


def test_a_directory_held_by_this_process_says_to_close_the_trainer_not_to_kill_it(tmp_path):
    # A notebook cell that starts a Trainer, run again: the first Trainer, never trained, still
    # holds the lock in the same process, where "kill <pid>" would stop the notebook's Python.
    first = RunDirectory.claim(tmp_path / "run", log=lambda m: None, create=True)
    try:
        with pytest.raises(ValueError) as refused:
            RunDirectory.claim(tmp_path / "run", log=lambda m: None)
        assert "in use by this process" in str(refused.value)
        assert "close()" in str(refused.value) and "kill" not in str(refused.value)
    finally:
        first.release()
    RunDirectory.claim(tmp_path / "run", log=lambda m: None).release()    # free once closed


@pytest.mark.parametrize("where, stop", [
    ("remove", PermissionError(errno.EACCES, "Permission denied")),     # a read-only folder
    ("remove", KeyboardInterrupt()),                    # a Ctrl-C as run.lock is removed
    ("ftruncate", KeyboardInterrupt())])                # or as its process id is written
def test_a_lock_whose_release_or_claim_is_cut_short_is_not_held_on(tmp_path, monkeypatch,
                                                                   where, stop):
    """Whatever stops the lock's release (or its claim part way), the lock is let go of: a
    descriptor left open would keep the run "in use by this process" until Python ends (a
    notebook's). A run.lock left behind is a stale one, which the next claim takes over."""
    real = getattr(os, where)

    def fails(*args):
        if where == "ftruncate" or str(args[0]).endswith("run.lock"):
            raise stop
        return real(*args)
    with monkeypatch.context() as patched, contextlib.suppress(KeyboardInterrupt):
        patched.setattr(os, where, fails)
        run = RunDirectory.claim(tmp_path / "run", log=lambda m: None, create=True)
        run.release()
    # (A claim cut short removes the folder it made: create it again.)
    RunDirectory.claim(tmp_path / "run", log=lambda m: None, create=True).release()
    assert not (tmp_path / "run" / "run.lock").exists()


@pytest.mark.parametrize("step", ["_acquire", "_read_manifest"])
def test_a_ctrl_c_as_a_new_out_is_claimed_removes_the_folders_it_made_and_no_other(
        tmp_path, monkeypatch, step):
    """A Ctrl-C (a KeyboardInterrupt, no OSError) part way through claiming a new --out leaves
    no empty run folder behind; a folder that was there before stays."""
    def interrupted(self):
        raise KeyboardInterrupt
    monkeypatch.setattr(RunDirectory, step, interrupted)
    (tmp_path / "there").mkdir()
    for out in (tmp_path / "new" / "run", tmp_path / "there" / "run", tmp_path / "there"):
        with pytest.raises(KeyboardInterrupt):
            RunDirectory.claim(out, log=lambda m: None, create=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["there"]
    assert list((tmp_path / "there").iterdir()) == []


def test_a_ctrl_c_just_after_a_folder_is_made_removes_it(tmp_path, monkeypatch):
    """The folder is recorded as this claim's before it is made: a Ctrl-C as os.mkdir returns
    still finds it, and leaves no empty run folder behind."""
    real_mkdir = os.mkdir

    def made_then_interrupted(path, *args):
        real_mkdir(path, *args)
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "mkdir", made_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        RunDirectory.claim(tmp_path / "new" / "run", log=lambda m: None, create=True)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_another_process_makes_meanwhile_is_not_removed_by_a_failed_claim(
        tmp_path, monkeypatch):
    """Two claims making the same new folders: the one that finds a folder made meanwhile
    (FileExistsError) does not count it as its own, and a failure after leaves it there."""
    real_mkdir = os.mkdir

    def made_by_another_first(path, *args):
        real_mkdir(path, *args)
        if Path(path) == tmp_path / "shared":
            raise FileExistsError(errno.EEXIST, "File exists", path)

    def interrupted(self):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "mkdir", made_by_another_first)
    monkeypatch.setattr(RunDirectory, "_acquire", interrupted)
    with pytest.raises(KeyboardInterrupt):
        RunDirectory.claim(tmp_path / "shared" / "run", log=lambda m: None, create=True)
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]
    assert list((tmp_path / "shared").iterdir()) == []          # its own "run" went


def test_a_release_cut_short_leaves_the_lock_to_be_taken_again(tmp_path, monkeypatch):
    """A Ctrl-C as release() removes run.lock: the run no longer counts itself as holding the
    lock, so hold() takes it again (and another claim is refused), rather than write to the
    directory unlocked."""
    run = RunDirectory.claim(tmp_path / "run", log=lambda m: None, create=True)
    real_remove = os.remove

    def interrupted(path):
        if str(path).endswith("run.lock"):
            raise KeyboardInterrupt
        real_remove(path)
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(os, "remove", interrupted)
        run.release()
    run.hold()
    try:
        with pytest.raises(rundir.RunDirectoryInUse):
            RunDirectory.claim(tmp_path / "run", log=lambda m: None)
    finally:
        run.release()


def test_a_lock_this_process_could_not_remove_is_taken_over_without_a_note(tmp_path,
                                                                           monkeypatch):
    """A run whose run.lock could not be removed as it ended (a folder made read-only) leaves
    it with this process's id in: the next claim in this process (a notebook's) is not told
    that "process <its own id>" left it."""
    real_remove = os.remove

    def read_only_folder(path):
        if str(path).endswith("run.lock"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        real_remove(path)
    notes = []
    first = RunDirectory.claim(tmp_path / "run", log=notes.append, create=True)
    with monkeypatch.context() as patched:
        patched.setattr(os, "remove", read_only_folder)
        first.release()
    assert (tmp_path / "run" / "run.lock").read_text() == f"{os.getpid()}\n"
    again = RunDirectory.claim(tmp_path / "run", log=notes.append)
    assert notes == [] and not again.taken_over
    again.release()
    assert not (tmp_path / "run" / "run.lock").exists()


def test_a_stale_lock_with_this_process_s_id_that_it_did_not_leave_says_so(tmp_path):
    """In a container every run's process may get the same id: a killed run's run.lock then
    holds this process's id, and the note does not name it as another process."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.lock").write_text(f"{os.getpid()}\n")
    notes = []
    run = RunDirectory.claim(tmp_path / "run", log=notes.append)
    run.release()
    assert notes == [f"note: {tmp_path / 'run' / 'run.lock'} was left by an earlier process "
                     f"with this one's id, {os.getpid()}, which has stopped without releasing "
                     f"it; taking it over"]
    assert run.taken_over


def test_a_process_forked_by_the_trainer_does_not_keep_its_run_locked(tmp_path):
    """The trainer's micro-batch workers are forked while it holds the run's lock; one that
    outlives its killed trainer for a moment must not keep the run in use."""
    run = tmp_path / "run"
    trainer = subprocess.Popen(
        [sys.executable, "-c", "import os, signal, sys, time\n"
         "from tinyformer.rundir import RunDirectory\n"
         "run = RunDirectory.claim(sys.argv[1], log=lambda m: None, create=True)\n"
         "ready, done = os.pipe()\n"
         "worker = os.fork()\n"
         "if worker == 0:\n"
         "    run.release()\n"                           # the trainer's, not the worker's
         "    os.write(done, b'.')\n"
         "    time.sleep(60)\n"
         "    os._exit(0)\n"
         "os.close(done)\n"
         "if os.read(ready, 1) != b'.':\n"                # the worker failed before letting go
         "    sys.exit(3)\n"
         "print(worker, flush=True)\n"
         "os.kill(os.getpid(), signal.SIGKILL)", str(run)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker = int(trainer.stdout.readline())
    trainer.wait()
    try:
        os.kill(worker, 0)                                  # still alive: it sleeps a minute
        assert (run / "run.lock").read_text().strip() == str(trainer.pid)
        assert not is_training(run)
        notes = []
        RunDirectory.claim(run, log=notes.append).release()
        assert notes == [f"note: {run / 'run.lock'} was left by process {trainer.pid}, which has "
                         f"stopped without releasing it; taking it over"]
    finally:
        os.kill(worker, signal.SIGKILL)


def test_two_trainings_started_together_into_one_new_out(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, str(ROOT / "cli.py"), "train", *TINY, "--iters", "10",
               "--eval-every", "5", "--out", str(out)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    outcomes = sorted((p.wait(timeout=120), p.stderr.read()) for p in processes)
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    refused = outcomes[1][1].strip().splitlines()
    assert len(refused) == 1 and ("is in use: process" in refused[0]
                                  or "holds a run" in refused[0]), refused
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))                  # each step once: one writer
    config = json.loads((out / "config.json").read_text())
    assert config["step"] == 10 and config["data"]["n_tokens"] * 2 == \
        (out / "tokens.bin").stat().st_size


def test_resuming_a_model_that_is_not_a_training_run(tmp_path, run):
    exported = tmp_path / "exported"
    assert tinyformer("export", "--checkpoint", run, "--out", exported).exit_code == 0
    before = files(exported)
    line = one_line_error(tinyformer("train", "--resume", exported),
                          "holds a model, not a training run")
    assert files(exported) == before
    command = line.split("`")[3]                       # the advice: generate from it
    assert tinyformer(*command.split()[1:], "--max-new-tokens", 5).exit_code == 0


def test_an_out_that_is_a_broken_link_is_refused_naming_the_link(tmp_path):
    # Not followed to make the folder it names, nor made a run through: the name is taken,
    # and the line says it is a link to nothing (mkdir's "File exists" did not say so).
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    out = str(tmp_path / "out")
    with pytest.raises(rundir.RunDirectoryError) as refused:
        RunDirectory.claim(out, log=lambda m: None, create=True)
    assert str(refused.value) == (f"--out {out!r} is a link to {str(tmp_path / 'gone')!r}, "
                                  f"which does not exist (or is a loop of links); mend the "
                                  f"link, or choose another --out")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_resume_that_is_a_broken_link_is_named_a_link_and_a_default_out_skips_one(
        tmp_path, monkeypatch):
    (tmp_path / "run").symlink_to("gone")
    # --resume said "does not exist", of a name `ls` shows.
    line = one_line_error(tinyformer("train", "--resume", tmp_path / "run"),
                          "--resume", "is a link to 'gone', which does not exist")
    assert line.endswith("mend the link, or give the directory of a `tinyformer train` run")
    monkeypatch.chdir(tmp_path)
    os.mkdir("runs")
    os.symlink("nowhere", os.path.join("runs", "gpt-builtin"))
    # Given no --out, a run takes the next free name, as beside a file of the default's name.
    result = tinyformer("train", *TINY, "--iters", 1, "--eval-every", 1)
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir("runs")) == ["gpt-builtin", "gpt-builtin-2"]
    assert os.path.islink(os.path.join("runs", "gpt-builtin"))


def test_a_damaged_manifest_is_refused_and_the_advice_gets_out(run):
    manifest = json.loads((run / "manifest.json").read_text())
    for damaged in ("{not json", json.dumps({**manifest, "owns": ["config.json", 1]}),
                    json.dumps({**manifest, "owns": "config.json"}),       # a name, no list
                    json.dumps({**manifest, "checkpoint": "3"}),
                    json.dumps({**manifest, "checkpoint": True})):      # no step, though 1 == True
        (run / "manifest.json").write_text(damaged)
        one_line_error(tinyformer("train", *TINY, "--out", run, "--force"), "manifest.json is "
                       "damaged", "move out what you want to keep and remove")
        one_line_error(tinyformer("train", "--resume", run), "manifest.json is damaged")
    for path in run.iterdir():                           # the advice, taken
        path.unlink()
    run.rmdir()
    assert tinyformer("train", *TINY, "--iters", 1, "--out", run).exit_code == 0


@pytest.mark.parametrize("version, advice", [
    (2, "a newer tinyformer wrote it, update this one to read it"),
    ("1", "put back the manifest.json this run wrote, or train again in another --out")])
def test_a_manifest_of_another_format_version_is_refused_saying_what_to_do(run, version,
                                                                            advice):
    """A manifest a later tinyformer wrote may record other things under the same names: not
    read as version 1, nor called damaged (whose advice is to remove the run)."""
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "version": version}))
    before = files(run)
    for args in (["--resume", run], [*TINY, "--out", run, "--force"]):
        line = one_line_error(tinyformer("train", *args))
        assert line == (f"Error: {run / 'manifest.json'} is run format version {version!r}; "
                        f"this tinyformer reads version 1: {advice}")
    assert files(run) == before


def test_a_diverging_run_exits_2_and_says_how_to_start_again(tmp_path):
    out = tmp_path / "run"
    line = one_line_error(tinyformer("train", *TINY, "--iters", 20, "--lr", "1e30", "--clip", 0,
                                     "--out", out), "the loss became", "lower --lr")
    assert f"tinyformer train --out {out} --force" in line
    result = tinyformer("train", *TINY, "--iters", 2, "--out", out, "--force")
    assert result.exit_code == 0, result.output


def test_resume_given_a_file_names_resume_and_the_directory_to_give(run):
    line = one_line_error(tinyformer("train", "--resume", run / "config.json"),
                          "--resume", "is a file, not a directory")
    assert "--out" not in line and line.endswith(f"give the run's directory, {str(run)!r}")
    (run.parent / "notes.txt").write_text("not a run's file")
    line = one_line_error(tinyformer("train", "--resume", run.parent / "notes.txt"),
                          "--resume", "is a file, not a directory")
    assert "--out" not in line and "a `tinyformer train` run" in line   # no run's file
    line = one_line_error(tinyformer("train", *TINY, "--out", run / "config.json"),
                          "is a file, not a directory", "choose another --out")
    # Below a file: the file is named, as the other commands' --out name it.
    before = files(run)
    one_line_error(tinyformer("train", *TINY, "--out", run / "config.json" / "deeper" / "run"),
                   f"{str(run / 'config.json')!r} is a file, not a directory",
                   "choose another --out")
    assert files(run) == before


@pytest.mark.parametrize("command", [["generate"], ["lens", "--prompt", "eve"],
                                     ["export", "--out", "exported"]])
@pytest.mark.parametrize("name", ["config.json", "weights-000002.npz"])
def test_a_checkpoints_file_given_for_its_directory_is_told_to_give_the_directory(
        run, tmp_path, monkeypatch, command, name):
    """--checkpoint RUN/config.json: not that it is no directory and a run's should be given,
    but which directory that is."""
    monkeypatch.chdir(tmp_path)
    for given, directory in [(run / name, run), (os.path.join("run", name), "run")]:
        line = one_line_error(tinyformer(command[0], "--checkpoint", given, *command[1:]))
        assert line == (f"Error: checkpoint {str(given)!r} is a file of the checkpoint in "
                        f"{str(directory)!r}; give that directory"), line
    assert not (tmp_path / "exported").exists()


@pytest.mark.parametrize("command", [["generate"], ["attention", "--prompt", "eve"],
                                     ["lens", "--prompt", "eve"], ["graph", "--prompt", "eve"],
                                     ["export", "--out", "exported"], ["train"]])
def test_a_directory_that_is_not_there_is_said_not_to_exist_and_a_file_to_be_a_file(
        tmp_path, monkeypatch, command):
    """One wording in every command that takes a run's directory: a missing path "does not
    exist" (it read "is not a directory", which sends the user to look at a path that is not
    there), a file "is a file, not a directory", a path through a file names that file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a run")
    option = "--resume" if command == ["train"] else "--checkpoint"
    shown = "--resume" if command == ["train"] else "checkpoint"
    for given, why in [("nope", "'nope' does not exist"),
                       ("notes.txt", "'notes.txt' is a file, not a directory"),
                       (os.path.join("notes.txt", "run"),
                        f"{os.path.join('notes.txt', 'run')!r}: "
                        f"{str(tmp_path / 'notes.txt')!r} is a file, not a directory")]:
        line = one_line_error(tinyformer(command[0], option, given, *command[1:]))
        assert line.startswith(f"Error: {shown} {why}; give "), line
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_resuming_a_run_one_may_only_read_says_to_copy_it_and_the_copy_resumes(run, tmp_path,
                                                                            monkeypatch):
    """Another's run, readable but not writable (root writes anywhere: the lock file's open
    fails as it would for a user)."""
    def read_only(path, flags):
        raise PermissionError(13, "Permission denied", path)
    with monkeypatch.context() as patched:
        patched.setattr(rundir, "_open_lock_file", read_only)
        one_line_error(tinyformer("train", "--resume", run), "cannot write to --resume",
                       "copy it to a directory you can write to and resume the copy")
    shutil.copytree(run, tmp_path / "mine")
    resumed = tinyformer("train", "--resume", tmp_path / "mine")
    assert resumed.exit_code == 0 and "has finished its 2 steps" in resumed.output, \
        resumed.output


def test_a_full_disk_as_a_run_claims_its_directory_leaves_no_lock_and_says_to_free_space(
        tmp_path, run, monkeypatch):
    """The lock file is made (an empty file takes no space) but its process id cannot be
    written: it goes again, with the folders a new --out made, and the advice is the disk's,
    not to choose another directory."""
    real_write = os.write

    def full_disk_for_the_lock(fd, data):
        if data == f"{os.getpid()}\n".encode():          # run.lock's process id
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)
    before = files(run)
    with monkeypatch.context() as patched:
        patched.setattr(os, "write", full_disk_for_the_lock)
        one_line_error(tinyformer("train", *TINY, "--out", tmp_path / "new" / "run"),
                       "No space left on device", "free some disk space and try again")
        line = one_line_error(tinyformer("train", "--resume", run), "No space left on device",
                              "free some disk space and try again")
    assert "copy it" not in line
    assert not (tmp_path / "new").exists() and files(run) == before      # no run.lock left
    assert tinyformer("train", *TINY, "--iters", 1, "--out", tmp_path / "new" / "run"
                      ).exit_code == 0                                     # the advice, taken


def test_resuming_drops_metrics_lines_that_are_no_records(tmp_path):
    # A hand-edited or damaged metrics.jsonl: its unreadable lines go, as a line cut short by a
    # crash does, rather than stopping the resumed run with an error that blames config.json.
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1, "train_loss": 2.0}\n[1]\n"x"\n{"step": "2"}\n\xff\n'
                     b'{"step": 2, "train_loss": 1.5}\n{"step": 3, "train_loss": 1.0}\n{"st')
    truncate_metrics(path, 2)
    assert [record["step"] for record in read_metrics(path)] == [1, 2]


def test_generating_from_a_run_before_its_first_checkpoint_says_to_wait(tmp_path):
    out = tmp_path / "run"
    training = RunDirectory.claim(out, log=lambda message: None, create=True)   # the lock
    try:
        training.prepare_new_run({}, force=False)                               # manifest.json
        one_line_error(tinyformer("generate", "--checkpoint", out), "is a run training now "
                       "that has no checkpoint yet; wait for its first")
    finally:
        training.release()


# -- .npz files as load_arrays reads them ----------------------------------------------------

def _npz_with_member(path, name, npy_bytes):
    """An .npz of one good array, plus member `name` holding `npy_bytes` as they are."""
    import zipfile
    import numpy as np
    np.savez(path, good=np.zeros(3, np.float32))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(name, npy_bytes)


def _npy_header(shape):
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


@pytest.mark.parametrize("write, phrase", [
    (lambda p: __import__("numpy").save(open(p, "wb"), __import__("numpy").zeros(3)),
     "not a readable .npz archive"),                        # an .npy, not an .npz
    (lambda p: open(p, "wb").write(b"hello"), "not a readable .npz archive"),
    (lambda p: _npz_with_member(p, "w.npy", b"\x93NUMPY\x01\x00\x0e\x00{'descr': x(}\n"),
     "not a readable .npz archive"),                        # a header numpy cannot parse
    (lambda p: _npz_with_member(p, "w.npy", _npy_header((100000, 100000)) + b"\0" * 64),
     "header says (100000, 100000)"),                       # refused before allocating 40 GB
    (lambda p: _npz_with_member(p, "w.npy", _npy_header((2,)) + b"\0" * 12),
     "header says (2,) (8 bytes), it holds 12"),            # bytes beyond its shape's
    (lambda p: _npz_with_member(p, "readme.txt", b"hi"), "not an archive of arrays"),
    # Quantised weights, or a mask: loaded, they would be the numbers of a model gone wrong.
    (lambda p: __import__("numpy").savez(p, w=__import__("numpy").ones(3, "i1")),
     "holds w as int8 data, where a checkpoint holds floating-point numbers"),
    (lambda p: __import__("numpy").savez(p, w=__import__("numpy").ones(3, bool)),
     "holds w as bool data"),
    (lambda p: __import__("numpy").savez(p, w=__import__("numpy").ones(3, "c8")),
     "holds w as complex64 data"),                          # numbers, but not weights
])
def test_a_damaged_npz_is_one_checkpoint_error_naming_the_file(tmp_path, write, phrase):
    from tinyformer.rundir import CheckpointError, load_arrays
    path = tmp_path / "weights-000001.npz"
    write(path)
    with pytest.raises(CheckpointError) as raised:
        load_arrays(path)
    message = str(raised.value)
    assert str(path) in message and phrase in message and "\n" not in message
    assert "pickled" not in message


def test_arrays_saved_in_the_other_byte_order_load_as_this_machine_s(tmp_path):
    """An .npz written on a big-endian machine holds '>f4': the same numbers, loaded in this
    machine's order, so that the model built from them holds float32 as every model does."""
    import numpy as np
    from tinyformer.rundir import load_arrays
    weights = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.savez(tmp_path / "weights-000001.npz", w=weights.astype(">f4"))
    loaded = load_arrays(tmp_path / "weights-000001.npz")["w"]
    assert loaded.dtype == np.float32 and np.array_equal(loaded, weights)


def test_is_training_waits_on_no_named_pipe(tmp_path):
    """A run.lock that is a named pipe is no run's lock: opening it to read would wait for a
    writer forever (the call runs in a thread, so that a regression fails, not hangs)."""
    import threading
    os.mkfifo(tmp_path / "run.lock")
    answers = []
    thread = threading.Thread(target=lambda: answers.append(is_training(tmp_path)), daemon=True)
    thread.start()
    thread.join(10)
    assert answers == [False]


def test_the_manifest_records_the_sha256_of_the_tokenizer_beside_the_tokens(tmp_path):
    """A run restarted before its first checkpoint reuses its tokens.bin only with the
    tokenizer.json that wrote it: the manifest records that file's SHA-256 beside the data,
    which is left as the job has it (config.json records it)."""
    from tinyformer.rundir import read_manifest
    from tinyformer.tokenizers import CharTokenizer
    run = RunDirectory.claim(tmp_path / "run", log=lambda line: None, create=True)
    run.prepare_new_run({"iters": 1}, force=False)
    data = {"tokens": "tokens.bin", "dtype": "uint16", "n_tokens": 0, "sha256": "0" * 64}
    run.replace_previous({"iters": 1}, data=data)
    run.save_tokenizer(CharTokenizer(list("abc")))
    run.release()
    written = hashlib.sha256((tmp_path / "run" / "tokenizer.json").read_bytes()).hexdigest()
    manifest = read_manifest(tmp_path / "run")
    assert manifest["data"] == data and manifest["tokenizer_sha256"] == written
    assert RunDirectory.claim(tmp_path / "run", log=lambda line: None).tokenizer_sha256 == written


# Windows, as far as run.lock sees it, on this machine: no fcntl module, no os.O_NOFOLLOW,
# os.O_NONBLOCK or os.pwrite; msvcrt.locking in their place (one byte, exclusive only, here
# done with flock); and no removing a file that is still open.
WINDOWS = """
import errno, os, sys, types
import subprocess                         # which would take a module named msvcrt for Windows
import fcntl as real_fcntl
sys.modules["fcntl"] = None
for name in ("O_NOFOLLOW", "O_NONBLOCK", "pwrite"):
    delattr(os, name)

msvcrt = sys.modules["msvcrt"] = types.ModuleType("msvcrt")
msvcrt.LK_UNLCK, msvcrt.LK_NBLCK = 0, 2
def locking(fd, mode, nbytes):
    # The lock keeps others from reading what it covers: it must be past the process id.
    assert nbytes == 1 and os.lseek(fd, 0, os.SEEK_CUR) >= 100
    try:
        real_fcntl.flock(fd, real_fcntl.LOCK_UN if mode == msvcrt.LK_UNLCK
                         else real_fcntl.LOCK_EX | real_fcntl.LOCK_NB)
    except BlockingIOError:
        raise PermissionError(errno.EACCES, "Permission denied") from None
msvcrt.locking = locking

real_remove = os.remove
def remove(path):
    fds = "/proc/self/fd"
    if any(os.path.realpath(f"{fds}/{fd}") == os.path.realpath(path) for fd in os.listdir(fds)):
        raise PermissionError(errno.EACCES, "in use by a process", path)
    real_remove(path)
os.remove = remove
"""


def test_a_run_locks_its_directory_where_there_is_no_fcntl(tmp_path):
    """The package imports, and a run takes, refuses, and gives up its lock, without fcntl
    and the POSIX-only parts of os (as on Windows)."""
    script = WINDOWS + """
from click.testing import CliRunner
from tinyformer_cli import main
from tinyformer.rundir import RunDirectory, RunDirectoryError, is_training
out = sys.argv[1]
print(os.getpid())
run = RunDirectory.claim(out, log=print, create=True)
assert open(os.path.join(out, "run.lock")).read() == f"{os.getpid()}\\n"
assert is_training(out)
try:
    RunDirectory.claim(out, log=print)
except RunDirectoryError as e:
    print(e)
run.release()
assert not os.path.exists(os.path.join(out, "run.lock")) and not is_training(out)
result = CliRunner().invoke(main, ["train", *sys.argv[2:], "--iters", "2", "--out", out])
print(result.exit_code, sorted(os.listdir(out)))
"""
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", script, str(out), *TINY], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    pid, refused, *_, trained = done.stdout.splitlines()
    assert refused.startswith(f"{str(out)!r} is in use by this process: ")
    assert trained.startswith("0 [") and "'weights-000002.npz'" in trained, done.stdout


def test_a_stop_as_force_starts_removing_the_previous_run_leaves_no_checkpoint_of_its(
        run, monkeypatch):
    """--force records the new run in the manifest, then removes the previous run's files,
    its config.json among them. A stop between the two (a kill, here a removal that fails)
    leaves the previous run's config.json beside a manifest of the new run: it must not count
    as the new run's checkpoint (the manifest's `writing` names the previous run's last step,
    whose config.json would otherwise be taken for one written since), and --resume starts
    the new run from step 0 with its own settings."""
    def stopped(self, name):
        raise OSError(f"stopped before {name} was removed")
    with monkeypatch.context() as patched:
        patched.setattr(RunDirectory, "_remove_file", stopped)
        result = tinyformer("train", *TINY, "--iters", 2, "--seed", 1, "--out", run, "--force")
        assert result.exit_code != 0
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 0     # the old one
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["settings"]["seed"] == 1 and manifest["checkpoint"] is None
    claimed = RunDirectory.claim(run)
    claimed.release()
    assert not claimed.has_checkpoint()
    resumed = tinyformer("train", "--resume", run)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" not in resumed.output
    config = json.loads((run / "config.json").read_text())
    assert (config["step"], config["train"]["seed"]) == (2, 1)
