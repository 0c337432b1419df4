"""What a model does with a prompt (prompts.respond), where the command line does not show it."""

import pytest

import tinyautograd as ta
from tinyformer.gpt import GPT
from tinyformer.prompts import TextStream, respond
from tinyformer.tokenizers import CharTokenizer, escape_controls


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
