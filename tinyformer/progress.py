"""A one-line progress bar for training: step, loss, tokens per second, the cores the steps
run on, time left (for the steps and the evaluations still to come); one for a long pass over a file
(a large corpus tokenised): the share done and the time left; and one for work counted in
units (a BPE's merges): how many are done, how many a second, and the time left.

On a terminal the line redraws itself in place (carriage return); into a file or a pipe, or
on a dumb terminal, it prints a plain line every so often instead, so logs stay readable.
Messages printed through `log` clear the bar first, so the two never mix.
"""

from __future__ import annotations

import collections
import os
import sys
import time
from typing import TextIO

from .files import size_said
from .schema import counted


def duration(seconds: float) -> str:
    """`seconds` as a clock shows a duration: "4:05", or "1:04:05" past an hour."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def fitted(parts: list[str], columns: int) -> str:
    """The parts joined by " | " in at most `columns` characters. A line wider than the
    terminal wraps, and a carriage return goes back to the start of its last row only: each
    redraw would leave a row behind. The parts between the first (the step) and the last (the
    time left) make way first, from the right."""
    while len(parts) > 2 and len(" | ".join(parts)) > columns:
        parts = parts[:-2] + parts[-1:]
    return " | ".join(parts)[:columns]


def width(stream: TextIO) -> int:
    """The columns of the terminal `stream` writes to: $COLUMNS where set (as shutil reads it),
    else the terminal's own, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def takes_escapes(stream: TextIO) -> bool:
    """Whether `stream` is a terminal that acts on ANSI escape codes (colours, erasing a line):
    one whose TERM is not "dumb", as that of Emacs's shell and compile buffers is, which shows
    each code as text (^[[K)."""
    return (hasattr(stream, "isatty") and stream.isatty()
            and os.environ.get("TERM") != "dumb")


class StatusLine:
    """What the progress lines share: on a terminal that takes escape codes (`live`) one line
    redrawn in place, else plain lines, as into a file; `clear` removes a line drawn in place
    (before a message, or at the end of the work)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = takes_escapes(self.stream)     # else plain lines, as into a file
        self.shown = False
        self.tenths_said = 0                       # plain lines by tenths: the last tenth said

    def redraw(self, line: str) -> None:
        """On a live terminal: `line` in place of the one before, cut to the terminal's width."""
        # \033[K: erase what a longer line left behind
        self.stream.write("\r" + line[:width(self.stream) - 1] + "\033[K")
        self.stream.flush()
        self.shown = True

    def print(self, line: str) -> None:
        """`line` as a plain line of its own."""
        self.stream.write(line + "\n")
        self.stream.flush()

    def show_by_tenths(self, line: str, tenth: int) -> None:
        """A long pass's `line`: on a live terminal redrawn in place; else printed once at each
        new tenth of the work (`tenth`, 0 to 10), so that a log holds ten lines at most."""
        if self.live:
            self.redraw(line)
        elif tenth > self.tenths_said:
            self.tenths_said = tenth
            self.print(line)

    def clear(self) -> None:
        """Remove the line drawn in place, if any, so that a message starts on a clean line."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

    def close(self) -> None:
        """End the line drawn in place, leaving it shown (the work's last state)."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


class Progress(StatusLine):
    """A training run's progress line: step `start` + 1 to `total`, the loss, tokens a second
    and the time left (evaluations after every `eval_every` steps counted in once one is
    timed; before that, named: "0:41 left + 3 evaluations"), both at the pace of the last
    `RECENT` steps. On a terminal one line redrawn in place; into a file or a pipe a plain
    line every `every` steps (about ten a run by default), on `stream` (stderr by default)."""

    # The steps whose pace the line reports. The run's mean since its start would lag: beside
    # a program started mid-run (or after the cores chosen change) the steps take twice as
    # long, and a mean over the thousand before would go on promising half the time left.
    RECENT = 50

    def __init__(self, total: int, start: int = 0, stream: TextIO | None = None,
                 every: int | None = None, eval_every: int | None = None) -> None:
        super().__init__(stream)
        self.total, self.start = total, start
        self.eval_every = eval_every      # the run evaluates after every eval_every-th step
        self.every = every or max(1, (total - start) // 10)   # plain lines: about ten a run
        self.began = time.perf_counter()
        # (seconds, tokens) of the last RECENT steps: steps only, evaluations excluded
        self.recent: collections.deque[tuple[float, int]] = collections.deque(
            maxlen=self.RECENT)
        self.eval_time, self.evaluations = 0.0, 0

    def evaluations_from(self, step: int) -> int:
        """The evaluations the run still makes from `step` on, that step's own included (it
        follows the step's line): after every `eval_every`-th step and after the last, the
        trainer's rule, counted without a walk over the steps."""
        if not self.eval_every or step > self.total:
            return 0
        every = self.eval_every
        return self.total // every - (step - 1) // every + (self.total % every != 0)

    def evaluated(self, seconds: float) -> None:
        """After an evaluation, the seconds it took: each evaluation still to come adds their
        mean to the time left (with a large --eval-iters, they take a good part of a run)."""
        self.eval_time += seconds
        self.evaluations += 1

    def update(self, step: int, loss: float, n_tokens: int, seconds: float,
               cores: int | None = None) -> None:
        """After a step: its number, loss, tokens and time taken, and the cores it ran on
        (shown when given: beside a busy program the run chooses fewer, and it tries another
        count now and then). The time left counts the evaluations still due at the mean time
        of those timed (`evaluated`); with none timed yet, it names them instead."""
        self.recent.append((seconds, n_tokens))
        done = step - self.start
        step_time = sum(s for s, _ in self.recent)
        rate = sum(n for _, n in self.recent) / step_time if step_time else 0.0
        left = step_time / len(self.recent) * (self.total - step)
        evaluations_due = self.evaluations_from(step)
        if self.evaluations:
            left += self.eval_time / self.evaluations * evaluations_due
        parts = [f"step {step:>{len(str(self.total))}}/{self.total}", f"loss {loss:.4f}",
                 f"{rate / 1000:.1f}k tok/s"]
        if cores is not None:
            parts.append(counted(cores, "core"))
        if self.evaluations or not evaluations_due:
            parts.append(f"{duration(left)} left")
        else:
            # None timed yet (a resumed run, until its first evaluation): the time left is the
            # steps' alone, and says so, rather than a guess at the evaluations' or a time
            # left that is short by them unsaid.
            parts.append(f"{duration(left)} left + {counted(evaluations_due, 'evaluation')}")
        if self.live:
            self.redraw(fitted(parts, width(self.stream) - 1))
        elif done % self.every == 0 or step == self.total:
            self.print(" | ".join(parts))

    def elapsed(self) -> float:
        """Seconds since the progress began, evaluations included."""
        return time.perf_counter() - self.began


class FileProgress(StatusLine):
    """The share of a file that a long pass over it (tokenising a 200 MB corpus takes about a
    minute) has done, and the time left, shown as Progress shows the steps: on a terminal one
    line redrawn in place, which `clear` removes when the pass ends; into a file or a pipe a
    plain line at each tenth. Only once the pass has taken `after` seconds and is not yet at
    its end: a small file, done at once, shows nothing, and the caller says what the pass did."""

    def __init__(self, what: str, total_bytes: int, stream: TextIO | None = None,
                 after: float = 1.0) -> None:
        super().__init__(stream)
        self.what, self.total = what, max(1, total_bytes)
        self.after = after
        self.began = time.perf_counter()
        self.done = 0

    def update(self, n_bytes: int) -> None:
        """After a part of `n_bytes` bytes is done (a text's bytes: about the file's, whose
        Windows line ends and byte order mark the text leaves out)."""
        self.done = min(self.total, self.done + n_bytes)
        elapsed = time.perf_counter() - self.began
        if self.done >= self.total or elapsed < self.after:
            return
        share = self.done / self.total
        left = elapsed / share * (1 - share)
        self.show_by_tenths(f"{self.what}: {share:.0%} of {size_said(self.total)}, "
                            f"{duration(left)} left", int(share * 10))


class CountProgress(StatusLine):
    """Work of `total` units (a BPE's merges, `what` = "merge"): the units done, how many a
    second and the time left, at the pace of the last `RECENT` seconds, shown as Progress shows
    the steps: on a terminal one line redrawn in place, at most once every `interval` seconds
    (a unit may take microseconds: drawing each would slow the work), and its last state when
    the work is done; into a file or a pipe a plain line at each tenth. Only once the work has
    taken `after` seconds: quick work shows nothing. `close` ends the line, leaving it shown.

    The recent pace, not the mean since the start: a BPE's first merges each join the most
    frequent pair, in many places, and its last ones a rare pair in few; they come more than
    ten times faster (tinyshakespeare's 8,000), and the mean pace said ten times the time
    left a tenth of the way."""

    AFTER = 1.0          # seconds of work before a line shows
    INTERVAL = 0.2       # seconds between redraws on a terminal: a few a second
    RECENT = 5.0         # seconds of work whose pace the line says

    def __init__(self, what: str, total: int, stream: TextIO | None = None,
                 after: float | None = None, interval: float | None = None) -> None:
        super().__init__(stream)
        self.what, self.total = what, max(1, total)
        self.after = self.AFTER if after is None else after
        self.interval = self.INTERVAL if interval is None else interval
        self.began = time.perf_counter()
        self.drawn_at = -float("inf")    # when the line was last redrawn
        # (time, units done) an `interval` or more apart, back to RECENT seconds ago: where
        # the recent pace is measured from (the start, until the work is older)
        self.marks = collections.deque([(self.began, 0)])

    def update(self, done: int) -> None:
        """After the `done`-th unit."""
        now = time.perf_counter()
        elapsed = now - self.began
        if now - self.marks[-1][0] >= self.interval:
            self.marks.append((now, done))
        while len(self.marks) > 1 and now - self.marks[1][0] >= self.RECENT:
            self.marks.popleft()              # the one after it is old enough to measure from
        finished = done >= self.total
        if elapsed < self.after or (self.live and not finished
                                    and now - self.drawn_at < self.interval):
            return
        since, done_then = self.marks[0]
        rate = (done - done_then) / (now - since) if now > since else 0.0
        left = (self.total - done) / rate if rate else 0.0
        parts = [f"{self.what} {done:>{len(str(self.total))}}/{self.total}",
                 f"{rate:,.0f} {self.what}s/s", f"{duration(left)} left"]
        self.drawn_at = now
        line = fitted(parts, width(self.stream) - 1) if self.live else " | ".join(parts)
        self.show_by_tenths(line, done * 10 // self.total)
