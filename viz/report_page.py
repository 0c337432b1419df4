"""The run report: a run's training curves as a page, with values read by hovering or keys.

    metrics_page("runs/gpt").save("report.html")

The curves are those of the PNG (viz.plots), drawn by the page's script (viz/assets/report.js)
from the numbers of metrics.jsonl embedded in it: the train loss at each step and smoothed, the
validation loss where the run evaluated, recall or accuracy if it measured one, the gradient
norm if it recorded one, and the learning rate. A loss of NaN or infinity (a run that diverged)
has no point: a red tick at the top of the loss chart marks its step, as in the PNG, and so
does one at the step where the run stopped as it diverged (its manifest says which), and one
at the top of the gradient norm's (or recall's) chart for a NaN or infinite value.
Hovering a chart shows every value at that step (or the arrow keys, once Tab is on a chart; a
line under the charts says them too).

A page reads nothing once written, so a page of a run still going is only as new as the
moment it was written. `run_status` tells from the run directory whether the run is going:
`tinyformer plot DIR --out report.html --follow` rewrites the page as the run goes, and the
page, written with `refresh=`, reloads itself from disk every so many seconds until a page
says the run has ended.
"""

from __future__ import annotations

import html
import os
import time
from typing import Callable

from tinyformer.files import StrPath, command_line

from .html import Page, number, page
from tinyformer.rundir import (is_finite_number, is_training, new_run_advice, read_metrics,
                               run_status)
from tinyformer.schema import counted, is_number

from .plots import (EXTRA_FIGURES, LOSSES, _read_run_metrics, _run_paths,
                    diverged_label, diverged_step, nonfinite_label, nonfinite_steps, smooth)

# Figures a run may record besides the loss and learning rate, with their chart titles.
CURVES = {**EXTRA_FIGURES, "grad_norm": "gradient norm"}
FOLLOW_SECONDS = 5           # how often a followed page is rewritten and reloads itself


def metrics_page(run_dir_or_metrics_path: StrPath, refresh: float | None = None) -> Page:
    """The report page of a run directory (or of its metrics.jsonl). With `refresh` (seconds),
    a page of a run that is still going reloads itself that often. ValueError (one line) when
    the metrics are missing, empty or not a metrics.jsonl."""
    run_dir, name, records = _read_run_metrics(run_dir_or_metrics_path)
    status = run_status(run_dir, records)
    title = f"training run: {name}"

    def points(key):
        return [[r["step"], number(r[key])] for r in records if is_finite_number(r.get(key))]

    def nonfinite(keys, what):
        # The steps whose value has no point to draw (NaN or infinite), marked as the PNG
        # marks a loss's, and what the legend says of them.
        steps = nonfinite_steps(records, keys)
        return {"steps": steps, "label": nonfinite_label(steps, what) if steps else None}

    train = points("train_loss")
    # The step where the run stopped as it diverged (its manifest's), after its last record:
    # ticked on the loss chart as on the PNG, else its curves would seem merely to stop.
    diverged = diverged_step(run_dir, records)
    data = {
        "title": title, "status": status, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "refresh": refresh if refresh and status["state"] == "running" else None,
        "train": train,
        "smoothed": [[step, number(v)] for (step, _), v in
                     zip(train, smooth([v for _, v in train]))],
        "val": points("val_loss"), "lr": points("lr"),
        "nonfinite": nonfinite(LOSSES, "loss"),
        "diverged": {"steps": [diverged] if diverged is not None else [],
                     "label": diverged_label(diverged) if diverged is not None else None},
        # A curve whose every value is NaN has a chart all the same, of its marks alone.
        "curves": {key: {"title": label, "points": points(key),
                         "nonfinite": nonfinite((key,), label)}
                   for key, label in CURVES.items()
                   if any(is_number(r.get(key)) for r in records)},
    }
    report = Page(page(title, "report", _body(title, status, data, run_dir), data), title)
    report.status = status
    return report


def follow_run(run_dir: StrPath, out_path: StrPath, every: float = FOLLOW_SECONDS,
               log: Callable[[str], None] = print,
               sleep: Callable[[float], None] = time.sleep) -> StrPath:
    """Write the report page of the run in `run_dir` (or of its metrics.jsonl) to `out_path`,
    and while the run is training, write it again each time its metrics.jsonl changes
    (looking every `every` seconds); the page reloads itself as often. Returns the path once a
    page says the run has ended (finished or stopped). On Ctrl-C the page is written once
    more, as a page not followed (it no longer reloads), and the KeyboardInterrupt goes on:
    the command stops as any other stopped by Ctrl-C."""
    run_dir, metrics_path = _run_paths(run_dir)     # the directory, or its metrics.jsonl
    # A run that has just started logs its first step once that step is done: wait for it.
    if is_training(run_dir) and not _has_a_step(metrics_path):
        log("waiting for the run's first step")
        while is_training(run_dir) and not _has_a_step(metrics_path):
            sleep(every)
    seen = None
    try:
        while True:
            changed = os.stat(metrics_path).st_mtime_ns
            if changed != seen:
                seen = changed
                report = metrics_page(run_dir, refresh=every)
                report.save(out_path)
                status = report.status
                if status["state"] != "running":
                    return out_path
                log(f"step {status['step']:,} of {status['iters']:,}: wrote {out_path}")
            elif run_status(run_dir)["state"] != "running":   # stopped without a new line
                metrics_page(run_dir).save(out_path)
                return out_path
            sleep(every)
    except KeyboardInterrupt:
        # A page left reloading would look live, its run followed, long after it is not.
        if seen is not None:
            metrics_page(run_dir).save(out_path)
        raise


def _has_a_step(metrics_path):
    try:
        read_metrics(metrics_path)
    except ValueError:                  # no file yet, or no line in it
        return False
    return True


def _body(title, status, data, run_dir):
    step, iters = status["step"], status["iters"]
    diverged = status.get("diverged")
    said = {"finished": f"finished: {step:,} of {counted(iters, 'step')}" if iters else "",
            "running": f"running: step {step:,} of {iters or 0:,}",
            "stopped": f"stopped at step {step:,} of {iters or 0:,} "
                       f"({command_line('train', '--resume', run_dir)} continues it)",
            # resuming would diverge again: the trainer's advice, for a new run
            "diverged": diverged and f"diverged: {new_run_advice(run_dir, diverged['error'])}",
            "unknown": counted(step, "step")}[status["state"]]
    if data["refresh"]:
        said += f"; this page reloads every {data['refresh']:g} s"
    elif status["state"] == "running":     # a still picture of a run that goes on
        said += " when this page was written; it does not reload"
    return f"""<header>
<h1>{html.escape(title)}</h1>
<span id="run-status" class="status {status['state']}">{html.escape(said)}</span>
<span class="muted">written {data['written']}</span>
</header>
<main id="charts"></main>
<p id="reading" class="muted" role="status"></p>
<div id="tooltip" class="tooltip" hidden></div>"""
