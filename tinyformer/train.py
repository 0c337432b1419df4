"""Training, from settings to a run directory: what `tinyformer train` does.

    config = TrainConfig(corpus="input.txt", iters=2000)     # every setting (train_config.py)
    trainer = Trainer.start(config, "runs/shakespeare")      # data, tokenizer, model, optimizer
    trainer.train()                                           # the loop
    Trainer.resume("runs/shakespeare").train()                # later: goes on exactly

A model of your own (one built, then given a module of yours: `layer.ffn = TwoExperts(64)`)
trains the same way, given to `start` and again to `resume` (`model=model`): its checkpoints
record its modules of your own, which its config alone does not build (checkpoint.py).

One step:    batch -> loss (forward) -> gradients (backward) -> clip -> AdamW -> next lr
Every step writes a line in metrics.jsonl (step, train_loss, lr, and grad_norm when clipping).
Every `eval_every` steps, and at the last: the figures on held-out data (the loss, and the
job's own: recall, accuracy), added to that step's line, and a sample, printed.
Every `checkpoint_every` steps (by default eval_every), and at the end: a checkpoint, written
by Trainer.save through rundir.py.

Three jobs, one loop: what differs between GPT on a text, BERT on a text and an
encoder-decoder on a digit task (data, loss, evaluation, samples) is in jobs.py.

Resuming is exact, on the same machine (another kind of processor's BLAS rounds otherwise):
the checkpoint keeps the optimizer's moments, the schedule's step, the state of both random
generators (the data's, which picks batches, and the engine's, which drives dropout) and which
parameters are frozen (requires_grad False), so a resumed run draws the same batches and makes
the same updates as one that never stopped. Both generators are the trainer's own: what else
the program draws (another Trainer started, a sample written between two calls of train) leaves
the run's losses as they were.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import stat
import time
from typing import Any, Callable, ContextManager, Iterator, NamedTuple

import numpy as np

import tinyautograd as ta
from tinyautograd import Tensor, nn
from tinyautograd.optim import (AdamW, Noam, Optimizer, WarmupCosine, clip_grad_norm,
                                sum_of_squares, weight_decay_groups)

from . import checkpoint, parallel
from .checkpoint import (MODELS, OWN_MODULES, Model, check_built_as, check_model_class,
                         check_same_modules)
from .decoding import NoTokenToPick
from .files import StrPath, check_text_file, command_line
from .jobs import (TOKENIZER_ARGUMENTS, Job, TextData, load_tokenizer_file, make_job,
                   prepare_data, text_model_config)
from .layers import modules_of_your_own
from .progress import Progress
from .resources import (AdaptiveThreads, FixedThreads, blas_threads, check_memory,
                        freed_memory_kept, step_threads)
from .rundir import (CONFIG, MANIFEST, METRICS, RUN_FILES, TOKENIZER, TOKENS, CheckpointError,
                     RunDirectory, RunDirectoryInUse, append_metrics, array_shapes,
                     check_checkpoint_file, checkpoint_files, load_arrays, new_run_advice,
                     save_checkpoint, sha256, staged, truncate_metrics)
from .schema import (BadInput, Number, Optional, Text, Whole, check_settings, counted,
                     option_name)
from .stops import interrupt_between_steps
from .tokenizers import Tokenizer, escape_controls
from .train_config import (SETTING_RULES, TrainConfig, check_paths, default_out_dir,
                           setting_name, toml_settings)

# The options of each of the optimizer's groups, saved in config.json and used as they are on
# --resume: checked by the rules of the settings they came from. A group's lr is the schedule's
# at the step saved, which may have reached min_lr's 0; eps is AdamW's own.
GROUP_RULES = {"lr": Number(0), "weight_decay": SETTING_RULES["weight_decay"],
               "eps": Number(0), "betas[0]": SETTING_RULES["beta1"],
               "betas[1]": SETTING_RULES["beta2"]}


# The key, in config.json's "resume" table, of the names of the parameters that were frozen
# (requires_grad False) at the checkpoint; and in the manifest's settings, of those frozen at
# the run's first step, for a run that stops before its first checkpoint. Without it (a run
# saved before it was recorded, or one stopped before its first step) the model is left as it
# is built.
FROZEN = "frozen"


# How many threads (or processes) a step may run on: train()'s `threads`, train_step's, update's.
THREADS = Whole(1, 4096)


# What each figure of a step's line in metrics.jsonl is, in the error when it is not finite.
RECORDED = {"step": "step", "train_loss": "loss", "lr": "learning rate",
            "grad_norm": "gradient's norm"}


def frozen_parameters(model: Model) -> list[str]:
    """The names of the model's parameters set to requires_grad=False (embeddings frozen to
    tune the rest, say), which a model built again from its config would train."""
    return [name for name, p in model.named_parameters() if not p.requires_grad]


def freeze(model: Model, names: Any, where: str) -> None:
    """Freeze the model's parameters that `names` lists (from the file `where`: config.json's
    resume table, or the manifest's settings), and only them; CheckpointError, one line,
    unless each names a parameter of the model, before any is changed."""
    advice = f"put back the {os.path.basename(where)} this run wrote, or start again with --force"
    if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        raise CheckpointError(f"{where} holds a damaged list of frozen parameters ({names!r}, "
                              f"not a list of names); {advice}")
    unknown = sorted(set(names) - {name for name, _ in model.named_parameters()})
    if unknown:
        raise CheckpointError(f"{where} lists {unknown[0]!r} as frozen, which is no parameter "
                              f"of the model; {advice}")
    for name, p in model.named_parameters():
        p.requires_grad = name not in names


def check_model_before_data(model: Model, config: TrainConfig,
                            tokenizer: Tokenizer | None = None) -> None:
    """ValueError, in one line as check_built_as's, unless a model of your own is built as
    the settings say, before a text is read and tokenised (minutes, for a large one). The
    arguments that the text's tokenizer gives (TOKENIZER_ARGUMENTS: the vocabulary's size) are
    checked against `tokenizer` where one is known already (a tokenizer file's, loaded once by
    Trainer.start); else they are the model's own here, and checked once the tokenizer is
    learned from the text. A task reads no text: only the model's class is checked here, the
    rest once its job is made."""
    check_model_class(model, config.model, "the settings give")
    if config.task:
        return
    if tokenizer is not None:
        # The job's own model config, so that its tokenizer's arguments are told as the check
        # after tokenising would tell them.
        settings_config = make_job(config, tokenizer).model_config()
    else:
        learned = {key: model.config[key] for key in TOKENIZER_ARGUMENTS if key in model.config}
        settings_config = {**text_model_config(config), **learned}
    settings_build = nn.skip_init(MODELS[config.model], **settings_config)
    check_built_as(model, config.model, settings_build.config, "the settings give")


def forms_changed(compiled_loops_then: bool | None) -> str | None:
    """What a resumed run should be told when its ops now run other forms than they trained
    with (tinyautograd.kernels): the compiled loops and the numpy forms agree to float32
    rounding, not to the bit, so the run goes on, but not exactly as an unbroken run would.
    None when the forms are the same, or the checkpoint does not say."""
    if compiled_loops_then not in (None, True, False):
        raise TypeError(f"engine's compiled_loops is {compiled_loops_then!r}, not true or false")
    now = ta.kernels.in_use()
    if compiled_loops_then is None or compiled_loops_then == now:
        return None
    forms = {True: "the compiled loops", False: "the numpy forms"}
    # How to run the forms it trained with again.
    again = {True: "resume where the loops can be built, without TINYAUTOGRAD_KERNELS=numpy",
             False: "resume with TINYAUTOGRAD_KERNELS=numpy"}
    return (f"note: this run trained with {forms[compiled_loops_then]} and goes on with "
            f"{forms[now]}, so its losses may differ in their last digits from an unbroken "
            f"run's; to go on exactly, {again[compiled_loops_then]}")


def library_changed(library_then: str | None) -> str | None:
    """What a resumed run should be told when its ops run compiled loops other than those it
    trained with: a library built from another kernels.c, by another C compiler or for another
    processor (tinyautograd.kernels.build_id), agrees with them to float32 rounding, not to the
    bit. None when it is the same library, the numpy forms run (forms_changed says so where
    they differ), or the checkpoint does not say (a run saved before runs recorded it)."""
    if library_then is not None and not isinstance(library_then, str):
        raise TypeError(f"engine's kernels is {library_then!r}, not a library's name")
    now = ta.kernels.build_id()
    if library_then is None or now is None or library_then == now:
        return None
    return (f"note: this run trained with compiled loops built as {library_then} and goes on "
            f"with loops built as {now} (another kernels.c, C compiler or processor), so its "
            f"losses may differ in their last digits from an unbroken run's; to go on exactly, "
            f"resume on the machine and with the C compiler (CC) it trained with")


# ---------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------


def update(loss_of: Callable[[parallel.Batch], Tensor], batch: parallel.Batch,
           counted: Callable[[parallel.Batch], int], parameters: list[Tensor],
           optimizer: Optimizer, micro_batches: int = 2, threads: int = 1,
           clip: float = 1.0, workers: parallel.Workers | None = None
           ) -> tuple[float, float | None]:
    """One step of the optimizer: the batch's gradient, its micro-batches side by side on up
    to `threads` threads, its norm clipped to `clip` (0: not clipped), then the update; or,
    given `workers`, all of that shared out over up to `threads` processes (parallel.py).
    Returns the batch's loss before the update and the gradient's norm before clipping (None
    when not clipped). The trainer's step, and what the benchmarks time. `counted(part)`: how
    many targets the loss averages over in a part of the batch, which weighs the parts (the
    job's `counted`; parallel.split)."""
    # (0 divided by zero below; a float reached threadpoolctl, which refuses it)
    check_settings({"threads": threads}, {"threads": THREADS}, name=str)
    parts = parallel.split(batch, micro_batches, counted)
    # Each part on the BLAS threads it gets beside all the batch's micro-batches (one each, up
    # to a core a micro-batch), also where the split left some out (a BERT part with nothing
    # hidden, a batch of fewer rows than parts): the threads of those, given to BLAS, would
    # split the products, and their last bits with them, and the losses would depend on the
    # count. So the step runs on the threads of the parts left, and theirs.
    blas = threads // min(threads, max(micro_batches, 1))
    threads = min(threads, len(parts)) * blas
    # No zero_grad here: both ways below set every .grad to this batch's gradient (None where
    # no part reached a parameter), rather than add to what a previous step left.
    if workers is not None and workers.processes(threads, len(parts)) > 1:
        return workers.update(loss_of, parts, threads, clip)       # the whole step shared out
    with blas_threads(blas):                    # for a part computed here, alone
        loss = parallel.batch_gradients(loss_of, parts, parameters, threads)
    grad_norm = clip_grad_norm(parameters, clip) if clip else None
    optimizer.step()
    return loss, grad_norm


@contextlib.contextmanager
def run_conditions(threads: int | None, loss_of: Callable[[parallel.Batch], Tensor],
                   model: Model, parameters: list[Tensor], optimizer: Optimizer,
                   micro_batches: int
                   ) -> Iterator[tuple[AdaptiveThreads | FixedThreads, parallel.Workers | None]]:
    """What a run's training steps run under, the trainer's and the benchmarks' alike: the
    memory numpy frees kept for the next step (resources.freed_memory_kept); `threads`, or with
    None the count the steps' own timing chooses (resources.step_threads); and, where fork is
    safe, the worker processes that share each step's micro-batches (parallel.workers_for).
    Yields (the threads, under whose `step()` each step runs; the Workers or None) for
    `update`."""
    # The timing chooses among counts up to one process a micro-batch: beyond that, BLAS would
    # split each product over the threads left over, and the bits of a product depend on how
    # it is split, so the losses would depend on the machine's load.
    with freed_memory_kept(), step_threads(threads, most=micro_batches) as chooser:
        with parallel.workers_for(loss_of, model, parameters, optimizer,
                                  chooser.candidates[-1], micro_batches) as workers:
            yield chooser, workers


def tokens_written(run: RunDirectory, config: TrainConfig
                   ) -> tuple[Tokenizer, dict[str, Any]] | None:
    """The tokens that a run which stopped before its first checkpoint wrote, as its manifest
    records them, to start it again on: (their tokenizer, their data info), or None where
    its tokenizer.json and tokens.bin are not there as it wrote them (their SHA-256s), and it
    must read its corpus again."""
    info = run.data
    if config.task or not (isinstance(info, dict) and info.get("tokens") == TOKENS
                           and "sha256" in info):
        return None
    try:
        # Runs from before the tokenizer's SHA-256 was recorded: any that loads.
        recorded = run.tokenizer_sha256
        if recorded is not None and recorded != sha256(run.file(TOKENIZER)):
            return None
        tokenizer = load_tokenizer_file(dataclasses.replace(config,
                                                            tokenizer=run.file(TOKENIZER)))
        TextData.load(run.path, info, tokenizer.vocab_size)
    except (OSError, ValueError, KeyError, TypeError):    # a CheckpointError among them
        return None
    return tokenizer, info


def claim_default_out(config: TrainConfig, log: Callable[[str], None] = print) -> RunDirectory:
    """The directory of a run given no --out, claimed: runs/<model>-<data>, or the first of
    its numbered names (default_out_dir) free. A sweep's runs started at once choose
    between the taken names at the same moment, and may choose the same: the one that finds
    its choice claimed (locked, or holding a run by the time it locks it) goes on to the next."""
    while True:
        path = default_out_dir(config)
        try:
            run = RunDirectory.claim(path, log, create=True, chosen=True)
        except RunDirectoryInUse:
            continue                     # the other run's lock is in it now: no longer free
        if not run.has_manifest and not run.others():
            return run
        run.release()                    # a run started, and ended, since it was chosen


class StepDone(NamedTuple):
    """What one training step did: the progress line's and metrics.jsonl's figures."""
    loss: float                 # the batch's, before the update
    lr: float                   # the learning rate the update used
    grad_norm: float | None     # the gradient's norm before clipping (None: not clipped)
    tokens: int                 # in the batch, for the progress line's tokens per second


class Trainer:
    """A job, its model, optimizer and schedule, the step count and the random generators:
    one training run, in its run directory. Made by `start` (a new run), `resume` (a saved
    one) or `open` (either, as `tinyformer train` asks), not by hand:

        trainer = Trainer.start(TrainConfig(corpus="input.txt", iters=2000), "runs/mine")
        trainer.train()                          # "done"; metrics.jsonl and checkpoints
        Trainer.resume("runs/mine").train()      # later, or after a Ctrl-C: goes on exactly

    The constructor's arguments are what those three have made: the settings (`config`, a
    TrainConfig), the claimed `run` directory, the `job` (jobs.py: data, loss, samples), the
    `model`, the names of its modules of your own (`own`) and `log`, which hears every
    message for a person.
    """

    def __init__(self, config: TrainConfig, run: RunDirectory, job: Job, model: Model,
                 own: list[str], log: Callable[[str], None] = print) -> None:
        self.config, self.run, self.job, self.model = config, run, job, model
        # The model's modules of your own (layers.modules_of_your_own, which start and resume
        # know already: it builds the model again), recorded in each checkpoint: such a model
        # is not built from its config alone.
        self.modules_of_your_own = own
        self.parameters = list(model.parameters())
        self.directory = run.path
        self.checkpoint_files = set()            # the last checkpoint's, to remove at the next
        self.log = log
        c = config
        groups = weight_decay_groups(model.named_parameters(), c.weight_decay)
        self.optimizer = AdamW(groups, lr=c.lr, betas=(c.beta1, c.beta2))
        if c.schedule == "cosine":
            self.schedule = WarmupCosine(self.optimizer, c.warmup, c.iters, c.min_lr)
        else:   # Noam's peak lr is factor / sqrt(d_model * warmup): choose factor to peak at lr
            factor = c.lr * math.sqrt(c.d_model * c.warmup)
            self.schedule = Noam(self.optimizer, c.d_model, c.warmup, factor)
        self.step = 0
        # The step the loop has begun and not yet written its line for: a step cut short (an
        # exception, a second Ctrl-C) leaves the trainer part of the way into it (its batch
        # drawn, maybe some weights updated), from where it cannot go on exactly.
        self.halfway: int | None = None
        self.data_rng = np.random.default_rng(c.seed)   # which batches
        # Dropout's: the engine's generator as the model's initialisation left it (start seeded
        # it), then the trainer's own, which its steps draw from (train_step); the engine's
        # shared one would go on from wherever other draws in the program had moved it.
        self.engine_rng = copy.deepcopy(ta.random.default_generator())

    # -- starting and resuming -----------------------------------------------------------------

    @classmethod
    def start(cls, config: TrainConfig, directory: StrPath | None, force: bool = False,
              log: Callable[[str], None] = print, run: RunDirectory | None = None,
              tokenised: tuple[Tokenizer, dict[str, Any]] | None = None,
              name: Callable[[str], str] = option_name, model: Model | None = None,
              frozen: list[str] | None = None) -> Trainer:
        """A new run in `directory` [runs/<model>-<data>]: checks everything (a setting named
        in errors by `name`; a `model` of your own against the settings), then claims the
        directory (the lock), tokenises and builds the model. `force` replaces a previous
        run's files. A run started again (by `resume`) on the tokens it wrote already gives
        them as `tokenised`: (their tokenizer, their data info); it reads no corpus. One
        started again gives as `frozen` the names of the parameters its first attempt froze
        (its manifest's record), to freeze them again, and its directory, claimed already, as
        `run`. `log` hears every message for a person (print by default).

        `model`: a model of your own to train instead of a fresh one, as PyTorch Lightning's
        `trainer.fit(model)` takes one: of the class `config.model` names (or a subclass),
        built with the config the settings give (vocab_size is the tokenizer's), with modules
        of your own in it (`layer.ffn = TwoExperts(d_model)`) or its own weights. Its
        checkpoints record those modules: `resume` then needs the model again, and
        `load_model` refuses them without it."""
        if force and directory is None and run is None:
            # Without a directory the run gets one of its own, numbered if taken: there is no
            # run to replace, and the user who meant runs/gpt-builtin would train beside it.
            raise BadInput(f"{name('force')} replaces the run in {name('out')}, and no "
                           f"{name('out')} is given: give {name('out')} DIR, or drop "
                           f"{name('force')} (without {name('out')}, a run gets a new "
                           f"directory, numbered if taken)")
        config = config.resolved(name)
        if directory is not None:        # "" is no directory, not "not given": refuse it
            check_settings({"out": os.fspath(directory)}, {"out": Text("a directory's path")},
                           name=name)
        if directory is not None:
            directory = os.fspath(directory)                        # a Path named as its text
        if config.corpus is not None and tokenised is None:   # fail before touching --out
            check_text_file(config.corpus, "corpus")
        # The user's --tokenizer may be a pipe (`<(...)`), read once here; a run started again
        # (`run` given) reads its own copy, or the file its manifest names, which is none.
        tokenizer = (tokenised[0] if tokenised else
                     load_tokenizer_file(config, pipe=run is None) if config.tokenizer_file
                     else None)
        # A pipe's name (/dev/fd/63) means nothing once it is read, or names another file
        # later: the run records its own copy instead, the tokenizer.json it saves below.
        piped = (run is None and config.tokenizer_file is not None
                 and stat.S_ISFIFO(os.stat(config.tokenizer_file).st_mode))
        # A character vocabulary is known only once the text is read: count at least the
        # built-in corpus's size, which any text is unlikely to be smaller than.
        vocab_size = (tokenizer.vocab_size if tokenizer is not None else
                      config.vocab_size if config.tokenizer == "bpe" else 32)
        check_memory(config, vocab_size)
        settings = dataclasses.asdict(config)
        # Computed once: it builds the model again. First: what is no model of ours is a
        # TypeError, as everywhere else.
        own = modules_of_your_own(model) if model is not None else []
        if model is not None:      # before the corpus is tokenised, which may take minutes
            check_model_before_data(model, config, tokenizer)
        if own:
            # Kept before the first checkpoint too: a run that stops before it starts again
            # only given such a model (resume).
            settings[OWN_MODULES] = own
        # A run that stops before its first checkpoint reads its corpus and tokenizer file
        # again, maybe from elsewhere.
        if config.corpus is not None:
            settings["corpus"] = os.path.abspath(config.corpus)
        if run is None:
            run = (RunDirectory.claim(directory, log, create=True) if directory is not None
                   else claim_default_out(config, log))
        directory = os.fspath(run.path)
        if config.tokenizer_file:
            settings["tokenizer"] = os.path.abspath(run.file(TOKENIZER) if piped
                                                    else config.tokenizer)
        # Everything that may refuse the run comes before a previous run's files are replaced
        # (--force): a corpus that fails, a model refused, or a stop leaves them as they were.
        try:
            run.prepare_new_run(settings, force)
            if tokenised:
                data_info = tokenised[1]
                kept, new = [TOKENS, TOKENIZER], []
            else:
                # The corpus is tokenised under a staged name, moved to tokens.bin only once
                # the previous run's files are gone.
                tokenizer, data_info = prepare_data(config, run.file(staged(TOKENS)), log,
                                                    tokenizer)
                kept, new = [], ([] if data_info is None else [TOKENS])
            if piped:                   # and so does config.json (the corpus is read)
                config = dataclasses.replace(config, tokenizer=run.file(TOKENIZER))
            job = make_job(config, tokenizer)
            # A text's characters are known only now: one of thousands (Chinese, say) makes
            # logits far wider than guessed above, and the run would run out of memory in its
            # first step. Refused here, before a previous run's files are replaced.
            if job.tokenizer.vocab_size > vocab_size:
                check_memory(config, job.tokenizer.vocab_size)
            ta.manual_seed(config.seed)                   # the same seed, the same init
            if model is None:
                model = MODELS[config.model](**job.model_config())
            elif config.task:              # checked against the config the settings give
                settings_build = nn.skip_init(MODELS[config.model], **job.model_config())
                check_built_as(model, config.model, settings_build.config, "the settings give")
            else:                          # the rest was checked before the text was read
                check_built_as(model, config.model, job.model_config(), "the settings give",
                               keys=TOKENIZER_ARGUMENTS)
            # In the manifest too, should this attempt also stop before its first checkpoint.
            if frozen is not None:
                freeze(model, frozen, run.file(MANIFEST))
                settings[FROZEN] = frozen
            run.replace_previous(settings, new=new, keep=kept, data=data_info)
            job.open_data(directory, data_info)
            run.save_tokenizer(job.tokenizer)             # with its SHA-256 in the manifest
        except BaseException:
            run.abandon()
            raise
        return cls(config, run, job, model, own, log)

    @classmethod
    def open(cls, resume: StrPath | None = None, config_file: StrPath | None = None,
             overrides: dict[str, Any] | None = None, out: StrPath | None = None,
             force: bool = False, log: Callable[[str], None] = print,
             name: Callable[[str], str] = str) -> Trainer:
        """The run `tinyformer train` asks for: the one in `resume`, continued with its saved
        settings; or a new one in `out` [runs/<model>-<data>], with the settings of the TOML
        `config_file`, then `overrides` over them, then the job's defaults for the rest. The
        file's values are checked and named as the file's ("lr in run.toml"), the overrides'
        by `name` ("--lr" on the command line). `force` and `log` as start's; `resume` takes
        none of the others."""
        overrides = overrides or {}
        if resume is not None:
            extra = [name(key) for key in overrides] + [name(key) for key, value in (
                ("config", config_file), ("out", out), ("force", force)) if value]
            if extra:
                raise BadInput(f"{name('resume')} continues a run with its saved settings; "
                               f"drop {' '.join(extra)}")
            return cls.resume(resume, log=log)
        in_file = toml_settings(config_file) if config_file else {}
        config = TrainConfig.from_dict(in_file, str(config_file)) if config_file else TrainConfig()
        check_paths(config, config_file, overrides, name)
        from_file = {setting_name(key) for key in in_file} - set(overrides)

        def called(key):                # a setting as it was given, in the errors about it
            return f"{key} in {config_file}" if key in from_file else name(key)
        return cls.start(dataclasses.replace(config, **overrides), out, force=force, log=log,
                         name=called)

    @classmethod
    def resume(cls, directory: StrPath, log: Callable[[str], None] = print,
               model: Model | None = None) -> Trainer:
        """The run saved in `directory`, ready to continue where its checkpoint left off (`log` as
        start's). A run that stopped before its first checkpoint starts again, with its settings, on
        the tokens it wrote where they are intact (tokens_written). A run that diverged is
        refused (CheckpointError, saying what to change in a new run): it would diverge again.

        `model`: the model of your own a run was started with (`start`'s), built the same
        way again: the checkpoint's weights are loaded into it. A run that records modules of
        your own is refused without one, and a run without them is refused with one that has
        some (checkpoint.model_to_load). Either way, the parameters the checkpoint records as
        frozen (requires_grad False) are frozen again, and only they (a checkpoint written
        before they were recorded leaves the model as it is built); a run started again, those
        its manifest records as frozen at its first step."""
        directory = os.fspath(directory)            # a pathlib.Path is named as its text
        run = RunDirectory.claim(directory, log)
        try:
            if run.diverged:
                # The run is exactly deterministic: from its checkpoint (or from step 0) it
                # would take the same steps again, to the same divergence.
                kept = (f" (its checkpoint of step {run.checkpoint}, from before, still loads; "
                        f"another --out keeps it)" if run.has_checkpoint() else "")
                raise CheckpointError(
                    f"the run in {directory!r} diverged, and resuming it would repeat the same "
                    f"steps to the same end: {new_run_advice(directory, run.diverged['error'])}"
                    f"{kept}")
            if run.has_manifest and not run.has_checkpoint():
                settings = dict(run.settings or {})
                own = settings.pop(OWN_MODULES, [])
                frozen = settings.pop(FROZEN, None)        # None: stopped before its first step
                if own and model is None:
                    raise CheckpointError(
                        f"the run in {str(directory)!r} was started with a model with modules "
                        f"of your own ({', '.join(own)}) and stopped before its first "
                        f"checkpoint; start it again with `Trainer.resume({str(directory)!r}, "
                        f"model=model)`, the model built as it was")
                if model is not None:
                    check_same_modules(modules_of_your_own(model), own, str(directory))
                config = TrainConfig.from_saved(settings, run.file(MANIFEST))
                if config.tokenizer_file and os.path.isfile(run.file(TOKENIZER)):
                    # Its own copy of the tokenizer file, saved when it tokenised: the file
                    # itself may be gone since, and --resume takes no other.
                    config = dataclasses.replace(config, tokenizer=run.file(TOKENIZER))
                tokenised = tokens_written(run, config)
                if tokenised is None and config.corpus is not None \
                        and not os.path.exists(config.corpus):
                    afresh = command_line("train", "--out", directory, "--force",
                                          "--corpus", "FILE")
                    raise BadInput(
                        f"the run in {str(directory)!r} stopped before its first checkpoint, "
                        f"and starting it again reads the corpus it was started with, "
                        f"{config.corpus!r}, which no longer exists; put it back, or start a "
                        f"new run there on another corpus: `{afresh}`")
                log(f"{directory} stopped before its first checkpoint: starting it again from "
                    f"step 0, with its settings"
                    f"{' and the tokens it wrote' if tokenised else ''}")
                return cls.start(config, directory, force=True, log=log, run=run,
                                 tokenised=tokenised, model=model, frozen=frozen)
            model, tokenizer, saved = checkpoint.load_model(directory, pretrained=False,
                                                            model=model)
            if "train" not in saved or "resume" not in saved:
                raise CheckpointError(
                    f"{directory!r} holds a model, not a training run: --resume continues a "
                    f"`tinyformer train` run; generate from it with "
                    f"`{command_line('generate', '--checkpoint', directory)}`")
            # A run saved before batches were cut into micro-batches computed each one whole,
            # and goes on so: a resumed run continues exactly.
            config = TrainConfig.from_saved({"micro_batches": 1, **saved["train"]},
                                            run.file(CONFIG))
            try:
                config.check(lambda key: f"{key} in {run.file(CONFIG)}")
            except ValueError as e:           # the file's setting: where to mend it
                raise CheckpointError(f"{e}; mend it in that file, or start again with "
                                      f"--force") from None
            check_settings({"step": saved.get("step")}, {"step": Whole(0, config.iters)},
                           where=run.file(CONFIG))
            try:
                job = make_job(config, tokenizer)
                # The settings built the model, and go on training it (the batches' context is
                # theirs): settings edited to disagree with its model_config would fail mid-step.
                for key, value in job.model_config().items():
                    if model.config.get(key) != value:
                        raise CheckpointError(
                            f"{run.file(CONFIG)} is damaged (its settings give {key} {value!r}, "
                            f"its model_config {model.config.get(key)!r}); put back the "
                            f"config.json this run wrote, or start again with --force")
                try:
                    job.open_data(directory, saved["data"])
                except CheckpointError as e:
                    if saved.get("step") != config.iters:        # a step to go: it needs them
                        raise
                    # Its advice, to start again with --force, would throw the finished run
                    # away, where nothing is left to train and its model reads no corpus.
                    what = str(e).partition("; ")[0]
                    raise CheckpointError(
                        f"the run in {directory!r} is finished, with nothing left to resume, "
                        f"and {what}: its model needs none of it; use it as it is (`"
                        f"{command_line('generate', '--checkpoint', directory)}`)") from None
                # load_model checked the model's modules of your own are those config.json
                # records (checkpoint.model_to_load): none for the model it built.
                trainer = cls(config, run, job, model, saved.get(OWN_MODULES, []), log)
                trainer.load_state(saved)
                engine = saved.get("engine", {})
                forms = forms_changed(engine.get("compiled_loops"))
                library = library_changed(engine.get("kernels"))
                changed = forms or library        # other forms: their library is moot
            except CheckpointError:         # a file of the run, which the message names
                raise
            # (OverflowError: a random generator's state holding a number out of its range)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError,
                    OverflowError) as e:
                # The resume state (optimizer, schedule, generators) is read as config.json
                # has it: anything malformed there is the file's fault, said in one line. A
                # check's refusal (BadInput) is already said for the user: no class name.
                said = str(e).splitlines()[0] if str(e) else ""
                if not isinstance(e, BadInput):
                    said = f"{type(e).__name__}: {said}"
                raise CheckpointError(
                    f"{run.file(CONFIG)} holds a damaged resume state ({said}); put back the "
                    f"config.json this run wrote, or start again with --force") from None
        except BaseException:
            run.release()
            raise
        if changed and trainer.step < trainer.config.iters:
            log(changed)
        return trainer

    def close(self) -> None:
        """Release the run directory for other writers (train() does, as it ends)."""
        self.run.release()

    # -- the loop ------------------------------------------------------------------------------

    def train_step(self, threads: int = 1, workers: parallel.Workers | None = None
                   ) -> StepDone:
        """One step: a batch, the update (its micro-batches on up to `threads` threads, or
        shared out over `workers`' processes), the schedule's next lr, and `step` one more.
        RuntimeError once the run has taken its config.iters steps."""
        c = self.config
        # Before the step is begun: a step that failed on it would leave the trainer halfway
        # into it, its batch drawn, and unable to go on or save.
        check_settings({"threads": threads}, {"threads": THREADS}, name=str)
        if self.step >= c.iters:
            # A step past the end would train at the schedule's floor, and save() would
            # then write a checkpoint at a step beyond iters, which resume refuses as damaged.
            raise RuntimeError(f"the run in {self.directory} has finished its "
                               f"{counted(c.iters, 'step')}; to train further, start a new "
                               f"run")
        if self.step == 0:
            self._record_frozen()
        # Called on its own (not by train()'s loop, which marks the step until its line is
        # written), the step is marked here: one cut short leaves its batch drawn, maybe some
        # weights updated, which no checkpoint (save) may record as step `self.step`.
        on_its_own = self.halfway is None
        self.halfway = self.step + 1
        lr = self.optimizer.param_groups[0]["lr"]
        batch = self.job.train_batch(self.data_rng)
        with ta.random.drawing_from(self.engine_rng):
            loss, grad_norm = update(self.part_loss, batch, self.job.counted, self.parameters,
                                     self.optimizer, c.micro_batches, threads, c.clip, workers)
        self.schedule.step()
        self.step += 1
        if on_its_own:
            self.halfway = None
        return StepDone(loss, lr, grad_norm, batch[0].size)

    def _record_frozen(self) -> None:
        """Record in the manifest's settings which parameters are frozen as the run takes its
        first step (frozen once started: `trainer.model.embed.requires_grad_(False)`): a run
        that stops before its first checkpoint starts again from its manifest (resume), and
        must freeze them again to go on as this attempt does. Under the run directory's lock,
        as save() writes; the manifest is written only where the record changes."""
        frozen, settings = frozen_parameters(self.model), self.run.settings or {}
        if settings.get(FROZEN) != frozen:
            with self.run.held():
                self.run.settings = {**settings, FROZEN: frozen}
                self.run.write_manifest()

    def evaluate(self, title: str, threads: int = 1) -> dict[str, float]:
        """Validation figures (on up to `threads` threads) and a sample, printed under `title`; the
        figures returned for metrics.jsonl. The model is in evaluation mode for it (dropout off),
        then back in the mode it was in (training, between steps)."""
        check_settings({"threads": threads}, {"threads": THREADS}, name=str)
        training = self.model.training
        self.model.eval()
        try:
            # One BLAS thread for what the evaluation writes a token at a time (the stories'
            # recall, the sample), as side_by_side gives each validation batch: the text is
            # then the same whatever the threads (a product split over two can differ in its
            # last bits). A second thread gained nothing there: the built-in run's recalls and
            # samples took 2.0 s on one or two, quiet, and beside a busy program 5.5 s on two
            # against 2.0 on one.
            with ta.no_grad(), blas_threads(1):
                try:
                    figures = self.job.evaluate(self.model, threads)
                except NoTokenToPick:
                    # The evaluation writes too (the stories' recall, a task's answers), from
                    # weights that one update can make far too large (--lr 1e10 --iters 1):
                    # the same divergence as the sample's below, found there first.
                    raise self._diverged("the validation's logits became NaN or "
                                         "infinite") from None
                # Weights can be finite and still far too large (an lr far too high): the
                # validation loss shows it, before a sample drawn from infinite logits would.
                for key, value in figures.items():
                    if not math.isfinite(value):
                        raise self._diverged(f"the {key} became {value}")
                try:
                    sample = self.job.sample(self.model, np.random.default_rng(
                        [self.config.seed, self.step]))
                except NoTokenToPick:
                    # Finite on the validation text, not on the sample's prompt: the same
                    # divergence, and the same advice (it was said as a bug of tinyformer's).
                    raise self._diverged("the sample's logits became NaN or infinite") from None
        finally:
            self.model.train(training)
        shown = ", ".join(f"{key} {value:.4f}" for key, value in figures.items())
        self.log(f"step {self.step} ({title}): {shown}\n{_indent(escape_controls(sample))}")
        return figures

    def train(self, threads: int | None = None) -> str:
        """Train to config.iters steps. Returns "done", or "interrupted" after a Ctrl-C,
        "terminated" after a SIGTERM and "hung up" after a SIGHUP (with a checkpoint saved at
        the last whole step; stops.STOPS). Releases the run directory as it ends.

        `threads`: how many processes (on Linux; threads elsewhere) a step's micro-batches
        run in, and the matrix products' threads when there are more than micro-batches; None
        lets the steps' own timing choose, again and again as the machine's load changes
        (resources.AdaptiveThreads).

        A run that diverges raises FloatingPointError (saying what to change), and its manifest
        records where (RunDirectory.record_divergence): resuming it would only diverge again.

        Called again after a stop (a notebook's cell run again), it goes on from its step,
        holding the run directory again meanwhile; after an exception in the middle of a step
        (a second Ctrl-C, say), RuntimeError: go on from the run's last checkpoint instead."""
        # (0 or -1 ran on as many BLAS threads as before, the progress line showing "0 cores")
        check_settings({"threads": threads}, {"threads": Optional(THREADS)}, name=str)
        self._check_whole_step()
        self.run.hold()
        try:
            # A diverging run overflows numpy at many places before the loss shows it; the
            # loop's check of the loss says so once, in one line, instead of numpy's warnings.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                    self.running(threads) as (chooser, workers):
                return self._loop(chooser, workers)
        except FloatingPointError as diverged:
            # Recorded in the run, as it still holds the lock: the run is exactly
            # deterministic, so resuming it would repeat these steps to the same end, and
            # what reads the run says so instead. (A disk too full to record it loses only
            # the record: the message says what happened.)
            with contextlib.suppress(OSError):
                self.run.record_divergence(self.step, str(diverged))
            raise
        finally:
            self.close()

    def running(self, threads: int | None
                ) -> ContextManager[tuple[AdaptiveThreads | FixedThreads, parallel.Workers | None]]:
        """What this trainer's steps run under (`run_conditions`): yields (the threads, under
        whose `step()` each step runs; the Workers or None) for `train_step`."""
        return run_conditions(threads, self.part_loss, self.model, self.parameters,
                              self.optimizer, self.config.micro_batches)

    def part_loss(self, part: parallel.Batch) -> Tensor:
        """The loss of a part of a batch (a micro-batch): the job's."""
        return self.job.loss(self.model, part)

    def _check_whole_step(self):
        """RuntimeError if this Trainer stopped in the middle of a step (`halfway`): neither
        training on nor a checkpoint of its state would go on as an unbroken run does."""
        if self.halfway is not None:
            raise RuntimeError(f"this Trainer stopped in the middle of step {self.halfway}, "
                               f"so it cannot go on exactly from here; go on from the run's "
                               f"last checkpoint: Trainer.resume({str(self.directory)!r})")

    def _check_weights(self):
        """FloatingPointError if an update has made the weights NaN or infinite (from an
        infinite gradient) while the step's loss, computed before it, was finite: such weights
        must reach no evaluation and no checkpoint, so that the last checkpoint is the run's
        last good one. One pass over the weights, so only before those (save(); the loop's
        evaluations and checkpoints, once a step), not at every step (a later step's loss
        would show them)."""
        if not math.isfinite(sum(sum_of_squares(p.data) for p in self.parameters)):
            raise self._diverged("the update made the weights NaN or infinite")

    def _diverged(self, what: str, updates: int | None = None) -> FloatingPointError:
        """The error that stops a run where `what` happened ("the loss became nan") at this
        step, saying what to change: the learning rate or its warmup; the weight decay where
        AdamW's decay, 1 - lr * weight_decay a step, flips the weights' sign (and grows them)
        at the peak lr (each of the optimizer's groups' own, named where not the settings');
        and clipping where the run has none (an unclipped gradient is the usual way a spike
        throws the weights far). `updates`: how many updates the weights that computed it had
        had [this step's count]; with none, no learning rate is to blame."""
        c = self.config
        if (self.step if updates is None else updates) == 0:
            return FloatingPointError(
                f"{what} at step {self.step}, before any update: the model computes it from "
                f"its initial weights, so no --lr would help; change the model's settings "
                f"(tinyautograd.detect_anomaly() finds the op that makes it)")
        changes = ["lower --lr", "raise --warmup"]
        # Each group's own peak lr and weight decay, which are --lr's and --weight-decay's
        # unless set otherwise (a group's options changed in code, or in config.json before
        # --resume, which keeps the groups' and not the settings'): the advice names them.
        # (A peak that overflowed is --lr's own, too large for the schedule's formula.)
        peaks = [lr if math.isfinite(lr) else c.lr for lr in self.schedule.peak_lrs()]
        decays = [group["weight_decay"] for group in self.optimizer.param_groups]
        fastest = max(range(len(peaks)), key=lambda i: peaks[i])
        worst = max(range(len(peaks)), key=lambda i: peaks[i] * decays[i])
        lr, weight_decay = peaks[worst], decays[worst]
        if lr * weight_decay >= 1 and (lr, weight_decay) == (c.lr, c.weight_decay):
            changes[0] = (f"lower --lr or --weight-decay (at the peak lr, AdamW multiplies each "
                          f"weight by {1 - lr * weight_decay:g} a step)")
        elif lr * weight_decay >= 1:
            changes[0] = (f"lower the lr or weight decay of the optimizer's group {worst} (at "
                          f"its peak lr, {lr:g}, and weight decay {weight_decay:g}, AdamW "
                          f"multiplies each of its weights by {1 - lr * weight_decay:g} a step)")
        elif peaks[fastest] != c.lr:
            changes[0] = (f"lower the lr of the optimizer's group {fastest} ({peaks[fastest]:g} "
                          f"at its peak, not --lr's {c.lr:g})")
        if not c.clip:
            changes.append("clip the gradients (--clip 1)")
        advice = ", ".join(changes[:-1]) + " or " + changes[-1]
        return FloatingPointError(f"{what} at step {self.step}; {advice}")

    def _loop(self, threads: AdaptiveThreads | FixedThreads, workers: parallel.Workers | None
              ) -> str:
        c = self.config
        def due(every, step):            # every `every` steps, and at the last
            return step % every == 0 or step == c.iters
        progress = Progress(c.iters, start=self.step, eval_every=c.eval_every)   # due's rule
        def evaluate(title):
            began = time.perf_counter()
            metrics = self.evaluate(title, threads.chosen)
            progress.evaluated(time.perf_counter() - began)
            return metrics
        def log(message):
            progress.clear()
            self.log(message)
        if self.step >= c.iters:
            log(f"the run in {self.directory} has finished its {counted(c.iters, 'step')}; "
                f"to train further, start a new run")
            return "done"
        if self.step == 0:
            evaluate("before training")
        else:
            log(f"resuming at step {self.step} of {c.iters}")
        self.model.train()
        # There from the start, empty until the first step's line: a run stopped before it
        # has "no records yet", not no metrics file (which would say it never trained).
        open(self.run.file(METRICS), "a").close()
        with interrupt_between_steps(log) as stop_asked:
            while self.step < c.iters:
                self.halfway = self.step + 1
                began = time.perf_counter()
                with threads.step() as n:
                    done = self.train_step(n, workers)
                # The count this step ran on: on a trial of another count, not the chosen one
                progress.update(self.step, done.loss, done.tokens, time.perf_counter() - began,
                                cores=n)
                record = {"step": self.step, "train_loss": done.loss, "lr": done.lr}
                if done.grad_norm is not None:
                    record["grad_norm"] = done.grad_norm
                # Before the step's line: metrics.jsonl holds only finite numbers (JSON has no
                # NaN). A gradient NaN or infinite at a finite loss (an op whose derivative is
                # infinite there, or an overflow) has made the weights NaN already, and so has
                # a schedule whose lr overflowed (--lr 1e308): the next loss would show it,
                # one step late and blaming that step.
                for key, value in record.items():
                    if not math.isfinite(value):
                        # The loss and gradient are of the weights before this step's update.
                        updates = (self.step - 1 if key in ("train_loss", "grad_norm")
                                   else self.step)
                        raise self._diverged(f"the {RECORDED[key]} became {value}", updates)
                evaluating = due(c.eval_every, self.step)
                saving = due(c.checkpoint_every, self.step)
                if evaluating or saving:      # before the line: none for weights refused
                    self._check_weights()
                if evaluating:
                    progress.clear()
                    title = ("end of training" if self.step == c.iters
                             else f"{progress.elapsed():.0f} s")
                    with stop_asked.finishing("evaluation"):   # a stop waits for it: its
                        record.update(evaluate(title))          # figures are the step's
                append_metrics(self.run.file(METRICS), record)
                self.halfway = None             # the step is whole and recorded
                if saving:
                    self._write_checkpoint()        # checked above
                if stop_asked() and self.step < c.iters:
                    if not saving:
                        self.save()
                    progress.close()
                    return stop_asked()
        progress.close()
        return "done"

    # -- checkpoints ---------------------------------------------------------------------------

    def save(self) -> None:
        """A checkpoint of this step (rundir.save_checkpoint), in place of the last one;
        FloatingPointError instead if the weights are NaN or infinite, and RuntimeError after a
        step cut short. Between runs of train() (a notebook's) it locks the run directory
        for the moment it writes, as train() does: RunDirectoryError, saying what to do, if
        another process holds it or went on with the run meanwhile."""
        self._check_whole_step()
        self._check_weights()
        with self.run.held():
            self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        """save(), the weights checked already."""
        state = self.optimizer.state_dict()
        arrays, small_state = {}, []                     # arrays to .npz, the rest to JSON
        for i, param_state in enumerate(state["state"]):
            small_state.append({})
            for key, value in param_state.items():
                if isinstance(value, np.ndarray):
                    arrays[f"{i}.{key}"] = value
                else:
                    small_state[-1][key] = value
        config = {
            "model": self.config.model, "model_config": self.model.config,
            OWN_MODULES: self.modules_of_your_own,
            "train": dataclasses.asdict(self.config), "step": self.step,
            "data": self.job.data_info(),
            # The ops' forms and which library ran them: see forms_changed, library_changed.
            "engine": {"compiled_loops": ta.kernels.in_use(),
                       "kernels": ta.kernels.build_id()},
            "resume": {"optimizer": {"param_groups": state["param_groups"],
                                     "state": small_state},
                       "schedule": self.schedule.state_dict(),
                       "data_rng": self.data_rng.bit_generator.state,
                       "engine_rng": self.engine_rng.bit_generator.state,
                       # Parameters set to requires_grad=False (embeddings frozen to tune the
                       # rest, say): a model built again from model_config would train them.
                       FROZEN: frozen_parameters(self.model)},
        }
        weights = {name: p.data for name, p in self.model.named_parameters()}
        # The run owns the new files before they exist, and gives up the previous checkpoint's
        # only once config.json names the new one: a crash anywhere leaves a good checkpoint
        # and nothing unlisted.
        new = set(checkpoint_files(self.step).values())
        self.run.begin_checkpoint(self.step, new)
        try:
            save_checkpoint(self.directory, config, weights, arrays)
        except BaseException:
            # A full disk part way: what was written goes with the last checkpoint's files at
            # the next checkpoint (train() called again), not left behind, taking the space.
            self.checkpoint_files |= new
            raise
        # Both sets are listed until the previous files are gone: a removal that fails part way
        # leaves them to the next checkpoint to remove, and this one's files kept.
        previous, self.checkpoint_files = self.checkpoint_files - new, self.checkpoint_files | new
        self.run.remove(previous, checkpoint=self.step)
        self.checkpoint_files = new

    def load_state(self, saved: dict[str, Any]) -> None:
        """The optimizer, schedule, generators, step and frozen parameters of a checkpoint, `saved`
        (its config.json; the weights are already in the model); and metrics.jsonl cut back to that
        step, so that the lines a stopped run wrote after its checkpoint are written again, once
        (truncate_metrics)."""
        files = saved["files"]
        self.checkpoint_files = set(files.values()) - {TOKENIZER}
        check_checkpoint_file(self.directory, saved, "optimizer")     # load_model did the rest
        path = os.path.join(self.directory, files["optimizer"])
        shapes = array_shapes(path)                 # the headers alone: nothing read yet
        resume = saved["resume"]
        if FROZEN in resume:          # a model given to resume is frozen as the run's was too
            freeze(self.model, resume[FROZEN], self.run.file(CONFIG))
        self._check_schedule_state(resume["schedule"], saved["step"])
        self._check_optimizer_state(resume["optimizer"]["state"], shapes,
                                    resume["optimizer"]["param_groups"], path, saved["step"])
        state = [dict(small) for small in resume["optimizer"]["state"]]
        # Each array ("3.exp_avg") has its parameter's shape: one whose header claims another
        # (gigabytes, say) is refused before it is read.
        parameters = self._saved_order(resume["optimizer"]["param_groups"])
        arrays = load_arrays(path, {key: parameters[int(key.split(".", 1)[0])].shape
                                    for key in shapes})
        for key, value in arrays.items():
            i, name = key.split(".", 1)
            # A moment no step could have written would make the first update NaN, which the
            # run would blame on the learning rate. A step does write a second moment of +inf:
            # a gradient whose square overflows float32 (an lr far too high, unclipped), which
            # the update divides into 0 and goes on; the run resumed goes on as exactly.
            second_moment = name in ("exp_avg_sq", "max_exp_avg_sq")
            if second_moment and (np.isnan(value).any() or (value < 0).any()) \
                    or not second_moment and not np.isfinite(value).all():
                held = "NaN or a negative number" if second_moment else "NaN or Inf"
                raise CheckpointError(f"{path} holds a damaged optimizer state ({key} holds "
                                      f"{held}); restore it, or start again with --force")
            state[int(i)][name] = value
        self.optimizer.load_state_dict({"param_groups": resume["optimizer"]["param_groups"],
                                        "state": state})
        self.schedule.load_state_dict(resume["schedule"])
        self.data_rng.bit_generator.state = resume["data_rng"]
        self.engine_rng.bit_generator.state = resume["engine_rng"]
        self.step = saved["step"]
        # The files of other checkpoints that the run still owns: a stop after a checkpoint's
        # config.json was written, before the previous checkpoint's files were removed (or
        # part way through one that config.json never came to name). Nothing reads them, and
        # each is the size of the model: they go now, as that checkpoint would have removed
        # them (a finished run writes no checkpoint that would).
        others = self.run.owned - set(RUN_FILES) - self.checkpoint_files
        if others:
            self.run.remove(others)
        last = truncate_metrics(self.run.file(METRICS), self.step)
        if last < self.step:     # cut, deleted, or never written: the training goes on exactly
            # A finished run takes no more steps: no lines follow, and nothing comes after them.
            then = (f"the resumed run's lines follow from step {self.step + 1}, so its curves "
                    f"have a gap there" if self.step < self.config.iters else
                    "the run has finished, so its curves stay without them")
            self.log(f"note: {self.run.file(METRICS)} has no lines for steps {last + 1} to "
                     f"{self.step} (lost since they were written, or never written: steps "
                     f"taken with Trainer.train_step() write none); {then}")

    def _saved_order(self, groups):
        """The optimizer's parameters in the order of the saved state (`groups` from
        config.json), which numbers them: by name where both sides name them, as
        Optimizer.load_state_dict matches them (a run of the previous layout kept another
        order), by position otherwise."""
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        names = [n for group in self.optimizer.param_groups for n in group.get("param_names", [])]
        saved = [n for group in groups for n in group.get("param_names", [])]
        if names and saved and all(isinstance(n, str) for n in saved) \
                and sorted(saved) == sorted(names):
            by_name = dict(zip(names, parameters))
            return [by_name[name] for name in saved]
        return parameters

    def _check_schedule_state(self, state, checkpoint_step):
        """CheckpointError, one line, unless the saved schedule (`state`, from config.json) is
        one this run's schedule goes on from exactly: at the checkpoint's step, and for the
        cosine schedule with a peak lr for each of the optimizer's groups (Noam's formula
        gives its own). Otherwise the resumed run would train on, at other learning rates."""
        def damaged(why):
            return CheckpointError(f"{self.run.file(CONFIG)} holds a damaged schedule state "
                                   f"({why}); put back the config.json this run wrote, or "
                                   f"start again with --force")
        if not isinstance(state, dict):
            raise damaged(f"{state!r}, not a table")
        steps = state.get("steps_taken")
        if type(steps) is not int or steps != checkpoint_step:
            raise damaged(f"steps_taken is {steps!r}, where the checkpoint is at step "
                          f"{checkpoint_step}")
        if isinstance(self.schedule, WarmupCosine):
            peaks, groups = state.get("base_lrs"), len(self.optimizer.param_groups)
            if not (isinstance(peaks, list) and len(peaks) == groups):
                raise damaged(f"base_lrs is {peaks!r}, not a list of {groups} learning rates, "
                              f"one for each of the optimizer's groups")
            for i, lr in enumerate(peaks):
                problem = GROUP_RULES["lr"].why(lr)        # as the groups' lrs are checked
                if problem:
                    raise damaged(f"base_lrs[{i}] {problem}")

    def _check_optimizer_state(self, state, shapes, groups, path, checkpoint_step):
        """CheckpointError, one line, unless the saved optimizer state (`state` and `groups`
        from config.json, the arrays' `shapes` by name in the .npz at `path`) is one this
        optimizer can go on from: the optimizer's keys for each parameter (or none, for one
        never updated), a whole step from 0 to the checkpoint's (a parameter is updated at most
        once a step), betas a pair of numbers. Checked before anything is
        loaded or rewritten: otherwise the run would fail at its first update, metrics.jsonl
        cut."""
        where = self.run.file(CONFIG)
        def damaged(file, why):
            advice = "put back the config.json this run wrote" if file == where else \
                "restore it"
            return CheckpointError(f"{file} holds a damaged optimizer state ({why}); {advice}, "
                                   f"or start again with --force")
        parameters = [(p, group) for group in self.optimizer.param_groups
                      for p in group["params"]]
        if not (isinstance(state, list) and len(state) == len(parameters)
                and all(isinstance(saved, dict) for saved in state)):
            raise damaged(where, f"the state of {len(parameters)} parameters expected")
        in_arrays = [set() for _ in parameters]     # each parameter's keys in the .npz
        for key in shapes:
            index, _, name = key.partition(".")
            # "-1" would pass int() and set the last parameter's moment: digits only.
            if not (index.isdecimal() and int(index) < len(parameters)):
                raise damaged(path, f"{key!r} names no parameter 0 to {len(parameters) - 1}")
            in_arrays[int(index)].add(name)
        for i, ((p, group), saved, arrays) in enumerate(zip(parameters, state, in_arrays)):
            expected = set(self.optimizer.initial_state(p, group))
            kept = set(saved) | arrays
            if kept and kept != expected:
                raise damaged(path, f"parameter {i} has {sorted(kept)}, where the optimizer "
                                    f"keeps {sorted(expected)}")
            # (10**400, say, would fail at the first update, after metrics.jsonl was cut)
            step = saved.get("step", 0)
            if type(step) is not int or not 0 <= step <= checkpoint_step:
                raise damaged(where, f"parameter {i}'s step is {step!r}, not a whole number "
                                     f"from 0 to the checkpoint's {checkpoint_step}")
        for i, group in enumerate(groups if isinstance(groups, list) else [None]):
            betas = group.get("betas") if isinstance(group, dict) else None
            if not (isinstance(betas, list) and len(betas) == 2):
                raise damaged(where, f"betas {betas!r}, not a pair of numbers")
            options = {key: group.get(key) for key in GROUP_RULES if "[" not in key}
            options.update({"betas[0]": betas[0], "betas[1]": betas[1]})
            try:
                check_settings(options, GROUP_RULES, name=lambda key, i=i: f"group {i}'s {key}")
            except ValueError as e:
                raise damaged(where, str(e)) from None
            # The switches no setting gives (AdamW's amsgrad, maximize) are the ones this run's
            # optimizer was built with, or absent (a checkpoint saved before they existed):
            # load_state_dict would take any other value, or an unknown option, as it is, and
            # the run would go on with another rule (maximize climbing the loss).
            if i >= len(self.optimizer.param_groups):
                continue                 # a group too many: load_state_dict refuses it
            built = self.optimizer.param_groups[i]
            switches = set(group) - set(options) - {"betas", "params", "param_names"}
            for key in sorted(switches):
                if key not in built:
                    have = "no such option"
                # The same type too: 0 == False, but load_state_dict refuses a switch of 0
                elif type(group[key]) is not type(built[key]) or group[key] != built[key]:
                    have = repr(built[key])
                else:
                    continue
                raise damaged(where, f"group {i}'s {key} is {group[key]!r}, where this run's "
                                     f"optimizer has {have}")


def _indent(text):
    return "\n".join("    " + line for line in text.splitlines())
