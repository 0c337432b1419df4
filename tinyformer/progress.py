"""A one-line progress bar for training: step, loss, tokens per second, the cores the steps
run on, time left (for the steps and the evaluations still to come).

On a terminal the line redraws itself in place (carriage return); into a file or a pipe it
prints a plain line every so often instead, so logs stay readable. Messages printed through
`log` clear the bar first, so the two never mix.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from .summary import counted


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    def __init__(self, total: int, start: int = 0, stream: TextIO | None = None,
                 every: int | None = None, evaluates: Callable[[int], bool] | None = None
                 ) -> None:
        self.total, self.start = total, start
        # The steps after which the run evaluates, by the trainer's own rule, counted once;
        # a step's line counts its own evaluation, which follows the line.
        self.evaluates = evaluates or (lambda step: False)
        self.evaluations_to_come = sum(map(self.evaluates, range(start + 1, total + 1)))
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every or max(1, (total - start) // 10)   # plain lines: about ten a run
        self.began = time.perf_counter()
        self.step_time = 0.0          # seconds in training steps only (evaluation excluded)
        self.tokens = 0
        self.eval_time, self.evaluations = 0.0, 0
        self.shown = False

    def evaluated(self, seconds: float) -> None:
        """After an evaluation, the seconds it took: each evaluation still to come adds their
        mean to the time left (with a large --eval-iters, they take a good part of a run)."""
        self.eval_time += seconds
        self.evaluations += 1

    def update(self, step: int, loss: float, n_tokens: int, seconds: float,
               cores: int | None = None) -> None:
        """After a step: its number, loss, tokens and time taken, and the cores the steps run
        on now (shown when given: beside a busy program the run chooses fewer)."""
        self.step_time += seconds
        self.tokens += n_tokens
        done = step - self.start
        rate = self.tokens / self.step_time if self.step_time else 0.0
        left = self.step_time / done * (self.total - step) if done else 0.0
        if self.evaluations:
            left += self.eval_time / self.evaluations * self.evaluations_to_come
        self.evaluations_to_come -= self.evaluates(step)
        on = "" if cores is None else f"{counted(cores, 'core')} | "
        line = (f"step {step:>{len(str(self.total))}}/{self.total} | loss {loss:.4f} | "
                f"{rate / 1000:.1f}k tok/s | {on}{duration(left)} left")
        if self.live:                          # \033[K: erase what a longer line left behind
            self.stream.write("\r" + line + "\033[K")
            self.stream.flush()
            self.shown = True
        elif done % self.every == 0 or step == self.total:
            self.stream.write(line + "\n")
            self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.began
