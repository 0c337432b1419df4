"""Text that is not plain English through the tokenizers and the pictures that label tokens:
backslashes of the text beside escapes, bytes cut from a character, lone surrogates."""

import json

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from tinyformer.pretrained import read_tokenizer_json
from tinyformer.schema import BadInput
from tinyformer.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer, train_tokenizer
from viz.attention import token_labels


def code_tokenizer(directory):
    """A tokenizer.json whose pattern joins a symbol to the letters after it, as Qwen's and
    Llama 3's do ("\\r" is one chunk), learned on a program that writes "\\r" and "\\x1b",
    read by us."""
    theirs = Tokenizer(models.BPE())
    theirs.decoder = decoders.ByteLevel()
    theirs.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|\s+|."), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    theirs.train_from_iterator(['print("a\\rb\\x1bc")\n' * 50], trainer)
    (directory / "tokenizer.json").write_text(json.dumps(json.loads(theirs.to_str())))
    return read_tokenizer_json(directory)


def test_a_tokens_own_backslash_is_told_apart_from_an_escape_in_its_label(tmp_path):
    # A program's text "\r" (a backslash and an r, one token of Qwen's) was labelled as a
    # carriage return is: '\r'. As `tokenize show`, a backslash of the text is doubled.
    tokenizer = code_tokenizer(tmp_path)
    ids = {tokenizer.id_to_bytes(i): i for i in range(tokenizer.vocab_size)}
    labels = token_labels(tokenizer, [ids[b"\\r"], ids[b"\r"], ids[b"\x1b"]])
    assert labels == ["\\\\r", "\\r", "\\x1b"]
    chars = CharTokenizer("\\r")
    assert token_labels(chars, chars.encode("\\r")) == ["\\\\", "r"]
    # A byte that is no whole character is still \xNN: the first of "你"'s three.
    bpe = BPETokenizer.train("你 你 你", 258)
    assert token_labels(bpe, [0xE4]) == ["\\xe4"]


def test_a_backslash_of_a_label_is_cut_whole_or_left_out():
    from viz.lens import _cut
    assert _cut("a\\\\b", 2) == "a"
    assert _cut("a\\\\b", 3) == "a\\\\"


def test_a_char_tokenizer_refuses_a_lone_surrogate_as_a_bpe_does(tmp_path):
    # Bytes read with errors="surrogateescape", or an emoji split into its UTF-16 halves by a
    # JavaScript tool: a char tokenizer took them as characters, and its decode gave a text
    # that print() cannot write.
    for train in (lambda text: BPETokenizer.train(text, 257), CharTokenizer.train):
        with pytest.raises(BadInput, match=r"^the text to train on is not valid UTF-8 "
                                           r"\(at character 1\)$"):
            train("a\udcff b")
    path = tmp_path / "chars.json"
    path.write_text('{"type": "char", "version": 1, "chars": ["a", "\\ud83d", "\\ude00"], '
                    '"special_tokens": []}')
    with pytest.raises(BadInput, match=r": not a valid char tokenizer file: the vocabulary "
                                       r"holds '\\ud83d', a lone surrogate \(half of a "
                                       r"UTF-16 pair\), which is no character and has no UTF-8 "
                                       r"bytes; give whole characters$"):
        load_tokenizer(path)


def test_a_windows_line_end_that_a_char_tokenizer_lacks_says_why(tmp_path):
    # Trained on a file, whose \r\n are read as \n, the tokenizer has no \r; a prompt pasted
    # from that same file was refused as if it held a foreign character.
    path = tmp_path / "windows.txt"
    path.write_bytes(b"ab\r\nba\r\n")
    tokenizer, _ = train_tokenizer(path, "char", 0, log=lambda line: None)
    assert tokenizer.chars == ["\n", "a", "b"]
    with pytest.raises(BadInput, match=r"^cannot encode '\\r' \(U\+000D\) at position 2: not in "
                                       r"the tokenizer's 3-character vocabulary; a file's "
                                       r"Windows line ends \(\\r\\n\) are read as \\n, so the "
                                       r"tokenizer has no \\r: end the text's lines with \\n "
                                       r"alone$"):
        tokenizer.encode("ab\r\nba")
    with pytest.raises(BadInput, match=r"vocabulary$"):     # no new lines: nothing to say
        CharTokenizer("ab").encode("a\r\n")
