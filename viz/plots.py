"""Training curves from a run directory's metrics.jsonl, drawn as a picture (PNG, SVG or PDF).

`tinyformer train` writes one JSON object a line to <run>/metrics.jsonl: `step`, `train_loss`
and `lr` on every line, and `val_loss` (with `val_recall` or `val_accuracy` for some jobs) on
the lines where it evaluated. `plot_metrics` turns that file into one picture:

    top     train loss per step (thin, noisy) with a smoothed line through it, and the
            validation loss at the evaluated steps (markers): the gap between them is
            overfitting, a rising train loss a learning rate too high;
    middle  val_recall / val_accuracy, if the run measured one (0 to 1);
    bottom  the learning rate, to see warmup and decay line up with the loss.

matplotlib is imported inside the function, not at the top: the rest of viz (and the command
line) work without it, and only drawing a plot needs it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import math
import os
import stat
import textwrap
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, Sequence, Union

import regex

from tinyformer.files import StrPath, atomic_write
from tinyformer.rundir import (METRICS, PLOT, is_finite_number, read_metrics,
                               recorded_divergence)
from tinyformer.schema import BadInput, is_number

if TYPE_CHECKING:              # named by the hints alone: imported when a figure is drawn
    from matplotlib.figure import Figure


def loss_shown(loss: float) -> str:
    """A validation loss as the training log prints it ("step 800 (end of training): val_loss
    0.1852"): the figure read off a plot is then the one to grep for, and a sweep's runs a few
    ten-thousandths apart are not shown as equal."""
    return f"{loss:.4f}"


# Validation figures other than the loss that a job may report, with their axis labels.
EXTRA_FIGURES = {"val_recall": "val recall", "val_accuracy": "val accuracy"}

# The suffixes a figure (or viz.graph's drawing) is written under, and the format each names:
# those matplotlib writes without extra programs (its .jpg needs Pillow, .eps is for print),
# which graphviz's dot writes too.
FIGURE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def readable(colour: str) -> tuple[float, float, float]:
    """`colour` (a matplotlib colour) darkened until text in it reads on white at 4.5:1 at
    least (WCAG 2's contrast): a label keeps its line's hue, but tab:orange itself is 2.5:1
    and tab:green 3.3:1, too pale for small numbers."""
    from matplotlib.colors import to_hex, to_rgb

    from .html import contrast

    rgb = to_rgb(colour)
    while contrast(to_hex(rgb), "#ffffff") < 4.5:
        rgb = tuple(0.9 * c for c in rgb)
    return rgb


def smooth(values: Sequence[float], span: float | None = None) -> list[float]:
    """The `values` smoothed by an exponential moving average run forwards and then backwards.

    One forward EMA lags behind: on a falling loss curve it draws above the points, which reads
    as a worse loss than the model had. Running it back over its own output cancels the lag
    (the trick of scipy's filtfilt). Each pass is corrected for its start (as TensorBoard and
    Adam do), else it would begin at 0 and draw a fake dip.

    The backward pass looks ahead, so a run that blows up (3.3, then 7e12, then NaN) would
    draw its first steps at 1e17. The line is kept at or below the highest loss reached so
    far: a rise shows where it happens, never before. (A falling curve never meets that cap.)

    `span` is roughly how many points each pass averages over; by default a fiftieth of the
    run, so the smoothed line looks alike for 200 steps and for 10,000, and at least 4 points,
    so that a short run's line is smoothed too (a span of 1 averages nothing)."""
    if span is None:
        span = max(4, len(values) // 50)
    beta = 1 - 2 / (span + 1)                 # pandas' ewm(span=...) convention

    def ema(xs):
        out, average = [], 0.0
        for t, x in enumerate(xs, start=1):
            average = beta * average + (1 - beta) * x
            out.append(average / (1 - beta ** t) if beta > 0 else average)
        return out

    return [min(average, highest) for average, highest in
            zip(ema(ema(values)[::-1])[::-1], itertools.accumulate(values, max))]


# matplotlib works out an axis's ticks in its values' own units, which overflow near the largest
# float (1.8e308): a run trained with --lr 1e308, which train takes, could not be plotted.
# Values beyond HUGE are drawn in units of a power of ten instead, which the axis's label names.
HUGE = 1e300


def in_units(values: Sequence[float]) -> tuple[list[float], str]:
    """(`values` in units the axis can draw, what the label adds to say so): as they are (and
    "") unless the largest is beyond HUGE, then divided by its power of ten (" (×1e+308)")."""
    largest = max((abs(v) for v in values), default=0.0)
    if largest < HUGE:
        return list(values), ""
    unit = 10.0 ** math.floor(math.log10(largest))
    return [v / unit for v in values], f" (×{unit:.0e})"


def plot_metrics(run_dir_or_metrics_path: StrPath,
                 out_path: PictureOut | None = None) -> PictureOut:
    """Draw a run's training curves to a picture and return the path written.

    `run_dir_or_metrics_path` is a run directory (holding metrics.jsonl) or the metrics file
    itself (or a pipe giving it, read once). `out_path` defaults to loss.png in the run
    directory; its suffix says the format (.png, .svg or .pdf). The file is written
    atomically: a failure leaves no half-written picture. A binary file object
    (sys.stdout.buffer) gets a PNG, as matplotlib's savefig writes one. ValueError (one line)
    when the metrics are missing, empty or not a metrics.jsonl, or for another suffix."""
    run_dir, _ = _run_paths(run_dir_or_metrics_path)
    if out_path is None:
        out_path = os.path.join(run_dir, PLOT)
    fmt = figure_format("plot_metrics", out_path)     # before the drawing: fail fast
    fig = metrics_figure(run_dir_or_metrics_path)     # as given: it finds the metrics itself
    return save_figure(fig, out_path, fmt, dpi=110)


# Where a picture goes: a file's path, or a binary file object (the standard output's buffer).
PictureOut = Union[StrPath, BinaryIO]


def figure_format(caller: str, out_path: PictureOut) -> str:
    """The format the suffix of `out_path` names (png, svg or pdf, in any case), or a one-line
    ValueError naming the suffixes accepted: a picture is never written in a format its name
    does not say. A binary file object, which has no name to say one, gets a PNG."""
    if is_stream(out_path):
        return "png"
    suffix = os.path.splitext(os.fspath(out_path))[1].lower()
    if suffix not in FIGURE_FORMATS:
        raise BadInput(f"{caller}: cannot write a figure to {os.fspath(out_path)!r}; "
                       f"its name should end in {', '.join(FIGURE_FORMATS)} (the suffix "
                       f"says the format)")
    return FIGURE_FORMATS[suffix]


def is_stream(out_path: PictureOut) -> bool:
    """Whether `out_path` is a file object to write to, not a file's path."""
    return hasattr(out_path, "write")


def save_figure(figure: Figure, out_path: PictureOut, fmt: str, dpi: float) -> PictureOut:
    """Write the matplotlib `figure` to `out_path` in the format `fmt` (figure_format's, found
    before the drawing), atomically: a failure leaves what was there. Returns the path.
    A binary file object (sys.stdout.buffer) is written to, and flushed, as it is."""
    if is_stream(out_path):
        figure.savefig(out_path, format=fmt, dpi=dpi)
        out_path.flush()
        return out_path
    with atomic_write(out_path, "wb") as f:
        figure.savefig(f, format=fmt, dpi=dpi)
    return out_path


def title_lines(title: str, width: float, fontsize: float, bold: bool = False) -> str:
    """`title` wrapped to a figure `width` inches wide, in lines of at most as many characters
    as fit there at `fontsize` points (a character about 0.6 of it wide, 0.7 bold): a long run
    name ran past both edges of the picture and was cut off there. Its own line breaks stay."""
    per_line = max(20, int(width * 72 / (fontsize * (0.7 if bold else 0.6))))
    return "\n".join(textwrap.fill(line, per_line) for line in title.split("\n"))


def run_name(run_dir: str) -> str:
    """A run directory's name, for titles ("" for none). The bytes of a name that is not
    valid UTF-8 are shown as U+FFFD, the replacement character: Python reads them as lone
    surrogates, which neither matplotlib nor a UTF-8 file can hold."""
    if not run_dir:
        return ""
    return os.fsencode(os.path.basename(os.path.abspath(run_dir))).decode("utf-8", "replace")


def visible(text: str) -> str:
    """`text` with each character that would not show written as its Python escape: control
    characters ('\\r', '\\x1b'), which a terminal acts on and graphviz refuses; marks that
    are drawn as nothing or turn the text after them around ('\\u200b', '\\u202e'); lone
    surrogates ('\\udcff'), which UTF-8 cannot encode."""
    if text.isprintable():          # nearly every text: kept whole, not rebuilt letter by letter
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _run_paths(run_dir_or_metrics_path):
    source = os.fspath(run_dir_or_metrics_path)
    if os.path.isdir(source):
        return source, os.path.join(source, METRICS)
    return os.path.dirname(source) or ".", source


def is_pipe(path: StrPath) -> bool:
    """Whether `path` is a named pipe (a shell's <(...) gives one): its text can be read once."""
    return os.path.exists(path) and stat.S_ISFIFO(os.stat(path).st_mode)


def _read_run_metrics(run_dir_or_metrics_path):
    """(the run directory, the run's name for titles, its metrics' records). A metrics file
    named itself may be a pipe, read once (`tinyformer plot <(ssh host cat runs/x/metrics.jsonl)`),
    and named by its path (its folder, /dev/fd, names no run); one found in a run directory may
    not be, a named pipe there waiting for a writer that never comes."""
    run_dir, metrics_path = _run_paths(run_dir_or_metrics_path)
    named_itself = metrics_path == os.fspath(run_dir_or_metrics_path)
    records = read_metrics(metrics_path, pipe=named_itself)
    from_pipe = named_itself and is_pipe(metrics_path)
    name = visible(os.fsencode(metrics_path).decode("utf-8", "replace")) if from_pipe \
        else run_name(run_dir)
    return run_dir, name, records


def new_figure(**settings: Any) -> Figure:
    """A matplotlib Figure (`settings` as Figure takes them) that the Agg backend draws in
    memory, so that no screen is needed (a server, CI, ssh), and that a Jupyter cell ending
    with it shows inline whatever the notebook's backend. It is built directly rather than
    through pyplot: pyplot keeps every figure in a global list (a leak if not closed) and
    would switch the backend of a user's notebook too."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    figure = _inline_figure_class()(**settings)
    FigureCanvasAgg(figure)
    return figure


# For each script that matplotlib's own font (DejaVu Sans: Latin, Greek, Cyrillic, Arabic,
# Hebrew) lacks, fonts that have it, on Linux (Noto, which Debian and Ubuntu package as
# fonts-noto-core and fonts-noto-cjk), Windows and macOS: the first installed of each group is
# tried, in turn, for a character the fonts before it lack. Outline fonts only: matplotlib
# cannot scale the bitmaps of a colour emoji font (Noto Color Emoji).
SCRIPT_FONTS = [
    ("Noto Sans CJK SC", "Noto Sans CJK JP", "Microsoft YaHei", "PingFang SC",
     "Hiragino Sans", "WenQuanYi Zen Hei", "Droid Sans Fallback"),     # Chinese, kana, Hangul
    ("Noto Sans Devanagari", "Nirmala UI", "Kohinoor Devanagari"),     # Hindi
    ("Noto Sans Bengali", "Vrinda"), ("Noto Sans Tamil", "Latha"), ("Noto Sans Thai", "Tahoma"),
    ("Noto Sans Symbols2", "Segoe UI Symbol"), ("Symbola", "Noto Emoji", "Segoe UI Emoji"),
    ("Noto Sans", "Arial Unicode MS"),
]


def font_families() -> list[str]:
    """The font families a figure's text is drawn with: matplotlib's own (the user's
    `font.family`), then the first installed font of each group of SCRIPT_FONTS. matplotlib
    draws each character with the first of them that has it, so that a label in Chinese or
    Hindi is drawn, not a row of boxes, wherever such a font is installed."""
    import matplotlib
    from matplotlib import font_manager
    installed = {font.name for font in font_manager.fontManager.ttflist}
    found = [next((name for name in group if name in installed), None) for group in SCRIPT_FONTS]
    return list(matplotlib.rcParams["font.family"]) + [name for name in found if name]


# A character drawn as something: not a space, a control character, nor one that fonts draw as
# nothing (a zero-width joiner, the variation selector that asks for an emoji's colour form).
DRAWN = regex.compile(r"[^\p{C}\p{Z}\p{Default_Ignorable_Code_Point}]")


def unshown_characters(figure: Figure) -> str:
    """The characters of `figure`'s texts that none of their fonts has, which it draws as
    boxes, each once, in order; "" when every one is drawn. Call it once the figure is drawn
    (saved): matplotlib makes most tick labels then. Spaces and marks that are drawn as
    nothing (a zero-width joiner, an emoji's variation selector) are not counted."""
    from matplotlib import font_manager
    from matplotlib.text import Text

    @functools.cache
    def font(family):
        return font_manager.get_font(font_manager.findfont(
            font_manager.FontProperties(family=[family])))

    unshown = {}
    for text in figure.findobj(Text):
        families = text.get_fontproperties().get_family()
        for c in text.get_text() if text.get_visible() else "":
            if DRAWN.match(c) and not any(font(family).get_char_index(ord(c))
                                          for family in families):
                unshown[c] = True
    return "".join(unshown)


@contextlib.contextmanager
def literal_text() -> Iterator[None]:
    """matplotlib settings under which every text is drawn as written. By default a text with
    two `$` in it is read as TeX maths: a token, a prompt or a run named "we pay $$ 5 $$"
    failed to draw (ValueError), and "price $x^2$" was drawn as a formula; and a character
    that matplotlib's own font lacks (Chinese, Hindi) was drawn as a box, even where a font
    that has it is installed (font_families). The settings are read when a text is made, so
    the functions that build a figure run under them (as a decorator: `@literal_text()`)."""
    import matplotlib
    # Numbers follow suit: written as 1e-3 where TeX would have made "10" with a raised "-3".
    with matplotlib.rc_context({"text.parse_math": False, "axes.formatter.use_mathtext": False,
                                "font.family": font_families()}):
        yield


@functools.cache
def _inline_figure_class():
    from matplotlib.figure import Figure

    class InlineFigure(Figure):
        """A Figure with the PNG that Jupyter shows for it: a plain Figure has none until
        `%matplotlib inline` (or a pyplot figure) turns on matplotlib's own display."""

        def _repr_png_(self):
            picture = io.BytesIO()
            self.savefig(picture, format="png")
            return picture.getvalue()

    return InlineFigure


@literal_text()
def metrics_figure(run_dir_or_metrics_path: StrPath) -> Figure:
    """The training curves as a matplotlib Figure: what plot_metrics writes, and what a
    Jupyter notebook shows inline when a cell ends with `viz.metrics_figure("runs/gpt")`.
    A loss of NaN or infinity (a run that diverged) has no point: a red tick at the top of the
    loss panel marks its step, and the legend counts them; so is the step where the run
    stopped as it diverged marked, as its manifest records it."""
    run_dir, name, records = _read_run_metrics(run_dir_or_metrics_path)   # before matplotlib: bad
    # input fails fast

    from matplotlib.ticker import MaxNLocator

    # A diverged run logs NaN losses, which have no point to draw.
    trained = [r for r in records if is_finite_number(r["train_loss"])]
    steps = [r["step"] for r in trained]
    evaluated = [r for r in records if is_finite_number(r.get("val_loss"))]
    losses, loss_unit = in_units([r["train_loss"] for r in trained]
                                 + [r["val_loss"] for r in evaluated])
    train_loss, val_loss = losses[:len(trained)], losses[len(trained):]
    extras = [key for key in EXTRA_FIGURES
              if any(is_finite_number(r.get(key)) for r in records)]
    has_lr = any(is_finite_number(r.get("lr")) for r in records)

    # One panel for the losses, tall; smaller ones below for the extra figures and the lr.
    panels = ["loss"] + (["extra"] if extras else []) + (["lr"] if has_lr else [])
    heights = {"loss": 3, "extra": 1.3, "lr": 1}
    fig = new_figure(figsize=(9, 3.2 + 1.5 * (len(panels) - 1)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [heights[p] for p in panels]})[:, 0]
    axes = dict(zip(panels, axes))
    fig.suptitle(title_lines(f"training run: {name}", 9, 13, bold=True),
                 fontsize=13, fontweight="bold")

    # A line through one point draws nothing: a run of one step (or stopped after its first)
    # marks its point instead.
    dot = "o" if len(steps) == 1 else None
    ax = axes["loss"]
    ax.plot(steps, train_loss, color="tab:blue", linewidth=0.8, alpha=0.4,
            label="train loss (each step)")
    ax.plot(steps, smooth(train_loss), color="tab:blue", linewidth=2, marker=dot,
            label="train loss (smoothed)")
    if evaluated:
        ax.plot([r["step"] for r in evaluated], val_loss,
                color="tab:orange", marker="o", markersize=5, linewidth=1.2,
                label="validation loss")
        ax.annotate(loss_shown(val_loss[-1]), (evaluated[-1]["step"], val_loss[-1]),
                    textcoords="offset points", xytext=(0, 8), ha="center",
                    color=readable("tab:orange"), fontsize=9)
        # A last loss at the top of the panel (a run that overfits) had its label struck
        # through by the panel's top edge: the panel goes up far enough to hold it.
        low, high = ax.get_ylim()
        ax.set_ylim(low, max(high, val_loss[-1] + 0.15 * (high - low)))
    _mark_unfinished_losses(ax, records, diverged=diverged_step(run_dir, records))
    ax.set_ylabel("loss (cross-entropy, nats)" + loss_unit)
    ax.grid(True, alpha=0.3)
    # Wherever the curves leave room: a fixed corner hid a run that blew up at its end.
    ax.legend(loc="best", fontsize=9)

    if extras:
        ax = axes["extra"]
        for key, color in zip(extras, ("tab:green", "tab:purple")):
            points = [r for r in records if is_finite_number(r.get(key))]
            ax.plot([r["step"] for r in points], [r[key] for r in points], color=color,
                    marker="o", markersize=4, linewidth=1.2, label=EXTRA_FIGURES[key])
            # The panel is short: a last value near 1 is labelled below its point, where
            # a rising curve leaves room, else the label would cross the panel's top edge.
            value = points[-1][key]
            ax.annotate(f"{value:.2f}", (points[-1]["step"], value),
                        textcoords="offset points", xytext=(0, -7 if value > 0.5 else 7),
                        ha="center", va="top" if value > 0.5 else "bottom",
                        color=readable(color), fontsize=9)
        ax.set_ylim(-0.05, 1.1)               # recall and accuracy are fractions
        ax.set_ylabel(EXTRA_FIGURES[extras[0]] if len(extras) == 1 else "fraction")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=9)

    if has_lr:
        ax = axes["lr"]
        points = [r for r in records if is_finite_number(r.get("lr"))]
        lr, lr_unit = in_units([r["lr"] for r in points])
        ax.plot([r["step"] for r in points], lr, color="tab:gray",
                linewidth=1.5, marker="o" if len(points) == 1 else None)
        ax.set_ylabel("learning rate" + lr_unit)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax.grid(True, alpha=0.3)

    axes[panels[-1]].set_xlabel("step")
    # Steps are whole numbers: no tick at step 1.5, nor at 0.98 when there is one step.
    axes[panels[-1]].xaxis.set_major_locator(
        MaxNLocator(integer=True, min_n_ticks=1, steps=[1, 2, 5, 10]))
    return fig


# The red of a NaN or an infinity in every picture of viz: the ticks that mark such a loss here
# (a colour no curve of the panel has), and a NaN gradient, weight or probability elsewhere
# (outside viridis, which fills the rest).
NAN_COLOUR = "#e31a1c"


# The values of a record that are losses: the loss panel's and chart's.
LOSSES = ("train_loss", "val_loss")


def nonfinite_steps(records: Sequence[dict[str, Any]],
                    keys: Sequence[str] = LOSSES) -> list[int]:
    """The steps of metrics.jsonl's `records` whose value of any of `keys` (by default the
    train or validation loss) is a number but NaN or infinite (a run that diverged): such a
    value has no point to draw, so each picture of it marks its step instead (the loss plot,
    the comparison, the report page's loss and gradient norm)."""
    def infinite(value):                  # a number, but none a float holds finitely
        return is_number(value) and not is_finite_number(value)

    return [r["step"] for r in records if any(infinite(r.get(key)) for key in keys)]


def nonfinite_label(steps: Sequence[int], what: str = "loss") -> str:
    """What a legend says of the steps marked by nonfinite_steps, whose `what` (the loss,
    the gradient norm) is NaN or infinite."""
    return (f"{what} NaN or inf, not drawn: {len(steps):,} "
            f"step{'' if len(steps) == 1 else 's'}, from step {steps[0]:,}")


def diverged_step(run_dir: StrPath, records: Sequence[dict[str, Any]]) -> int | None:
    """The step where the run in `run_dir` stopped as it diverged, as its manifest records it,
    or None. The trainer logs only finite numbers, so the curves of such a run end the step
    before it: marked, they do not seem merely to stop. (A step the metrics reach already is
    no divergence of theirs.)"""
    step = (recorded_divergence(run_dir) or {}).get("step")
    if isinstance(step, int) and records and step > records[-1]["step"]:
        return step
    return None


def diverged_label(step: int) -> str:
    """What a legend says of the step where a run diverged (diverged_step)."""
    return f"diverged at step {step:,}: NaN or inf, the run stopped"


def _mark_unfinished_losses(ax, records, colour=NAN_COLOUR, label=True, diverged=None):
    """A tick at the top of the loss panel (red unless `colour` says) at each step whose train
    or validation loss is NaN or infinite, named in the legend with their count and the first
    (`label=False`: not named), and at the step `diverged` (diverged_step) where the run
    stopped: the curves of a run that diverged would seem to stop (or, every loss NaN, the
    panel be empty) with nothing said. Returns the steps marked."""
    def tick(marked, legend):
        # x at the step, y at the top of the panel whatever its scale
        ax.plot(marked, [0.97] * len(marked), transform=ax.get_xaxis_transform(),
                linestyle="none", marker="|", markersize=10, markeredgewidth=1.5, color=colour,
                label=legend if label else "_nolegend_")

    steps = nonfinite_steps(records)
    if steps:
        tick(steps, nonfinite_label(steps))
    if diverged is not None:
        tick([diverged], diverged_label(diverged))
        steps = steps + [diverged]
    return steps


# A run a line style: the ten colours of matplotlib's tab10, then each again dashed, then
# dotted, so that a sweep of a dozen runs or more still tells them apart.
COMPARISON_STYLES = [(colour, style) for style in ("-", "--", ":")
                     for colour in [f"C{i}" for i in range(10)]]


@literal_text()
def comparison_figure(run_dirs: Sequence[StrPath]) -> Figure:
    """Several runs' curves in one matplotlib Figure, a colour a run, on one step axis: each
    run's smoothed train loss and its validation loss (markers), its recall or accuracy if it
    measured one, and its learning rate on a log scale, so that peaks a decade apart both
    show. The legend names each run (its directory's name, or its path where names repeat)
    with its last validation loss, the figure to pick the best by. A sweep's runs may differ
    in length and schedule: each is drawn for the steps it logged. A loss of NaN or infinity
    (a run that diverged) is marked as the loss plot marks it, by a tick at the top of the
    loss panel, in the run's colour, and the legend says from which step."""
    from matplotlib.ticker import MaxNLocator

    read = [_read_run_metrics(run) for run in run_dirs]       # before drawing: fail fast
    runs = [records for _, _, records in read]
    names = [name for _, name, _ in read]
    if len(set(names)) < len(names):           # runs/a/gpt and runs/b/gpt: their paths
        names = [visible(os.fsencode(os.path.normpath(run_dir)).decode("utf-8", "replace"))
                 for run_dir, _, _ in read]
    extras = [key for key in EXTRA_FIGURES
              if any(is_finite_number(r.get(key)) for records in runs for r in records)]
    panels = ["loss"] + extras + ["lr"]
    heights = {"loss": 3, "lr": 1.3, **dict.fromkeys(extras, 1.3)}
    fig = new_figure(figsize=(10, 3.6 + 1.5 * (len(panels) - 1)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [heights[p] for p in panels]})[:, 0]
    axes = dict(zip(panels, axes))
    fig.suptitle(f"{len(runs):,} training run{'' if len(runs) == 1 else 's'}", fontsize=13,
                 fontweight="bold")

    def finite(records, key):
        points = [r for r in records if is_finite_number(r.get(key))]
        return [r["step"] for r in points], [r[key] for r in points]

    for (run_dir, _, _), records, name, (colour, style) in zip(
            read, runs, names, itertools.cycle(COMPARISON_STYLES)):
        steps, train_loss = finite(records, "train_loss")
        val_steps, val_loss = finite(records, "val_loss")
        # The last validation loss logged, NaN too: a run that diverged after its last finite
        # one would be named by a loss it no longer had, and could look the best of the sweep.
        logged = [r["val_loss"] for r in records if is_number(r.get("val_loss"))]
        last = f"val {loss_shown(logged[-1])}" if logged else "no validation"
        unfinished = nonfinite_steps(records)
        if unfinished:
            last += f", loss NaN or inf from step {unfinished[0]:,}"
        diverged = diverged_step(run_dir, records)
        if diverged is not None:
            last += f", diverged at step {diverged:,}"
        axes["loss"].plot(steps, smooth(train_loss), color=colour, linestyle=style,
                          linewidth=1.5, marker="o" if len(steps) == 1 else None,
                          label=f"{name}: {last}")
        axes["loss"].plot(val_steps, val_loss, color=colour, linestyle="none", marker="o",
                          markersize=4)
        # Its NaN and infinite losses are marked as the loss plot marks them, in its colour.
        _mark_unfinished_losses(axes["loss"], records, colour, label=False, diverged=diverged)
        for key in extras:
            axes[key].plot(*finite(records, key), color=colour, linestyle=style, marker="o",
                           markersize=3, linewidth=1.2)
        lr_steps, lr = finite(records, "lr")
        axes["lr"].plot(lr_steps, lr, color=colour, linestyle=style, linewidth=1.2,
                        marker="o" if len(lr_steps) == 1 else None)

    axes["loss"].set_ylabel("loss (cross-entropy, nats)\nline: train, smoothed; dots: val")
    # Outside the panel, on the right: a dozen entries inside would hide the curves' ends.
    axes["loss"].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8,
                        title="run: last val loss", title_fontsize=8)
    for key in extras:
        axes[key].set_ylim(-0.05, 1.05)
        axes[key].set_ylabel(EXTRA_FIGURES[key])
    # A log scale needs a positive value to draw (a run logged at lr 0 alone has none).
    if any(y > 0 for line in axes["lr"].get_lines() for y in line.get_ydata()):
        axes["lr"].set_yscale("log")
        _label_as_many_as_fit(axes["lr"])
    axes["lr"].set_ylabel("learning rate")
    for ax in axes.values():
        ax.grid(True, alpha=0.3)
    axes["lr"].set_xlabel("step")
    axes["lr"].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1,
                                                   steps=[1, 2, 5, 10]))
    return fig


def _label_as_many_as_fit(ax):
    """Label the ticks of `ax`'s log y axis, major and minor, only as many as fit one above
    the other: the roundest first (the decades, then 2 and 5 times them, then the other
    multiples, then matplotlib's finer ticks of a range inside a decade, 2.925e-3), each if it
    keeps clear of those labelled. matplotlib's own choice labels 2, 3, 4 and 6 times a decade
    and, within a decade, nine ticks: in a panel an inch tall they overlap. A label is written
    as 2e-4, as literal_text writes numbers: matplotlib's own is TeX, which a label made under
    literal_text showed as written ("$\\mathdefault{2\\times10^{-4}}$")."""
    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties
    from matplotlib.ticker import FuncFormatter

    def text(value):        # to 6 figures, no trailing zeros: 2e-4, 2.5e-3
        mantissa, exponent = f"{value:.5e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"

    size = FontProperties(size=rcParams["ytick.labelsize"]).get_size_in_points()

    def roundness(value):
        mantissa = f"{value / 10 ** math.floor(math.log10(value)):.6g}"
        return (len(mantissa.replace(".", "")), mantissa not in ("1", "2", "5"), mantissa != "1",
                value)

    def label(value, position=None):
        low, high = sorted(ax.get_ylim())
        ticks = [v for v in set(ax.yaxis.get_majorticklocs()) | set(ax.yaxis.get_minorticklocs())
                 if low <= v <= high]
        room = 1.5 * size * ax.figure.dpi / 72                 # a label's height, and a gap
        shown = []                                             # (value, its y in pixels)
        for tick in sorted(ticks, key=roundness):
            y = ax.transData.transform((0, tick))[1]
            if all(abs(y - other) >= room for _, other in shown):
                shown.append((tick, y))
        return text(value) if any(math.isclose(value, v) for v, _ in shown) else ""

    ax.yaxis.set_major_formatter(FuncFormatter(label))
    ax.yaxis.set_minor_formatter(FuncFormatter(label))
