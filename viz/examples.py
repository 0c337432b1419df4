"""Small computations worth drawing, for `tinyformer graph --example NAME`, and the training
step of a checkpoint, for `tinyformer graph --checkpoint DIR`.

Each example builds its own tiny, seeded model and input and returns what draw_graph and
draw_backward need: the loss (a scalar Tensor whose graph is drawn), the module whose
parameters name the leaves, and the named inputs. They are small on purpose: a picture is for
reading. The models and losses are the real ones (the fused cross-entropy, layer norm and
attention kernels included), and every one of them is differentiable twice, so each example's
backward graph can be drawn as well as its forward one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Literal

import numpy as np

import tinyautograd as ta
from tinyautograd import functional as F
from tinyautograd import nn
from tinyformer.schema import BadInput

if TYPE_CHECKING:              # the models are imported by the examples that build them
    from tinyformer.bert import BERT
    from tinyformer.checkpoint import Model
    from tinyformer.gpt import GPT
    from tinyformer.tokenizers import Tokenizer
    from tinyformer.transformer import Transformer


class Example:
    def __init__(self, loss: ta.Tensor, params: nn.Module,
                 inputs: dict[str, ta.Tensor]) -> None:
        self.loss, self.params, self.inputs = loss, params, inputs


def mlp() -> Example:
    """A two-layer perceptron and its cross-entropy on a batch of 4."""
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    x = ta.Tensor(np.random.default_rng(0).standard_normal((4, 3)))
    labels = np.array([0, 1, 1, 0])
    return Example(F.cross_entropy(model(x), labels), model, {"x": x})


def layernorm() -> Example:
    """Layer norm of 2 vectors of 4, then a sum."""
    norm = nn.LayerNorm(4)
    x = ta.Tensor(np.random.default_rng(0).standard_normal((2, 4)), requires_grad=True)
    return Example(norm(x).sum(), norm, {"x": x})


def attention() -> Example:
    """Multi-head self-attention (2 heads) over 4 positions with the causal mask."""
    from tinyformer.attention import MultiHeadAttention, causal_mask
    attn = MultiHeadAttention(d_model=8, n_head=2)
    x = ta.Tensor(np.random.default_rng(0).standard_normal((1, 4, 8)), requires_grad=True)
    return Example(attn(x, mask=causal_mask(4)).sum(), attn, {"x": x})


def gpt() -> Example:
    """A one-layer GPT and its next-token loss on a batch of 2 sequences of 8 tokens."""
    from tinyformer.gpt import GPT
    model = GPT(vocab_size=10, context=8, n_layer=1, n_head=2, d_model=8)
    tokens = np.random.default_rng(0).integers(0, 10, (2, 9))
    return language_modelling(model, tokens)


def bert() -> Example:
    """A two-layer BERT and its masked-language-model loss on 2 sequences of 8 tokens."""
    from tinyformer.bert import BERT
    model = BERT(vocab_size=10, context=8, n_layer=2, n_head=2, d_model=8, pad_id=0)
    tokens = np.random.default_rng(0).integers(2, 10, (2, 8))    # 0 pads, 1 is <mask>
    return masked_language_modelling(model, tokens, mask_id=1)


def transformer() -> Example:
    """A one-layer encoder-decoder Transformer and its teacher-forced loss on the `reverse`
    task: 2 sources of 5 digits, their targets shifted right."""
    from tinyformer.data import PAD, Seq2SeqTask
    from tinyformer.transformer import Transformer
    task = Seq2SeqTask("reverse", min_len=5, max_len=5, n_train=2, n_val=0)
    model = Transformer(task.vocab_size, task.vocab_size, context=task.context, n_layer=1,
                        n_head=2, d_model=8, pad_id=PAD)
    return sequence_to_sequence(model, *task.batch(task.train))


EXAMPLES = {"mlp": mlp, "attention": attention, "layernorm": layernorm, "gpt": gpt,
            "bert": bert, "transformer": transformer}


def check_example(name: str) -> None:
    """ValueError (one line) unless `name` is an example's, before one is built."""
    if name not in EXAMPLES:
        raise BadInput(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}")


def example(name: Literal["mlp", "attention", "layernorm", "gpt", "bert", "transformer"],
            seed: int = 0) -> Example:
    """The example called `name`, built from a seeded engine (the same picture every time)."""
    check_example(name)
    ta.manual_seed(seed)
    return EXAMPLES[name]()


# --------------------------------------------------------------------------------------------
# The losses the models are trained with (tinyformer/jobs.py's), on a batch of tokens


def language_modelling(model: GPT, tokens: np.ndarray) -> Example:
    """A GPT's loss: predict each next token of `tokens` (B, T + 1)."""
    from tinyformer.jobs import next_token_loss
    return Example(next_token_loss(model, tokens[:, :-1], tokens[:, 1:]), model, {})


# BERT hides 15% of the tokens at random in training (bert.mask_tokens); a picture hides one in
# seven, from the first token on, so that a prompt of any length hides at least one.
HIDE_EVERY = 7


def masked_language_modelling(model: BERT, tokens: np.ndarray, mask_id: int) -> Example:
    """A BERT's loss: `tokens` (B, T) with every HIDE_EVERY-th replaced by `mask_id`, and the
    hidden ones to be guessed (the others are ignored by the loss, as in training)."""
    from tinyformer.bert import IGNORE
    from tinyformer.jobs import masked_lm_loss
    hidden = np.arange(tokens.shape[1]) % HIDE_EVERY == 0
    inputs = np.where(hidden, mask_id, tokens)
    targets = np.where(hidden, tokens, IGNORE)
    return Example(masked_lm_loss(model, inputs, targets), model, {})


def sequence_to_sequence(model: Transformer, src: np.ndarray, tgt_in: np.ndarray,
                         tgt_out: np.ndarray, label_smoothing: float = 0.0) -> Example:
    """An encoder-decoder's loss with teacher forcing: the decoder reads the target shifted
    right (tgt_in: <bos> t1 t2 ...) and predicts it (tgt_out: t1 t2 ... <eos>)."""
    from tinyformer.jobs import seq2seq_loss
    return Example(seq2seq_loss(model, src, tgt_in, tgt_out, label_smoothing), model, {})


def checkpoint_step(model: Model, tokenizer: Tokenizer, saved: dict[str, Any],
                    prompt: str) -> Example:
    """The training step of a checkpoint's model (`load_model`'s three results) on `prompt`:
    a GPT predicts each next token of it, a BERT guesses its hidden tokens, a seq2seq
    Transformer translates it (as a source of the task it was trained on) into its answer.
    ValueError, in one line, for a prompt the model cannot take."""
    return prepare_checkpoint_step(model, tokenizer, saved, prompt)()


def prepare_checkpoint_step(model: Model, tokenizer: Tokenizer, saved: dict[str, Any],
                            prompt: str, warn: Callable[[str], None] | None = None
                            ) -> Callable[[], Example]:
    """checkpoint_step in two parts: the checks of `prompt` here (ValueError, in one line, for
    one the model cannot take), before the model runs; then the function that runs the step.
    A caller tells a fault of the prompt from one of the run, which is a bug. `warn(note)`,
    where given, is told in one line of a seq2seq source longer or shorter than any the model
    trained on, once the prompt has passed every check (check_task_prompt's note): its step is
    drawn, on the task's right answer, which the model most likely predicts poorly (a high
    loss), where `tinyformer attention` and `lens` show its own answer, most likely wrong."""
    from tinyformer.data import BOS, EOS, Seq2SeqTask, solve
    from tinyformer.prompts import check_task_prompt
    from tinyformer.schema import option_name
    from tinyformer.tokenizers import check_prompt_fits, encode_prompt
    kind = saved["model"]
    if kind == "bert" and "<mask>" in prompt:
        # The step hides tokens itself, and must know each hidden one to score the guess.
        raise BadInput("--prompt: the graph of a BERT hides the first token and every seventh "
                       "after it itself; give the whole text, without <mask>")
    if kind == "transformer":
        # Before encoding: a letter in a task's prompt is no character of its vocabulary, and
        # "give digits only" says more than "cannot be encoded" (as generate, attention and
        # lens say it).
        note = check_task_prompt(saved, prompt, name=option_name, shows_answer=False)
    ids = encode_prompt(tokenizer, prompt, allow_special=False, name=option_name)
    if not ids:
        raise BadInput("--prompt is empty; give the text of the batch")
    model.train()            # as in training: dropout, if the model has any, is drawn too
    if kind in ("gpt", "bert"):
        # A GPT reads all but the last token, which is only a target: one more than its context.
        check_prompt_fits(len(ids), model.context, name=option_name, target=kind == "gpt")
    if kind == "gpt":
        if len(ids) < 2:
            raise BadInput("--prompt must give at least 2 tokens (inputs and a target)")
        return lambda: language_modelling(model, np.array([ids]))
    if kind == "bert":
        return lambda: masked_language_modelling(model, np.array([ids]),
                                                 tokenizer.token_to_id("<mask>"))
    if kind == "transformer":
        train = saved.get("train", {})
        target = solve(train.get("task"), prompt)
        target_ids = Seq2SeqTask.encode(target)
        # The decoder reads <bos> and the answer: one more token than the answer (a reversed
        # or sorted prompt as long as the context fits the encoder, not the decoder).
        check_prompt_fits(len(ids), model.context, name=option_name)
        check_prompt_fits(len(target_ids) + 1, model.context, answer=target, name=option_name)
        if note and warn:      # a source of a length never trained on: said once it is taken
            warn(note)
        return lambda: sequence_to_sequence(model, np.array([ids]),
                                            np.array([[BOS] + target_ids]),
                                            np.array([target_ids + [EOS]]),
                                            train.get("label_smoothing", 0.0))
    raise ValueError(f"cannot draw a {kind} checkpoint")
