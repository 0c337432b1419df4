"""What each kind of model does with a prompt, as text in and text out.

A GPT continues the prompt, a seq2seq Transformer translates it (a source of its task), and a
BERT fills in the prompt's <mask> tokens. `respond` checks the prompt and settings first, and
gives back the work to do: a function that writes the answer through a `write(text)` callable
as it comes, so that a big GPT's slow tokens show one by one, and so that a mistake in the
input is told apart from a failure during the work (but for a model whose logits turn out
not finite, which only the work finds: see respond). `tinyformer generate` is `respond` with a
checkpoint's model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .data import BOS, EOS, TASKS, first_number_digits, is_source
from .files import shown
from .decoding import beam_search, check_logits, ends, inference
from .resources import blas_threads, step_threads
from . import resources, schema
from .sampling import check_sampling
from .schema import BadInput
from .tokenizers import END_OF_TEXT, EncodeError, Tokenizer, encode_prompt, escape_controls

if TYPE_CHECKING:                   # names only: the models need not be loaded to read this
    from .bert import BERT
    from .gpt import GPT
    from .transformer import Transformer

__all__ = ["respond", "check_respond", "check_task_prompt", "TextStream"]


def check_respond(max_new_tokens: int, temperature: float, top_k: int | None,
                  top_p: float | None, beam: int | None,
                  name: Callable[[str], str] = str) -> None:
    """ValueError, in one line, for a setting of `respond` out of range: the sampling's, and
    the counts as decoding's generate and beam_search take them (a beam writes at least one
    token). Checked by `respond` before any work, so that a count too large is not found
    after the prompt is written; `tinyformer generate` checks them before loading the model."""
    check_sampling(temperature, top_k, top_p, name=name)
    schema.check_settings({"max_new_tokens": max_new_tokens, "beam": beam},
                          {"max_new_tokens": schema.Whole(1 if beam else 0, 2 ** 62),
                           "beam": schema.Optional(schema.Whole(1, 2 ** 62))}, name=name)


def check_task_prompt(saved: dict, prompt: str, name: Callable[[str], str] = str,
                      shows_answer: bool = True) -> str | None:
    """ValueError, in one line, unless the prompt of a seq2seq checkpoint (`saved`, its
    config.json) is a source of the task it learned: the tasks share one vocabulary, so the
    tokenizer alone would take "12+3" for sort, or "31415" for add, and the model would answer
    what it never saw asked. Any other checkpoint, and an empty prompt, pass.

    Returns a one-line note for a source longer or shorter than any it trained on (its max_len,
    min_len), or an add whose digits are split between its numbers otherwise than every source
    of that length it trained on splits them (data.first_number_digits: "12+345", never
    "123+45"), else None: the model answers one, but has never seen such a source and most
    likely answers it wrongly. The note says so where the caller `shows_answer` (generate,
    attention, lens: the model's own translation); `tinyformer graph` shows none, but a
    training step on the task's right answer, whose loss is then likely high, and its note
    says that."""
    train = saved.get("train") or {}
    task, shortest, longest = train.get("task"), train.get("min_len"), train.get("max_len")
    if task not in TASKS or not prompt:
        return None
    if not is_source(task, prompt):
        example = source_example(task, shortest, longest)
        form = (f"two numbers joined by +, neither starting with 0, e.g. {example}"
                if task == "add"
                else f"digits only, e.g. {example}")
        raise BadInput(f"{name('prompt')} {shown(prompt)} is no source of the {task} task this "
                       f"checkpoint was trained on: give {form}")
    digits = sum(ch.isdigit() for ch in prompt)   # as training counts them: add's + is not
    if isinstance(longest, int) and digits > longest:
        unseen = f"more than any source it was trained on ({name('max_len')} {longest})"
    elif isinstance(shortest, int) and digits < shortest:
        unseen = f"fewer than any source it was trained on ({name('min_len')} {shortest})"
    elif task == "add" and len(prompt.split("+")[0]) != first_number_digits(digits):
        first, second = (len(number) for number in prompt.split("+"))
        trained = first_number_digits(digits)
        unseen = (f"split {first}+{second}, where the sources of {digits} digits it was "
                  f"trained on split them {trained}+{digits - trained}")
    else:
        return None
    outcome = ("its answer is likely wrong" if shows_answer
               else "its loss on the right answer is likely high")
    return (f"note: {name('prompt')} has {digits} digit{'s' * (digits != 1)}, {unseen}; "
            f"{outcome}")


def source_example(task: str, shortest: int | None, longest: int | None) -> str:
    """A source of `task` of the lengths a checkpoint trained on (`shortest`, `longest`: its
    min_len and max_len, None where unknown), to show in a message: 7 digits where those fit
    ("5790189"; for add "379+3189", split as training splits them), else as near as they
    allow. An example of 7 digits was refused by a model of --max-len 4, whose context holds
    no more than 5 tokens."""
    length = max(7, shortest) if isinstance(shortest, int) else 7
    if isinstance(longest, int) and longest >= 2:
        length = min(length, longest)
    if task == "add":                       # no 0 in the digits: neither number starts with one
        digits = ("3793189" * length)[:length]
        first = first_number_digits(length)
        return f"{digits[:first]}+{digits[first:]}"
    return ("5790189" * length)[:length]


def respond(model: GPT | BERT | Transformer, tokenizer: Tokenizer, kind: str, prompt: str,
            max_new_tokens: int = 200, temperature: float = 0.8, top_k: int | None = None,
            top_p: float | None = None, seed: int = 0, beam: int | None = None,
            name: Callable[[str], str] = str, threads: int | None = None,
            eos_ids: Sequence[int] | None = None, allow_special: bool = False,
            warn: Callable[[str], None] | None = None
            ) -> Callable[[Callable[[str], None]], None]:
    """How a `kind` ("gpt", "transformer", "bert") model answers `prompt`: a function that
    continues, translates or fills it in, writing the text (control characters escaped, a new
    line at the end) through the `write(text)` it is given. It computes on `threads` BLAS
    threads, or, with None, on the count that timing its steps chooses (resources.py). A GPT's
    text ends at any of `eos_ids` where given (a Hugging Face model's eos_token_id: a chat
    model's <|im_end|>), else at <|endoftext|>. Special tokens written in a GPT's prompt (a chat
    model's "<|im_start|>") get their own ids with `allow_special`, else they are plain text;
    a BERT's prompt always has them (its <mask>; a <pad>, which it would hide from attention,
    is refused), a seq2seq's source never. A seq2seq answer
    that fills the model's context without <eos> ends in "…": cut there, not finished; one
    that is <eos> at once is written "(no answer)", as the training log's samples say it.

    A GPT continues a prompt of more tokens than its context from the last `context` of them,
    as it slides past its context while it writes; `warn(note)`, where given, is told so in one
    line (otherwise its text would seem to answer what it never read). The other models refuse
    such a prompt. A GPT with rotary positions (a Llama or Qwen3 read from Hugging Face, say)
    that may write past its context has `warn` told that too: transformers' generate
    reads every token past max_position_embeddings, where this slides, so their texts part
    there.

    What cannot be done is a ValueError here, before any work: a setting out of range (see
    check_respond), a beam for BERT, a prompt the tokenizer cannot encode or that lacks what
    the model needs. The work itself refuses one thing more, which shows only as the model
    writes: logits that leave no token to pick (decoding.NoTokenToPick, a ValueError too: its
    activations on this prompt are not finite). Any other error from the work is a bug.
    `name(key)` says how a setting is called to the caller's user: `beam` in Python, `--beam`
    on the command line."""
    check_respond(max_new_tokens, temperature, top_k, top_p, beam, name)
    if beam is not None and kind == "bert":
        raise BadInput(f"{name('beam')} is for models that write (GPT and the "
                       f"encoder-decoder); a bert checkpoint fills in masks")
    if kind == "gpt":
        # GPT-2 marks where one document ends and the next begins with <|endoftext|>: it
        # starts a text from nothing, and ends one.
        end_of_text = tokenizer.special_id(END_OF_TEXT)
        ends_text = eos_ids or end_of_text
        if prompt:
            ids = encode_prompt(tokenizer, prompt, allow_special=allow_special, name=name)
        elif end_of_text is not None:        # from nothing: <|endoftext|>, or a new line
            ids = [end_of_text]
        else:
            try:
                ids = tokenizer.encode("\n")
            except EncodeError:              # a character vocabulary of a text of one line
                raise BadInput(f"this model's vocabulary has neither {END_OF_TEXT} nor a new "
                               f"line to start a text from; give a {name('prompt')}") from None
        if beam:
            check_beam_memory(model, beam, len(ids), max_new_tokens, name)
        if warn is not None and len(ids) > model.context:      # after every refusal
            warn(f"note: {name('prompt')} has {len(ids)} tokens, more than the {model.context} "
                 f"this model reads: it continues from the last {model.context}")
        elif (warn is not None and model.config["positions"] == "rope"
              and len(ids) + max_new_tokens - 1 > model.context):   # (the last token read)
            # Rotary positions have no table to run out of: transformers' generate goes on
            # reading every token of a Llama or Qwen3, past its max_position_embeddings, where
            # ours slides its window. Its text is not transformers' from there: say so.
            warn(f"note: with {name('max_new_tokens')} {max_new_tokens} it may write past the "
                 f"{model.context} positions this model was trained on: from there it "
                 f"reads only the last {model.context} tokens, where transformers' generate "
                 f"reads them all, so their texts part there")

        def write_on(write):
            write(escape_controls(prompt))
            stream = TextStream(tokenizer, write, ends_text,
                                skip_newlines=not prompt and end_of_text is None)
            with step_threads(threads) as steps:
                if beam:                     # the most likely continuation, then shown
                    best = beam_search(model.start_decoding(np.array([ids])), beam_size=beam,
                                       max_len=max_new_tokens, eos_id=ends_text,
                                       threads=steps)
                    for token in best.tokens[len(ids):]:
                        stream(token[None])
                else:
                    model.generate(np.array([ids]), max_new_tokens, temperature, top_k, top_p,
                                   eos_id=ends_text, generator=np.random.default_rng(seed),
                                   streamer=stream, threads=steps)
            stream.close()
            write("\n")
        return write_on

    if not prompt:
        raise BadInput(f"an encoder-decoder checkpoint needs a {name('prompt')} to translate"
                       if kind == "transformer" else
                       f"a {kind} checkpoint needs a {name('prompt')} to fill in")
    ids = encode_prompt(tokenizer, prompt, allow_special=kind == "bert", context=model.context,
                        name=name, pad_id=model.pad_id if kind == "bert" else None)
    if kind == "transformer":
        if beam:                             # the target starts at <bos>, up to context tokens
            check_beam_memory(model, beam, 1, model.context, name)
        return lambda write: write(escape_controls(_translate(model, tokenizer, ids, beam,
                                                              threads)) + "\n")

    mask_id = tokenizer.token_to_id("<mask>")
    if mask_id not in ids:
        raise BadInput(f"{name('prompt')} has no <mask> token for BERT to fill in; write "
                       f"one, e.g. \"the kite is <mask><mask><mask>\"")

    def fill_in(write):
        # As the decoding loops read a model: without dropout, whatever its mode; and, as they
        # check each step's logits, its masks' rows checked (check_logits): a model whose
        # activations overflow would otherwise fill them with whatever argmax makes of NaN.
        with (inference(model), blas_threads(threads),                 # one step: no timing
              np.errstate(over="ignore", invalid="ignore", divide="ignore")):
            logits = model(np.array([ids])).data[0]                                 # (T, V)
        masks = np.array(ids) == mask_id
        check_logits("generate", logits[masks], step=1)
        guess = likeliest_ordinary(logits, tokenizer)                                # (T,)
        filled = [g if mask else i for i, g, mask in zip(ids, guess, masks)]
        write(escape_controls(tokenizer.decode(filled)) + "\n")
    return fill_in


def likeliest_ordinary(logits: np.ndarray, tokenizer: Tokenizer) -> np.ndarray:
    """The id of the likeliest token at each position of BERT's `logits` (..., vocab), among
    the ordinary ones: BERT learns to predict the text's tokens, never a special one (its
    masking hides no <pad> or <mask>), but a model trained a few steps may still rank one
    first, and a mask "filled" with <mask> reads as one left unfilled."""
    specials = [tokenizer.special_id(token) for token in tokenizer.special_tokens]
    ordinary = np.ones(logits.shape[-1], dtype=bool)
    ordinary[specials] = False
    if not ordinary.any():                  # a vocabulary of special tokens alone
        return logits.argmax(-1)
    return np.where(ordinary, logits, -np.inf).argmax(-1)


def check_beam_memory(model: GPT | Transformer, beam: int, start: int, steps: int,
                      name: Callable[[str], str] = str) -> None:
    """ValueError, before the search starts, when `beam` beams cannot fit in memory."""
    need = resources.beam_memory(model.config, model.context, beam, start, steps)
    resources.check_fits(need, f"{name('beam')} {beam:,}", f"a smaller {name('beam')}")


# What follows a seq2seq answer that never wrote <eos>: text cut short, as anywhere.
CUT = "\u2026"                                           # …
# A seq2seq answer that is <eos> at once, as generate and the training log's samples say it:
# an empty line read as a failure to print.
NO_ANSWER = "(no answer)"


def _translate(model, tokenizer, ids, beam, threads):
    """The text a seq2seq model writes for source `ids`: the tokens after <bos>, up to <eos>.
    The task's tokenizer numbers its symbols as data.SYMBOLS does (BOS and EOS included). A
    special token the model wrote among the symbols is shown by its name ("1<pad>2"), as the
    tokenizer decodes it: dropped, the symbols left would read as an answer the task's
    evaluation counts as none. A target of context - 1 symbols and <eos> takes `context`
    generated tokens; one that has not written <eos> by then is cut there, longer than any
    target the model learned, and CUT after its symbols says so: without it, they would read
    as an answer. One that is <eos> at once is NO_ANSWER."""
    src = np.array([ids])
    with step_threads(threads) as steps:
        if beam:
            out = beam_search(model.start_decoding(src, BOS), beam_size=beam,
                              max_len=model.context, eos_id=EOS, threads=steps).tokens
        else:
            out = model.greedy_decode(src, model.context, BOS, EOS, threads=steps)[0]
    return answer_text(tokenizer, out[1:].tolist())


def answer_text(tokenizer: Tokenizer, written: list[int]) -> str:
    """The text of the tokens a seq2seq model `written` after <bos>, as generate and the
    training log's samples both show it (see _translate): the tokens up to <eos>; CUT after
    them where it never wrote <eos>; NO_ANSWER where <eos> came first."""
    if EOS in written:
        return tokenizer.decode(written[:written.index(EOS)]) or NO_ANSWER
    return tokenizer.decode(written) + CUT


class TextStream:
    """Write a GPT's text as generate() chooses its tokens.

    A token may hold part of a character's UTF-8 bytes; decoding then ends in U+FFFD until the
    rest arrives, so what is written is the decoded text of the tokens not yet written whole,
    less a trailing U+FFFD, less what of it was already written. A trailing \\r waits too:
    followed by \\n it ends a line (Windows' way), alone it is escaped. Once the text of those
    tokens ends in whole characters, they are written and forgotten: each token is decoded
    once or a few times, not again at every later token (which made a long text's later
    tokens slower and slower to write). `skip_newlines` drops the new lines at the very start
    (after the new line that starts a text from nothing)."""

    def __init__(self, tokenizer: Tokenizer, write: Callable[[str], None],
                 end_of_text: int | Sequence[int] | None, skip_newlines: bool = False) -> None:
        self.tokenizer, self.write, self.end_of_text = tokenizer, write, end_of_text
        self.skip_newlines = skip_newlines
        self.ids: list[int] = []           # the tokens not yet written whole
        self.shown = 0                     # the characters of their text written already

    def __call__(self, next_token: np.ndarray) -> None:       # (1,): one row
        if not ends(next_token[0], self.end_of_text):          # generate stops there
            self.ids.append(int(next_token[0]))
            text = self._text()
            whole = text.removesuffix("\ufffd").removesuffix("\r")
            self._show(whole)
            # Text that ends in a whole character decodes the same with whatever follows
            # (UTF-8 starts each character afresh), so those tokens are done with.
            if whole == text:
                self.skip_newlines = self.skip_newlines and not text   # at the very start only
                self.ids, self.shown = [], 0

    def close(self) -> None:
        """Write the rest, a character cut short at the end included (as U+FFFD)."""
        self._show(self._text())

    def _text(self):
        text = self.tokenizer.decode(self.ids)
        return text.lstrip("\n") if self.skip_newlines else text

    def _show(self, text):
        self.write(escape_controls(text[self.shown:]))
        self.shown = len(text)
