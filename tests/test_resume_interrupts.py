"""Runs interrupted where no handler runs (a SIGKILL, a power cut) and resumed: --resume
leaves the run as one that never stopped would be."""

import shutil
import sys

import pytest
from click.testing import CliRunner

from tinyformer import stops
from tinyformer.train import Trainer
from tinyformer_cli import main


# The runs trained in this process: the stories' recall on 8 prompts, not 100 (no test here
# reads the recall).
pytestmark = pytest.mark.usefixtures("recall_on_eight_prompts", "short_samples")


TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--eval-iters", "1"]


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_finished_run_killed_as_it_drew_its_loss_plot_gets_it_when_resumed(
        tmp_path, two_step_gpt_run_evaluated_on_one_batch):
    # Killed after its last checkpoint, before loss.png was written: all else is there.
    out = tmp_path / "run"
    shutil.copytree(two_step_gpt_run_evaluated_on_one_batch.out, out)
    (out / "loss.png").unlink()
    result = tinyformer("train", "--resume", out)
    assert result.exit_code == 0, result.output
    assert "has finished its 2 steps" in result.output
    assert f"loss plot: {out / 'loss.png'}" in result.output
    assert (out / "loss.png").read_bytes().startswith(b"\x89PNG")


class LoadingInterrupted:
    """A module being loaded as a Ctrl-C comes: what is taken from it raises KeyboardInterrupt."""

    def __getattr__(self, name):
        raise KeyboardInterrupt


def test_a_ctrl_c_as_the_plotting_modules_load_says_the_run_is_finished_and_saved(
        tmp_path, monkeypatch):
    # After the last step, the loss plot's modules are loaded: a stop then is one while the
    # plot is drawn, not a run cut short (which --resume would then call finished).
    monkeypatch.setitem(sys.modules, "viz.write", LoadingInterrupted())
    out = tmp_path / "run"
    result = tinyformer("train", *TINY, "--iters", 2, "--out", out)
    assert result.exit_code == 130, result.output
    assert (f"stopped by {stops.said('interrupted')} while drawing the loss plot; the run in "
            f"{out} is finished and saved: draw its curves with `tinyformer plot {out}`"
            in result.stderr), result.stderr


def test_a_finished_run_that_lost_its_metrics_is_not_said_to_go_on_writing_them(
        tmp_path, two_step_gpt_run_evaluated_on_one_batch):
    out = tmp_path / "run"
    shutil.copytree(two_step_gpt_run_evaluated_on_one_batch.out, out)
    (out / "metrics.jsonl").unlink()
    said = []
    trainer = Trainer.resume(out, log=said.append)
    trainer.close()
    assert [line for line in said if "metrics.jsonl" in line] == [
        f"note: {out / 'metrics.jsonl'} has no lines for steps 1 to 2 (lost since they were "
        f"written, or never written: steps taken with Trainer.train_step() write none); the "
        f"run has finished, so its curves stay without them"]


@pytest.mark.parametrize("metrics", ["deleted", "emptied"])
def test_a_finished_run_without_its_loss_plot_or_metrics_draws_nothing_when_resumed(
        tmp_path, two_step_gpt_run_evaluated_on_one_batch, metrics):
    # No curves to draw: resuming said the lines are gone; no note that the plot needs a
    # run trained first.
    out = tmp_path / "run"
    shutil.copytree(two_step_gpt_run_evaluated_on_one_batch.out, out)
    (out / "loss.png").unlink()
    if metrics == "deleted":
        (out / "metrics.jsonl").unlink()
    else:
        (out / "metrics.jsonl").write_text("")
    result = tinyformer("train", "--resume", out)
    assert result.exit_code == 0, result.output
    assert "loss plot" not in result.output and not (out / "loss.png").exists()
    assert "the run has finished, so its curves stay without them" in result.output


@pytest.mark.parametrize("damage", ["deleted", "changed"])
def test_a_finished_run_without_its_tokens_is_not_told_to_start_again(
        tmp_path, two_step_gpt_run_evaluated_on_one_batch, damage):
    # "start the run again with --force" would throw away a run with nothing left to train,
    # whose model reads no corpus.
    out = tmp_path / "run"
    shutil.copytree(two_step_gpt_run_evaluated_on_one_batch.out, out)
    tokens = out / "tokens.bin"
    if damage == "deleted":
        tokens.unlink()
    else:
        data = bytearray(tokens.read_bytes())
        data[0] ^= 1
        tokens.write_bytes(bytes(data))
    result = tinyformer("train", "--resume", out)
    assert result.exit_code == 2, result.output
    assert f"the run in {str(out)!r} is finished, with nothing left to resume" in result.stderr
    assert "--force" not in result.stderr
    assert f"generate --checkpoint {out}" in result.stderr
