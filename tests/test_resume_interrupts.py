"""Runs interrupted where no handler runs (a SIGKILL, a power cut) and resumed: --resume
leaves the run as one that never stopped would be."""

import shutil

import pytest
from click.testing import CliRunner

from tinyformer_cli import main


# The runs trained in this process: the stories' recall on 8 prompts, not 100 (no test here
# reads the recall).
pytestmark = pytest.mark.usefixtures("recall_on_eight_prompts")


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
