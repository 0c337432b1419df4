"""What the `graph`, `attention`, `lens` and `plot` commands write, one function each, the
format chosen by the file's suffix: a picture (svg, png, pdf, or graphviz's dot source) or the
interactive page (.html). Each returns the path written; a problem with the input is a
ValueError of one line, raised before anything is written.
"""

from __future__ import annotations

import errno
import functools
import itertools
import os
import warnings
from typing import Callable, Literal, Mapping

from tinyautograd.nn import record_module_paths
from tinyformer.checkpoint import load_model
from tinyformer.files import StrPath, command_line, describe_os_error
from tinyformer.lens import Lens
from tinyformer.rundir import METRICS, is_training, read_manifest, recorded_checkpoint
from tinyformer.schema import BadInput, counted
from tinyformer.tokenizers import Tokenizer

from .attention import MAX_TOKENS, AttentionMap, attention_figure
from .attention_page import attention_page
from .examples import Example, check_example, example, prepare_checkpoint_step
from .graph import (PNG_SIDE_LIMIT, at_png_limit, draw_backward, draw_graph, render,
                    retain_grads, unshown_in_graph)
from .graph_page import graph_page
from .lens import lens_figure
from .lens_page import lens_page
from .plots import (PictureOut, _run_paths, comparison_figure, figure_format, is_pipe, is_stream,
                    plot_metrics, run_name, save_figure, unshown_characters)
from .report_page import follow_run, metrics_page

__all__ = ["GRAPH_SUFFIXES", "step_to_draw", "prepare_step", "write_graph", "write_attention",
           "write_lens", "write_curves", "write_comparison"]

GRAPH_SUFFIXES = (".svg", ".png", ".pdf", ".dot", ".gv", ".html")


def _is_page(path):
    return not is_stream(path) and str(path).lower().endswith(".html")


def step_to_draw(example_name: str | None = None, checkpoint_dir: str | None = None,
                 prompt: str | None = None) -> Example:
    """The computation to draw: a built-in example, or the training step on `prompt` of the
    checkpoint in `checkpoint_dir`; ValueError, one line, for neither or both, or a prompt
    missing, given to an example, or one the checkpoint cannot read.

    Recording which module made each op costs little, and lets the picture box the ops by
    module (and collapse them with `depth`). The model is built inside the recording, so the
    outermost module called is taken as the root."""
    return prepare_step(example_name, checkpoint_dir, prompt)()


def prepare_step(example_name: str | None = None, checkpoint_dir: str | None = None,
                 prompt: str | None = None, warn: Callable[[str], None] | None = None
                 ) -> Callable[[], Example]:
    """step_to_draw in two parts: every check of its input here, the checkpoint loaded
    (ValueError, one line, as step_to_draw says); then the function that computes the step.
    `tinyformer graph` says an error of the first part as bad input, of the second as a bug.
    `warn(note)`, where given, hears of a prompt the checkpoint takes but never trained on
    (see prepare_checkpoint_step)."""
    if example_name is None and checkpoint_dir is None:
        raise BadInput("give one of --example NAME or --checkpoint DIR")
    if example_name is not None and checkpoint_dir is not None:
        raise BadInput("give --example NAME or --checkpoint DIR, not both")
    if checkpoint_dir is not None and prompt is None:
        raise BadInput("--checkpoint needs --prompt TEXT: the batch whose step is drawn")
    if example_name is not None and prompt is not None:
        raise BadInput("--prompt is the text of a --checkpoint's batch; an --example brings "
                       "its own input: drop --prompt")
    if example_name is not None:
        check_example(example_name)
        build = functools.partial(example, example_name)
    else:
        build = prepare_checkpoint_step(*load_model(checkpoint_dir), prompt, warn)

    def computed():
        with record_module_paths():
            return build()
    return computed


def write_graph(out_path: str, shown: Example, what: Literal["forward", "backward"] = "forward",
                show_data: bool = False, show_grad: bool = False, flow: bool = False,
                max_nodes: int = 1000, depth: int | None = None, fold_repeats: bool = False,
                title: str | None = None, log: Callable[[str], None] = print) -> StrPath:
    """Draw the forward or backward graph of `shown` (step_to_draw's); a page is headed by
    `title` (graph_page's, by default), a picture titled by it and `what` it shows. `log`
    hears a note when a PNG is too big to read, and one naming the characters of a PNG's or
    PDF's title that no installed font has."""
    folding = dict(depth=depth, fold_repeats=fold_repeats)
    drawn = dict(params=shown.params, inputs=shown.inputs, show_data=show_data,
                 show_grad=show_grad, color_by_grad=flow, max_nodes=max_nodes, **folding)
    titled = title and f"{title} ({what})"
    if what == "backward" and not _is_page(out_path):
        dot = draw_backward(shown.loss, title=titled, **drawn)
    else:
        if show_grad or flow:              # the forward graph's gradients: a backward first
            retain_grads(shown.loss)       # so that ops, not only leaves, show theirs
            shown.loss.backward(retain_graph=True)
        if _is_page(out_path):             # a page holds both graphs, and opens on one
            return graph_page(shown.loss, view=what, title=title, **drawn).save(out_path)
        dot = draw_graph(shown.loss, title=titled, **drawn)
    written = render(dot, out_path)
    if str(written).lower().endswith(".png") and at_png_limit(written):
        log(f"note: the graph is too big for a PNG (at most {PNG_SIDE_LIMIT} pixels a side), "
            f"so {written} is drawn smaller and its labels may not read; --depth N or "
            f"--fold-repeats draws it by module, and an .svg or .html keeps every label sharp")
    # dot draws a PNG's or PDF's text itself, with the installed fonts (an SVG's is drawn by
    # whatever shows it): a run's name or a prompt in Chinese, or an emoji, showed as boxes.
    if titled and str(written).lower().endswith((".png", ".pdf")):
        _note_unshown(unshown_in_graph(titled), written, log)
    return written


def write_attention(out_path: str, maps: Mapping[str, AttentionMap], name: str, kind: str,
                    run_dir: str = "", source: str | None = None,
                    log: Callable[[str], None] = print) -> str:
    """A checkpoint's attention maps (attention_maps's) as a PNG of every layer and head of
    map `name`, or as a page holding them all, opened on `name`; titled by the run, and by
    `source`, an encoder-decoder's prompt (its decoder's map shows only the translation).
    `log` hears a note naming the characters of a picture that no installed font has."""
    run = run_name(run_dir)
    translating = "" if source is None else f", translating {source!r}"
    if _is_page(out_path):
        return attention_page(maps, f"{run} ({kind}): attention{translating}",
                              which=name).save(out_path)
    chosen = maps[name]
    layers, heads = chosen.weights.shape[:2]
    title = (f"{run} ({kind}): {chosen.description} - {counted(layers, 'layer')} x "
             f"{counted(heads, 'head')}")
    if source is not None:         # a line of its own: wrapped into the line above, it broke
        title += f"\ntranslating {source!r}"               # "2 layers / x 4 heads" apart
    fmt = figure_format("write_attention", out_path)     # before the drawing: fail fast
    return _save(lambda: attention_figure(chosen.weights, chosen.queries, chosen.keys, title,
                                          first_query=chosen.first_query),
                 out_path, fmt, 100, log)


def write_lens(out_path: str, table: Lens, tokens: list[str], tokenizer: Tokenizer,
               run_dir: str = "", source: str | None = None,
               log: Callable[[str], None] = print, max_positions: int = MAX_TOKENS) -> str:
    """The logit lens (viz.lens.lens_of_prompt's table) as a PNG (or the SVG or PDF its suffix
    says) or a page. `source`: an encoder-decoder's prompt, named in the title, as its rows
    are the translation and the source is nowhere else in the picture. `log` hears a note
    naming the characters of a picture that no installed font has. A picture shows the last
    `max_positions` positions at most (lens_figure's), a page every one."""
    title = f"{run_name(run_dir)}: the logit lens"
    if source is not None:
        title += f", translating {source!r}"      # as write_attention's
    if _is_page(out_path):
        return lens_page(table, tokens, tokenizer, title).save(out_path)
    fmt = figure_format("write_lens", out_path)          # before the drawing: fail fast
    return _save(lambda: lens_figure(table, tokens, tokenizer, title=title,
                                     max_positions=max_positions), out_path, fmt, 120, log)


SHOWN_CHARACTERS = 20       # the note names the first few of a picture's undrawn characters


def _save(draw, out_path, fmt, dpi, log):
    """Save the figure that `draw()` makes; then, if some of its characters are in no
    installed font (Chinese, Hindi, emoji on a machine with matplotlib's font alone), tell
    `log` which, and what to do, in one note: matplotlib warns once per character, with its
    own source line, and the picture shows boxes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        figure = draw()
        save_figure(figure, out_path, fmt, dpi)
    _note_unshown(unshown_characters(figure), out_path, log)
    return out_path


def _note_unshown(unshown, out_path, log):
    """Tell `log`, in one note, which characters no installed font has (`unshown`, "" for
    none), drawn as boxes in the picture at `out_path`, and what to do: the note of every
    picture, matplotlib's and graphviz's."""
    if unshown:
        more = "…" if len(unshown) > SHOWN_CHARACTERS else ""
        where = "the picture" if is_stream(out_path) else out_path
        log(f"note: no installed font has {unshown[:SHOWN_CHARACTERS]}{more}, drawn as boxes "
            f"in {where}; install fonts that do (Debian or Ubuntu: apt install "
            f"fonts-noto-core fonts-noto-cjk fonts-symbola) and draw it again, or write a "
            f"page (.html), which the browser draws with its own fonts")


def write_curves(run_dir: str, out_path: PictureOut | None = None, follow: bool = False,
                 log: Callable[[str], None] = print) -> PictureOut:
    """A run's curves as a PNG [the run's loss.png] (to a binary file object too, such as the
    standard output's), or its report page. With `follow`, the page is rewritten as the run
    trains (and reloads itself), until the run ends. `run_dir` may be a pipe giving the
    metrics, read once. ValueError for metrics that are missing or not a metrics.jsonl."""
    if follow and not (out_path and _is_page(out_path)):
        raise BadInput("--follow needs an .html --out (a page that reloads itself)")
    if is_pipe(run_dir):            # refused before the pipe is read, which it can be once
        if follow:
            raise BadInput(f"--follow reads the metrics again each time the run writes "
                           f"some, and the pipe {run_dir} can be read once; give the run "
                           f"directory (or its metrics.jsonl)")
        if out_path is None:
            raise BadInput(f"the metrics of the pipe {run_dir} are in no run directory to "
                           f"write loss.png in; give --out FILE.png (or .html)")
    _refuse_before_first_step(run_dir, follow)
    if out_path is None or not _is_page(out_path):
        try:
            return plot_metrics(run_dir, out_path)
        except OSError as e:
            # The picture goes into the run directory by default, which may be read-only
            # (another's, an archive's): the curves can still be drawn elsewhere.
            if out_path is not None or e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise BadInput(f"{describe_os_error(e).split(';')[0]}; give --out FILE.png (or "
                           f".html) to draw the curves elsewhere") from None
    if follow:
        return follow_run(run_dir, out_path, log=log)
    report = metrics_page(run_dir)
    if report.status["state"] == "running":
        log("note: the run is still training; --follow keeps the page up to date")
    return report.save(out_path)


def write_comparison(run_dirs: list[str], out_path: PictureOut,
                     log: Callable[[str], None] = print) -> PictureOut:
    """Several runs' curves in one picture (comparison_figure's), to compare a sweep's runs,
    with a note to `log` where their losses are of different models or tokenizers (loss_kinds);
    ValueError for a page, which is one run's, a run given twice, or metrics that are missing
    or not a metrics.jsonl."""
    if _is_page(out_path):
        raise BadInput("a report page is one run's; give --out FILE.png to compare several "
                       "runs in one picture")
    fmt = figure_format("write_comparison", out_path)   # before the drawing: fail fast
    for run_dir in run_dirs:
        _refuse_before_first_step(run_dir)
    # One run named twice (runs/x and runs/./x/, or its metrics.jsonl) would be drawn twice,
    # its second line hiding the first, as if two runs had trained alike.
    # Compared by their metrics files: two runs' files copied into one folder are two runs.
    metrics = [_run_paths(run)[1] for run in run_dirs]
    for (a, metrics_a), (b, metrics_b) in itertools.combinations(zip(run_dirs, metrics), 2):
        if os.path.exists(metrics_a) and os.path.exists(metrics_b) \
                and os.path.samefile(metrics_a, metrics_b):
            raise BadInput(f"{os.fspath(a)!r} and {os.fspath(b)!r} are the same run; give "
                           f"each run once")
    kinds = loss_kinds(run_dirs)
    if len(kinds) > 1:
        # The loss is a cross-entropy per token: over another objective (a BERT's hidden
        # tokens, a task's answers) or per another tokenizer's tokens (a BPE token holds
        # several characters), its value is on another scale, and the lowest is not the best.
        shown = "; ".join(f"{kind} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                          for kind, names in kinds.items())
        log(f"note: a loss per token compares runs of one model and tokenizer, and these "
            f"runs' are not: {shown}")
    return _save(lambda: comparison_figure(run_dirs), out_path, fmt, 110, log)


def loss_kinds(run_dirs: list[str]) -> dict[str, list[str]]:
    """{what a run's loss is per ("gpt on char tokens"): the names of the runs of `run_dirs`
    whose loss it is}, from their manifests; a run with none (a metrics.jsonl alone) is left
    out, unknown."""
    kinds: dict[str, list[str]] = {}
    for run_dir in run_dirs:
        directory = _run_paths(run_dir)[0]
        try:
            settings = (read_manifest(directory) or {}).get("settings")
        except (OSError, ValueError):
            settings = None
        if not isinstance(settings, dict):
            continue
        model, task, tokenizer = (settings.get(key) for key in ("model", "task", "tokenizer"))
        if task:
            kind = f"{model} on the {task} task"
        elif tokenizer == "bpe":
            kind = f"{model} on bpe tokens, vocabulary {settings.get('vocab_size')}"
        elif tokenizer == "char":
            kind = f"{model} on char tokens"
        else:                                        # a tokenizer file's path
            kind = f"{model} on the tokens of {os.path.basename(str(tokenizer))}"
        kinds.setdefault(kind, []).append(run_name(directory))
    return kinds


def _refuse_before_first_step(run_dir, follow=False):
    """ValueError, saying what to do, for a run of ours with no metrics: one training its
    first step (unless `follow`ed, when the page waits for it), one stopped before it, or one
    with a checkpoint, past its first step, whose metrics.jsonl is gone or emptied since.
    Not that its metrics.jsonl does not exist and a run should be trained first."""
    manifest = _run_without_metrics(run_dir)
    if manifest is None:
        return
    training = is_training(run_dir)
    if training and follow:
        return
    checkpoint = recorded_checkpoint(run_dir, manifest)
    if checkpoint is not None:
        # Its steps are not in the checkpoint: the curves are that file's alone.
        metrics = os.path.join(run_dir, METRICS)
        what = "missing" if not os.path.exists(metrics) else "empty"
        raise BadInput(f"{run_dir!r} is a run with a checkpoint at step {checkpoint:,}, but "
                       f"its {METRICS}, which holds the curves, is {what}; put that file "
                       f"back (from a copy of the run) to plot them")
    if training:
        # The whole command: a page follows one run, so among runs compared, this one alone.
        follow_it = command_line("plot", run_dir, "--out", "report.html", "--follow")
        raise BadInput(f"{run_dir!r} is a run training its first step, with no metrics "
                       f"yet; try again in a moment, or follow it: `{follow_it}`")
    raise BadInput(f"{run_dir!r} is a run that stopped before its first step, so "
                   f"there is nothing to plot; "
                   f"`{command_line('train', '--resume', run_dir)}` starts it again")


def _run_without_metrics(run_dir):
    """The manifest of `run_dir` where it is a run of ours without metrics: its
    metrics.jsonl is missing or empty (the trainer opens it as its first step begins);
    else None."""
    metrics = os.path.join(run_dir, METRICS)
    try:
        manifest = read_manifest(run_dir)
        # A link to /dev/zero has no size either, but is no empty file: read_metrics says so.
        without = (not os.path.exists(metrics)
                   or os.path.isfile(metrics) and os.path.getsize(metrics) == 0)
    except (OSError, ValueError):          # not a directory, a damaged manifest: not ours
        return None
    return manifest if without else None


def plot_after_training(run_dir: str) -> str:
    """The line `tinyformer train` ends with: where the run's loss.png went, or why there is
    none (a run stopped before its first step has no metrics; a full disk): a note, not an
    error, the run being saved."""
    try:
        return f"loss plot: {plot_metrics(run_dir)}"
    except ValueError as e:
        return f"note: no loss plot ({str(e).splitlines()[0]})"
    except OSError as e:
        # A full disk, say: the run's checkpoint is saved, and the curves can be drawn later.
        later = f"draw it with `{command_line('plot', run_dir)}`"
        return f"note: no loss plot ({describe_os_error(e, then=later)})"
