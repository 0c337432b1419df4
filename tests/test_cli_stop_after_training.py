"""A stop that comes after a run's last step, while `train` draws its loss plot: the run is
finished and saved, and the message says so (and how to draw the curves), not only that the
command was stopped, after which `--resume` would be told there is nothing left to train."""

import pytest
from click.testing import CliRunner

from tinyformer import stops
from tinyformer_cli import main

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--iters", "2"]


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("model", [["--model", "bert", "--eval-iters", "2"],
                                   ["--task", "reverse", "--max-len", "4"]])
def test_ctrl_c_while_the_loss_plot_is_drawn_says_the_run_is_finished_and_how_to_draw_it(
        tmp_path, monkeypatch, model):
    import viz.write

    def interrupted(run_dir):
        raise KeyboardInterrupt
    monkeypatch.setattr(viz.write, "plot_after_training", interrupted)
    out = tmp_path / "run"
    result = tinyformer("train", *TINY, *model, "--out", out)
    assert result.exit_code == 130, result.output
    assert (f"stopped by {stops.said('interrupted')} while drawing the loss plot; the run in "
            f"{out} is finished and saved: draw its curves with `tinyformer plot {out}`"
            in result.stderr), result.stderr
    monkeypatch.undo()
    assert tinyformer("plot", out).exit_code == 0 and (out / "loss.png").exists()  # the advice


def test_ctrl_c_as_the_finished_runs_workers_shut_down_says_the_run_is_finished_and_saved(
        tmp_path, monkeypatch):
    """A Ctrl-C after the last step and its checkpoint, while what the steps ran under (the
    worker processes) shuts down: the run is finished, so no "continue with --resume"."""
    import contextlib

    from tinyformer import train
    conditions = train.run_conditions

    @contextlib.contextmanager
    def stopped_as_they_end(*args, **kwargs):
        with conditions(*args, **kwargs) as running:
            yield running
        raise KeyboardInterrupt                     # the loop has returned "done"
    monkeypatch.setattr(train, "run_conditions", stopped_as_they_end)
    out = tmp_path / "run"
    result = tinyformer("train", *TINY, "--out", out)
    assert result.exit_code == 130, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert "--resume" not in last and "at once" not in last, last
    assert (f"stopped by {stops.said('interrupted')} after the last step; the run in {out} "
            f"is finished and saved: draw its curves with `tinyformer plot {out}`" == last), last
    monkeypatch.undo()
    assert tinyformer("plot", out).exit_code == 0 and (out / "loss.png").exists()  # the advice
