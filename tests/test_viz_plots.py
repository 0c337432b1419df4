"""viz.plots.plot_metrics and `tinyformer plot`: a PNG from metrics.jsonl, written by training
and on demand; every bad input is one line `Error: ...`, exit status 2, and no file written."""

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

from tinyformer_cli import main  # noqa: E402
from tinyformer_cli.matplotlib_folder import give_matplotlib_a_folder  # noqa: E402
from tinyformer.rundir import FORMAT, VERSION, read_metrics  # noqa: E402
from viz.plots import comparison_figure, metrics_figure, plot_metrics, smooth  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--eval-iters", "2"]


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_metrics(directory, n=40, eval_every=10, extra="val_recall", tail=""):
    """A synthetic metrics.jsonl as training writes it; `tail` is appended raw."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for step in range(1, n + 1):
        record = {"step": step, "train_loss": 3.0 / step ** 0.5, "lr": 1e-3 * min(1, step / 5)}
        if step % eval_every == 0:
            record["val_loss"] = 3.2 / step ** 0.5
            if extra:
                record[extra] = step / n
        lines.append(json.dumps(record) + "\n")
    (directory / "metrics.jsonl").write_text("".join(lines) + tail, encoding="utf-8")
    return directory


def assert_png(path):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC
    height, width = imread(path).shape[:2]
    assert 500 < width < 2000 and 300 < height < 1500
    return width, height


def files_in(directory):
    return sorted(p.name for p in Path(directory).iterdir())


@pytest.mark.parametrize("extra", ["val_recall", "val_accuracy", None])
def test_plot_from_synthetic_metrics(tmp_path, extra):
    run = write_metrics(tmp_path / "run", extra=extra)
    written = plot_metrics(run)
    assert written == os.path.join(run, "loss.png")
    width, height = assert_png(written)
    # A third panel (recall or accuracy) makes the figure taller, not wider.
    run2 = write_metrics(tmp_path / "run2", extra="val_accuracy" if extra is None else None)
    _, other_height = assert_png(plot_metrics(run2))
    assert (height > other_height) == (extra is not None)
    assert files_in(run) == ["loss.png", "metrics.jsonl"]     # no temporary file left


def test_plot_from_metrics_file_to_out_path(tmp_path):
    run = write_metrics(tmp_path / "run")
    out = tmp_path / "elsewhere.png"
    assert plot_metrics(run / "metrics.jsonl", out) == out
    assert_png(out)
    assert not (run / "loss.png").exists()


# What each format's file starts with.
MAGIC = {"png": PNG_MAGIC, "svg": b"<?xml", "pdf": b"%PDF-"}


@pytest.mark.parametrize("name", ["m.svg", "m.pdf", "m.PNG", "m.Svg"])
def test_figures_are_written_in_the_format_their_suffix_says(tmp_path, name):
    # plot_metrics and plot_attention wrote PNG bytes under any name, .svg and .pdf included.
    from viz.attention import plot_attention
    magic = MAGIC[name.rsplit(".", 1)[1].lower()]
    run = write_metrics(tmp_path / "run")
    assert plot_metrics(run, tmp_path / name) == tmp_path / name
    assert (tmp_path / name).read_bytes().startswith(magic)
    out = tmp_path / f"a_{name}"
    plot_attention(np.full((1, 2, 3, 3), 1 / 3), list("abc"), list("abc"), out, "t")
    assert out.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["m.html", "m.jpg", "m", "m.png.txt"])
def test_a_figure_is_refused_a_name_whose_suffix_names_another_format(tmp_path, name):
    from viz.attention import plot_attention
    run = write_metrics(tmp_path / "run")
    before = files_in(tmp_path)
    for caller, write in [
            ("plot_metrics", lambda out: plot_metrics(run, out)),
            ("plot_attention", lambda out: plot_attention(
                np.full((1, 1, 2, 2), 0.5), list("ab"), list("ab"), out, "t"))]:
        with pytest.raises(ValueError, match=rf"^{caller}: .*\.png, \.svg, \.pdf") as info:
            write(tmp_path / name)
        assert "\n" not in str(info.value)
        assert files_in(tmp_path) == before


@pytest.mark.parametrize("tail", ['{"step": 6, "train_lo', "[" * 100_000])
def test_cut_off_last_line_is_ignored(tmp_path, tail):
    run = write_metrics(tmp_path / "run", n=5, tail=tail)
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4, 5]
    assert_png(plot_metrics(run))


def test_steps_written_again_replace_those_before_in_the_png_and_the_page(tmp_path):
    """A run started again from step 11 appended its steps 11 to 20 after its first 15: they
    replace the first run's 11 to 15 (a curve that doubled back drew a loop, and the page's
    reading of a step assumes them in order); the last values are those of the last lines."""
    run = write_metrics(tmp_path / "run", n=15, eval_every=5, extra=None)
    again = [{"step": step, "train_loss": 1.0 / step, "lr": 1e-3, "val_loss": 1.1 / step}
             for step in range(11, 21)]
    with open(run / "metrics.jsonl", "a") as f:
        f.writelines(json.dumps(record) + "\n" for record in again)
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 21))
    assert records[10:] == again
    loss = metrics_figure(run).axes[0]
    each_step = loss.get_lines()[0]
    assert list(each_step.get_xdata()) == list(range(1, 21))
    assert list(each_step.get_ydata()[10:]) == [1.0 / step for step in range(11, 21)]
    assert loss.texts[-1].get_text() == f"{1.1 / 20:.4f}"       # the last line's
    result = tinyformer("plot", run, "--out", tmp_path / "report.html")
    assert result.exit_code == 0, result.output
    data = json.loads(re.search(r'<script id="page-data" type="application/json">(.*?)</script>',
                                (tmp_path / "report.html").read_text(), re.S).group(1))
    assert [step for step, _ in data["train"]] == list(range(1, 21))


@pytest.mark.parametrize("content, message", [
    ("", "no records"),
    ("\n\n", "no records"),
    ("not json at all\n", "line 1 is not JSON"),
    ('{"step": 1, "train_loss": 2.0}\nbroken\n{"step": 3, "train_loss": 1.0}\n',
     "line 2 is not JSON"),
    ('{"step": 1, "train_loss": 2.0}\n' + "[" * 100_000 + "]" * 100_000 + "\n"
     '{"step": 3, "train_loss": 1.0}\n', "line 2 is not JSON"),   # nested too deeply to read
    ("[" * 100_000 + "\n", "line 1 is not JSON"),
    ('{"step": 1, "train_loss": 2.0}\n{"step": 1' + "0" * 5000 + ', "train_loss": 1.0}\n'
     '{"step": 3, "train_loss": 1.0}\n', "line 2 is not JSON"),   # more digits than Python reads
    ('{"loss": 2.0}\n', "line 1 has no finite 'step'"),
    ("[1, 2]\n", "line 1 has no finite 'step'"),
    # A step must place its point: not NaN, nor an integer too large for a float.
    ('{"step": 1, "train_loss": 2.0}\n{"step": NaN, "train_loss": 1.0}\n',
     "line 2 has no finite 'step'"),
    ('{"step": ' + "9" * 400 + ', "train_loss": 1.0}\n', "line 1 has no finite 'step'"),
])
def test_bad_metrics_are_one_line_value_errors(tmp_path, content, message):
    (tmp_path / "metrics.jsonl").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as error:
        plot_metrics(tmp_path)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "loss.png").exists()


def test_a_value_error_from_drawing_the_curves_is_a_bug_of_ours_not_the_metrics(tmp_path,
                                                                                 monkeypatch):
    """Metrics not as a run writes them are the input's fault (exit 2); a ValueError from
    drawing them is ours (exit 1), where it was said as the user's bad input."""
    import viz.plots

    run = write_metrics(tmp_path / "run")
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")
    monkeypatch.setattr(viz.plots, "metrics_figure", broken)
    result = tinyformer("plot", run)
    assert result.exit_code == 1, result.output
    assert "internal error (ValueError: operands" in result.stderr
    monkeypatch.undo()
    (run / "metrics.jsonl").write_text("not json at all\n", encoding="utf-8")
    result = tinyformer("plot", run)
    assert result.exit_code == 2 and "line 1 is not JSON" in result.stderr, result.output


@pytest.mark.parametrize("tail", [
    '{"step": 41, "train_loss": NaN, "lr": NaN}\n',                   # a diverged run
    '{"step": 41, "train_loss": Infinity, "val_loss": -Infinity}\n',
    '{"step": 41, "train_loss": ' + "9" * 400 + ', "val_recall": NaN}\n',
])
def test_values_that_are_not_finite_are_left_out_of_the_png_and_the_page(tmp_path, tail):
    run = write_metrics(tmp_path / "run", tail=tail)
    assert_png(plot_metrics(run))
    result = tinyformer("plot", run, "--out", tmp_path / "report.html")
    assert result.exit_code == 0, result.output
    data = json.loads(re.search(r'<script id="page-data" type="application/json">(.*?)</script>',
                                (tmp_path / "report.html").read_text(), re.S).group(1))
    assert [step for step, _ in data["train"]] == list(range(1, 41))
    assert len(data["smoothed"]) == 40 and data["val"][-1][0] == 40


def nonfinite_marks(loss):
    """The legend's line for the losses not drawn, and the steps its red ticks are at."""
    (marks,) = [line for line in loss.get_lines() if line.get_label().startswith("loss NaN")]
    return marks.get_label(), list(marks.get_xdata())


@pytest.mark.parametrize("tail, said, steps", [
    # a run that diverged: its curve stopped at step 40 with nothing said
    ('{"step": 41, "train_loss": NaN, "lr": 1e-3}\n{"step": 42, "train_loss": NaN}\n'
     '{"step": 43, "train_loss": 2.0, "val_loss": Infinity}\n', "3 steps, from step 41",
     [41, 42, 43]),
    ('{"step": 41, "train_loss": NaN}\n', "1 step, from step 41", [41]),
])
def test_losses_that_are_not_finite_are_marked_and_counted_in_the_loss_panel(tmp_path, tail,
                                                                           said, steps):
    loss = metrics_figure(write_metrics(tmp_path / "run", tail=tail)).axes[0]
    label, marked = nonfinite_marks(loss)
    assert label == f"loss NaN or inf, not drawn: {said}" and marked == steps
    assert label in [text.get_text() for text in loss.get_legend().get_texts()]


def test_a_run_whose_every_loss_is_nan_says_so_rather_than_draw_an_empty_panel(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(
        f'{{"step": {step}, "train_loss": NaN, "lr": 1e-3}}\n' for step in (1, 2, 3)))
    loss = metrics_figure(tmp_path).axes[0]
    assert nonfinite_marks(loss) == ("loss NaN or inf, not drawn: 3 steps, from step 1",
                                     [1, 2, 3])
    finite = metrics_figure(write_metrics(tmp_path / "finite")).axes[0]
    assert not any(line.get_label().startswith("loss NaN") for line in finite.get_lines())


@pytest.mark.parametrize("key, value", [("lr", 1e308), ("lr", -1.7e308),
                                        ("train_loss", 1.7e308), ("val_loss", 1e308)])
def test_values_near_the_largest_float_are_drawn_in_units_the_label_names(tmp_path, key,
                                                                         value):
    """train takes --lr 1e308; matplotlib's ticks overflowed there and the plot failed."""
    run = write_metrics(tmp_path / "run", n=4, eval_every=2, extra=None,
                        tail=json.dumps({"step": 5, "train_loss": 1.0, "lr": 1e-3, key: value}))
    result = tinyformer("plot", run)
    assert result.exit_code == 0, result.output
    assert_png(run / "loss.png")
    figure = metrics_figure(run)
    panel = figure.axes[key == "lr"]
    assert panel.get_ylabel().endswith(" (\u00d71e+308)")           # each value's power
    assert value / 1e308 in [y for line in panel.get_lines() for y in line.get_ydata()]
    other = figure.axes[key != "lr"]                        # its values ordinary: as they are
    assert other.get_ylabel() in ("learning rate", "loss (cross-entropy, nats)")
    assert 1e-3 in [y for line in other.get_lines() for y in line.get_ydata()] or key == "lr"


def test_missing_metrics_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        plot_metrics(tmp_path)


def test_smooth_has_no_lag_and_keeps_constants():
    assert smooth([2.0] * 30) == pytest.approx([2.0] * 30)
    line = [float(i) for i in range(100)]
    # A forward-only EMA would trail a straight line by about span/2; forwards-backwards not.
    assert smooth(line, span=9)[50] == pytest.approx(50.0, abs=0.01)
    assert smooth([1.0, 5.0], span=1) == [1.0, 5.0]


def test_smooth_is_pandas_ewm_with_span_run_forwards_then_backwards():
    def ewm(xs, span):                # pandas' ewm(span=span, adjust=True).mean(), in numpy
        decay = 1 - 2 / (span + 1)
        weights = [decay ** np.arange(t, -1, -1) for t in range(len(xs))]   # x_0 .. x_t
        return [np.dot(w, xs[:len(w)]) / w.sum() for w in weights]

    values = list(np.random.default_rng(0).normal(size=40))
    expected = ewm(ewm(values, 5)[::-1], 5)[::-1]
    np.testing.assert_allclose(smooth(values, span=5), expected, rtol=1e-12)



def test_a_long_runs_line_is_smoothed_over_a_small_part_of_it():
    # A drop at step 500 of 1000 stays a drop: the line leaves the losses for a few dozen
    # steps around it, not for hundreds.
    losses = [1.0] * 500 + [0.0] * 500
    off = [step for step, (s, x) in enumerate(zip(smooth(losses), losses)) if abs(s - x) > 0.05]
    assert 10 < len(off) < 100 and min(off) > 400 and max(off) < 600


def test_the_loss_panel_draws_the_smoothed_losses_and_labels_the_last_validation(tmp_path):
    run = write_metrics(tmp_path / "run", extra=None)
    loss = metrics_figure(run).axes[0]
    train, smoothed, val = loss.get_lines()
    losses = [r["train_loss"] for r in read_metrics(run / "metrics.jsonl")]
    np.testing.assert_allclose(smoothed.get_ydata(), smooth(losses))
    # on the axis of the steps logged (1 to 40), the validation's among them
    assert list(train.get_xdata()) == list(smoothed.get_xdata()) == list(range(1, 41))
    assert list(val.get_xdata()) == [10, 20, 30, 40]
    (label,) = loss.texts
    assert label.get_text() == f"{3.2 / 40 ** 0.5:.4f}" and label.xy == (40, 3.2 / 40 ** 0.5)


def test_a_validation_loss_is_drawn_at_a_step_whose_train_loss_overflowed(tmp_path):
    # One batch's loss overflowed, the model still validates: that point is the run's too.
    last = {"step": 41, "train_loss": float("inf"), "lr": 1e-3, "val_loss": 0.5}
    run = write_metrics(tmp_path / "run", extra=None, tail=json.dumps(last) + "\n")
    loss = metrics_figure(run).axes[0]
    train, smoothed, val, overflowed = loss.get_lines()
    assert list(train.get_xdata()) == list(range(1, 41))
    assert list(val.get_xdata()) == [10, 20, 30, 40, 41]
    assert list(overflowed.get_xdata()) == [41]                  # marked where it is not drawn
    (label,) = loss.texts
    assert label.get_text() == "0.5000" and label.xy == (41, 0.5)


def test_the_recall_panel_draws_each_measured_value_and_labels_the_last(tmp_path):
    run = write_metrics(tmp_path / "run", extra="val_recall")       # 0.25 at step 10 ... 1
    recall = metrics_figure(run).axes[1]
    (line,) = recall.get_lines()
    assert list(line.get_xdata()) == [10, 20, 30, 40]
    assert list(line.get_ydata()) == [0.25, 0.5, 0.75, 1.0]
    (label,) = recall.texts
    assert label.get_text() == "1.00" and label.xy == (40, 1.0)


def test_a_run_that_logged_no_learning_rate_gets_no_empty_panel_for_it(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(
        json.dumps({"step": step, "train_loss": 1 / step}) + "\n" for step in range(1, 6)))
    (loss,) = metrics_figure(tmp_path).axes
    assert loss.get_xlabel() == "step"


def test_the_step_axis_is_labelled_once_under_the_bottom_panel(tmp_path):
    # The panels share their steps: the label goes under the last one, the learning rate's.
    loss, recall, lr = metrics_figure(write_metrics(tmp_path / "run")).axes
    assert [ax.get_xlabel() for ax in (loss, recall, lr)] == ["", "", "step"]


@pytest.mark.parametrize("extra", ["val_recall", "val_accuracy"])
def test_the_last_values_are_written_dark_enough_to_read_in_their_lines_hue(tmp_path, extra):
    # They were in the lines' own colours: the validation loss's orange read at 2.5:1 on
    # white, the recall's green at 3.3:1, under the 4.5:1 that reading text needs.
    from matplotlib.colors import to_hex, to_rgb
    from test_html_pages import contrast

    figure = metrics_figure(write_metrics(tmp_path / "run", extra=extra))
    labels = [(text, line) for ax in figure.axes[:2] for text in ax.texts
              for line in ax.get_lines()[-1:]]
    assert len(labels) == 2
    for text, line in labels:
        assert contrast("white", to_hex(text.get_color())) >= 4.5
        hue = np.array(to_rgb(text.get_color())) / np.array(to_rgb(line.get_color()))
        np.testing.assert_allclose(hue, hue[0], rtol=1e-6)    # the line's colour, darker


def test_a_true_or_false_is_no_value_to_plot(tmp_path):
    odd = {"step": 41, "train_loss": 0.4, "val_loss": True, "val_accuracy": False, "lr": True}
    run = write_metrics(tmp_path / "run", extra=None, tail=json.dumps(odd) + "\n")
    loss, lr = metrics_figure(run).axes                  # no panel for an accuracy of False
    train, smoothed, val = loss.get_lines()
    assert list(val.get_xdata()) == [10, 20, 30, 40] and len(lr.get_lines()[0].get_xdata()) == 40


def test_a_bare_metrics_file_name_is_titled_by_the_directory_it_is_in(tmp_path, monkeypatch):
    monkeypatch.chdir(write_metrics(tmp_path / "myrun"))
    assert metrics_figure("metrics.jsonl").get_suptitle() == "training run: myrun"
    assert plot_metrics("metrics.jsonl") == os.path.join(".", "loss.png")


def test_a_short_run_is_smoothed_too():
    losses = [2.0] * 30
    losses[9] = 6.0                            # one spike in a run of 30 steps
    smoothed = smooth(losses)
    assert 2.0 < smoothed[9] < 4.0             # the spike averaged with its neighbours
    assert smoothed[10] > 2.0                  # after it, not before: no step reached 2.0
    assert smoothed[8] == 2.0


def test_a_run_that_blows_up_is_drawn_as_it_went_and_its_legend_leaves_the_blow_up_visible(
        tmp_path):
    # The backward pass of the smoothing drew step 1's loss of 3.3 at 1.2e17, and the legend,
    # fixed at the upper right, covered the loss of the last step (then training stopped).
    losses = [3.2976537942886353, 7143294500864.0, 1.268007592844591e+18]
    smoothed = smooth(losses)
    assert smoothed[:2] == losses[:2] and losses[1] < smoothed[2] <= losses[2]
    records = [{"step": i + 1, "train_loss": loss, "lr": 1e-3} for i, loss in enumerate(losses)]
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    fig = metrics_figure(run)
    fig.draw_without_rendering()
    loss = fig.axes[0]
    legend = loss.get_legend().get_window_extent()
    for line in loss.get_lines():                 # each line, at points all along it
        ends = loss.transData.transform(line.get_xydata())
        for a, b in zip(ends, ends[1:]):
            for f in np.linspace(0, 1, 50):
                assert not legend.contains(*(a + f * (b - a))), line.get_label()


def test_a_run_with_no_metrics_ends_training_with_a_note_not_an_error(tmp_path):
    from viz.write import plot_after_training
    (tmp_path / "run").mkdir()
    said = plot_after_training(str(tmp_path / "run"))
    assert said.startswith("note: no loss plot (metrics file ") and "does not exist" in said
    assert not (tmp_path / "run" / "loss.png").exists()


def test_a_plot_that_fails_as_training_ends_is_a_note_of_one_line(tmp_path, monkeypatch):
    # The note is the last line of a run's output: a ValueError of several lines (one of
    # matplotlib's) is said by its first.
    def fails(run_dir):
        raise ValueError("cannot draw this\nwhat matplotlib said next")
    monkeypatch.setattr("viz.write.plot_metrics", fails)
    from viz.write import plot_after_training
    assert plot_after_training(str(tmp_path)) == "note: no loss plot (cannot draw this)"


def test_training_writes_the_plot(six_step_gpt_run):
    # `train TINY --iters 6 --eval-every 3`, trained once for the modules that read it
    out = six_step_gpt_run.out
    assert f"loss plot: {out / 'loss.png'}" in six_step_gpt_run.stdout
    assert_png(out / "loss.png")


def test_plot_command_end_to_end(tmp_path):
    run = write_metrics(tmp_path / "run")
    result = tinyformer("plot", run)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run / "loss.png")
    assert_png(run / "loss.png")

    out = tmp_path / "curves.png"
    result = tinyformer("plot", run / "metrics.jsonl", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert_png(out)

    result = tinyformer("plot", "--help")
    assert result.exit_code == 0 and "Examples:" in result.stdout


MATPLOTLIB_VARIABLES = ["MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"]


def test_a_home_that_cannot_be_written_draws_without_matplotlibs_warnings(tmp_path):
    # A home that nobody may write in, root included (who may write a read-only folder): a
    # file. matplotlib warned twice on each picture drawn, "mkdir -p failed for path ..." and
    # "Matplotlib created a temporary cache directory ...", which read as a failure.
    run = write_metrics(tmp_path / "run", n=3)
    (tmp_path / "home").write_text("")
    (tmp_path / "tmp").mkdir()
    environment = {name: value for name, value in os.environ.items()
                   if name not in MATPLOTLIB_VARIABLES}
    environment.update(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"),
                       TINYAUTOGRAD_KERNELS="numpy", PYTHONPATH=str(Path(__file__).parent.parent))
    done = subprocess.run([sys.executable, "-m", "tinyformer_cli", "plot", str(run)],
                          capture_output=True, text=True, env=environment, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
    assert_png(run / "loss.png")
    assert files_in(tmp_path / "tmp") == []       # matplotlib's temporary folder, removed


def test_matplotlib_keeps_its_folders_where_they_can_be_written_or_mplconfigdir_is_set(
        tmp_path, monkeypatch):
    for name in MATPLOTLIB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    give_matplotlib_a_folder()
    assert "MPLCONFIGDIR" not in os.environ
    assert files_in(tmp_path) == []               # nothing made: matplotlib makes its own

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("HOME", str(tmp_path / "file"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mine"))
    give_matplotlib_a_folder()
    assert os.environ["MPLCONFIGDIR"] == str(tmp_path / "mine")


def test_a_home_that_cannot_be_written_keeps_matplotlibs_fonts_under_xdg_cache_home(
        tmp_path, monkeypatch):
    # XDG_CACHE_HOME, as the compiled loops' line advises: matplotlib's font list goes there,
    # kept from run to run, rather than into a temporary folder made again on each.
    # (setenv first: monkeypatch then unsets MPLCONFIGDIR again after the test, which the
    # function sets, where a delenv of an unset variable would record nothing to undo.)
    for name in MATPLOTLIB_VARIABLES:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    (tmp_path / "home").write_text("")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    give_matplotlib_a_folder()
    assert os.environ["MPLCONFIGDIR"] == str(tmp_path / "cache" / "matplotlib")


@pytest.mark.parametrize("home", ["none", "not to be entered"])
def test_a_home_matplotlib_cannot_use_gets_a_temporary_folder_removed_at_exit(
        tmp_path, monkeypatch, home):
    # No home at all (HOME unset, a user the system does not list: Path.home() raises), or one
    # this user may write but not enter (mode 0o200; root enters any folder, so it is asked
    # of os.access): matplotlib could keep nothing there.
    import atexit
    import tempfile
    for name in MATPLOTLIB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    at_exit = []
    with monkeypatch.context() as patched:
        if home == "none":
            def no_home():
                raise RuntimeError("Could not determine home directory.")
            patched.setattr(Path, "home", no_home)
        else:
            patched.setenv("HOME", str(tmp_path))
            patched.setattr(os, "access", lambda path, mode: not mode & os.X_OK)
        patched.setattr(atexit, "register", lambda *call, **keywords: at_exit.append(
            (call, keywords)))
        give_matplotlib_a_folder()
    folder = Path(os.environ.pop("MPLCONFIGDIR"))       # (not left to the tests that follow)
    assert folder.parent == tmp_path / "tmp" and folder.is_dir()
    [((remove, *arguments), keywords)] = at_exit
    remove(*arguments, **keywords)                 # as the program exits
    assert files_in(tmp_path / "tmp") == []


def bad_inputs(tmp_path):
    """(arguments, words expected in the error, directory that must stay unchanged)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    no_records = tmp_path / "no-records"
    no_records.mkdir()
    (no_records / "metrics.jsonl").write_text("")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "metrics.jsonl").write_bytes(b"\x00\xff garbage\n" * 3)
    good = write_metrics(tmp_path / "good")
    write_metrics(tmp_path / "other")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return [
        (["plot", tmp_path / "missing"], "run directory", tmp_path),    # not "metrics file"
        (["plot", empty], "metrics.jsonl' does not exist; train a run first", empty),
        (["plot", no_records], "no records", no_records),
        (["plot", corrupt], "not UTF-8", corrupt),
        (["plot", good, "--out", tmp_path / "nodir" / "x.png"], "does not exist", good),
        (["plot", good, "--out", good], "is a directory", good),
        (["plot", good, "--out", good / "x.svg"], "should end in .png", good),
        (["plot", good, "--out", locked / "x.png"], "not writable", locked),
        (["plot", good, good], "compared in one picture, which is no run's own: give --out",
         good),
        (["plot", good, good, "--out", good / "r.html"], "a report page is one run's", good),
        (["plot", good, good, "--out", good / "r.html", "--follow"], "give one RUN_DIR", good),
        # a picture is drawn once: --follow would be dropped without a word
        (["plot", good, "--out", good / "x.png", "--follow"], "--follow needs an .html --out",
         good),
        (["plot", good, empty, "--out", good / "x.png"], "does not exist; train a run", good),
        (["plot", good, f"{tmp_path}/./good/", "--out", good / "x.png"],
         "are the same run; give each run once", good),
        (["plot", tmp_path / "other", good / "metrics.jsonl", good, "--out", good / "x.png"],
         "are the same run; give each run once", good),
    ]


def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch):
    locked = str(tmp_path / "locked")
    if os.geteuid() == 0:        # root may write anywhere: let the check see what a user's
        real_access = os.access  # permissions would say
        monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == locked
                            else real_access(path, mode))
    for args, words, directory in bad_inputs(tmp_path):
        before = files_in(directory)
        result = tinyformer(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], \
            (args, result.stderr)
        assert "Traceback" not in result.output
        assert files_in(directory) == before, args
    (tmp_path / "locked").chmod(0o700)


@pytest.mark.parametrize("beyond", ["/", "/run"])
def test_plot_of_a_path_through_a_file_says_the_file_is_one(tmp_path, beyond):
    """notes.txt/ (a shell's completion of a directory), or notes.txt/run: the file is there,
    so "run directory ... does not exist" would send the user looking for it. Said in the
    words of generate's --checkpoint and train's --resume (notes.txt/ was named as
    '/abs/notes.txt' there, as itself here)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not a run\n")
    given = f"{notes}{beyond}"
    why = (f"{given!r} is a file, not a directory" if beyond == "/" else
           f"{given!r}: {str(notes)!r} is a file, not a directory")
    result = tinyformer("plot", given)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (f"Error: run directory {why}; give a run directory (or "
                                     f"its metrics.jsonl)")
    assert tinyformer("generate", "--checkpoint", given).stderr.startswith(
        f"Error: checkpoint {why}; ")


def test_several_runs_of_different_lengths_are_compared_in_one_picture(tmp_path):
    """A sweep's runs, one line a run: their names (paths where two share a name) and last
    validation losses in the legend, each run drawn for the steps it logged."""
    short = write_metrics(tmp_path / "a" / "run", n=20, eval_every=5, extra=None)
    long = write_metrics(tmp_path / "b" / "run", n=40)
    out = tmp_path / "sweep.png"
    result = tinyformer("plot", short, long, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert_png(out)
    fig = comparison_figure([short, long])
    loss, recall, lr = fig.axes[:3]
    labels = [text.get_text() for text in loss.get_legend().get_texts()]
    assert labels == [f"{os.path.normpath(short)}: val {3.2 / 20 ** 0.5:.4f}",
                      f"{os.path.normpath(long)}: val {3.2 / 40 ** 0.5:.4f}"]
    assert [line.get_xdata()[-1] for line in lr.get_lines()] == [20, 40]
    assert lr.get_yscale() == "log" and len(recall.get_lines()) == 2
    # Each run draws two things in the loss panel: its smoothed train loss as a line, and its
    # validation losses as dots of the same colour, at the steps they were measured.
    lines = loss.get_lines()
    assert len(lines) == 4
    for run, (train, val) in zip([short, long], zip(lines[::2], lines[1::2])):
        records = read_metrics(run / "metrics.jsonl")
        measured = [r for r in records if "val_loss" in r]
        assert list(train.get_xdata()) == [r["step"] for r in records]
        assert list(train.get_ydata()) == pytest.approx(smooth([r["train_loss"]
                                                               for r in records]))
        assert list(val.get_xdata()) == [r["step"] for r in measured]
        assert list(val.get_ydata()) == [r["val_loss"] for r in measured]
        assert val.get_linestyle() == "None" and val.get_marker() == "o"
        assert val.get_color() == train.get_color()
    # A diverged run, and one logged at learning rate 0 alone: drawn without a warning (a
    # log scale has nothing positive to draw there).
    (tmp_path / "nan").mkdir()
    (tmp_path / "nan" / "metrics.jsonl").write_text('{"step": 1, "train_loss": NaN, "lr": 0}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert comparison_figure([tmp_path / "nan", tmp_path / "nan"]).axes[-1].get_lines()
    # A run of one logged step: its train loss and learning rate are single points, drawn as
    # dots, which a line alone would not show.
    one = write_metrics(tmp_path / "one", n=1, eval_every=1)
    loss, *_, lr = comparison_figure([one, long]).axes
    assert loss.get_lines()[0].get_marker() == "o" and lr.get_lines()[0].get_marker() == "o"


def test_a_comparisons_diverged_run_is_marked_and_named_by_its_last_validation_loss(tmp_path):
    # Its curves stopped with nothing said, and the legend named it by its last finite
    # validation loss (0.506 at step 40), where its last one was NaN: the sweep's best, read so.
    good = write_metrics(tmp_path / "good", n=60)
    diverged = write_metrics(tmp_path / "diverged", tail=(
        '{"step": 41, "train_loss": NaN, "lr": 1e-3}\n'
        '{"step": 50, "train_loss": NaN, "lr": 1e-3, "val_loss": NaN}\n'))
    loss = comparison_figure([good, diverged]).axes[0]
    labels = [text.get_text() for text in loss.get_legend().get_texts()]
    assert labels == [f"good: val {3.2 / 60 ** 0.5:.4f}",
                      "diverged: val nan, loss NaN or inf from step 41"]
    good_train, diverged_train = (line for line in loss.get_lines()
                                  if not line.get_label().startswith("_"))
    (marks,) = [line for line in loss.get_lines() if line.get_marker() == "|"]
    assert list(marks.get_xdata()) == [41, 50]
    assert marks.get_color() == diverged_train.get_color() != good_train.get_color()


def diverged_run(directory, step):
    """A run of 40 steps whose manifest records that it diverged at `step`, as the trainer
    leaves it: its metrics hold only finite numbers, none of the step that diverged."""
    write_metrics(directory)
    error = f"the loss became nan at step {step}; lower --lr"
    (directory / "manifest.json").write_text(json.dumps(
        {"format": FORMAT, "version": VERSION, "owns": ["metrics.jsonl"], "checkpoint": None,
         "diverged": {"step": step, "error": error}}))
    return directory


def ticks(ax):
    return [line for line in ax.get_lines() if line.get_marker() == "|"]


def test_the_step_where_a_run_diverged_is_marked_on_its_curves_and_in_a_comparison(tmp_path):
    # The trainer logs no NaN: a run whose loss became NaN at step 41 has metrics to step 40,
    # and its curves stopped there with nothing said, where the help promised a tick.
    run = diverged_run(tmp_path / "run", 41)
    for source in (run, run / "metrics.jsonl"):
        loss = metrics_figure(source).axes[0]
        (mark,) = ticks(loss)
        assert list(mark.get_xdata()) == [41]
        assert mark.get_label() == "diverged at step 41: NaN or inf, the run stopped"
        assert mark.get_label() in [text.get_text() for text in loss.get_legend().get_texts()]
    # In a comparison, in the run's colour, the legend saying where.
    good = write_metrics(tmp_path / "good")
    loss = comparison_figure([good, run]).axes[0]
    labels = [text.get_text() for text in loss.get_legend().get_texts()]
    assert labels == [f"good: val {3.2 / 40 ** 0.5:.4f}",
                      f"run: val {3.2 / 40 ** 0.5:.4f}, diverged at step 41"]
    (mark,) = ticks(loss)
    assert list(mark.get_xdata()) == [41] and mark.get_color() == loss.get_lines()[2].get_color()
    # A run that did not diverge has none; nor one whose record is of a step its metrics reach.
    assert ticks(metrics_figure(good).axes[0]) == []
    assert ticks(metrics_figure(diverged_run(tmp_path / "reached", 40)).axes[0]) == []


def test_a_comparisons_legend_gives_the_last_validation_loss_as_the_training_log_does(tmp_path):
    # The legend rounded to 3 decimals where training prints 4 ("val_loss 2.9746"): two runs
    # of a sweep 0.0008 apart were named by one figure, and neither by the one to grep for.
    runs = []
    for name, val_loss in (("lr-1e-3", 2.97459), ("lr-3e-3", 2.97541)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(json.dumps(
            {"step": 1, "train_loss": 3.0, "lr": 1e-3, "val_loss": val_loss}) + "\n")
        runs.append(tmp_path / name)
    loss = comparison_figure(runs).axes[0]
    labels = [text.get_text() for text in loss.get_legend().get_texts()]
    assert labels == ["lr-1e-3: val 2.9746", "lr-3e-3: val 2.9754"]


def write_run(directory, **settings):
    """A run's metrics.jsonl, and its manifest.json with the settings that say what its loss
    is per."""
    write_metrics(directory, n=10, eval_every=5, extra=None)
    settings = dict(dict(model="gpt", task=None, tokenizer="char", vocab_size=None), **settings)
    (directory / "manifest.json").write_text(json.dumps({
        "format": "tinyformer-run", "version": 1, "owns": ["metrics.jsonl"], "checkpoint": None,
        "settings": settings}))
    return directory


def test_comparing_losses_of_different_models_or_tokenizers_is_noted(tmp_path):
    # A BPE token holds several characters, a BERT's loss is over its hidden tokens alone:
    # their losses were drawn and ranked in the legend beside a char GPT's with nothing said,
    # the lowest looking the best.
    from viz.write import loss_kinds
    char = [write_run(tmp_path / f"lr-{lr}") for lr in ("1e-3", "3e-3")]
    bpe = write_run(tmp_path / "bpe", tokenizer="bpe", vocab_size=320)
    result = tinyformer("plot", *char, bpe, "--out", tmp_path / "sweep.png")
    assert result.exit_code == 0, result.output
    assert result.stderr == ("note: a loss per token compares runs of one model and tokenizer, "
                             "and these runs' are not: gpt on char tokens (lr-1e-3, lr-3e-3); "
                             "gpt on bpe tokens, vocabulary 320 (bpe)\n")
    bert = write_run(tmp_path / "bert", model="bert")
    task = write_run(tmp_path / "add", model="transformer", task="add", tokenizer=None)
    assert loss_kinds([char[0], bert, task]) == {"gpt on char tokens": ["lr-1e-3"],
                                                 "bert on char tokens": ["bert"],
                                                 "transformer on the add task": ["add"]}
    # A sweep of one model and tokenizer is one kind; a run with no manifest is left out.
    assert loss_kinds([*char, write_metrics(tmp_path / "bare")]) == {
        "gpt on char tokens": ["lr-1e-3", "lr-3e-3"]}


@pytest.mark.parametrize("lrs", [[(3.3e-4, 8e-3), (8e-3, 1e-3)], [(1.05e-4, 9.5e-3)],
                                 [(2.5e-3, 9e-3)], [(2.9e-3, 3.1e-3)], [(1e-6, 1e-2)]],
                         ids=["a-sweep", "two-decades", "in-a-decade", "narrow", "four-decades"])
def test_the_learning_rates_log_axis_labels_as_many_ticks_as_fit_none_over_another(tmp_path,
                                                                                     lrs):
    # matplotlib labelled 3, 4 and 6 times each decade, or nine ticks within one: in a panel
    # an inch tall the labels stood on one another.
    runs = []
    for i, (first, last) in enumerate(lrs):
        lines = [json.dumps({"step": step, "train_loss": 3.0, "lr": lr}) + "\n"
                 for step, lr in enumerate(np.linspace(first, last, 20), 1)]
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "metrics.jsonl").write_text("".join(lines))
        runs.append(tmp_path / str(i))
    figure = comparison_figure(runs)
    figure.draw_without_rendering()
    lr = figure.axes[-1]
    panel = lr.get_window_extent()
    boxes = [label.get_window_extent() for label in lr.yaxis.get_ticklabels(which="both")
             if label.get_visible() and label.get_text()]
    boxes = sorted((box for box in boxes if panel.y0 - 1 <= (box.y0 + box.y1) / 2 <= panel.y1 + 1),
                   key=lambda box: box.y0)           # the labels of the ticks on the panel
    assert len(boxes) >= 2
    assert all(below.y1 <= above.y0 for below, above in zip(boxes, boxes[1:]))


def test_the_learning_rates_log_axis_is_numbered_as_written_not_in_tex(tmp_path):
    # A label made while the figure was built was drawn as written, TeX and all
    # ("$\\mathdefault{2\\times10^{-4}}$"), the others as formulas. And one run was "runs".
    figure = comparison_figure([write_metrics(tmp_path / "run", n=60)])
    axis = figure.axes[-1].yaxis
    shown = [text for text in [axis.get_major_formatter()(v) for v in axis.get_majorticklocs()]
             + [axis.get_minor_formatter()(v) for v in axis.get_minorticklocs()] if text]
    assert {"1e-3", "2e-4", "5e-4"} <= set(shown) and not any("$" in text for text in shown)
    assert figure._suptitle.get_text() == "1 training run"


def test_the_figure_itself_for_jupyter(tmp_path):
    """In a notebook a cell ending with the Figure shows it inline: the same drawing as the
    file, panels and all, without writing anything."""
    import viz
    from matplotlib.figure import Figure
    run = write_metrics(tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    fig = viz.metrics_figure(run)
    assert isinstance(fig, Figure) and len(fig.axes) == 3          # loss, recall, lr
    assert sorted(p.name for p in run.iterdir()) == before
    # Its picture, for Jupyter to show: a plain Figure has none until matplotlib's own inline
    # display is turned on, and a fresh kernel showed "<Figure size 900x620 with 3 Axes>".
    assert fig._repr_png_()[:8] == PNG_MAGIC
    attention = viz.attention_figure(np.full((1, 2, 3, 3), 1 / 3), list("abc"), list("abc"), "t")
    assert attention._repr_png_()[:8] == PNG_MAGIC



@pytest.mark.parametrize("n", [1, 3])
def test_a_run_of_a_step_or_a_few_shows_its_curves_on_whole_steps(tmp_path, n):
    # After one step the train loss and the learning rate were lines through one point,
    # which draw nothing; and the steps read 0.96, 0.98, ... (1.5, 2.5 after a few).
    import viz
    fig = viz.metrics_figure(write_metrics(tmp_path / "run", n=n, eval_every=1, extra=None))
    loss, lr = fig.axes
    curves = [line for line in loss.get_lines()
              if line.get_label() == "train loss (smoothed)"] + lr.get_lines()
    assert len(curves) == 2
    for line in curves:
        assert len(line.get_xdata()) > 1 or line.get_marker() not in ("None", ""), line
    fig.draw_without_rendering()
    low, high = lr.get_xlim()
    steps = [step for step in lr.get_xticks() if low <= step <= high]
    assert steps and all(float(step).is_integer() for step in steps), steps


@pytest.mark.parametrize("last", [1.0, 0.95, 0.5, 0.0])
def test_the_last_values_labels_stay_inside_their_panels(tmp_path, last):
    # A recall of 1.00 was labelled above its point, across the short panel's top edge; and
    # the loss of a run that overfits, highest last, across the loss panel's.
    import viz
    run = write_metrics(tmp_path / "run")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    records[-1]["val_recall"] = last
    records[-1]["val_loss"] = 4.0
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    fig = viz.metrics_figure(run)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        box = ax.get_window_extent(renderer)
        for label in ax.texts:
            inside = label.get_window_extent(renderer)
            assert box.y0 <= inside.y0 and inside.y1 <= box.y1, (label.get_text(), last)


def test_dollar_signs_in_names_and_tokens_are_drawn_as_written(tmp_path):
    # matplotlib reads a text with two `$` as TeX maths: a run, a prompt or a token with
    # "$$ 5 $$" in it failed to draw (ValueError), and "price $x^2$" was drawn as a formula.
    import viz
    from matplotlib.text import Text
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    labels = ["$$ 5 $$", "$\\sqrt{$", "$x^2$"]
    lens = Lens(rows=["embed", "layer 1"], top_ids=np.zeros((2, 3, 1), dtype=int),
                top_probs=np.full((2, 3, 1), 0.5))
    figures = [viz.metrics_figure(write_metrics(tmp_path / "price $x^2$ y $$ 5 $$")),
               viz.attention_figure(np.full((1, 1, 3, 3), 1 / 3), labels, labels, "$$ 5 $$"),
               viz.lens_figure(lens, labels, CharTokenizer("$"), title="$$ 5 $$")]
    for figure in figures:
        assert figure._repr_png_()[:8] == PNG_MAGIC
        texts = [text for text in figure.findobj(Text) if "$" in text.get_text()]
        assert texts and not any(text.get_parse_math() for text in texts)


def test_a_run_with_a_long_name_keeps_its_whole_title_in_the_picture(tmp_path):
    # A sweep's run named by its settings ran off both edges of the picture, cut off there.
    name = "gpt-sweep-lr0.008-dmodel32-nlayer2-context16-rope-swiglu-rmsnorm-seed1234-lecture"
    figure = metrics_figure(write_metrics(tmp_path / name))
    figure.draw_without_rendering()
    title, = [text.get_window_extent() for text in figure.texts
              if text.get_text() == figure.get_suptitle()]
    assert 0 <= title.x0 and title.x1 <= figure.bbox.width
    assert "".join(figure.get_suptitle().split()) == f"trainingrun:{name}"


def test_a_run_whose_name_is_not_utf8_is_titled_with_a_replacement_character(tmp_path):
    # Python reads the byte 0xff of such a name as the lone surrogate '\udcff', which
    # matplotlib could not draw (TypeError) nor a page write: training ended in exit status 1.
    run = write_metrics(tmp_path / os.fsdecode(b"bad\xffname"))
    figure = metrics_figure(run)
    assert figure.get_suptitle() == "training run: bad\ufffdname"
    assert plot_metrics(run, tmp_path / "loss.png") and assert_png(tmp_path / "loss.png")


def test_a_character_matplotlibs_font_lacks_is_drawn_with_an_installed_font_that_has_it(
        monkeypatch):
    # A label in Chinese or Hindi was a row of boxes, even with a font for it installed:
    # matplotlib draws with DejaVu Sans alone unless told of others. Here STIXGeneral, which
    # matplotlib brings, stands for such a font: it has "ℊ", which DejaVu Sans lacks.
    import warnings

    import viz
    import viz.plots
    monkeypatch.setattr(viz.plots, "SCRIPT_FONTS", [("No Such Font", "STIXGeneral")])
    labels = ["ℊ", "a"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure = viz.attention_figure(np.full((1, 1, 2, 2), 0.5), labels, labels, "ℊ")
        assert figure._repr_png_()[:8] == PNG_MAGIC
    assert not [w for w in caught if "missing from font" in str(w.message)]
    assert viz.plots.unshown_characters(figure) == ""


def test_characters_no_font_has_are_one_note_saying_what_to_do(tmp_path):
    # matplotlib warned once per character, with its own source line, and the picture showed
    # boxes with nothing said: the note names them and what to install, or to draw a page.
    import warnings

    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    from viz.attention import AttentionMap
    from viz.write import write_attention, write_lens
    labels = ["\U0001e900", "a", "\U0001e901"]               # Adlam, in no font here
    maps = {"self": AttentionMap(np.full((1, 1, 3, 3), 1 / 3), labels, labels, "self")}
    lens = Lens(rows=["embed"], top_ids=np.zeros((1, 3, 1), dtype=int),
                top_probs=np.full((1, 3, 1), 0.5))
    for write in (lambda log: write_attention(tmp_path / "a.png", maps, "self", "gpt", log=log),
                  lambda log: write_lens(tmp_path / "l.png", lens, labels, CharTokenizer("a"),
                                         log=log)):
        notes = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert imread(write(notes.append)).size
        assert not [w for w in caught if "missing from font" in str(w.message)]
        (note,) = notes
        assert note.startswith("note: no installed font has \U0001e900\U0001e901, drawn as "
                               "boxes") and "fonts-noto" in note and ".html" in note


def test_the_note_of_characters_no_font_has_marks_only_those_it_leaves_out(tmp_path,
                                                                           monkeypatch):
    # It names the first 20 of them; "…" says that there are more, not that there are 20.
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    from viz.write import SHOWN_CHARACTERS, write_lens
    lens = Lens(rows=["embed"], top_ids=np.zeros((1, 1, 1), dtype=int),
                top_probs=np.full((1, 1, 1), 0.5))
    letters = "abcdefghijklmnopqrstu"
    for unshown, named in ((letters[:SHOWN_CHARACTERS], letters[:SHOWN_CHARACTERS]),
                           (letters[:SHOWN_CHARACTERS + 1], letters[:SHOWN_CHARACTERS] + "…")):
        monkeypatch.setattr("viz.write.unshown_characters", lambda figure, text=unshown: text)
        notes = []
        write_lens(tmp_path / "l.png", lens, ["a"], CharTokenizer("a"), log=notes.append)
        assert notes[0].startswith(f"note: no installed font has {named}, drawn as boxes")


def test_two_runs_metrics_files_copied_into_one_folder_are_two_runs(tmp_path):
    # Given by their metrics files, runs are told apart by those files, not by their folders.
    for name, n in (("a", 20), ("b", 40)):
        run = write_metrics(tmp_path / name, n=n)
        (tmp_path / f"{name}.jsonl").write_bytes((run / "metrics.jsonl").read_bytes())
    out = tmp_path / "both.png"
    result = tinyformer("plot", tmp_path / "a.jsonl", tmp_path / "b.jsonl", "--out", out)
    assert result.exit_code == 0, result.output
    assert_png(out)


def fed_pipe(tmp_path, run):
    """A named pipe (as a shell's <(...) gives one) that a thread feeds `run`'s metrics
    through once a reader opens it; and the thread, to join after the command."""
    import threading
    pipe = tmp_path / "metrics-pipe"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_bytes,
                              args=((run / "metrics.jsonl").read_bytes(),), daemon=True)
    writer.start()
    return pipe, writer


def join_writer(pipe, writer):
    """Let the writer finish. A command that never read the pipe leaves it waiting for a
    reader: read what it writes, until the thread ends. The pipe is opened without waiting
    (O_NONBLOCK): a writer that already finished, or has not yet reached its open, waits for
    no one, and a plain open would then wait for ever; the read then ends at once, and the
    loop tries again."""
    while writer.is_alive():
        fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(fd, True)  # the read waits for a writer that has the pipe open
        with os.fdopen(fd, "rb") as reader:
            reader.read()
        writer.join(timeout=0.1)


def test_metrics_from_a_pipe_are_read_once_and_drawn(tmp_path):
    # `tinyformer plot <(ssh host cat runs/x/metrics.jsonl)` was refused: "a named pipe
    # (FIFO), not a regular file; put the file itself there". Read once, it is drawn as a file
    # is, titled by the path the shell gave (its folder, /dev/fd, is no run's).
    run = write_metrics(tmp_path / "run")
    pipe, writer = fed_pipe(tmp_path, run)
    result = tinyformer("plot", pipe, "--out", tmp_path / "report.html")
    join_writer(pipe, writer)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "report.html")
    assert f"training run: {pipe}" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_metrics_from_a_pipe_are_compared_with_a_runs(tmp_path):
    run = write_metrics(tmp_path / "run")
    pipe, writer = fed_pipe(tmp_path, run)
    figure = comparison_figure([pipe, run])
    join_writer(pipe, writer)
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert [label.split(": val")[0] for label in legend] == [str(pipe), "run"]


@pytest.mark.parametrize("extra, said", [
    ([], "are in no run directory to write loss.png in; give --out FILE.png (or .html)"),
    (["--out", "report.html", "--follow"], "can be read once; give the run directory (or its "
                                           "metrics.jsonl)")])
def test_what_a_pipe_cannot_do_is_refused_before_it_is_read(tmp_path, monkeypatch, extra, said):
    # A pipe has no run directory for loss.png (it would be /dev/fd/loss.png), and --follow
    # would read it again. Refused unread: the user's command that feeds it is not spent.
    monkeypatch.chdir(tmp_path)
    pipe = tmp_path / "metrics-pipe"
    os.mkfifo(pipe)
    result = tinyformer("plot", pipe, *extra)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().startswith("Error: ") and said in result.stderr, result.stderr
    assert files_in(tmp_path) == ["metrics-pipe"]


def test_a_named_pipe_in_a_run_directory_is_still_refused(tmp_path):
    # Named itself, a pipe is the user's; found in a directory, it waits for no writer.
    (tmp_path / "run").mkdir()
    os.mkfifo(tmp_path / "run" / "metrics.jsonl")
    with pytest.raises(ValueError, match="named pipe"):
        metrics_figure(tmp_path / "run")


def test_out_dash_writes_the_png_to_the_standard_output_and_nothing_else(tmp_path,
                                                                         monkeypatch):
    # `ssh host tinyformer plot runs/x --out - > loss.png` was refused: "this command writes a
    # file, not the standard output". matplotlib writes a PNG to a stream as well as to a file.
    run = write_metrics(tmp_path / "run")
    monkeypatch.chdir(tmp_path)                 # where a file named '-' would be written
    result = tinyformer("plot", run, "--out", "-")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(PNG_MAGIC) and result.stdout_bytes.endswith(
        b"IEND\xaeB`\x82")                      # the picture alone: no file name after it
    (tmp_path / "out.png").write_bytes(result.stdout_bytes)
    assert_png(tmp_path / "out.png")
    assert sorted(files_in(run)) == ["metrics.jsonl"]             # no loss.png, no "-"
    assert not (tmp_path / "-").exists()
    result = tinyformer("plot", run, "--out", "-", "--follow")
    assert result.exit_code == 2 and "give --out FILE.html, not -" in result.stderr


def test_out_dash_on_a_terminal_is_refused_and_writes_no_bytes_there(tmp_path, monkeypatch,
                                                                     capsys):
    # A PNG's bytes on a terminal are noise on the screen (and escape sequences to it).
    run = write_metrics(tmp_path / "run")
    master, slave = os.openpty()
    os.set_blocking(slave, False)       # bytes written there fail at once, past its buffer
    try:
        with open(slave, "w", closefd=False) as terminal:
            monkeypatch.setattr(sys, "stdout", terminal)
            with pytest.raises(SystemExit) as stopped:
                main.main(["plot", str(run), "--out", "-"])
        os.set_blocking(master, False)
        with pytest.raises(BlockingIOError):            # nothing came to the terminal
            os.read(master, 100)
    finally:
        os.close(master)
        os.close(slave)
    assert stopped.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "which is a terminal here; redirect it (> loss.png)" in line, line
    assert sorted(files_in(run)) == ["metrics.jsonl"]


def test_visible_keeps_a_text_that_shows_as_it_is_and_escapes_what_would_not_show():
    # A graph's every label line goes through visible(): a text with nothing to escape, nearly
    # every one, is the text itself, not rebuilt a character at a time.
    from viz.plots import visible
    text = "decoder.layers.0.attn.qkv: (2, 16, 48) \u00e9\u4e2d"
    assert visible(text) is text
    assert visible("a\u200bb\rc\x1b[0m\udcff") == "a\\u200bb\\rc\\x1b[0m\\udcff"


@pytest.mark.parametrize("value, finite, number", [
    (0.5, True, True), (3, True, True), (float("nan"), False, True), (float("-inf"), False, True),
    (10 ** 400, False, True), (np.float32(1.5), True, True), (np.float64("nan"), False, True),
    (np.int64(3), True, True), (type("Loss", (float,), {})(2.0), True, True),
    (True, False, False), (np.bool_(True), False, False), (None, False, False),
    ("1.0", False, False),
])
def test_a_metrics_value_is_judged_a_number_and_finite_whatever_its_type(value, finite, number):
    from tinyformer.rundir import is_finite_number
    from tinyformer.schema import is_number
    assert is_finite_number(value) is finite and is_number(value) is number


def test_json_numbers_and_missing_values_skip_the_slow_abstract_number_check(tmp_path,
                                                                            monkeypatch):
    """A run's plot and report page judge every value of every record: a plain float or int
    (all that json gives) or a missing value is told without numbers.Real's isinstance, whose
    abstract-class check made the plot of a 50,000-step run take seconds."""
    import numbers
    import types

    import tinyformer.schema
    from viz.plots import nonfinite_steps
    from viz.report_page import metrics_page
    asked = []

    class Counted(type):
        def __instancecheck__(cls, value):
            asked.append(value)
            return isinstance(value, numbers.Real)

    counted = types.SimpleNamespace(**vars(numbers))
    counted.Real = Counted("Real", (), {})
    monkeypatch.setattr(tinyformer.schema, "numbers", counted)     # is_number's, the one check
    run = write_metrics(tmp_path / "run", tail='{"step": 41, "train_loss": NaN}\n')
    assert nonfinite_steps(read_metrics(run / "metrics.jsonl")) == [41]
    assert '"nonfinite":{"steps":[41]' in metrics_page(run).html.replace(" ", "")
    assert asked == []
