"""The settings of a training run: every one a TrainConfig field, each checked against its rule
(SETTING_RULES) and against the others (TrainConfig.check), the job's defaults for those left
unset (DEFAULTS, filled in by TrainConfig.resolved), and reading them from a TOML file.

    config = TrainConfig.from_toml("run.toml")          # or TrainConfig(corpus="input.txt")
    config = config.resolved()                          # every default filled in, checked
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy as np

from .checkpoint import MODELS
from .data import TASKS
from .files import (StrPath, folder_of, path_from_here, read_text, separator_after_file,
                    unexpanded_home, unexpanded_pattern)
from .layers import ACTIVATIONS, NORMALIZATIONS, SWITCHES
from .tokenizers import MAX_VOCAB_SIZE
from .schema import (SEED, BadInput, Flag, Number, OneOf, Optional, Text, Whole, check_settings,
                     nearest, option_name)

# Defaults for the settings a user leaves unset, by what is trained:
# - builtin: learns the stories' long-range recall in under a minute on 2 cores
#   (benchmarks/corpus.py). 800 steps, because the recall arrives suddenly: at 600 some seeds
#   are still on their way (0.84 to 1.00 on seeds 0 to 2, where 800 gives 0.97 to 1.00).
# - corpus: nanoGPT's small CPU recipe for Shakespeare.
# - task: reaches 99% exact match on held-out sequences (benchmarks/seq2seq.py), in more steps
#   for the harder tasks (TASK_ITERS).
DEFAULTS = {
    "builtin": dict(n_layer=2, n_head=4, d_model=64, context=128, batch_size=16, iters=800,
                    lr=8e-3, warmup=60, eval_every=100),
    "corpus": dict(n_layer=4, n_head=4, d_model=128, context=64, batch_size=12, iters=2000,
                   lr=1e-3, warmup=100, eval_every=250),
    "task": dict(n_layer=2, n_head=4, d_model=64, context=None, batch_size=64, iters=None,
                 lr=3e-3, warmup=100, eval_every=100),
}
TASK_ITERS = {"copy": 400, "reverse": 400, "sort": 1000, "add": 4000}
# --tokenizer bpe's vocabulary. The stories use a few dozen words, which run out of pairs to
# merge after about 110 merges: 320 ids leave the rarer words in pieces, as data.builtin_bpe.
BPE_VOCAB = {"builtin": 320, "corpus": 512}
SAMPLE_TOKENS = 200                   # a GPT's sample at each evaluation, unless set
MIN_BPE_VOCAB = 256 + 3              # the bytes, and room for a few merges
# BERT's own, over its data's. On a text, the original's masking: 15% of the tokens, one by
# one. On the built-in stories, a recipe that learns to fill in a story's hidden colour:
# whole words hidden (a colour's letters together, as in a prompt), 30% of them (a story
# teaches the recall when its last colour is hidden and its first is not: 21% of stories), at
# batch 32 and lr 1e-2; the model's own post-norm. Its val_recall reaches 0.98 to 1.00 by step
# 800 to 900 on seeds 0 to 3 (a guess from the number of hidden letters alone gets 0.64 of the
# same stories), in about 50 s on two shared cores with --threads 1.
BERT_DEFAULTS = {
    "builtin": dict(batch_size=32, iters=1000, lr=1e-2, mask_rate=0.3, whole_words=True),
    "corpus": dict(mask_rate=0.15, whole_words=False),
}


def setting_name(key: object) -> str:
    """A setting's field name as a file or the command line may spell it: "min-len" and
    "min_len" are both min_len."""
    return str(key).replace("-", "_")


def setting(default: Any, help: str | None = None, shown: str | None = None) -> Any:
    """A field of TrainConfig; `help`, when given, makes it an option of `tinyformer train`
    (--min-len for min_len) and says what it means there, with `shown` as its default in the
    help where `default` is None (else `default` is shown; for the settings that DEFAULTS gives
    by job, those are). The rest are for config files."""
    metadata = {"help": help, "shown": shown} if help else {}
    return dataclasses.field(default=default, metadata=metadata)


def shown_default(name: str) -> str | None:
    """How the help shows a setting's default: its field's own ("1" for 1.0, "cosine"), or,
    where that is None, as `setting` was told, or, for one that depends on what is trained,
    each job's ("2 built-in, 4 --corpus, 2 --task")."""
    field = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    if field.default is not None:       # written once, so that the help says the one in use
        return f"{field.default:g}" if isinstance(field.default, float) else str(field.default)
    if field.metadata.get("shown") or name not in DEFAULTS["builtin"]:
        return field.metadata.get("shown")
    shown = []
    for job, where in (("builtin", "built-in"), ("corpus", "--corpus"), ("task", "--task")):
        value = DEFAULTS[job][name]
        bert = BERT_DEFAULTS.get(job, {}).get(name)
        shown.append(("by the task's length" if name == "context" else "by task")
                     if value is None else
                     f"{value:g} {where}" + (f" (BERT {bert:g})" if bert is not None else ""))
    # A short run's warmup is cut to a tenth of it (resolved)
    return ", ".join(shown) + ("; at most a tenth of --iters" if name == "warmup" else "")


# Options of `tinyformer train` that say where and how a run goes, not what it is: they are
# not saved with it, and a --config file does not hold them.
COMMAND_LINE_ONLY = ("out", "force", "resume", "config", "threads")

# Other programs' names for the settings (nanoGPT's, Hugging Face's, PyTorch's), which a user
# brings along: each is answered with ours, where a guess by spelling would name another
# setting (max_iters is close to eval_iters, block_size to vocab_size, n_embd to n_head).
OTHER_NAMES = {
    "max_iters": "iters", "max_steps": "iters", "steps": "iters", "num_steps": "iters",
    # nanoGPT's cosine ends at lr_decay_iters; ours at the run's last step (not eval_iters,
    # the spelling's guess: a count of validation batches)
    "lr_decay_iters": "iters", "per_device_train_batch_size": "batch_size",
    "block_size": "context", "n_ctx": "context", "n_positions": "context",
    "max_position_embeddings": "context", "seq_len": "context", "max_seq_len": "context",
    "n_embd": "d_model", "hidden_size": "d_model", "dim": "d_model",
    "intermediate_size": "d_ff", "dim_feedforward": "d_ff",
    "num_hidden_layers": "n_layer", "num_layers": "n_layer", "n_layers": "n_layer",
    "num_attention_heads": "n_head", "nhead": "n_head", "n_heads": "n_head",
    "num_key_value_heads": "n_kv_head", "n_kv_heads": "n_kv_head", "head_dim": "d_head",
    "learning_rate": "lr", "warmup_iters": "warmup", "warmup_steps": "warmup",
    "grad_clip": "clip", "max_grad_norm": "clip", "eval_interval": "eval_every",
    "eval_steps": "eval_every", "save_steps": "checkpoint_every",
    "mlm_probability": "mask_rate", "label_smoothing_factor": "label_smoothing",
}

def setting_renamed(key: str) -> str | None:
    """Our name for a setting given by another program's (OTHER_NAMES: "max_iters" is iters),
    spelled as that program does or nearly ("learning_rat", closer to learning_rate than to
    any of ours, is lr); None for any other key."""
    name = setting_name(key)
    ours = [field.name for field in dataclasses.fields(TrainConfig)]
    closest = nearest(name, [*ours, *OTHER_NAMES])
    return OTHER_NAMES.get(name) or (OTHER_NAMES.get(closest[0]) if closest else None)


# The tokenizers a run learns from its text; any other `tokenizer` is the path of a file.
TOKENIZER_KINDS = ("char", "bpe")


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a run. None means "the default for this job" (DEFAULTS, or the model
    class's own default for positions and norm); `resolved()` fills them in.

        config = TrainConfig(corpus="input.txt", iters=2000, d_model=128)
        Trainer.start(config, "runs/mine").train()           # tinyformer.train

    Each is a key of a `--config` TOML file and, but for `rmsnorm_affine`, `beta1`, `beta2`
    and `sample_tokens`, an option of `tinyformer train` (`min_len` is --min-len), whose
    --help says what it means and its default:

    - the data: `corpus` (a text file; the built-in stories without one), `task` (a seq2seq
      task, with `min_len` and `max_len`), `tokenizer` and its BPE's `vocab_size`;
    - the model: `model`, the sizes `n_layer`, `n_head`, `d_model`, `d_ff`, `context`,
      `d_head`, and
      the switches the models take, `positions`, `norm`, `normalization`, `rmsnorm_affine`,
      `activation`, `n_kv_head`, `qk_norm`, `logit_softcap`, `bias`, `rope_theta`,
      `tie_weights`, `share_embeddings` (an encoder-decoder's), `dropout`;
    - the optimisation: `batch_size` (cut into `micro_batches`), `iters` steps of AdamW
      (`beta1`, `beta2`, `weight_decay`) at peak `lr`, after `warmup` steps, down to `min_lr`
      by the `schedule`, with gradients clipped to norm `clip`; `label_smoothing` (seq2seq),
      `mask_rate` and `whole_words` (BERT's masking);
    - the run: `eval_every`, `eval_iters`, `checkpoint_every`, `sample_tokens` (a GPT's
      sample at each evaluation) and the `seed` of everything drawn at random.
    """
    corpus: str | None = setting(None, "A UTF-8 text file to train on.",
                                 shown="the built-in corpus of generated stories")
    task: str | None = setting(None, "A seq2seq task: copy, reverse, sort or add (trains an "
                               "encoder-decoder).")
    min_len: int | None = setting(None, "Shortest task sequence, in digits (for add, both "
                                  "numbers' digits, the + not counted).",
                                  shown="4, or --max-len if shorter")
    max_len: int | None = setting(None, "Longest task sequence, in digits (for add, both "
                                  "numbers' digits, the + not counted).",
                                  shown="10, or --min-len if longer")
    model: str | None = setting(None, "gpt, bert or transformer (the encoder-"
                                "decoder).",
                                shown="gpt; transformer with --task")
    tokenizer: str | None = setting(None, "char, bpe, or a tokenizer to encode with: a file "
                                    "`tinyformer tokenize train` wrote, a run directory (its "
                                    "own), or a Hugging Face GPT-2 directory.", shown="char")
    vocab_size: int | None = setting(None, "The BPE's vocabulary size: all its ids, the 256 "
                                     "bytes and the special tokens included.",
                                     shown="512; 320 on the built-in stories")
    n_layer: int | None = setting(None, "Transformer blocks.")
    n_head: int | None = setting(None, "Attention heads per block.")
    d_model: int | None = setting(None, "Width of the residual stream.")
    d_ff: int | None = setting(None, "Width of the feed-forward layer.",
                               shown="4 d_model; with swiglu, 8/3 d_model rounded up to a "
                               "multiple of 8")
    context: int | None = setting(None, "Longest sequence the model sees.")
    d_head: int | None = setting(None, "Width of each attention head, when not d_model / "
                                 "n_head (as in Qwen3).", shown="d_model / n_head")
    positions: str | None = setting(None, "learned, sinusoidal, rope or none.",
                                    shown="the model's own")
    norm: str | None = setting(None, "pre or post.", shown="the model's own")
    normalization: str | None = setting(None, "layernorm or rmsnorm, for every norm.",
                                        shown="layernorm")
    rmsnorm_affine: bool | None = setting(None)      # False: RMS norms without a learned weight
    activation: str | None = setting(None, "The feed-forward's: gelu, relu, swiglu or relu2.",
                                     shown="the model's own")
    n_kv_head: int | None = setting(None, "Key-value heads, dividing --n-head: grouped-query "
                                    "attention (1: multi-query).", shown="n-head")
    qk_norm: bool | None = setting(None, "Normalise each head's queries and keys before their "
                                   "dot product.", shown="no")
    logit_softcap: float | None = setting(None, "Squash the logits into (-c, c), "
                                          "c tanh(logits / c).", shown="none")
    bias: bool | None = setting(None, "Biases in the linear layers and norms.", shown="yes")
    rope_theta: float | None = setting(None, "RoPE's base, with --positions rope.",
                                       shown="10000")
    tie_weights: bool | None = setting(None, "The output layer is the token embedding, "
                                       "transposed: no weights of its own.", shown="yes")
    share_embeddings: bool | None = setting(None, "An encoder-decoder's source and target "
                                            "share one embedding (a task's one vocabulary).",
                                            shown="no")
    dropout: float = setting(0.0, "Dropout rate.")
    batch_size: int | None = setting(None, "Sequences per step.")
    micro_batches: int | None = setting(None, "Parts each batch is cut into, at most "
                                        "--batch-size, computed side by side on the threads; "
                                        "the losses are the same on any number of threads "
                                        "up to one a part.",
                                        shown="2, or --batch-size if less")
    iters: int | None = setting(None, "Optimizer steps.")
    lr: float | None = setting(None, "Peak learning rate.")
    min_lr: float | None = setting(None, "Learning rate at the end of the cosine.",
                                   shown="lr / 10")
    warmup: int | None = setting(None, "Steps of linear warmup.")
    schedule: str = setting("cosine", "cosine or noam.")
    weight_decay: float = setting(0.1, "AdamW's decoupled weight decay, on weights only.")
    beta1: float = setting(0.9)
    beta2: float = setting(0.99)
    clip: float = setting(1.0, "Largest gradient norm, 0 for none.")
    label_smoothing: float | None = setting(None, "For seq2seq tasks; val_loss is then "
                                            "the smoothed loss too.", shown="0")
    mask_rate: float | None = setting(None, "BERT: the share of tokens (or words) hidden.",
                                      shown="0.3 of words on the built-in stories, else 0.15")
    whole_words: bool | None = setting(None, "BERT: hide a word's letters together.",
                                       shown="on the built-in stories")
    eval_every: int | None = setting(None, "Steps between evaluations (validation loss, a "
                                     "sample; a checkpoint too, unless --checkpoint-every says "
                                     "otherwise).")
    eval_iters: int | None = setting(None, "Validation batches per evaluation of a text; a "
                                     "--task is scored on all its held-out pairs.", shown="20")
    checkpoint_every: int | None = setting(None, "Steps between checkpoints.",
                                           shown="eval-every")
    sample_tokens: int | None = setting(None)   # of a GPT's sample at each evaluation: 200
    seed: int = setting(0, "Seeds all that is drawn at random: the built-in stories or a "
                        "task's pairs, the batches (the validation ones too), the initial "
                        "weights and dropout.")

    def __post_init__(self) -> None:
        # A file given as a pathlib.Path is kept as its text, as config.json records it and
        # the settings' rules check it.
        for key in ("corpus", "tokenizer"):
            if isinstance(getattr(self, key), os.PathLike):
                setattr(self, key, os.fspath(getattr(self, key)))
        # A numpy number (a sweep's np.arange(...) of iters, an lr from np.logspace as
        # float32) is kept as Python's: the rules take it as the number it is, but config.json
        # and the manifest, written as JSON, could not record it.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, np.generic):
                setattr(self, field.name, value.item())

    @property
    def job(self) -> str:
        """What the run learns from: "task" (a seq2seq task), "corpus" (a text file) or
        "builtin" (the built-in stories), which picks the defaults (DEFAULTS)."""
        return "task" if self.task else "corpus" if self.corpus else "builtin"

    @property
    def tokenizer_file(self) -> str | None:
        """The path `tokenizer` names when it is not a kind to learn from the text (char,
        bpe): a tokenizer saved before, which the run encodes its text with."""
        return None if self.tokenizer in (None, *TOKENIZER_KINDS) else self.tokenizer

    @classmethod
    def from_dict(cls, settings: dict[str, Any], where: str = "the settings") -> TrainConfig:
        """A config from `settings`, a dict such as a TOML file's or config.json's; ValueError
        naming any unknown key, or any value of the wrong type or out of range, as found
        `where` ("lr in run.toml")."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(settings, dict):
            raise BadInput(f"{where} holds no table of settings")
        spelled: dict[str, str] = {}            # each setting as the file spells it
        named: dict[str, Any] = {}              # each setting by its field name
        for key, value in settings.items():
            name = setting_name(key)
            if name in spelled:                 # else the later would win without a word
                raise BadInput(f"{spelled[name]} and {key} in {where} are the same setting; "
                               f"keep one")
            spelled[name], named[name] = str(key), value
        settings = named
        unknown = sorted(set(settings) - names)
        if unknown:
            renamed = setting_renamed(unknown[0])
            close = [renamed] if renamed else nearest(unknown[0], sorted(names))  # else a typo
            fix = (f"did you mean {close[0]!r}?" if close else
                   f"known settings: {', '.join(sorted(names))}")
            raise BadInput(f"unknown setting {spelled[unknown[0]]!r} in {where}; {fix}")
        check_settings(settings, SETTING_RULES, where=where)
        return cls(**settings)

    @classmethod
    def from_saved(cls, settings: dict[str, Any], where: str) -> TrainConfig:
        """The config of a saved run, its `settings` (from_dict's checks, naming `where`), without
        the settings that do not apply to it: a run saved before they were refused holds their
        defaults, unused. Likewise a run saved before more micro-batches than its batch's
        sequences were refused (the default 2 with a batch of 1) left the empty parts out:
        its micro_batches is its batch size."""
        config = cls.from_dict(settings, where)
        config = dataclasses.replace(config, **dict.fromkeys(config.not_applying(), None))
        if None not in (config.micro_batches, config.batch_size):
            config.micro_batches = min(config.micro_batches, config.batch_size)
        return config

    @classmethod
    def from_toml(cls, path: StrPath) -> TrainConfig:
        """A config from the TOML file at `path`: its [train] table, or its keys at the top level
        (not both: a setting beside a [train] table is an error, not dropped)."""
        return cls.from_dict(toml_settings(path), str(path))

    def resolved(self, name: Callable[[str], str] = option_name) -> TrainConfig:
        """A copy with every None replaced by its default, checked; `name(key)` says how a
        setting is called in check()'s errors ("--lr", or "lr in run.toml")."""
        check_settings(dataclasses.asdict(self), SETTING_RULES, name=name)   # before arithmetic
        c = dataclasses.replace(self)
        if c.model is None:
            c.model = "transformer" if c.task else "gpt"
        defaults = DEFAULTS[c.job]
        if c.model == "bert":
            defaults = {**defaults, **BERT_DEFAULTS.get(c.job, {})}
        for key, value in defaults.items():
            if getattr(c, key) is None:
                setattr(c, key, value)
        # The settings that apply only to some runs get their defaults only there: elsewhere
        # they stay unset, and given, check() refuses them.
        # A task's lengths, 4 to 10 by default, make way for one given alone (--max-len 3: 3).
        applying = {"min_len": min(4, c.max_len or 4), "max_len": max(10, c.min_len or 10),
                    "label_smoothing": 0.0} if c.task else \
            {"tokenizer": "char", "vocab_size": BPE_VOCAB[c.job] if c.tokenizer == "bpe" else None,
             "eval_iters": 20}
        if c.model == "gpt":            # the one model that writes a sample as it trains
            applying["sample_tokens"] = SAMPLE_TOKENS
        for key, value in applying.items():
            if getattr(c, key) is None:
                setattr(c, key, value)
        if c.iters is None:
            c.iters = TASK_ITERS.get(c.task, 1000)
        if c.micro_batches is None:       # a batch of one sequence is one part
            c.micro_batches = min(2, c.batch_size)
        if self.warmup is None:           # a short run asked for gets a short default warmup
            c.warmup = min(c.warmup, c.iters // 10)
            if c.schedule == "noam":      # whose formula needs at least one warmup step
                c.warmup = max(c.warmup, 1)
        if c.min_lr is None and c.schedule == "cosine":      # the only schedule with a floor
            c.min_lr = c.lr / 10
        if c.checkpoint_every is None:
            c.checkpoint_every = c.eval_every
        c._check_together(name)             # each against its rule: checked above
        return c

    def check(self, name: Callable[[str], str] = option_name) -> None:
        """ValueError, in one line, for the first setting that cannot work: each against its
        rule (SETTING_RULES), then the settings against each other (those named by `name`, as
        their values were given)."""
        check_settings(dataclasses.asdict(self), SETTING_RULES, name=name)
        self._check_together(name)

    def _check_together(self, name: Callable[[str], str]) -> None:
        """check()'s second half: the settings against each other, each already in range."""
        required = ["model", "n_layer", "n_head", "d_model", "batch_size", "micro_batches",
                    "iters", "lr", "warmup", "eval_every", "checkpoint_every"]
        required += ["min_lr"] if self.schedule == "cosine" else []
        required += [] if self.task else ["eval_iters"]
        for key in required:
            if getattr(self, key) is None:           # resolved() fills these in
                raise BadInput(f"{name(key)} is not set")
        if self.task and self.model != "transformer":
            raise BadInput(f"{name('task')} trains an encoder-decoder; use {name('model')} "
                           f"transformer (the default with {name('task')}), not {self.model}")
        if self.model == "transformer" and not self.task:
            raise BadInput(f"{name('model')} transformer trains on a seq2seq task; give "
                           f"{name('task')} {'|'.join(TASKS)}")
        if self.task and self.corpus:
            raise BadInput(f"give {name('task')} or {name('corpus')}, not both")
        if self.d_head is None and self.d_model % self.n_head:
            # The head counts nearest the one asked for: the divisors just below and above.
            divisors = [n for n in range(1, self.d_model + 1) if self.d_model % n == 0]
            nearest = [max(n for n in divisors if n < self.n_head)]
            nearest += [n for n in divisors if n > self.n_head][:1]
            raise BadInput(f"{name('n_head')} {self.n_head} does not divide "
                           f"{name('d_model')} {self.d_model}: each head gets d_model / n_head "
                           f"dimensions; try {name('n_head')} {' or '.join(map(str, nearest))}"
                           f", or give {name('d_head')}")
        if self.positions == "rope" and self.d_head is not None and self.d_head % 2:
            even = [n for n in (self.d_head - 1, self.d_head + 1) if n > 0]   # the nearest
            raise BadInput(f"{name('positions')} rope needs an even head size, got "
                           f"{name('d_head')} {self.d_head}; try {name('d_head')} "
                           f"{' or '.join(map(str, even))}")
        if self.positions == "rope" and self.d_head is None and (self.d_model // self.n_head) % 2:
            # The head counts nearest the one asked for whose heads are even; an odd d_model
            # has none.
            even = [n for n in range(1, self.d_model + 1)
                    if self.d_model % n == 0 and (self.d_model // n) % 2 == 0]
            nearest = [n for n in even if n < self.n_head][-1:]
            nearest += [n for n in even if n > self.n_head][:1]
            fix = (f"try {name('n_head')} {' or '.join(map(str, nearest))}" if nearest else
                   f"give an even {name('d_model')}")
            raise BadInput(f"{name('positions')} rope needs an even head size, but d_model / "
                           f"n_head = {self.d_model // self.n_head}; {fix}, or give an even "
                           f"{name('d_head')}")
        if self.n_kv_head is not None and self.n_head % self.n_kv_head:
            divisors = ' or '.join(map(str, [n for n in range(1, self.n_head + 1)
                                             if self.n_head % n == 0][-3:]))
            raise BadInput(f"{name('n_kv_head')} {self.n_kv_head} does not divide "
                           f"{name('n_head')} {self.n_head}: each key-value head serves a whole "
                           f"group of query heads; try {name('n_kv_head')} {divisors}")
        for key, why in self.not_applying(name).items():
            if getattr(self, key) is not None:
                # A setting from a file is named as it is there (a sweep's base file set it,
                # and the command line changed the model), as are the others `why` names.
                raise BadInput(why)
        if self.min_lr is not None and not self.min_lr <= self.lr:
            raise BadInput(f"{name('min_lr')} must be between 0 and {name('lr')} ({self.lr}), "
                           f"got {self.min_lr!r}")
        if self.micro_batches > self.batch_size:
            # The parts past the batch's rows would be empty, and left out: the run computed
            # fewer parts than it recorded.
            raise BadInput(f"{name('micro_batches')} must be at most {name('batch_size')} "
                           f"({self.batch_size}), got {self.micro_batches}: each part is at "
                           f"least one sequence")
        if self.schedule == "cosine" and self.warmup > self.iters:
            raise BadInput(f"{name('warmup')} must be at most {name('iters')} ({self.iters}), "
                           f"got {self.warmup}: warm up for fewer steps than the run has")
        if self.schedule == "noam" and self.warmup < 1:
            raise BadInput(f"{name('warmup')} must be at least 1 with the noam schedule, got "
                           f"{self.warmup}: its formula divides by the warmup")
        if self.task and self.max_len < 2:
            raise BadInput(f"{name('max_len')} must be at least 2, got {self.max_len}")
        if self.task and self.min_len > self.max_len:
            raise BadInput(f"{name('min_len')} must be at most {name('max_len')} "
                           f"({self.max_len}), got {self.min_len}")
        if self.task and self.min_len < 2:
            raise BadInput(f"{name('min_len')} must be at least 2, got {self.min_len}")
        if self.tokenizer == "bpe" and self.vocab_size is None:     # resolved() fills it in
            raise BadInput(f"{name('vocab_size')} is not set")
        if self.tokenizer == "bpe" and self.vocab_size < MIN_BPE_VOCAB:
            # A text's BPE has no special tokens (a BERT's <pad> and <mask> are two of the 3
            # ids past the bytes): the words say what is counted.
            raise BadInput(f"{name('vocab_size')} {self.vocab_size} is too small for a "
                           f"byte-level BPE: it needs at least {MIN_BPE_VOCAB} ids, the 256 "
                           f"bytes and some merges learned from the text; try 512")

    def not_applying(self, name: Callable[[str], str] = option_name) -> dict[str, str]:
        """{setting: why it does not apply} for each setting that does nothing in this run (a
        task's lengths without a task, BERT's masking for a GPT, ...): check() refuses such a
        setting given a value, rather than ignore it. Each setting is named as `name(key)`
        says, as check's other errors name it: "--vocab-size" on the command line, "vocab_size
        in run.toml" from a file (a setting only a file has, sample_tokens, as the file spells
        it)."""
        tasks = "|".join(TASKS)
        task = name("task")

        def file_only(key):         # a setting no option sets: as a file names it, or bare
            given = name(key)
            return key if given == option_name(key) else given
        why = {}
        if not self.task:
            why["min_len"] = why["max_len"] = (f"{name('min_len')} and {name('max_len')} set "
                                               f"the lengths of a {task}'s sequences; drop "
                                               f"them, or give {task} {tasks}")
            why["label_smoothing"] = (f"{name('label_smoothing')} smooths a {task}'s targets; "
                                      f"drop it, or give {task} {tasks}")
        if self.task:
            for key in ("tokenizer", "vocab_size"):
                why[key] = (f"a {task} has its own tokenizer (of its digits and signs): drop "
                            f"{name(key)}")
            why["eval_iters"] = (f"{name('eval_iters')} counts the validation batches of a "
                                 f"text; a task is scored on all its held-out pairs: drop "
                                 f"{name('eval_iters')}")
        elif self.tokenizer_file:
            why["vocab_size"] = (f"{name('vocab_size')} is for a bpe tokenizer learned from the "
                                 f"text; the tokenizer file {self.tokenizer_file!r} has its own "
                                 f"vocabulary: drop {name('vocab_size')}")
        elif self.tokenizer != "bpe":
            why["vocab_size"] = (f"{name('vocab_size')} is for a bpe tokenizer; a char "
                                 f"tokenizer's vocabulary is the characters of its text: drop "
                                 f"it, or give {name('tokenizer')} bpe")
        if self.model != "bert":
            why["mask_rate"] = why["whole_words"] = (
                f"{name('mask_rate')} and {name('whole_words')} say what BERT hides; a "
                f"{self.model} does not hide tokens: drop them, or give {name('model')} bert")
        if self.model != "gpt":
            why["sample_tokens"] = (f"{file_only('sample_tokens')} is the length of the sample "
                                    f"a GPT writes at each evaluation; a {self.model} writes "
                                    f"none: drop it")
        if self.model != "transformer":
            why["share_embeddings"] = (f"{name('share_embeddings')} shares an encoder-decoder's "
                                       f"source and target embeddings; a {self.model} has one: "
                                       f"drop it, or give {task} {tasks}")
        if self.positions != "rope":
            why["rope_theta"] = (f"{name('rope_theta')} is the base of RoPE's rotations; it "
                                 f"needs {name('positions')} rope")
        if self.schedule != "cosine":
            why["min_lr"] = (f"{name('min_lr')} is where the cosine schedule ends; "
                             f"{name('schedule')} {self.schedule} has no floor: drop "
                             f"{name('min_lr')}, or give {name('schedule')} cosine")
        if self.normalization != "rmsnorm":
            why["rmsnorm_affine"] = (f"{file_only('rmsnorm_affine')} says whether RMS norms "
                                     f"learn a weight; it needs normalization = \"rmsnorm\"")
        return why


def toml_settings(path: StrPath) -> dict[str, Any]:
    """The settings of a TOML file, as it spells them (TrainConfig.from_toml)."""
    try:
        import tomllib
    except ModuleNotFoundError:                   # Python 3.10
        import tomli as tomllib
    # An empty file is valid TOML, as TOML's readers take it: no settings, all the defaults.
    text = read_text(path, "--config file", allow_empty=True)
    try:
        settings = tomllib.loads(text)
    # TOMLDecodeError is a ValueError; so is an integer of more digits than Python converts
    # (4300), which tomllib raises as it is
    except ValueError as e:
        raise BadInput(f"--config file {str(path)!r} is not valid TOML ({e})"
                       f"{backslashes_advice(text, tomllib)}") from None
    except RecursionError:                        # arrays or tables nested thousands deep
        raise BadInput(f"--config file {str(path)!r} is not valid TOML (nested too deeply)") \
            from None
    if isinstance(settings.get("train"), dict):
        outside = sorted(set(settings) - {"train"})
        if outside:
            key = outside[0]
            shown = f"[{key}]" if isinstance(settings[key], dict) else key
            raise BadInput(f"{shown} in {path} is outside its [train] table; put every "
                           f"setting in [train], or every one at the top level")
        settings = settings["train"]
        inside = "train."
    else:
        inside = ""
    for key, value in settings.items():
        if isinstance(value, dict):        # no setting is a table: settings grouped by topic
            raise BadInput(f"[{inside}{key}] in {path} is a table of its own; put every "
                           f"setting in [train], or every one at the top level")
    for key in settings:
        if setting_name(key) in COMMAND_LINE_ONLY:
            raise BadInput(f"{key} in {path} is not a setting of the run: give "
                           f"{option_name(setting_name(key))} on the command line")
    return settings


# Each setting's type and range. The upper bounds are far beyond anything that trains on one
# machine; they keep a typo (an extra zero or six) from reaching numpy as an absurd size.
# Sizes that each pass but together need more memory than there is are check_memory's.
BIG = 10 ** 9
SETTING_RULES = {
    "model": Optional(OneOf(*MODELS)),
    "corpus": Optional(Text("a file's path")),
    "task": Optional(OneOf(*TASKS)),
    "min_len": Optional(Whole(1, 10_000)), "max_len": Optional(Whole(1, 10_000)),
    # A kind, or else the path of a file, which Trainer.start reads: a run resumes without it.
    "tokenizer": Optional(Text(f"{', '.join(TOKENIZER_KINDS)} or a tokenizer file's path")),
    "vocab_size": Optional(Whole(1, MAX_VOCAB_SIZE)),
    "n_layer": Optional(Whole(1, 1_000)), "n_head": Optional(Whole(1, 4_096)),
    "d_model": Optional(Whole(1, 1 << 16)), "d_ff": Optional(Whole(1, 1 << 18)),
    "context": Optional(Whole(1, 1 << 20)),
    "d_head": Optional(Whole(1, 1 << 16)),
    "positions": Optional(OneOf("learned", "sinusoidal", "rope", "none")),
    "norm": Optional(OneOf("pre", "post")),
    "normalization": Optional(OneOf(*NORMALIZATIONS)),
    "rmsnorm_affine": Optional(Flag()),
    "activation": Optional(OneOf(*ACTIVATIONS)),
    "n_kv_head": SWITCHES["n_kv_head"],           # the models' own rules, as they check them
    "qk_norm": Optional(Flag()),
    "logit_softcap": Optional(Number(above=0)),
    "bias": Optional(Flag()),
    "rope_theta": Optional(SWITCHES["rope_theta"]),
    "tie_weights": Optional(Flag()),
    "share_embeddings": Optional(Flag()),
    "dropout": SWITCHES["dropout"],
    "batch_size": Optional(Whole(1, 1 << 20)),
    "micro_batches": Optional(Whole(1, 1 << 10)),
    "iters": Optional(Whole(1, BIG)),
    "lr": Optional(Number(above=0)),
    "min_lr": Optional(Number(0)),
    "warmup": Optional(Whole(0, BIG)),
    "schedule": OneOf("cosine", "noam"),
    "weight_decay": Number(0), "beta1": Number(0, below=1), "beta2": Number(0, below=1),
    "clip": Number(0), "label_smoothing": Optional(Number(0, below=1)),
    "mask_rate": Optional(Number(above=0, below=1)), "whole_words": Optional(Flag()),
    "eval_every": Optional(Whole(1, BIG)), "eval_iters": Optional(Whole(1, 1 << 20)),
    "checkpoint_every": Optional(Whole(1, BIG)),
    "sample_tokens": Optional(Whole(0, 1 << 20)),
    "seed": SEED,
}


# What to do about a Windows path in a "double-quoted" TOML string, whose \ start escapes.
WINDOWS_PATH_ADVICE = ("a \\ in a \"double-quoted\" TOML string starts an escape (\\t a tab, "
                       "\\U a character's code); write a Windows path in 'single quotes', or "
                       "with / in place of \\")


def backslashes_advice(text: str, tomllib: Any) -> str:
    r"""For a TOML text that does not parse: WINDOWS_PATH_ADVICE, after "; ", where its
    backslashes are why: it parses with each one doubled, as a Windows path is written in a
    "double-quoted" string (C:\\Users). Else ""."""
    if "\\" not in text:
        return ""
    try:
        tomllib.loads(text.replace("\\", "\\\\"))
    except (ValueError, RecursionError):            # (a TOMLDecodeError is a ValueError)
        return ""
    return f"; {WINDOWS_PATH_ADVICE}"


# The characters that an escape of a "double-quoted" TOML string makes from a Windows path's
# \ and the letter after it (C:\temp\new.txt holds a tab and a new line): no path holds one.
ESCAPED_CONTROLS = {"\t": "a tab", "\n": "a new line", "\r": "a carriage return",
                    "\b": "a backspace", "\f": "a form feed"}


def check_paths(config: TrainConfig, config_file: StrPath | None, overrides: dict[str, Any],
                name: Callable[[str], str] = option_name) -> None:
    """ValueError, in one line, for a path setting (corpus, or tokenizer when not char or bpe)
    that names no file as it was given, said as where it came from: a ~ that nothing expanded
    (files.unexpanded_home), on the command line (`overrides`, each called `name(key)`) or in
    the TOML `config_file` (whose settings `config` holds); or a relative path in that file
    that does not exist: it is read from the current directory, as a path on the command line
    is, and not from the file's own, which a user may well expect; the message says so."""
    given = dataclasses.replace(config, **overrides)
    for key, path in (("corpus", given.corpus), ("tokenizer", given.tokenizer_file)):
        if path is None:
            continue
        if key in overrides:
            unexpanded = unexpanded_home(path, shell=name(key))
            if unexpanded:
                raise BadInput(f"{name(key)} {path!r}: {unexpanded}")
            continue
        unexpanded = unexpanded_home(path)
        if unexpanded:
            raise BadInput(f"{key} {path!r} in {config_file}: {unexpanded}")
        controls = [said for control, said in ESCAPED_CONTROLS.items() if control in path]
        if controls and not os.path.exists(path):
            raise BadInput(f"{key} {path!r} in {config_file} holds {controls[0]}: "
                           f"{WINDOWS_PATH_ADVICE}")
        pattern = unexpanded_pattern(path)
        if pattern:
            raise BadInput(f"{key} {path!r} in {config_file} does not exist: {pattern}")
        # (a file's path with a / at its end is said so where the file is read)
        if os.path.isabs(path) or os.path.exists(path) or separator_after_file(path):
            continue
        beside = os.path.join(os.path.dirname(config_file), path)
        what = "is neither char nor bpe, and no such file exists" if key == "tokenizer" else \
            "does not exist"
        kind_misspelt = OneOf(*TOKENIZER_KINDS).near(path) if key == "tokenizer" else ""
        if kind_misspelt and not os.path.exists(beside):                 # "BPE", not a path
            raise BadInput(f"{key} {path!r} in {config_file} {what}{kind_misspelt}")
        if os.path.samefile(folder_of(config_file), os.curdir):
            # The file's folder is the current one: the path is read from there either way,
            # and is nowhere, which is all there is to say.
            raise BadInput(f"{key} {path!r} in {config_file} {what}; check the path")
        fix = (f"give {path_from_here(beside)!r}, the one beside the file" if
               os.path.exists(beside) else "give it from there, or as an absolute path")
        raise BadInput(f"{key} {path!r} in {config_file} {what}: a relative path in a "
                       f"--config file is read from the current directory, not from the "
                       f"file's; {fix}")


def default_out_dir(config: TrainConfig, root: StrPath = "runs") -> str:
    """runs/<model>-<data>, or with -2, -3, ... appended if that one is taken (by a file, a
    link to nothing, or a folder that is not empty)."""
    source = (config.task or (os.path.splitext(os.path.basename(config.corpus))[0]
                              if config.corpus else "builtin"))
    base = os.path.join(root, f"{config.model}-{source}")
    path, n = base, 1
    while os.path.lexists(path) and (not os.path.isdir(path) or os.listdir(path)):
        n += 1
        path = f"{base}-{n}"
    return path
