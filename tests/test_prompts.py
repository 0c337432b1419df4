"""What a model does with a prompt (prompts.respond), where the command line does not show it."""

import re

import numpy as np
import pytest

import tinyautograd as ta
from tinyformer.bert import BERT
from tinyformer.decoding import NoTokenToPick
from tinyformer.gpt import GPT
from tinyformer.data import TASKS, is_source
from tinyformer.prompts import TextStream, check_task_prompt, likeliest_ordinary, respond
from tinyformer.schema import BadInput, option_name
from tinyformer.tokenizers import BPETokenizer, CharTokenizer, escape_controls
from tinyformer.transformer import Transformer


def test_a_gpt_that_cannot_start_from_nothing_asks_for_a_prompt():
    """A character vocabulary learned from a text of one line has no new line to start from
    (and no <|endoftext|>): the error says what to give, not that "\\n" cannot be encoded."""
    ta.manual_seed(0)
    tokenizer = CharTokenizer("abc .")
    gpt = GPT(tokenizer.vocab_size, 8, n_layer=1, n_head=1, d_model=8)
    with pytest.raises(ValueError, match="nor a new line to start a text from; give a --prompt"):
        respond(gpt, tokenizer, "gpt", "", name=lambda key: f"--{key}")
    with_newline = CharTokenizer("abc .\n")
    gpt = GPT(with_newline.vocab_size, 8, n_layer=1, n_head=1, d_model=8)
    written = []
    respond(gpt, with_newline, "gpt", "", max_new_tokens=3, temperature=0, threads=1)(
        written.append)
    assert written[-1] == "\n"


def test_windows_line_ends_are_written_as_they_are_and_a_lone_return_is_escaped():
    """A model trained on a text with \\r\\n line ends writes them: each ends a line, as \\n
    does. A \\r alone would move the cursor back over the line, and is shown as \\x0d."""
    assert escape_controls("a\r\nb\rc\r") == "a\r\nb\\x0dc\\x0d"
    tokenizer = CharTokenizer("ab\r\n")
    written = []
    stream = TextStream(tokenizer, written.append, end_of_text=None)
    for token in tokenizer.encode("a\r\nb\rb\r"):       # a token at a time, as generated
        stream([token])
    stream.close()
    assert "".join(written) == "a\r\nb\\x0db\\x0d"


class Scripted:
    """A GPT that writes the tokens it was given, stopping at eos_id as a GPT does."""

    def __init__(self, tokens):
        self.tokens = tokens

    def generate(self, ids, max_new_tokens, *sampling, eos_id=None, streamer=None, **options):
        for token in self.tokens[:max_new_tokens]:
            streamer(np.array([token]))
            if token in np.atleast_1d(eos_id if eos_id is not None else []):
                return


def shown(model, tokenizer, prompt, **settings):
    """All that `respond` writes for a GPT's prompt, as one text."""
    written = []
    respond(model, tokenizer, "gpt", prompt, threads=1, **settings)(written.append)
    return "".join(written)


def test_a_gpt_text_ends_at_any_of_the_eos_ids_given():
    """A chat model's <|im_end|> ends its answer, as <|endoftext|> does: not written."""
    tokenizer = CharTokenizer("ab.\n")
    assert shown(Scripted(tokenizer.encode("ab.b")), tokenizer, "a",
                 eos_ids=tokenizer.encode(".")) == "aab\n"
    # Given, they are the ends, in place of the tokenizer's <|endoftext|>.
    tokenizer = CharTokenizer("ab.\n", special_tokens=["<|endoftext|>"])
    assert shown(Scripted(tokenizer.encode("ab.b")), tokenizer, "a",
                 eos_ids=tokenizer.encode(".")) == "aab\n"


def test_a_prompt_is_written_back_with_its_control_characters_escaped():
    tokenizer = CharTokenizer("ab\x1b")
    assert shown(Scripted(tokenizer.encode("b")), tokenizer, "a\x1b") == "a\\x1bb\n"


def test_a_text_from_nothing_drops_the_new_lines_it_starts_with():
    """From nothing, a character vocabulary starts at a new line: the blank lines the model
    writes first are not shown, what follows is (its own new lines too)."""
    tokenizer = CharTokenizer("ab\n")
    assert shown(Scripted(tokenizer.encode("\n\nab\nb")), tokenizer, "") == "ab\nb\n"
    assert shown(Scripted(tokenizer.encode("\nab\n\n")), tokenizer, "") == "ab\n\n\n"


def test_a_text_from_endoftext_keeps_the_new_lines_it_starts_with():
    """From <|endoftext|>, no new line was written before the text: its own are shown."""
    tokenizer = CharTokenizer("ab\n", special_tokens=["<|endoftext|>"])
    assert shown(Scripted(tokenizer.encode("\nab")), tokenizer, "") == "\nab\n"


def test_the_same_seed_samples_the_same_text_and_another_seed_another():
    ta.manual_seed(0)
    tokenizer = CharTokenizer("abcdefgh .")
    gpt = GPT(tokenizer.vocab_size, 32, n_layer=1, n_head=1, d_model=8)

    def text(seed):
        return shown(gpt, tokenizer, "a", max_new_tokens=20, temperature=1.0, seed=seed)
    assert text(3) == text(3) != text(4)


def test_bert_fills_in_only_the_masks_and_takes_no_beam():
    ta.manual_seed(0)
    tokenizer = CharTokenizer("abcdefgh .", special_tokens=["<mask>"])
    bert = BERT(tokenizer.vocab_size, 16, n_layer=1, n_head=1, d_model=8)
    written = []
    respond(bert, tokenizer, "bert", "abc def<mask>", threads=1)(written.append)
    [text] = written
    assert text.startswith("abc def") and len(text) == len("abc def?\n")
    with pytest.raises(ValueError, match=r"beam is for models that write \(GPT and the "
                       r"encoder-decoder\)"):
        respond(bert, tokenizer, "bert", "abc<mask>", beam=2)


def test_bert_fills_a_mask_with_an_ordinary_token_however_it_ranks_the_special_ones():
    # A BERT trained a few steps on an odd text ranked <mask> first and "filled" a mask with
    # it: the answer read as the prompt given back. It never learns to predict a special token.
    tokenizer = CharTokenizer("ab", special_tokens=["<pad>", "<mask>"])
    bert = BERT(tokenizer.vocab_size, 8, n_layer=1, n_head=1, d_model=8)
    bert.head.bias.data[[tokenizer.special_id("<pad>"), tokenizer.special_id("<mask>")]] = 100
    written = []
    respond(bert, tokenizer, "bert", "ab<mask><mask>", threads=1)(written.append)
    [text] = written
    assert text[:2] == "ab" and set(text[2:4]) <= {"a", "b"} and text[4:] == "\n", text
    # A vocabulary of special tokens alone has no ordinary one: the likeliest of them, then.
    only_special = CharTokenizer("", special_tokens=["<pad>", "<mask>"])
    assert likeliest_ordinary(np.array([[0.0, 1.0], [2.0, 1.0]]), only_special).tolist() == [1, 0]


def test_a_bert_prompt_that_writes_its_padding_is_refused_by_every_reader_of_it():
    """A <pad> written in a BERT prompt got the pad id, which BERT hides from attention: the
    model read nothing there, and the answer showed the "<pad>" as if it had been read."""
    from viz.attention import check_prompt
    from viz.lens import lens_of_prompt
    tokenizer = CharTokenizer("ab", special_tokens=["<pad>", "<mask>"])
    bert = BERT(tokenizer.vocab_size, 8, n_layer=1, n_head=1, d_model=8,
                pad_id=tokenizer.special_id("<pad>"))
    said = ("^--prompt holds <pad>, the padding this model hides from attention: it would "
            "read as nothing there; leave it out$")
    with pytest.raises(ValueError, match=said):
        respond(bert, tokenizer, "bert", "a<pad>b<mask>", name=option_name)
    for reader in (check_prompt, lens_of_prompt):               # `attention`, `lens`
        with pytest.raises(ValueError, match=said.replace("--", "")):
            reader(bert, tokenizer, "a<pad>b<mask>", "bert")
    written = []                                 # its <mask> is read as ever
    respond(bert, tokenizer, "bert", "ab<mask>", threads=1)(written.append)
    assert len(written) == 1 and written[0][:2] == "ab"


def test_bert_whose_activations_overflow_says_so_rather_than_fill_its_masks_with_nonsense():
    # Its logits were not checked, as the decoding loops check theirs: argmax read the NaN of
    # the overflow as the likeliest token, and filled every mask with it, without a word.
    ta.manual_seed(0)
    tokenizer = CharTokenizer("abcdefgh .", special_tokens=["<mask>"])
    bert = BERT(tokenizer.vocab_size, 16, n_layer=1, n_head=1, d_model=8)
    bert.head.dense.bias.data[:] = 3e38       # float32's largest is 3.4e38: its sum overflows
    with pytest.raises(NoTokenToPick, match=r"^generate: the model's logits hold NaN at step 1 "
                                            r"\(row 0\), so there is no token to pick"):
        respond(bert, tokenizer, "bert", "abc <mask>d<mask>", threads=1)(print)


def test_an_encoder_decoder_is_called_so_where_it_is_refused_an_empty_prompt():
    # It was "a transformer checkpoint", where the helps call it the encoder-decoder.
    with pytest.raises(ValueError, match="^an encoder-decoder checkpoint needs a prompt to "
                       "translate$"):
        respond(None, None, "transformer", "")


def test_bert_fills_in_without_dropout_whatever_its_mode_as_the_decoding_loops_read():
    # A BERT left in training mode filled in with dropout: another text at every call.
    ta.manual_seed(0)
    tokenizer = CharTokenizer("abcdefgh .", special_tokens=["<mask>"])
    bert = BERT(tokenizer.vocab_size, 16, n_layer=1, n_head=1, d_model=16, dropout=0.5)
    rng = np.random.default_rng(0)
    for p in bert.parameters():                 # sharp enough that dropout changes the guess
        if p.ndim == 2:
            p.data = rng.normal(0, 1, p.shape).astype(p.dtype)

    def filled():
        written = []
        respond(bert, tokenizer, "bert", "abc <mask><mask><mask><mask>", threads=1)(
            written.append)
        return written[0]
    expected = filled()                         # built in training mode: evaluated now
    bert.eval()
    assert filled() == expected
    bert.train()
    assert {filled() for _ in range(3)} == {expected}
    assert all(module.training for module in bert.modules())


def test_a_character_split_across_tokens_is_written_once_whole():
    """A byte-level token may hold part of a character's UTF-8 bytes: nothing of it is
    written until the rest arrives, and a character cut short at the end shows as U+FFFD."""
    tokenizer = BPETokenizer.train("ab", 256)           # no merges: a token per byte
    written = []
    stream = TextStream(tokenizer, written.append, end_of_text=None)
    for token in tokenizer.encode("aé€"):                 # 1 + 2 + 3 bytes
        stream([token])
    stream([tokenizer.encode("€")[0]])                   # the first byte of three, then the end
    stream.close()
    assert [piece for piece in written if piece] == ["a", "é", "€", "\ufffd"]


def test_a_long_text_decodes_each_token_a_few_times_not_all_of_them_at_every_token():
    """Streaming 2000 tokens decoded all that came before at every token: the later tokens of
    a long text took longer and longer to write. Those written whole are done with."""
    tokenizer = BPETokenizer.train("ab", 256)           # a token per byte
    decoded = []

    class Counting(BPETokenizer):
        def decode(self, ids):
            decoded.append(len(ids))
            return super().decode(ids)
    tokenizer.__class__ = Counting
    text = "ab\r\nné€ " * 100 + "\r"
    written = []
    stream = TextStream(tokenizer, written.append, end_of_text=None)
    for token in tokenizer.encode(text):
        stream([token])
    stream.close()
    assert "".join(written) == escape_controls(text)
    assert sum(decoded) < 3 * len(tokenizer.encode(text))


def test_a_seq2seq_prompt_is_symbols_only_and_a_special_token_in_it_is_refused():
    """Only BERT reads a special token in its prompt (<mask>); a source holding <eos> would
    end where the model was never taught it could."""
    ta.manual_seed(0)
    tokenizer = CharTokenizer("0123456789+", special_tokens=["<pad>", "<bos>", "<eos>"])
    seq2seq = Transformer(tokenizer.vocab_size, tokenizer.vocab_size, context=10, n_layer=1,
                          n_head=2, d_model=8).eval()
    with pytest.raises(ValueError, match="^prompt cannot be encoded"):
        respond(seq2seq, tokenizer, "transformer", "12<eos>3")


@pytest.mark.parametrize("kind, prompt", [("transformer", "1234567"), ("bert", "123456<mask>")])
def test_a_prompt_longer_than_the_context_is_refused_before_any_work(kind, prompt):
    ta.manual_seed(0)
    tokenizer = CharTokenizer("0123456789+", special_tokens=["<pad>", "<bos>", "<eos>",
                                                             "<mask>"])
    model = (Transformer(tokenizer.vocab_size, tokenizer.vocab_size, context=6, n_layer=1,
                         n_head=2, d_model=8) if kind == "transformer"
             else BERT(tokenizer.vocab_size, 6, n_layer=1, n_head=1, d_model=8))
    with pytest.raises(ValueError, match="^prompt has 7 tokens; this model reads at most "
                                         "6: shorten it$"):
        respond(model, tokenizer, kind, prompt)
    # named as `tinyformer generate` names its other settings: --prompt, as --beam
    with pytest.raises(ValueError, match="^--prompt has 7 tokens; this model reads at most "
                                         "6: shorten it$"):
        respond(model, tokenizer, kind, prompt, name=option_name)


def test_a_beam_of_one_translates_as_greedy_decoding_does_to_the_end_of_the_context():
    ta.manual_seed(0)
    tokenizer = CharTokenizer("0123456789+", special_tokens=["<pad>", "<bos>", "<eos>"])
    seq2seq = Transformer(tokenizer.vocab_size, tokenizer.vocab_size, context=6, n_layer=1,
                          n_head=2, d_model=8).eval()
    answers = []
    for beam in (None, 1):
        written = []
        respond(seq2seq, tokenizer, "transformer", "123", beam=beam, threads=1)(written.append)
        answers.append("".join(written))
    assert len(answers[0]) == 6 + len("…\n"), "no answer as long as the context: this proves "\
                                               "nothing"
    assert answers[1] == answers[0]


@pytest.mark.parametrize("beam", [None, 3])
@pytest.mark.parametrize("eos_bias, answer", [(-100.0, "111111…\n"),
                                              (100.0, "(no answer)\n")])
def test_a_seq2seq_answer_cut_at_the_context_without_eos_says_so(beam, eos_bias, answer):
    """An answer that never wrote <eos> fills the context, one symbol longer than any target
    the model learned: "…" after it says it was cut there, where its symbols alone would
    read as a finished answer. One that is <eos> at once says so, as the training log's
    samples do (an empty line read as a failure to print)."""
    ta.manual_seed(0)
    tokenizer = CharTokenizer("0123456789+", special_tokens=["<pad>", "<bos>", "<eos>"])
    seq2seq = Transformer(tokenizer.vocab_size, tokenizer.vocab_size, context=6, n_layer=1,
                          n_head=2, d_model=8, tie_weights=False).eval()
    bias = np.zeros(tokenizer.vocab_size, dtype=np.float32)
    bias[tokenizer.token_to_id("1")] = 50.0              # the likeliest symbol, always
    bias[tokenizer.token_to_id("<eos>")] = eos_bias
    seq2seq.head.bias.data[...] = bias
    written = []
    respond(seq2seq, tokenizer, "transformer", "123", beam=beam, threads=1)(written.append)
    assert "".join(written) == answer


@pytest.mark.parametrize("beam", [None, 3])
@pytest.mark.parametrize("special", ["<pad>", "<bos>"])
def test_a_special_token_inside_a_seq2seq_answer_is_shown_by_its_name(beam, special):
    """Special tokens written before <eos> were dropped: six <pad> showed as an empty answer
    ("…" alone), where the task's evaluation counts such an answer as none."""
    ta.manual_seed(0)
    tokenizer = CharTokenizer("0123456789+", special_tokens=["<pad>", "<bos>", "<eos>"])
    seq2seq = Transformer(tokenizer.vocab_size, tokenizer.vocab_size, context=6, n_layer=1,
                          n_head=2, d_model=8, tie_weights=False).eval()
    bias = np.zeros(tokenizer.vocab_size, dtype=np.float32)
    bias[tokenizer.token_to_id(special)] = 50.0             # the likeliest token, always
    bias[tokenizer.token_to_id("<eos>")] = -100.0
    seq2seq.head.bias.data[...] = bias
    written = []
    respond(seq2seq, tokenizer, "transformer", "123", beam=beam, threads=1)(written.append)
    assert "".join(written) == special * 6 + "…\n"


@pytest.mark.parametrize("settings, phrase", [
    ({"max_new_tokens": 2 ** 70}, "max_new_tokens must be at most"),
    ({"max_new_tokens": -1}, "max_new_tokens must be a whole number >= 0"),
    ({"beam": 2 ** 70}, "beam must be at most"),
    ({"beam": 0}, "beam must be a whole number >= 1"),
    ({"beam": 2, "max_new_tokens": 0}, "max_new_tokens must be a whole number >= 1"),
])
def test_counts_out_of_range_are_refused_before_anything_is_written(settings, phrase):
    """respond checks the counts with the sampling settings: a ValueError before it gives
    back the work, not one from the decoding loop after the prompt is written."""
    tokenizer = CharTokenizer("abc .\n")
    gpt = GPT(tokenizer.vocab_size, 8, n_layer=1, n_head=1, d_model=8)
    with pytest.raises(ValueError, match=phrase):
        respond(gpt, tokenizer, "gpt", "abc", temperature=0, threads=1, **settings)


@pytest.mark.parametrize("shortest, longest", [(2, 4), (4, 10), (3, 6), (12, 20), (2, 2)])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_example_of_a_source_is_one_the_checkpoint_takes_without_a_note(task, shortest,
                                                                             longest):
    # "e.g. 5790189" was refused by a model of --max-len 4 (more tokens than its context).
    saved = {"train": {"task": task, "min_len": shortest, "max_len": longest}}
    with pytest.raises(BadInput, match=r"is no source of the") as refused:
        check_task_prompt(saved, "x")
    example = str(refused.value).rsplit("e.g. ", 1)[1]
    assert is_source(task, example)
    assert shortest <= sum(ch.isdigit() for ch in example) <= longest
    assert check_task_prompt(saved, example) is None           # no note: lengths and split


def test_the_example_of_a_source_is_seven_digits_where_the_lengths_allow():
    for task, example in (("sort", "5790189"), ("add", "379+3189")):
        with pytest.raises(BadInput, match=rf"e\.g\. {re.escape(example)}$"):
            check_task_prompt({"train": {"task": task, "min_len": 4, "max_len": 10}}, "x")
