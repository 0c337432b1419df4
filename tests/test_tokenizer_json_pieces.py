"""A large text encoded a piece at a time with a tokenizer.json's tokenizer (`tokenize encode
--file` and `tokenize show --file`, through encode_pieces): the pieces' ids joined are the ids
of the whole text, which the tokenizers library gives, however the text is cut into the chunks
it is read in (inside a word, a character's UTF-8 bytes, a run of spaces or new lines, a
special token), and a text is never held encoded whole."""

from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_pretrained_llama import EOT
from test_tokenizers import peak_bytes
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from tinyformer import tokenizers
from tinyformer.files import iter_text
from tinyformer.pretrained import read_tokenizer_json
from tinyformer.tokenizers import BPETokenizer, encode_pieces


def small_pieces(piece_chars, check_chars=16):
    """encode_pieces cutting every `piece_chars` characters or so, checking `check_chars` on
    either side of a cut (more than the longest special token here, <|endoftext|>)."""
    return mock.patch.multiple(tokenizers, PIECE_CHARS=piece_chars, CHECK_CHARS=check_chars,
                               SKIP_CHARS=check_chars)


def pieces_ids(tok, chunks, allow_special=False):
    pieces = list(encode_pieces(tok, chunks, allow_special))
    return "".join(piece for piece, _ in pieces), [i for _, ids in pieces for i in ids]


# Spaces, new lines, tabs, a combining accent that NFC joins to the letter before it, letters,
# digits alone and in runs, Chinese, an emoji (four UTF-8 bytes), "'s", and the added tokens.
TRICKY = [" ", "  ", "\n", "\n\n", "\r\n", "\t", "\u3000", "a", "b", "e", "\u0301", "é", "1",
          "23", "½", "你", "好", "😀", "'s", "!", ".", EOT, "<think>", "<|im_start|>"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(TRICKY), max_size=40).map("".join) | st.text(max_size=40),
       st.integers(1, 8), st.integers(1, 9), st.booleans())
@example("ab cd\n\nef  gh" * 3, 1, 1, False)
@example(f"x {EOT} y\n{EOT}\nz <think> é e\u0301 \u0301", 2, 3, True)
def test_the_pieces_ids_are_the_whole_texts_and_the_librarys(both_tokenizers, text,
                                                             piece_chars, chunk_chars,
                                                             allow_special):
    chunks = [text[i:i + chunk_chars] for i in range(0, len(text), chunk_chars)]
    for layout, (theirs, ours) in both_tokenizers.items():
        with small_pieces(piece_chars):
            joined, ids = pieces_ids(ours, chunks, allow_special)
        assert joined == text
        assert ids == ours.encode(text, allow_special=allow_special), layout
        if allow_special:                      # the library finds special tokens always
            assert ids == theirs.encode(text).ids, layout


def test_a_file_read_in_chunks_that_cut_characters_bytes_encodes_as_the_library_does(
        both_tokenizers, tmp_path):
    # iter_text's chunks of 3 bytes cut "é", "你" and "😀" apart, and words and runs of spaces.
    text = ("It's 2024:  café, e\u0301 你好 😀 ½\n\n  the end\r\nof  lines \t" * 8)
    path = tmp_path / "text.txt"
    path.write_bytes(text.encode("utf-8"))
    text = text.replace("\r\n", "\n")                          # as a file's text is read
    for layout, (theirs, ours) in both_tokenizers.items():
        with small_pieces(5):
            pieces = list(encode_pieces(ours, iter_text(path, chunk_bytes=3)))
        assert len(pieces) > 10, layout                        # it was cut, many times
        assert [i for _, ids in pieces for i in ids] == theirs.encode(text).ids, layout


LINES = "the cat sat on the mat\nand the dog ate the hat\n" * 20


def lines_tokenizer(directory):
    """(the library's, ours) of a tokenizer.json whose pre-tokenizer keeps each line whole
    (a Split), with merges learned across its spaces ("t c") from LINES."""
    theirs = Tokenizer(models.BPE())
    theirs.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("[^\n]+"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    theirs.decoder = decoders.ByteLevel()
    theirs.train_from_iterator([LINES], trainers.BpeTrainer(
        vocab_size=300, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    (directory / "tokenizer.json").write_text(theirs.to_str())
    return theirs, read_tokenizer_json(directory)


def test_a_pre_tokenizer_whose_chunks_hold_spaces_is_cut_only_where_they_part(tmp_path):
    # A cut at a space would part what the library merges. Such a cut fails its check; one
    # after a new line passes.
    text = LINES
    theirs, ours = lines_tokenizer(tmp_path)
    assert any("Ġ" in token.strip("Ġ") for token in theirs.encode(text).tokens)
    with small_pieces(3, check_chars=30):
        pieces = [piece for piece, _ in encode_pieces(ours, [text])]
        _, ids = pieces_ids(ours, [text])
        one_line = text.replace("\n", " ")                            # no place to cut at all
        assert len(list(encode_pieces(ours, [one_line]))) == 1
    assert len(pieces) > 10 and all(piece.endswith("\n") for piece in pieces[:-1])
    assert ids == theirs.encode(text).ids


@pytest.mark.parametrize("chunk_chars", [1, 2, 5, 7])
def test_a_cut_is_checked_only_once_the_text_after_it_is_read(tmp_path, chunk_chars):
    # A file read a few characters at a time: a space near the end of the text read so far,
    # checked with only what is read of the rest of its line, could pass, and the cut part
    # what the library merges across that space once the line goes on.
    theirs, ours = lines_tokenizer(tmp_path)
    chunks = [LINES[i:i + chunk_chars] for i in range(0, len(LINES), chunk_chars)]
    with small_pieces(3, check_chars=30):
        joined, ids = pieces_ids(ours, chunks)
    assert joined == LINES and ids == theirs.encode(LINES).ids


SPACED_SPECIAL = BPETokenizer.train("the end is the end " * 20, 262, special_tokens=["<the end>"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["<the end>", "<the", "end>", " ", "the", "end", "\n"]),
                max_size=30).map("".join), st.integers(1, 6), st.booleans())
@example("a <the end> b <the end>", 3, True)
def test_special_tokens_that_hold_a_space_are_never_cut(text, piece_chars, allow_special):
    # Our own BPE's pieces are cut at spaces unchecked, unless a special token holds one:
    # such a text was encoded whole; now each place is checked, as a tokenizer.json's is.
    tok = SPACED_SPECIAL
    with small_pieces(piece_chars):
        joined, ids = pieces_ids(tok, [text], allow_special)
        pieces = list(encode_pieces(tok, ["x y " * 20 + text]))
    assert joined == text and ids == tok.encode(text, allow_special=allow_special)
    assert len(pieces) > 1


def test_an_error_names_its_position_in_the_whole_text_not_the_piece(both_tokenizers):
    # A lone surrogate (bytes of a command line that are not UTF-8) in a later piece.
    _, ours = both_tokenizers["qwen"]
    text = "ab cd " * 20 + "e\udfff"
    with small_pieces(4), pytest.raises(ValueError, match=r"^cannot encode '\\udfff' at "
                                                          r"position 121: a lone surrogate"):
        list(encode_pieces(ours, [text]))


def test_the_ids_of_a_large_text_are_never_held_at_once(both_tokenizers):
    # The whole text was encoded at once: a list of its ids (an int object and a pointer for
    # each, 2.9 GB for a text of 80 MB) beside the text.
    _, ours = both_tokenizers["qwen"]
    text = "the quick brown fox, 3 dogs and 12 cats jumped over 1.5 lazy dogs!\n" * 3000
    def count():                                   # read 1000 characters at a time, as a file
        chunks = (text[i:i + 1000] for i in range(0, len(text), 1000))
        return sum(len(ids) for _, ids in encode_pieces(ours, chunks))
    with small_pieces(1000):
        peak = peak_bytes(count)
    # A piece, its ids and chunks (0.4 times the text here), where the whole text's ids and
    # chunks were 70 times it.
    assert peak < len(text)
