"""Shared pytest setup: hypothesis runs the same examples on every machine (derandomize, no
example database), with no per-example deadline (the first call of a test pays for imports, and
CI machines vary). HYPOTHESIS_PROFILE=random draws fresh examples on every run instead.

Python keeps each module it compiles (`__pycache__/`) even where PYTHONDONTWRITEBYTECODE says
not to: otherwise each of the suite's several hundred processes (the command line, benchmarks,
learners' files) compiled the whole package again, 0.13 s each, and each worker rewrote every
test module's asserts again.

Writing a file whole (tinyformer.files.atomic_write) ends with os.fsync, a wait for the disk
of some 6 ms on a CI machine's virtual one, in which the test's core idles: test_train.py
alone synced some 1,900 times, five seconds of waiting. In the test process os.fsync of a
regular file returns at once (no test can see whether data reached the platter); what it does
to anything else, and the tests that make it fail (a full disk), are unchanged.

Ctrl-C is Python's own in every test process: a suite started in the background by a script
(`pytest &`, with no job control) inherits SIGINT ignored, and so would every process the
Ctrl-C tests start, which would then never stop."""

import os
import signal
import stat
import sys

import pytest
from hypothesis import HealthCheck, settings
from threadpoolctl import threadpool_limits

settings.register_profile("ci", derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("random", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

real_fsync = os.fsync


def fsync_without_the_wait(fd):
    """os.fsync, but a regular file's data is left to reach the disk in its own time."""
    if not stat.S_ISREG(os.fstat(fd if isinstance(fd, int) else fd.fileno()).st_mode):
        real_fsync(fd)       # a pipe, a terminal: the error the real one gives (EINVAL)


os.fsync = fsync_without_the_wait

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """numpy's matrix products on one thread in every test process, unless a test sets its own
    count (threadpoolctl, --threads), which it then restores to this one. By default BLAS
    starts a thread a core, and the suite's workers (pytest -n 2 on two cores) then wait on
    each other's threads: a (288, 32) @ (32, 128) product took 10 ms instead of 0.1 ms, and
    the README's tour 50 s instead of 4 s. One thread also rounds alike on every machine,
    whatever its cores."""
    with threadpool_limits(1, user_api="blas"):
        yield


# -- tiny GPTs trained once through the command line, shared by the modules that only read them

# The small model the command-line tests train: a run of a few steps takes about a second, of
# which the loss plot drawn at its end is a third; each module training its own copy of the
# same run made the suite train it again in every module (and on every worker).
TINY_GPT = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
            "--batch-size", "4"]


class SharedRun:
    """A run `tinyformer train ARGS --out DIR` wrote: its directory (`out`) and what the
    command printed (`output`, both streams; `stdout`)."""

    def __init__(self, out, result):
        self.out, self.output, self.stdout = out, result.output, result.stdout


def files_of(directory):
    """Every file under `directory` with its bytes, and every folder."""
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else None
            for p in directory.rglob("*")}


def shared_run(tmp_path_factory, name, *args):
    """Train `tinyformer train TINY_GPT ARGS` into a fresh directory; yield the SharedRun, and
    at the end of the session check that no test changed a file of it (a test that writes to
    a run copies it first), so that every test that reads it read the run as trained."""
    from click.testing import CliRunner

    from tinyformer_cli import main
    out = tmp_path_factory.mktemp("shared-runs") / name
    result = CliRunner().invoke(main, ["train", *TINY_GPT, *map(str, args), "--out", str(out)])
    assert result.exit_code == 0, result.output
    trained = files_of(out)
    yield SharedRun(out, result)
    assert files_of(out) == trained, f"a test changed the shared run {name}: copy it first"


@pytest.fixture(scope="session")
def six_step_gpt_run(tmp_path_factory):
    """Six steps, evaluated at steps 3 and 6 on 2 batches. Read only: copy it to change it."""
    yield from shared_run(tmp_path_factory, "gpt", "--eval-iters", 2, "--iters", 6,
                          "--eval-every", 3)


@pytest.fixture(scope="session")
def two_step_gpt_run(tmp_path_factory):
    """Two steps, evaluated at the end on 2 batches. Read only: copy it to change it."""
    yield from shared_run(tmp_path_factory, "gpt", "--eval-iters", 2, "--iters", 2)


@pytest.fixture(scope="session")
def two_step_gpt_run_evaluated_on_one_batch(tmp_path_factory):
    """Two steps, evaluated at the end on 1 batch. Read only: copy it to change it."""
    yield from shared_run(tmp_path_factory, "gpt", "--eval-iters", 1, "--iters", 2)


@pytest.fixture(scope="session")
def one_step_gpt_run(tmp_path_factory):
    """One step, evaluated at the end on 2 batches. Read only: copy it to change it."""
    yield from shared_run(tmp_path_factory, "gpt", "--eval-iters", 2, "--iters", 1)


@pytest.fixture(scope="session")
def one_step_reverse_run(tmp_path_factory):
    """An encoder-decoder reversing 3 to 5 digits, one step. Read only: copy it to change it."""
    yield from shared_run(tmp_path_factory, "reverse", "--task", "reverse", "--min-len", 3,
                          "--max-len", 5, "--iters", 1)


@pytest.fixture(scope="session")
def both_tokenizers(tmp_path_factory):
    """{layout: (the `tokenizers` library's Tokenizer, ours)} of one tokenizer.json each:
    SmolLM's (digits alone, then GPT-2's pattern; special tokens first) and Qwen's (NFC, its
    own pattern, an added token that is not special). Read only."""
    import json

    from test_pretrained_llama import train_tokenizer
    from tokenizers import Tokenizer

    from tinyformer.pretrained import read_tokenizer_json
    both = {}
    for layout in ("smollm", "qwen"):
        directory = tmp_path_factory.mktemp(f"both-{layout}")
        (directory / "tokenizer.json").write_text(json.dumps(train_tokenizer(layout)))
        both[layout] = (Tokenizer.from_file(str(directory / "tokenizer.json")),
                        read_tokenizer_json(directory))
    return both


@pytest.fixture(scope="session")
def train_unplotted():
    """`train_unplotted(*args)`: click's result of `tinyformer train ARGS`, run in this process
    without the loss plot the command ends with (it prints an empty line in its place), for a
    run whose plot no test looks at: drawing it was some 0.4 s of each small run. The tests of
    the plot itself (test_viz_plots.py) train with it."""
    from click.testing import CliRunner

    import viz.write
    from tinyformer_cli import main

    def train(*args):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(viz.write, "plot_after_training", lambda run_dir: "")
            return CliRunner().invoke(main, ["train", *map(str, args)])
    return train


@pytest.fixture
def recall_on_eight_prompts(monkeypatch):
    """The built-in stories' recall evaluated on 8 held-out prompts instead of 100, in this
    process, for a test that reads no recall figure: a tiny run writes the 100 prompts
    batch_size at a time (25 generate calls at TINY's 4), some 0.2 s of each evaluation, most of
    a small run's time. The recall still runs at every evaluation, on the same code path (a
    figure of eighths); `all_recall_prompts` puts the 100 back for a test that reads it."""
    import tinyformer.data
    import tinyformer.jobs
    monkeypatch.setattr(tinyformer.jobs, "recall_prompts",
                        lambda n_stories, seed, context: tinyformer.data.recall_prompts(
                            min(n_stories, 8), seed, context))


@pytest.fixture
def all_recall_prompts(recall_on_eight_prompts, monkeypatch):
    """The recall on the product's own 100 prompts, for a test that reads it in a module whose
    every test uses recall_on_eight_prompts (which it asks for so as to come after it)."""
    import tinyformer.data
    import tinyformer.jobs
    monkeypatch.setattr(tinyformer.jobs, "recall_prompts", tinyformer.data.recall_prompts)


@pytest.fixture
def short_samples(monkeypatch):
    """A GPT run in this process writes a sample of 20 tokens at each evaluation instead of
    200, unless its settings say otherwise, for a module whose tests read no sample: the 200
    were a quarter of a tiny run's time. The sample is still drawn and written at every
    evaluation, on the same code path; `full_samples` puts the 200 back for a test that
    reads one."""
    import tinyformer.train_config
    monkeypatch.setattr(tinyformer.train_config, "SAMPLE_TOKENS", 20)


@pytest.fixture
def full_samples(short_samples, monkeypatch):
    """The product's own 200-token sample, in a module whose every test uses short_samples
    (which it asks for so as to come after it)."""
    import tinyformer.train_config
    monkeypatch.setattr(tinyformer.train_config, "SAMPLE_TOKENS", 200)


@pytest.fixture
def loss_plots_left_out(monkeypatch):
    """Every `tinyformer train` run in this process ends without its loss plot (an empty line
    in its place), as train_unplotted's do: for a module whose tests read no plot, drawing it
    was some 0.3 s of each run. `loss_plots_drawn` draws them again for a test that reads one
    (or its absence)."""
    import viz.write
    drawing = viz.write.plot_after_training
    monkeypatch.setattr(viz.write, "plot_after_training", lambda run_dir: "")
    return drawing


@pytest.fixture
def loss_plots_drawn(loss_plots_left_out, monkeypatch):
    """The loss plot drawn, in a module whose every test uses loss_plots_left_out (which this
    asks for so as to come after it, and which gives back the function that draws it)."""
    import viz.write
    monkeypatch.setattr(viz.write, "plot_after_training", loss_plots_left_out)
