"""The training progress line: plain lines into a file, one line redrawn on a terminal, and
the cores a run's steps take (fewer beside a busy program)."""

import fcntl
import io
import os
import re
import struct
import termios

import pytest

from tinyformer.progress import CountProgress, FileProgress, Progress, duration
from tinyformer.train import TrainConfig, Trainer


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def a_terminal_that_takes_escapes(monkeypatch):
    """Whatever terminal the tests run under: Emacs's (TERM=dumb) shows a plain line."""
    monkeypatch.setenv("TERM", "xterm")


def test_into_a_file_about_ten_plain_lines_a_run_and_the_last_step():
    out = io.StringIO()
    progress = Progress(25, stream=out)
    for step in range(1, 26):
        progress.update(step, loss=1.0 / step, n_tokens=1000, seconds=0.5, cores=2)
    lines = out.getvalue().splitlines()
    assert [line.split(" |")[0] for line in lines] == [f"step {s:>2}/25" for s in
                                                       (2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                                        22, 24, 25)]
    # 1,000 tokens in half a second; half a second for each of the 15 steps left at step 10.
    assert lines[4] == "step 10/25 | loss 0.1000 | 2.0k tok/s | 2 cores | 0:08 left"
    assert lines[-1].endswith("| 0:00 left")


def test_a_resumed_run_prints_about_ten_lines_and_the_time_left_by_its_own_steps():
    out = io.StringIO()
    progress = Progress(30, start=10, stream=out)
    for step in range(11, 31):
        progress.update(step, loss=1.0, n_tokens=100, seconds=1.0)
    lines = out.getvalue().splitlines()
    assert [line.split(" |")[0] for line in lines] == [f"step {s}/30" for s in range(12, 31, 2)]
    # At step 20: ten steps taken since the start, a second each, and ten to go.
    assert lines[4].startswith("step 20/30") and lines[4].endswith("| 0:10 left")


def test_the_cores_are_shown_as_the_run_gives_them_and_left_out_when_not_given():
    def line(cores):
        out = io.StringIO()
        Progress(1, stream=out).update(1, 2.0, 100, 0.1, cores=cores)
        return out.getvalue()
    assert "| 1 core |" in line(1) and "| 4 cores |" in line(4)
    assert line(None) == "step 1/1 | loss 2.0000 | 1.0k tok/s | 0:00 left\n"


def test_on_a_terminal_one_line_redrawn_in_place_and_cleared_for_messages():
    out = Terminal()
    progress = Progress(100, stream=out)
    progress.update(1, 3.0, 100, 0.01, cores=1)
    progress.update(2, 2.5, 100, 0.01, cores=2)
    drawn = out.getvalue()
    assert drawn.count("\r") == 2 and "\n" not in drawn
    assert drawn.endswith("step   2/100 | loss 2.5000 | 10.0k tok/s | 2 cores | 0:01 left\033[K")
    progress.clear()
    assert out.getvalue().endswith("\r\033[K")
    progress.clear()                                 # nothing shown now: nothing written
    progress.close()
    assert out.getvalue().endswith("\r\033[K")


def test_on_a_dumb_terminal_plain_lines_as_into_a_file(monkeypatch):
    # Emacs's shell and compile buffers (TERM=dumb) showed each \033[K as text, and each
    # step's line ran into the last.
    monkeypatch.setenv("TERM", "dumb")
    out = Terminal()
    progress = Progress(4, stream=out, every=2)
    for step in range(1, 5):
        progress.update(step, 2.0, 100, 0.1)
    progress.close()
    assert out.getvalue() == "".join(f"step {s}/4 | loss 2.0000 | 1.0k tok/s | 0:00 left\n"
                                     for s in (2, 4))


def test_the_progress_line_redrawn_shorter_on_a_terminal_leaves_nothing_of_the_longer():
    def screen(text):
        r"""What a terminal shows of `text` on its last line: \r returns to the start, \033[K
        erases to the end of the line, other characters overwrite."""
        line, column = "", 0
        for part in re.split(r"(\r|\033\[K)", text.rsplit("\n", 1)[-1]):
            if part == "\r":
                column = 0
            elif part == "\033[K":
                line = line[:column]
            else:
                line = line[:column] + part + line[column + len(part):]
                column += len(part)
        return line

    terminal = Terminal()
    progress = Progress(10000, stream=terminal)
    progress.update(1, 1234.5, n_tokens=1000, seconds=0.001)    # a line of 61 characters
    progress.update(2, 1.5, n_tokens=1, seconds=1.0)            # then one of 58
    assert screen(terminal.getvalue()).rstrip().endswith("| 1.0k tok/s | 1:23:24 left")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="a pseudo-terminal: Unix only")
def test_on_a_narrow_terminal_the_line_fits_keeping_the_step_and_the_time_left(monkeypatch):
    """A line wider than the terminal would wrap, and each redraw leave a row behind. The
    width is the terminal's own (here a pseudo-terminal of 40 columns), or $COLUMNS."""
    monkeypatch.delenv("COLUMNS", raising=False)
    reader, writer = os.openpty()
    fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    with open(writer, "w") as terminal:
        progress = Progress(100, stream=terminal)
        progress.update(1, 3.0, 100, 0.01, cores=2)
        terminal.flush()
        drawn = os.read(reader, 1000).decode()
    os.close(reader)
    assert drawn == "\rstep   1/100 | loss 3.0000 | 0:01 left\033[K"
    monkeypatch.setenv("COLUMNS", "30")
    out = Terminal()
    Progress(100, stream=out).update(1, 3.0, 100, 0.01, cores=2)
    assert out.getvalue() == "\rstep   1/100 | 0:01 left\033[K"
    # Narrower than the step and the time left together: the line is cut to the width, less
    # the last column (where the cursor would wrap).
    monkeypatch.setenv("COLUMNS", "15")
    out = Terminal()
    Progress(100, stream=out).update(1, 3.0, 100, 0.01, cores=2)
    assert out.getvalue() == "\rstep   1/100 |\033[K"


def test_columns_of_0_says_no_width_and_the_line_is_drawn_whole(monkeypatch):
    # As shutil.get_terminal_size reads it: unset. Not a terminal 0 columns wide, which would
    # cut every line to nothing.
    monkeypatch.setenv("COLUMNS", "0")
    out = Terminal()
    Progress(100, stream=out).update(1, 3.0, 100, 0.01, cores=2)
    assert out.getvalue() == \
        "\rstep   1/100 | loss 3.0000 | 10.0k tok/s | 2 cores | 0:01 left\033[K"


def test_durations_read_as_a_clock():
    assert [duration(s) for s in (0, 59.6, 61, 3599, 3600, 3725)] == [
        "0:00", "1:00", "1:01", "59:59", "1:00:00", "1:02:05"]


def test_a_run_shows_the_cores_its_steps_run_on(tmp_path, capsys):
    config = TrainConfig(n_layer=1, n_head=2, d_model=16, context=16, batch_size=4, iters=4,
                         eval_every=4, eval_iters=1, sample_tokens=4)
    for threads, shown in ((1, "| 1 core |"), (2, "| 2 cores |")):
        trainer = Trainer.start(config, str(tmp_path / str(threads)), log=lambda *_: None)
        trainer.train(threads=threads)
        steps = [line for line in capsys.readouterr().err.splitlines()
                 if line.startswith("step")]
        assert len(steps) == 4 and all(shown in line for line in steps)


def test_on_a_terminal_close_ends_the_line_so_what_follows_starts_on_its_own():
    out = Terminal()
    progress = Progress(10, stream=out)
    progress.update(1, 3.0, 100, 0.01)
    progress.close()
    assert out.getvalue().endswith("left\033[K\n")
    progress.close()                                 # ended already: nothing more
    assert out.getvalue().endswith("left\033[K\n") and out.getvalue().count("\n") == 1
    into_a_file = io.StringIO()
    Progress(10, stream=into_a_file).close()         # plain lines end themselves
    assert into_a_file.getvalue() == ""


def test_the_time_left_and_the_rate_follow_the_recent_steps_when_the_pace_changes():
    # A busy program starts beside the run at step 100: its steps take twice as long from
    # then on. Fifty steps later the line says the pace of now, not the run's mean (which
    # said 0:20 left and 7.5k tok/s, a third less time than the 150 steps left would take).
    out = io.StringIO()
    progress = Progress(300, stream=out, every=1)
    for step in range(1, 151):
        progress.update(step, 1.0, 1000, seconds=0.1 if step <= 100 else 0.2)
    assert out.getvalue().splitlines()[-1] == "step 150/300 | loss 1.0000 | 5.0k tok/s | 0:30 left"


def test_the_time_elapsed_counts_evaluation_too_not_only_the_steps(monkeypatch):
    clock = iter([100.0, 160.0])                     # the start, then a minute later
    monkeypatch.setattr("tinyformer.progress.time.perf_counter", lambda: next(clock))
    progress = Progress(10, stream=io.StringIO())
    progress.update(1, 3.0, 100, seconds=2.0)        # two seconds of it in a step
    assert progress.elapsed() == 60.0


def test_the_time_left_counts_the_evaluations_still_to_come():
    out = io.StringIO()
    progress = Progress(30, stream=out, every=1, eval_every=10)
    progress.evaluated(4.0)                          # the one before training
    progress.update(1, 1.0, 100, seconds=1.0)
    # 29 steps of a second, and the evaluations at steps 10, 20 and 30, of 4 s each.
    assert out.getvalue().splitlines()[-1].endswith("| 0:41 left")
    for step in range(2, 11):
        progress.update(step, 1.0, 100, seconds=1.0)
    assert out.getvalue().splitlines()[-1].endswith("| 0:32 left")   # step 10's own to come
    progress.evaluated(2.0)                          # three seconds each, on average
    progress.update(11, 1.0, 100, seconds=1.0)
    assert out.getvalue().splitlines()[-1].endswith("| 0:25 left")
    # Counted by the run's own rule: every 10 steps and at the last, here off the beat, each
    # against the steps walked one by one.
    for total, every in ((25, 10), (30, 10), (7, 1), (5, 9)):
        progress = Progress(total, eval_every=every)
        for step in range(1, total + 2):
            walked = sum(s % every == 0 or s == total for s in range(step, total + 1))
            assert progress.evaluations_from(step) == walked, (total, every, step)
    assert [Progress(25, eval_every=10).evaluations_from(s) for s in (1, 10, 11, 21, 25, 26)] \
        == [3, 3, 2, 1, 1, 0]
    # A run of a billion steps counts them at once: the count was a walk over every step.
    assert Progress(10 ** 9, eval_every=10 ** 9 + 1).evaluations_from(1) == 1


def test_a_run_tells_the_progress_line_how_long_each_evaluation_took(tmp_path, monkeypatch):
    timed = []
    monkeypatch.setattr(Progress, "evaluated", lambda self, seconds: timed.append(seconds))
    config = TrainConfig(n_layer=1, n_head=2, d_model=16, context=16, batch_size=4, iters=4,
                         eval_every=2, eval_iters=1, sample_tokens=4)
    Trainer.start(config, str(tmp_path / "run"), log=lambda *_: None).train(threads=1)
    assert len(timed) == 3 and all(seconds > 0 for seconds in timed)   # steps 0, 2 and 4


def test_a_long_pass_over_a_file_is_redrawn_on_a_terminal_and_cleared_at_its_end():
    out = Terminal()
    progress = FileProgress("tokenising", 4_000_000, stream=out, after=0.0)
    for _ in range(3):
        progress.update(1_000_000)
    assert out.getvalue().count("\r") == 3 and "\n" not in out.getvalue()
    assert out.getvalue().endswith("\rtokenising: 75% of 4 MB, 0:00 left\033[K")
    progress.update(1_000_000)                    # the end: the caller says what was done
    assert out.getvalue().endswith("75% of 4 MB, 0:00 left\033[K")
    progress.clear()
    assert out.getvalue().endswith("\r\033[K")


def test_a_long_pass_over_a_file_says_the_time_left_at_the_rate_so_far(monkeypatch):
    clock = iter([0.0, 30.0])                        # a quarter of the file in 30 seconds
    monkeypatch.setattr("tinyformer.progress.time.perf_counter", lambda: next(clock))
    out = io.StringIO()
    FileProgress("tokenising", 4_000_000, stream=out).update(1_000_000)
    assert out.getvalue() == "tokenising: 25% of 4 MB, 1:30 left\n"    # three quarters to go


def test_a_quick_pass_over_a_file_shows_nothing():
    out = Terminal()
    progress = FileProgress("tokenising", 4_000_000, stream=out)     # a second before a line
    for _ in range(3):
        progress.update(1_000_000)
    progress.clear()
    assert out.getvalue() == ""


def test_counted_work_into_a_file_says_each_tenth_and_its_last_count():
    out = io.StringIO()
    progress = CountProgress("merge", 20, stream=out, after=0.0)
    for done in range(1, 21):
        progress.update(done)
    progress.close()                              # plain lines end themselves
    lines = out.getvalue().splitlines()
    assert [line.split(" |")[0] for line in lines] == [f"merge {d:>2}/20"
                                                       for d in range(2, 21, 2)]
    assert re.fullmatch(r"merge 20/20 \| [\d,]+ merges/s \| 0:00 left", lines[-1])


def test_counted_work_on_a_terminal_is_redrawn_a_few_times_a_second_and_ends_shown():
    out = Terminal()
    # An interval no test outlasts: the first update draws, the others wait, but the last.
    progress = CountProgress("merge", 1000, stream=out, after=0.0, interval=3600.0)
    for done in range(1, 1001):
        progress.update(done)
    assert out.getvalue().count("\r") == 2
    assert out.getvalue().startswith("\rmerge    1/1000 | ")
    progress.close()
    assert re.search(r"\rmerge 1000/1000 \| [\d,]+ merges/s \| 0:00 left\033\[K\n$",
                     out.getvalue())


def test_counted_work_says_its_rate_and_time_left_at_the_pace_of_the_last_seconds(
        monkeypatch):
    # A BPE's merges speed up as it goes: ten a second for ten seconds, then a hundred a
    # second. Five seconds later the line says the pace of those five seconds (the mean since
    # the start, 40 a second, said 0:10 left for what takes 0:04).
    now = [0.0]
    monkeypatch.setattr("tinyformer.progress.time.perf_counter", lambda: now[0])
    out = io.StringIO()
    progress = CountProgress("merge", 1000, stream=out, after=0.0, interval=0.05)
    for k in range(1, 11):
        now[0] = float(k)
        progress.update(10 * k)
    for j in range(1, 51):
        now[0] = 10 + 0.1 * j
        progress.update(100 + 10 * j)
    assert out.getvalue().splitlines()[-1] == "merge  600/1000 | 100 merges/s | 0:04 left"


def test_counted_works_recent_pace_is_measured_over_the_last_seconds_exactly(monkeypatch):
    # Ten a second up to 10 s, then a hundred: at 14 s the last five seconds did 10 + 400
    # merges, 82 a second, measured from the mark 5 s back (a mark a second here), neither
    # from a later one (4 s at 100 a second: 100) nor from an older one.
    now = [0.0]
    monkeypatch.setattr("tinyformer.progress.time.perf_counter", lambda: now[0])
    out = io.StringIO()
    progress = CountProgress("merge", 1000, stream=out, after=0.0, interval=0.05)
    done = 0
    for t in range(1, 15):
        now[0] = float(t)
        done += 10 if t <= 10 else 100
        progress.update(done)
    assert done == 500
    assert out.getvalue().splitlines()[-1] == "merge  500/1000 | 82 merges/s | 0:06 left"


def test_quick_counted_work_shows_nothing():
    for out in (io.StringIO(), Terminal()):
        progress = CountProgress("merge", 100, stream=out)          # a second before a line
        for done in range(1, 101):
            progress.update(done)
        progress.close()
        assert out.getvalue() == ""


def test_a_step_on_trial_of_another_core_count_shows_the_count_it_ran_on(tmp_path, capsys,
                                                                         monkeypatch):
    # Without --threads the run tries one core and two in turns (AdaptiveThreads), the chosen
    # count staying one until the trials are in: the line said "1 core" on the steps that ran
    # on two.
    monkeypatch.setattr("tinyformer.resources.usable_cores", lambda: 2)
    config = TrainConfig(n_layer=1, n_head=2, d_model=16, context=16, batch_size=4, iters=4,
                         micro_batches=2, eval_every=4, eval_iters=1, sample_tokens=4)
    Trainer.start(config, str(tmp_path / "run"), log=lambda *_: None).train()
    steps = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step")]
    assert [line.split(" | ")[3] for line in steps] == ["1 core", "2 cores", "1 core", "2 cores"]


def test_a_resumed_run_names_the_evaluations_due_until_one_is_timed():
    # A resumed run has timed none of its evaluations (nothing records their time): its time
    # left was the steps' alone, short by the evaluations and silent about it.
    out = io.StringIO()
    progress = Progress(30, start=10, stream=out, every=1, eval_every=10)
    progress.update(11, 1.0, 100, seconds=1.0)
    assert out.getvalue().splitlines()[-1].endswith("| 0:19 left + 2 evaluations")
    for step in range(12, 21):
        progress.update(step, 1.0, 100, seconds=1.0)
    assert out.getvalue().splitlines()[-1].endswith("| 0:10 left + 2 evaluations")  # step 20's
    progress.evaluated(4.0)                          # step 20's, timed: the last one's is known
    progress.update(21, 1.0, 100, seconds=1.0)
    assert out.getvalue().splitlines()[-1].endswith("| 0:13 left")
    # None due (the last evaluated, or a run that never evaluates): the time left says no more.
    progress = Progress(30, start=10, stream=io.StringIO(), every=1)
    progress.update(11, 1.0, 100, seconds=1.0)
    assert progress.stream.getvalue().endswith("| 0:19 left\n")
