"""The moments where a run's files could be lost or left inconsistent: a crash while a file is
written, a lock left by a killed process, a metrics line cut before its line end. Each test
is tiny: the files themselves, or a run of a step or two."""

import builtins
import errno
import io
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from tinyformer import rundir
from tinyformer.files import atomic_write, remove_made_folders
from tinyformer.rundir import (RunDirectory, read_config_json, read_metrics, save_checkpoint,
                               truncate_metrics, write_tokens)
from tinyformer_cli import main

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--eval-iters", "1"]


# The runs trained in this process: the stories' recall on 8 prompts, not 100, and no loss
# plot, but in the tests that read them (all_recall_prompts, loss_plots_drawn): the 100 and the
# plot were most of each tiny run's time.
pytestmark = pytest.mark.usefixtures("recall_on_eight_prompts", "short_samples",
                                     "loss_plots_left_out")


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_stale_lock_holding_a_longer_process_id_is_overwritten_whole(tmp_path):
    """The process id a killed run left in run.lock is replaced, not written over: a longer
    one's last digits would otherwise stay, and a second writer would be told of a process
    "123\\n4567" (two lines, neither one a process)."""
    (tmp_path / "run.lock").write_text("99999999999\n")
    notes = []
    run = RunDirectory.claim(tmp_path, log=notes.append)
    try:
        assert (tmp_path / "run.lock").read_text() == f"{os.getpid()}\n"
        assert "left by process 99999999999" in notes[0]
    finally:
        run.release()


def test_what_a_killed_run_was_writing_is_removed_when_its_lock_is_taken_over(tmp_path):
    """A run killed while it wrote a file leaves atomic_write's temporary, as large as the file
    (tokens.bin of a large corpus): --resume or --force removes those of the run's files,
    not one more at every kill (the manifest's own included). Anything else stays, a file
    whose name only begins with one of the run's (config.json.bak) too."""
    run = RunDirectory.claim(tmp_path, log=lambda m: None, create=True)
    run.own({"tokens.bin.new", "weights-003000.npz", "config.json"})
    run.release()
    (tmp_path / "run.lock").write_text("99999999999\n")        # killed, while writing:
    for name in (".tmp-tokens.bin.new-k1ll3d", ".tmp-weights-003000.npz-k1ll3d",
                 ".tmp-manifest.json-k1ll3d", ".tmp-notes.txt-mine", ".tmp-config.json.bak"):
        (tmp_path / name).write_bytes(b"half")
    RunDirectory.claim(tmp_path, log=lambda m: None).release()
    assert sorted(name for name in os.listdir(tmp_path) if name.startswith(".tmp-")) == \
        [".tmp-config.json.bak", ".tmp-notes.txt-mine"]


def test_a_metrics_line_without_its_line_end_stays_a_line_of_its_own_after_resuming(tmp_path):
    """A kill between a record and its line end leaves a whole record without one: it is kept,
    and the resumed run's next line must not be glued onto it."""
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "train_loss": 2.0}\n{"step": 2, "train_loss": 1.5}')
    truncate_metrics(path, 2)
    with open(path, "a") as f:                       # as the resumed run appends its steps
        f.write('{"step": 3, "train_loss": 1.0}\n')
    assert [record["step"] for record in read_metrics(path)] == [1, 2, 3]


def test_resuming_drops_a_metrics_line_that_python_cannot_read_as_it_drops_any_non_record(
        tmp_path):
    """A line with a whole number of more digits than Python converts (4300) is no record a
    run wrote: resuming drops it, as a line cut short, where it stopped the resume with a
    message blaming config.json."""
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "train_loss": 2.0}\n{"step": 1' + "0" * 5000 + "}\n"
                    '{"step": 2, "train_loss": 1.5}\n{"step": 3, "train_loss": 1.0}\n')
    assert truncate_metrics(path, 2) == 2
    assert [record["step"] for record in read_metrics(path)] == [1, 2]


def test_a_first_metrics_line_read_as_it_is_written_is_no_record_yet_not_another_file(tmp_path):
    """A plot read between a new run's first append and its line end: the run has no records
    yet (and says so), where "is it a metrics.jsonl?" sent the user looking for another file.
    A one-line file that is no record's start is still not a metrics file."""
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "train_lo')
    with pytest.raises(ValueError, match="has no records yet; train for at least one step"):
        read_metrics(path)
    path.write_text('{"step": 1, "train_loss": 2.0}\n{"step": 2, "tr')
    assert [record["step"] for record in read_metrics(path)] == [1]
    for other in ("step,train_loss", '{"step": 1, "train_lo\n'):   # not a record being written
        path.write_text(other)
        with pytest.raises(ValueError, match="line 1 is not JSON"):
            read_metrics(path)


def test_tokens_that_fail_their_length_check_leave_no_file(tmp_path):
    def too_short(n):
        raise ValueError("the corpus is too short")
    with pytest.raises(ValueError, match="too short"):
        write_tokens(tmp_path / "tokens.bin", [[1, 2, 3]], 10, too_short)
    assert os.listdir(tmp_path) == []


def test_a_crash_while_config_json_is_written_leaves_the_previous_checkpoint(tmp_path,
                                                                              monkeypatch):
    """config.json is the checkpoint's last file: a crash half way through writing it must
    leave the previous one, which names the previous step's complete files."""
    (tmp_path / "tokenizer.json").write_text("{}")
    weights = {"w": np.ones(2, np.float32)}
    save_checkpoint(tmp_path, {"step": 1}, weights, {})
    real_dump = json.dump

    def half_then_crash(obj, f, **kwargs):
        f.write('{"format": "tinyformer-checkpoint", "st')
        raise OSError("disk full")
    monkeypatch.setattr(json, "dump", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, {"step": 2}, weights, {})
    monkeypatch.setattr(json, "dump", real_dump)
    config = read_config_json(tmp_path)
    assert config["step"] == 1 and config["files"]["weights"] == "weights-000001.npz"
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


def test_a_checkpoint_file_written_before_a_crash_is_the_runs_and_force_removes_it(
        tmp_path, monkeypatch):
    """A checkpoint's files are listed in manifest.json before they are written: a crash
    between the weights and the optimizer's state leaves a weights file that --force removes,
    not one it refuses as a file of the user's."""
    out = tmp_path / "run"
    real_save_arrays = rundir.save_arrays

    def crash_at_the_optimizer(path, arrays):
        if os.path.basename(path).startswith("optimizer-"):
            raise OSError("disk full")
        real_save_arrays(path, arrays)
    with monkeypatch.context() as patch:
        patch.setattr(rundir, "save_arrays", crash_at_the_optimizer)
        assert tinyformer("train", *TINY, "--iters", 2, "--out", out).exit_code != 0
    assert (out / "weights-000002.npz").exists()
    assert "weights-000002.npz" in json.loads((out / "manifest.json").read_text())["owns"]
    (out / "notes.txt").write_text("mine")
    result = tinyformer("train", *TINY, "--iters", 1, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert not (out / "weights-000002.npz").exists() and (out / "weights-000001.npz").exists()
    assert (out / "notes.txt").read_text() == "mine"


def full_disk_error(result):
    """The one line a run stopped by a full disk ends with, exit status 2, no traceback."""
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "Traceback" not in result.output, result.output
    return line


def full_disk_at(name):
    """rundir.save_arrays, but for the file called `name`, which the disk has no room for."""
    real_save_arrays = rundir.save_arrays

    def save_arrays(path, arrays):
        if os.path.basename(path) == name:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        real_save_arrays(path, arrays)
    return save_arrays


def test_a_full_disk_while_training_says_to_resume_and_resuming_goes_on_exactly(
        tmp_path, monkeypatch):
    """The weights of step 2's checkpoint cannot be written: the run keeps step 1's, and the
    error says how to go on from it (the same command again would be refused, the run being
    there); taking the advice gives the lines of a run never stopped."""
    whole, out = tmp_path / "whole", tmp_path / "run"
    args = [*TINY, "--iters", 3, "--checkpoint-every", 1]
    assert tinyformer("train", *args, "--out", whole).exit_code == 0
    with monkeypatch.context() as patch:
        patch.setattr(rundir, "save_arrays", full_disk_at("weights-000002.npz"))
        line = full_disk_error(tinyformer("train", *args, "--out", out))
    assert line == (f"Error: {out / 'weights-000002.npz'}: no space left on device; free some "
                    f"disk space and continue with: tinyformer train --resume {out}")
    assert json.loads((out / "config.json").read_text())["step"] == 1
    assert tinyformer(*line.split(": ")[-1].split()[1:]).exit_code == 0     # the advice
    assert (out / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()


def test_a_full_disk_once_the_first_checkpoint_is_written_keeps_it(tmp_path, monkeypatch):
    """The first checkpoint's config.json is written, and then the manifest that records it
    cannot be (the disk is full by then, or a kill): the checkpoint is the run's all the
    same. --resume goes on from it, not starting the run again from step 0 (which would
    remove it), and exactly."""
    whole, out = tmp_path / "whole", tmp_path / "run"
    args = [*TINY, "--iters", 2, "--checkpoint-every", 1]
    assert tinyformer("train", *args, "--out", whole).exit_code == 0
    real_write_manifest = RunDirectory.write_manifest

    def full_disk_as_the_checkpoint_is_recorded(self):
        if self.checkpoint is not None:
            raise OSError(errno.ENOSPC, "No space left on device", self.file("manifest.json"))
        real_write_manifest(self)
    with monkeypatch.context() as patch:
        patch.setattr(RunDirectory, "write_manifest", full_disk_as_the_checkpoint_is_recorded)
        line = full_disk_error(tinyformer("train", *args, "--out", out))
    assert line.endswith(f"free some disk space and continue with: tinyformer train --resume "
                         f"{out}"), line
    resumed = tinyformer("train", "--resume", out)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at step 1 of 2" in resumed.output
    assert (out / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()


def test_a_checkpoint_cut_short_by_a_full_disk_leaves_no_file_once_training_goes_on(
        tmp_path, monkeypatch):
    """In a notebook: train() fails as step 2's optimizer state is written, after its weights
    were; called again once there is room, it goes on, and those weights go at the next
    checkpoint with step 1's files, rather than stay, the size of the model, on a full disk."""
    from tinyformer.train import TrainConfig, Trainer
    config = TrainConfig(iters=3, n_layer=1, n_head=2, d_model=16, context=16, batch_size=4,
                         eval_iters=1, checkpoint_every=1)
    trainer = Trainer.start(config, tmp_path / "run", log=lambda message: None)
    with monkeypatch.context() as patch:
        patch.setattr(rundir, "save_arrays", full_disk_at("optimizer-000002.npz"))
        with pytest.raises(OSError, match="No space left"):
            trainer.train(threads=1)
    assert (tmp_path / "run" / "weights-000002.npz").exists()
    assert trainer.train(threads=1) == "done"
    assert sorted(name for name in os.listdir(tmp_path / "run") if name.endswith(".npz")) == \
        ["optimizer-000003.npz", "weights-000003.npz"]


def test_a_full_disk_as_a_checkpoint_is_recorded_lets_training_go_on_in_the_same_process(
        tmp_path, monkeypatch):
    """In a notebook: step 2's checkpoint is written whole, and then the manifest that records
    it cannot be. Called again, train() takes the run back; the manifest still names step 1,
    but step 2's config.json makes step 2 the run's checkpoint, as this process knows it: the
    run did not go on without it."""
    from tinyformer.train import TrainConfig, Trainer
    config = TrainConfig(iters=3, n_layer=1, n_head=2, d_model=16, context=16, batch_size=4,
                         eval_iters=1, checkpoint_every=1)
    trainer = Trainer.start(config, tmp_path / "run", log=lambda message: None)
    real_write_manifest = RunDirectory.write_manifest

    def full_disk_as_step_2_is_recorded(self):
        if self.checkpoint == 2:
            raise OSError(errno.ENOSPC, "No space left on device", self.file("manifest.json"))
        real_write_manifest(self)
    with monkeypatch.context() as patch:
        patch.setattr(RunDirectory, "write_manifest", full_disk_as_step_2_is_recorded)
        with pytest.raises(OSError, match="No space left"):
            trainer.train(threads=1)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["checkpoint"] == 1
    assert trainer.train(threads=1) == "done"


def test_a_previous_checkpoint_that_cannot_be_removed_lets_training_go_on_in_the_same_process(
        tmp_path, monkeypatch):
    """In a notebook: step 2's checkpoint is written whole, and step 1's weights cannot be
    removed (Windows keeps a file that a reader has open). Called again, train() goes on: the
    run's checkpoint is step 2, this process's own, not a run that "went on without it"; and
    step 1's files go at the next checkpoint, step 2's stay until then."""
    from tinyformer.train import TrainConfig, Trainer
    config = TrainConfig(iters=3, n_layer=1, n_head=2, d_model=16, context=16, batch_size=4,
                         eval_iters=1, checkpoint_every=1, sample_tokens=1)
    out = tmp_path / "run"
    trainer = Trainer.start(config, out, log=lambda message: None)
    real_remove = os.remove

    def in_use(path):
        if os.path.basename(path) == "weights-000001.npz":
            raise PermissionError(errno.EACCES, "Permission denied", path)
        real_remove(path)
    with monkeypatch.context() as patch:
        patch.setattr(os, "remove", in_use)
        with pytest.raises(PermissionError):
            trainer.train(threads=1)
    assert trainer.train(threads=1) == "done"
    assert sorted(name for name in os.listdir(out) if name.endswith(".npz")) == \
        ["optimizer-000003.npz", "weights-000003.npz"]


def test_a_stop_before_the_previous_checkpoint_is_removed_leaves_no_file_once_resumed(
        tmp_path, monkeypatch):
    """A stop (a second Ctrl-C, a kill) once the last step's config.json is written, before
    step 1's files are removed: the run has finished, so no later checkpoint would remove
    them. --resume does, as it loads step 2's, rather than keep them, the size of the model,
    for good (the same for a run that goes on: they go before its next checkpoint)."""
    from tinyformer.train import TrainConfig, Trainer
    corpus = tmp_path / "corpus.txt"            # a text's evaluation is a loss alone: fast
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    config = TrainConfig(corpus=str(corpus), iters=2, n_layer=1, n_head=2, d_model=16,
                         context=16, batch_size=4, eval_iters=1, checkpoint_every=1,
                         sample_tokens=1)
    out = tmp_path / "run"
    trainer = Trainer.start(config, out, log=lambda message: None)
    real_remove = RunDirectory.remove

    def stop_as_step_1_is_removed(self, names, checkpoint=None):
        if checkpoint == 2:
            raise KeyboardInterrupt
        real_remove(self, names, checkpoint)
    with monkeypatch.context() as patch:
        patch.setattr(RunDirectory, "remove", stop_as_step_1_is_removed)
        with pytest.raises(KeyboardInterrupt):
            trainer.train(threads=1)
    assert (out / "weights-000001.npz").exists()
    trainer = Trainer.resume(out, log=lambda message: None)
    def npz_files():
        return sorted(name for name in os.listdir(out) if name.endswith(".npz"))
    assert npz_files() == ["optimizer-000002.npz", "weights-000002.npz"]
    assert trainer.train(threads=1) == "done"
    owns = json.loads((out / "manifest.json").read_text())["owns"]
    assert [name for name in owns if name.endswith(".npz")] == npz_files()


def test_a_full_disk_as_a_metrics_line_is_written_names_metrics_jsonl(tmp_path, monkeypatch):
    """A full disk's error, raised by write, names no file: the line says which, and how to
    go on (before the first checkpoint, --resume starts the run again)."""
    out = tmp_path / "run"
    real_open = builtins.open

    class FullDisk(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_disk_for_metrics(file, mode="r", *args, **kwargs):
        if os.fspath(file).endswith("metrics.jsonl") and "a" in mode:
            return FullDisk()
        return real_open(file, mode, *args, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(builtins, "open", full_disk_for_metrics)
        line = full_disk_error(tinyformer("train", *TINY, "--iters", 1, "--out", out))
    assert line == (f"Error: {out / 'metrics.jsonl'}: no space left on device; free some disk "
                    f"space and start it again with: tinyformer train --resume {out}")
    assert tinyformer("train", "--resume", out).exit_code == 0


def test_a_tokens_file_grown_since_it_was_written_is_refused(tmp_path):
    """Its first tokens (all that the checksum reads) are the run's, the rest something else's."""
    path = tmp_path / "tokens.bin"
    write_tokens(path, [[1, 2, 3]], 10, lambda n: None)
    with open(path, "ab") as f:
        f.write(bytes(2))
    with pytest.raises(rundir.CheckpointError, match="8 bytes where the run wrote 6"):
        rundir.open_tokens(path, "uint16", 3)


@pytest.mark.parametrize("version, advice", [
    (2, "a newer tinyformer wrote it, update this one to read it"),
    ("1", "put back the config.json this run wrote, or train again"),
    # No version tinyformer writes: not 1 (True == 1), nor a newer one (2.0 > 1, 0 is not).
    (True, "put back the config.json this run wrote, or train again"),
    (2.0, "put back the config.json this run wrote, or train again"),
    (0, "put back the config.json this run wrote, or train again")])
def test_a_checkpoint_of_another_format_version_is_refused(tmp_path, version, advice):
    """A checkpoint written by a later tinyformer may mean other things by the same names:
    the error says so, and what to do."""
    (tmp_path / "tokenizer.json").write_text("{}")
    save_checkpoint(tmp_path, {"step": 1, "model": "gpt"}, {"w": np.ones(2, np.float32)}, {})
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "version": version}))
    with pytest.raises(rundir.CheckpointError) as refused:
        rundir.read_config(tmp_path)
    assert str(refused.value) == (f"{tmp_path / 'config.json'} is checkpoint format version "
                                  f"{version!r}; this tinyformer reads version 1: {advice}")


def test_a_write_that_fails_names_the_users_file_not_the_temporary_one(tmp_path):
    """Here the rename fails (a folder stands where the file goes); the error says so of the
    path asked for, and the temporary file is gone."""
    (tmp_path / "out.json").mkdir()
    with pytest.raises(OSError) as raised:
        with atomic_write(tmp_path / "out.json") as f:
            f.write("{}")
    assert os.fspath(raised.value.filename) == str(tmp_path / "out.json")
    assert os.listdir(tmp_path) == ["out.json"]


def test_a_file_whose_name_is_near_the_longest_allowed_is_written(tmp_path):
    """Its temporary's name repeated it whole, 14 bytes longer: past the file system's 255
    bytes, saving failed with "File name too long" though the name is legal."""
    name = "é" * 120 + ".json"                       # 245 bytes: 2 each, and 5
    with atomic_write(tmp_path / name) as f:
        f.write("{}")
    assert os.listdir(tmp_path) == [name] and (tmp_path / name).read_text() == "{}"


def test_a_write_that_fails_to_reach_the_disk_leaves_the_previous_file_whole(tmp_path,
                                                                            monkeypatch):
    """The temporary file is renamed over the file only once its data is on the disk: a flush
    that fails there (an I/O error, a full disk) leaves the previous file as it was, not the
    new one half-written in its place."""
    (tmp_path / "out.json").write_text("previous")
    def fails(fd):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(os, "fsync", fails)
    with pytest.raises(OSError, match="Input/output error"):
        with atomic_write(tmp_path / "out.json") as f:
            f.write("new")
    assert (tmp_path / "out.json").read_text() == "previous"
    assert os.listdir(tmp_path) == ["out.json"]


def test_a_write_syncs_the_whole_data_of_the_file_it_writes(tmp_path, monkeypatch):
    """What is synced to the disk is the file being written, with all of its data already
    handed to the system: a sync before the last buffered bytes are flushed would leave them
    unsynced when the rename makes the file visible."""
    synced = []
    def record(fd):
        synced.append((os.fstat(fd).st_ino, os.fstat(fd).st_size))
    monkeypatch.setattr(os, "fsync", record)
    with atomic_write(tmp_path / "out.json") as f:
        f.write("x" * 10)                             # less than a buffer: held until flushed
    assert synced == [(os.stat(tmp_path / "out.json").st_ino, 10)]


def test_a_failed_write_removes_every_folder_it_made_and_none_that_holds_anything(tmp_path):
    """remove_made_folders goes up from the folder a write made for its files to the one that
    existed before: each empty folder on the way goes, not only the innermost; one that holds
    a file stays, and so does every folder above it."""
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    remove_made_folders(tmp_path / "a" / "b" / "c", tmp_path)
    assert os.listdir(tmp_path) == []
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "kept.txt").write_text("mine")
    remove_made_folders(tmp_path / "a" / "b" / "c", tmp_path)
    assert os.listdir(tmp_path) == ["a"] and os.listdir(tmp_path / "a") == ["kept.txt"]


def test_an_npz_holding_an_array_twice_is_refused(tmp_path):
    """Which of the two would be loaded is the archive reader's choice, not the run's."""
    import io
    import zipfile
    path = tmp_path / "weights-000001.npz"
    np.savez(path, w=np.zeros(2, np.float32))
    second = io.BytesIO()
    np.save(second, np.ones(2, np.float32))
    with zipfile.ZipFile(path, "a") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr("w.npy", second.getvalue())
    with pytest.raises(rundir.CheckpointError, match="holds an array twice"):
        rundir.load_arrays(path)


def test_an_export_that_fails_leaves_nothing_behind(tmp_path, monkeypatch):
    from tinyformer.checkpoint import export_pretrained
    from tinyformer.gpt import GPT
    from tinyformer.tokenizers import CharTokenizer

    def full_disk(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(GPT, "save_pretrained", full_disk)
    model = GPT(vocab_size=4, context=4, n_layer=1, n_head=1, d_model=4)
    with pytest.raises(OSError, match="disk full"):
        export_pretrained(model, CharTokenizer(list("abcd")), tmp_path / "exported")
    assert os.listdir(tmp_path) == []


def test_an_export_that_fails_names_the_files_asked_for_not_its_temporary_folder(
        tmp_path, monkeypatch):
    """The export is written into a temporary folder beside the one asked for: a full disk's
    error (or a read-only folder's) names what the user asked for, not that folder, which is
    gone by then, as are the folders made to hold it."""
    import tempfile

    from tinyformer.checkpoint import export_pretrained
    from tinyformer.gpt import GPT
    from tinyformer.tokenizers import CharTokenizer
    model, tokenizer = GPT(vocab_size=4, context=4, n_layer=1, n_head=1, d_model=4), \
        CharTokenizer(list("abcd"))
    out = tmp_path / "new" / "folders" / "exported"

    def full_disk(self, directory, **kwargs):            # as atomic_write names the file
        raise OSError(errno.ENOSPC, "No space left on device",
                      os.path.join(directory, "model.safetensors"))
    with monkeypatch.context() as patch:
        patch.setattr(GPT, "save_pretrained", full_disk)
        with pytest.raises(OSError) as raised:
            export_pretrained(model, tokenizer, out)
    assert raised.value.filename == str(out / "model.safetensors")
    assert os.listdir(tmp_path) == []

    def read_only(prefix, dir):
        raise OSError(errno.EROFS, "Read-only file system", os.path.join(dir, prefix + "x1"))
    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkdtemp", read_only)
        with pytest.raises(OSError) as raised:
            export_pretrained(model, tokenizer, out)
    assert raised.value.filename == str(out)
    assert os.listdir(tmp_path) == []


def test_an_export_into_a_group_folder_is_the_group_s(tmp_path):
    """A folder a group shares (setgid: what is made in it is the group's): the export is made
    there as mkdir makes a folder, its setgid bit kept, so that its files are the group's and
    a member of the group can read them under a umask that hides them from others (007)."""
    from tinyformer.checkpoint import export_pretrained
    from tinyformer.gpt import GPT
    from tinyformer.tokenizers import CharTokenizer
    group = tmp_path / "group"
    group.mkdir()
    if os.geteuid() == 0:
        os.chown(group, -1, 4242)        # a course's group, not this user's own
    group.chmod(0o2775)
    model = GPT(vocab_size=4, context=4, n_layer=1, n_head=1, d_model=4)
    export_pretrained(model, CharTokenizer(list("abcd")), group / "exported")
    (group / "made").mkdir()
    assert (group / "exported").stat().st_mode == (group / "made").stat().st_mode
    assert {f.stat().st_gid for f in (group / "exported").iterdir()} == {group.stat().st_gid}


def test_a_checkpoint_replaced_while_it_is_read_gives_the_newer_one(tmp_path, monkeypatch):
    """A run that is training writes a newer checkpoint and then removes the files of the one
    config.json named before: a reader (generate, attention, lens, ...) caught between the two
    reads the newer checkpoint, not an error telling it to restore files or train again."""
    from tinyformer import checkpoint
    from tinyformer.gpt import GPT
    from tinyformer.tokenizers import CharTokenizer
    model = GPT(vocab_size=4, context=4, n_layer=1, n_head=1, d_model=4)
    CharTokenizer(list("abcd")).save(tmp_path / "tokenizer.json")
    save_checkpoint(tmp_path, {"step": 1, "model": "gpt", "model_config": model.config},
                    {name: p.data for name, p in model.named_parameters()}, {})
    read_headers = checkpoint.array_shapes

    def a_newer_checkpoint_meanwhile(path):
        monkeypatch.setattr(checkpoint, "array_shapes", read_headers)     # once
        config = read_config_json(tmp_path)
        save_checkpoint(tmp_path, {**config, "step": 2}, rundir.load_arrays(path), {})
        os.remove(path)                          # as the trainer removes the previous one's
        return read_headers(path)
    monkeypatch.setattr(checkpoint, "array_shapes", a_newer_checkpoint_meanwhile)
    _, _, config = checkpoint.load_model(tmp_path)
    assert config["step"] == 2


@pytest.mark.parametrize("cut_at, told", [
    ("weights-000002.npz", "has no checkpoint yet"),       # before its config.json
    ("manifest", "keeps its last checkpoint"),             # after, before the manifest says so
])
def test_a_stop_at_once_during_the_first_checkpoint_says_whether_the_run_has_one(
        tmp_path, monkeypatch, cut_at, told):
    """A second Ctrl-C (or SIGTERM, SIGHUP) as the first checkpoint is written: the run has a
    checkpoint once its config.json is there, not before, whatever other files of it were
    written; and the advice, taken, goes on from the step it means."""
    out = tmp_path / "run"
    real_save_arrays, real_remove = rundir.save_arrays, RunDirectory.remove

    def stopped_at_the_weights(path, arrays):
        if os.path.basename(path) == cut_at:
            raise KeyboardInterrupt
        real_save_arrays(path, arrays)

    def stopped_as_it_is_recorded(self, names, checkpoint=None):
        if cut_at == "manifest" and checkpoint is not None:
            raise KeyboardInterrupt
        real_remove(self, names, checkpoint)
    with monkeypatch.context() as patch:
        patch.setattr(rundir, "save_arrays", stopped_at_the_weights)
        patch.setattr(RunDirectory, "remove", stopped_as_it_is_recorded)
        result = tinyformer("train", *TINY, "--iters", 3, "--checkpoint-every", 2, "--out", out)
    assert result.exit_code == 130 and told in result.stderr, result.output
    resumed = tinyformer("train", "--resume", out)
    assert resumed.exit_code == 0, resumed.output
    assert ("resuming at step 2 of 3" in resumed.output) == (cut_at == "manifest"), \
        resumed.output


def test_a_config_json_describing_exactly_the_weights_numbers_is_not_refused_for_its_size():
    """check_model_config refuses a model_config that needs more numbers than the weights hold,
    and takes one whose least count is the weights' own: the bound is a lower one."""
    from tinyformer.checkpoint import CheckpointError, check_model_config
    from tinyformer.layers import least_parameters
    config = {"vocab_size": 5, "context": 4, "n_layer": 1, "n_head": 2, "d_model": 8}
    least = least_parameters(config)
    check_model_config(config, least, "run/config.json")                 # exactly enough
    with pytest.raises(CheckpointError, match=f"at least {least:,} parameters, the weights "
                                              f"hold {least - 1:,}"):
        check_model_config(config, least - 1, "run/config.json")
