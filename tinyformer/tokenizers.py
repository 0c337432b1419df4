"""Tokenizers: text -> list of integer ids -> text.

A language model sees integers, never text. A tokenizer fixes a vocabulary of pieces and
cuts a text into them; the model embeds each piece's id. Two are here:

    CharTokenizer   one id per character of a fixed alphabet. Tiny vocabulary, long sequences,
                    and it cannot encode a character it was not built with.
    BPETokenizer    byte-level byte-pair encoding, as GPT-2. It starts from the 256 bytes, so
                    every string encodes (as its UTF-8 bytes), and learns merges that give
                    frequent byte sequences ("the", " and") ids of their own: short sequences
                    for common text, graceful fallback to bytes for rare text.

Both may reserve special tokens (`<pad> <bos> <eos> <mask>`), strings with ids of their own
that mark structure rather than text. As in GPT-2, a special token written in the text is
recognised only when asked (`encode(text, allow_special=True)`); by default it is plain text,
so a user's input cannot smuggle in an `<eos>`.

Both save to and load from JSON (`{"type": "char" | "bpe", "version": 1, ...}`);
`load_tokenizer(path)` reads either. A BPETokenizer is GPT-2's kind of tokenizer: pretrained.py
writes and reads it as GPT-2's files (`save_gpt2_tokenizer`, `load_gpt2_tokenizer`), as Hugging
Face's transformers does, and it then encodes and decodes exactly as GPT-2 does.
"""

from __future__ import annotations

import heapq
import itertools
import json
import operator
import os
import re
import time
import unicodedata
from collections import Counter, defaultdict
from functools import cached_property
from typing import Callable, Container, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import regex

from .files import (EDITABLE_JSON, StrPath, atomic_write, check_exists, command_line, folder_of,
                    NotRegularFile, iter_text, open_regular, shown, version_problem)
from .progress import CountProgress
from .schema import BadInput, Whole, check_settings, counted

# The version of the tokenizer files `save` writes. A file written before it was recorded has
# none, and is version 1.
TOKENIZER_VERSION = 1
END_OF_TEXT = "<|endoftext|>"    # GPT-2's one special token: where one document ends
MASK = "<mask>"                   # what a BERT hides a token behind


def escape_controls(text: str) -> str:
    """`text` with its control characters (NUL, BEL, backspace, escape, DEL, ...) written as
    escapes such as \\x07, so that printing a model's output cannot ring, erase or recolour
    the user's terminal; new lines (Windows' \\r\\n too) and tabs stay as they are. A
    byte-level model can write any byte, these included."""
    return "".join(c if c in "\n\t" or c == "\r" and text[i + 1:i + 2] == "\n"
                   or unicodedata.category(c) != "Cc" else f"\\x{ord(c):02x}"
                   for i, c in enumerate(text))


def one_line(piece: str) -> str:
    """A token's text on one line, with nothing a terminal would act on: new lines, returns and
    tabs shown as \\n \\r \\t, the other control characters (escape, bell) as escape_controls
    shows them."""
    return escape_controls(piece.replace("\n", "\\n").replace("\r", "\\r")
                           .replace("\t", "\\t"))


def encode_text_or_file(tok: Tokenizer, text: str | None, path: StrPath | None = None,
                 allow_special: bool = False) -> Iterator[tuple[str, list[int]]]:
    """The text to encode (given, or read from the UTF-8 file at `path`) and its ids, a piece
    at a time as encode_pieces gives them: a file is read as they are encoded. An empty file
    has no ids, as an empty text has none. ValueError, one line, for a text that is not UTF-8
    or holds a character a char tokenizer does not know: for a file, from the piece that
    holds it, naming its line and column, as an editor shows them."""
    if path is not None:
        return encode_pieces(tok, iter_text(path, "file", allow_empty=True), allow_special,
                             lines_of=f"file {os.fspath(path)!r}")
    check_utf8(text, "the text")
    return encode_pieces(tok, [text], allow_special)


# A word of a file of ids: what spaces and new lines separate.
_WORD = re.compile(r"\S+")


def ids_in_file(path: StrPath) -> np.ndarray:
    """The token ids (int64) that the UTF-8 file at `path` holds, separated by spaces or new
    lines, as `tokenize encode` prints them: a list too long for a command line. Read as
    encode_text_or_file reads a text, a chunk at a time (iter_text); an empty file holds no
    ids, as an empty text has none. ValueError, one line, for a word that is no whole number,
    or one too large for any id (past 64 bits), named by its line. Whether each id is in the
    vocabulary is decode's to say."""
    parts = [np.empty(0, dtype=np.int64)]          # the ids of each chunk
    cut = ""                     # the text's last word, which the chunk's end may have cut
    lines_before = 0             # the new lines before the chunk in hand
    # A space after the last chunk ends its last word.
    for chunk in itertools.chain(iter_text(path, "file", allow_empty=True), [" "]):
        text = cut + chunk
        words = _WORD.findall(text)
        cut = words.pop() if words and not text[-1].isspace() else ""
        try:
            parts.append(np.array(words, dtype=str).astype(np.int64))
        except (ValueError, OverflowError):   # said where the first word that is none stands
            for word in _WORD.finditer(text):
                try:
                    np.array(word.group()).astype(np.int64)
                except (ValueError, OverflowError) as e:
                    line = lines_before + text.count("\n", 0, word.start()) + 1
                    where = f"file {os.fspath(path)!r}, line {line}"
                    if isinstance(e, OverflowError):    # a whole number, out of any range
                        raise BadInput(f"{where}: cannot decode id {word.group()}: it is "
                                       f"outside every vocabulary's ids") from None
                    raise BadInput(f"{where}: {word.group()!r} is no token id; give whole "
                                   f"numbers separated by spaces, as `tokenize encode` prints "
                                   f"them") from None
        lines_before += text.count("\n")
    return np.concatenate(parts)


def check_text_to_train_on(text: str) -> None:
    """TypeError, in one line, unless `text` is a str, as encode's: bytes (a file read with
    "rb") were refused by what train did with them ("'bytes' object has no attribute
    'encode'"), and a list of texts was taken for a vocabulary of characters."""
    if isinstance(text, str):
        return
    what = type(text).__name__
    how = ("; decode the bytes first: text.decode('utf-8')"
           if isinstance(text, (bytes, bytearray)) else
           "; join a list of texts first: ''.join(texts)" if isinstance(text, (list, tuple))
           else "")
    raise TypeError(f"train takes the text as a str, got {what}{how}")


def check_utf8(text: str, what: str) -> None:
    """ValueError unless `text` (`what` it is, to the user) has UTF-8 bytes: the bytes of a
    command line that are not UTF-8 reach Python as lone surrogates, which have none."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadInput(f"{what} is not valid UTF-8 (at character {e.start})") from None


class EncodeError(BadInput):
    """A character that a tokenizer cannot encode, `shown` (as shown_char shows it), at
    `position` of the text, and `why`: "cannot encode 'é' at position 7: not in the
    tokenizer's 40-character vocabulary". `at(where)` says it with another place for
    "position 7" (a file's "line 3, column 2", which encode_pieces names); given `where` and
    `source`, the error says that place, after what the text is ("file 'a.txt': ...")."""

    def __init__(self, shown: str, position: int, why: str, where: str | None = None,
                 source: str | None = None) -> None:
        self.shown, self.position, self.why = shown, position, why
        said = self.at(where or f"position {position}")
        super().__init__(f"{source}: {said}" if source else said)

    def at(self, where: str) -> str:
        """The message with `where` in place of "position N" ("line 3, column 2")."""
        return f"cannot encode {self.shown} at {where}: {self.why}"


def lone_surrogate(character: str, position: int) -> EncodeError:
    """The error of every byte-level tokenizer's encode for a lone surrogate (half of a UTF-16
    pair, as undecodable bytes of a command line become), `character`, at `position` of the
    text: it is no character and has no UTF-8 bytes to encode."""
    return EncodeError(repr(character), position, "a lone surrogate (half of a UTF-16 pair) "
                       "is no character and has no UTF-8 bytes")


BACKGROUNDS = (46, 43, 42, 45)          # ANSI's cyan, yellow, green and magenta backgrounds


def split_shown(tok: Tokenizer, ids: Sequence[int], colour: bool = False) -> str:
    """How a text splits into tokens, on one line: |Hello|,| world|, or with `colour` (for a
    terminal) black on backgrounds that take turns. Each piece is shown as one_line shows it
    (a new line as \\n), with a backslash of the text doubled, so that an escape always means
    what it says: \\\\n is a backslash and an n, \\xe3 a byte of a character cut apart (a
    character that prints as nothing, a zero-width joiner say, is \\u200d, and so is an accent
    that starts a token, \\u0301). In the frame a "|" of the text shows as \\|, so that a
    "|" alone is a border: <|endoftext|> as one token is |<\\|endoftext\\|>|."""
    return "".join(split_shown_parts(tok, [ids], colour))


def split_shown_parts(tok: Tokenizer, id_pieces: Iterable[Sequence[int]],
                      colour: bool = False) -> Iterator[str]:
    """split_shown of the ids of the pieces of a text, in parts, one for each piece (a text's
    ids need not be held at once): joined, they are split_shown of all its ids."""
    n_shown = 0
    # Each id shown once, then looked up: a text repeats its tokens (5 MB of text is 2.5
    # million tokens of a few thousand ids), and showing each one again took most of the time
    # of `tokenize show`, 6 times its encoding. At most one entry an id of the vocabulary.
    piece_of = {}        # id -> its piece shown (not `shown`, this module's function)

    def piece(i):
        if i not in piece_of:
            piece_of[i] = _shown_piece(tok, i, frame=not colour)
        return piece_of[i]
    for ids in id_pieces:
        pieces = [piece(i) for i in ids]
        if colour:      # the backgrounds take turns across the pieces
            yield "".join(f"\x1b[30;{BACKGROUNDS[(n_shown + k) % len(BACKGROUNDS)]}m{piece}"
                          f"\x1b[0m" for k, piece in enumerate(pieces))
        elif pieces:
            yield "|" * (n_shown == 0) + "".join(piece + "|" for piece in pieces)
        n_shown += len(pieces)
    if n_shown == 0 and not colour:
        yield "(no tokens)"


# Characters that a terminal prints as nothing, or acts on, and that a token shows by their
# code point: the control characters U+0080 to U+009F (one_line writes those below as \xNN),
# the format characters (the zero-width joiner inside an emoji, a byte order mark, the
# right-to-left override, which would print the rest of the line backwards) and the line and
# paragraph separators. And combining marks (an accent, U+0301) with no character before
# them in the token to sit on (at its start, or after a character shown as an escape): they
# would sit on the frame's "|", or on the token before, and the token would look empty.
UNSEEN = regex.compile(r"[\x80-\x9f\p{Cf}\p{Zl}\p{Zp}]|(?:^|(?<=[\p{C}\p{Zl}\p{Zp}]))\p{M}+")


def _shown_piece(tok, i, frame, cut=None):
    """Token i as the frame (or, without `frame`, the colours) shows it; with `cut`, its first
    `cut` characters only."""
    # A token's bytes, with those that are no whole character kept apart (as surrogates)
    # until the text's own backslashes are doubled; then written as \xNN. An UNSEEN whole
    # character is written by its code point, \u200d (\u0085, not \x85, which is a byte).
    # Cut before escaping, so that no escape is cut in half.
    text = tok.id_to_bytes(i).decode("utf-8", "surrogateescape")[:cut].replace("\\", "\\\\")
    text = UNSEEN.sub(lambda found: "".join(f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF
                                            else f"\\U{ord(c):08x}" for c in found.group()),
                      text)
    shown = one_line(text)
    if frame:
        shown = shown.replace("|", "\\|")
    return re.sub("[\udc80-\udcff]", lambda cut: f"\\x{ord(cut.group()) - 0xdc00:02x}", shown)


def describe_vocabulary(tok: Tokenizer) -> list[str]:
    """What a tokenizer's ids stand for, in a few lines for a person: how many of each kind
    and, for a BPE of ours, its first merges, each as the two tokens it joined ("t"+"he"), and
    its longest tokens."""
    # Each special token on one line, as `tokenize show` names them: one with a new line
    # broke the report's lines, and an escape sequence in one recoloured the terminal.
    specials = [one_line(s) for s in tok.special_tokens]
    special_note = f" + {len(specials)} special ({' '.join(specials)})" if specials else ""
    if tok.padding:                  # a model's rows past the tokenizer's tokens (pad_to)
        special_note += f" + {tok.padding} padding, decoded as nothing"
    ids = f"vocabulary   {counted(tok.vocab_size, 'id')}:"
    if isinstance(tok, CharTokenizer):
        return [f"{ids} {counted(len(tok.chars), 'character')}{special_note}"]
    if not isinstance(tok, BPETokenizer):   # a tokenizer.json's (which has no `chars`), say
        others = tok.vocab_size - tok.padding - len(specials)
        return [f"{ids} {counted(others, 'token')}{special_note}"]
    learned = range(256, 256 + len(tok.merges))
    # Longest in bytes, not in characters shown: a new line shows as two (\n), and "東" is
    # one character of three bytes. The longest first; of equal length, the first learned.
    longest = sorted(learned, key=lambda i: -len(tok.id_to_bytes(i)))[:5]
    return [f"{ids} 256 bytes + {counted(len(tok.merges), 'merge')}{special_note}",
            "first merges " + (" ".join(shown_token(tok, a) + "+" + shown_token(tok, b)
                                        for a, b in tok.merges[:8]) or "(none)"),
            "longest      " + (" ".join(shown_token(tok, i) for i in longest) or "(none)")]


SHOWN_TOKEN_CHARACTERS = 30     # the report cuts a longer token (a run of 1 MB of "a", say)


def shown_token(tok: Tokenizer, i: int) -> str:
    """Token i in quotes, as `tokenize show` shows it in colour (new lines and tabs as \\n and
    \\t, a backslash doubled, a cut byte as \\xNN); a token longer than SHOWN_TOKEN_CHARACTERS
    cut there, with "…" and its length in bytes."""
    n_characters = len(tok.id_to_bytes(i).decode("utf-8", "surrogateescape"))
    if n_characters <= SHOWN_TOKEN_CHARACTERS:
        return f'"{_shown_piece(tok, i, frame=False)}"'
    return (f'"{_shown_piece(tok, i, frame=False, cut=SHOWN_TOKEN_CHARACTERS)}…" '
            f'({counted(len(tok.id_to_bytes(i)), "byte")})')


def compression(text: str, ids: Sequence[int]) -> str:
    """How many tokens a text took, and how many characters and bytes each holds on average."""
    return compression_of(len(ids), len(text), len(text.encode("utf-8")))


def compression_of(n_tokens: int, n_characters: int, n_bytes: int) -> str:
    """compression's line for a text of `n_characters` (`n_bytes` in UTF-8) in `n_tokens`."""
    per_token = (f": {n_characters / n_tokens:.2f} characters per token, "
                 f"{n_bytes / n_tokens:.2f} bytes per token") if n_tokens else ""
    return (f"{counted(n_tokens, 'token')}, {counted(n_characters, 'character')} "
            f"({counted(n_bytes, 'byte')}){per_token}")


def train_tokenizer(path: StrPath, kind: str, vocab_size: int,
                    special_tokens: Sequence[str] = (),
                    log: Callable[[str], None] = print,
                    name: Callable[[str], str] = str,
                    progress: bool = False) -> tuple[Tokenizer, list[str]]:
    """A `kind` ("bpe" or "char") tokenizer learned from the UTF-8 text file at `path`, and a
    report of it for a person: what was trained and how long it took, its vocabulary, and its
    compression of the text. `vocab_size` is a BPE's whole vocabulary (bytes, merges and
    `special_tokens`; a char tokenizer's is its text's characters, and ignores it). `log`
    hears what is starting (a BPE of a large text takes a while); `name(key)` says how a
    setting is called to the caller's user (`--vocab-size`); `progress=True` shows a BPE's
    merges as they are learned (BPETokenizer.train's). ValueError for a file that cannot be
    used, or too little text for the merges."""
    text = "".join(iter_text(path, "input file"))
    # The text's own bytes: a file's line ends (\r\n) and byte order mark are not its text;
    # and a pipe (/dev/stdin) has no size to ask the file system for.
    n_text_bytes = len(text.encode("utf-8"))
    what = f"a {vocab_size}-token BPE" if kind == "bpe" else "a char tokenizer"
    log(f"Training {what} on {path} ({counted(n_text_bytes, 'byte')})...")
    start = time.perf_counter()
    tok = (BPETokenizer.train(text, vocab_size, special_tokens=special_tokens, name=name,
                              progress=progress)
           if kind == "bpe" else CharTokenizer.train(text, special_tokens=special_tokens))
    seconds = time.perf_counter() - start
    n_tokens = count_tokens(tok, text)
    return tok, [f"Trained {what} on {path} in {seconds:.2f} s"] + [
        "  " + line for line in describe_vocabulary(tok)] + [
        f"  compression  {n_text_bytes / n_tokens:.2f} bytes per token on the input "
        f"({counted(n_tokens, 'token')})"]


# encode_pieces encodes a text this many characters at a time (a little more: to the next cut).
PIECE_CHARS = 1 << 20


def count_tokens(tok: Tokenizer, text: str) -> int:
    """len(tok.encode(text)), without holding every id at once: a list of the 42 million ids
    of a 100 MB text took 1.5 GB, where the text takes 100 MB."""
    return sum(len(ids) for _, ids in encode_pieces(tok, [text]))


def encode_pieces(tok: Tokenizer, texts: Iterable[str], allow_special: bool = False,
                  lines_of: str | None = None) -> Iterator[tuple[str, list[int]]]:
    """The text that `texts` join to (iter_text's chunks of a file, say), a piece at a time:
    (piece, tok.encode(piece)), whose ids joined are tok.encode of the whole text, so that a
    large text is never encoded, nor its ids held, at once. A piece is about PIECE_CHARS
    characters, cut before a space that follows a character that is not whitespace: GPT-2's
    chunks (pre_split) always part there (a chunk holds a space only at its start, or among
    other whitespace), and a char tokenizer's ids part anywhere. Another tokenizer's
    pre-tokenizer (a tokenizer.json's is any pattern) may not part there, nor may one whose
    special tokens hold such a space or take the whitespace after them (rstrip): its pieces
    are cut there, or after a new line that a
    character that is not whitespace follows, only where encoding the CHECK_CHARS on either
    side of the cut, together and apart, gives the same ids (_checked_pieces). A text without
    such a place is one piece. An error names its position in the whole text; given `lines_of`,
    what the text is (a file), an EncodeError says instead "{lines_of}: cannot encode ... at
    line L, column C", which a user finds in a file of many lines."""
    # (a cut comes before a run of whitespace: one that a special token before it takes
    # (rstrip) would be cut from it)
    cuttable = (isinstance(tok, (CharTokenizer, BPETokenizer)) and not tok.rstrip_tokens
                and not any(_CUT.search(token) for token in tok.special_tokens))
    pieces = _cut_pieces(texts) if cuttable else _checked_pieces(tok, texts, allow_special)
    offset = 0
    line, column = 1, 1                     # of the piece's first character, from 1
    for piece in pieces:
        try:
            if cuttable:
                ids = tok._encode_at(piece, allow_special, offset)
            else:               # (encode names a position in the piece: in the text, here)
                try:
                    ids = tok.encode(piece, allow_special=allow_special)
                except EncodeError as e:
                    raise EncodeError(e.shown, offset + e.position, e.why) from None
        except EncodeError as e:
            if lines_of is None:
                raise
            where = "line {}, column {}".format(*line_and_column(
                piece[:e.position - offset], line, column))
            raise EncodeError(e.shown, e.position, e.why, where, source=lines_of) from None
        yield piece, ids
        offset += len(piece)
        line, column = line_and_column(piece, line, column)


def line_and_column(before: str, line: int, column: int) -> tuple[int, int]:
    """The line and column of the character after the text `before`, which starts at `line`
    and `column`."""
    line_start = before.rfind("\n") + 1          # 0: its line began before `before`
    return (line + before.count("\n"),
            len(before) - line_start + (column if line_start == 0 else 1))


def _cut_pieces(texts):
    """The text that `texts` join to, in pieces cut where encode_pieces says."""
    rest = ""
    for text in texts:
        # `rest` holds no cut after its first PIECE_CHARS characters: look in what is new
        # (from its last old character on, as the cut looks behind it).
        search_from = max(PIECE_CHARS, len(rest))
        rest += text
        while cut := _CUT.search(rest, search_from):
            yield rest[:cut.start()]
            rest, search_from = rest[cut.start():], PIECE_CHARS
    if rest:
        yield rest


# How many characters on either side of a cut _checked_pieces encodes to check it: more than
# the longest special token (MAX_SPECIAL_TOKEN_CHARACTERS), and than any pre-tokenizer's
# pattern looks ahead or behind (GPT-2's, Llama 3's and Qwen's look one character past a run
# of whitespace, and a cut is never inside one).
CHECK_CHARS = 4 * 1024
# How far on from a place that fails the check the next of its kind is looked for: each
# check encodes 4 * CHECK_CHARS characters (the two sides together, then apart).
SKIP_CHARS = 32 * CHECK_CHARS


def _checked_pieces(tok, texts, allow_special):
    """The text that `texts` join to, in pieces of about PIECE_CHARS characters that `tok`
    encodes apart into the ids of the whole text: each cut at the first place of one of
    _CHECKED_CUTS' kinds where `tok` gives the CHECK_CHARS on the two sides the same ids apart
    as together. Where the check fails (a pre-tokenizer's chunk, or a special token, goes over
    the place), the next place of that kind is looked for SKIP_CHARS on: a tokenizer that
    parts at no space (one whose chunks are lines) is cut at new lines, and one that parts at
    neither costs a quarter more encoding, not a check at every space."""
    rest = ""
    looked_from = [PIECE_CHARS] * len(_CHECKED_CUTS)     # where each kind is looked for next
    for text in texts:
        rest += text
        while True:
            found = [kind.search(rest, start) for kind, start in zip(_CHECKED_CUTS, looked_from)]
            # Each kind's next place, or the end of the text so far (what follows may hold one)
            places = [len(rest) if place is None else place.start() for place in found]
            looked_from = [max(start, place) for start, place in zip(looked_from, places)]
            kind = min(range(len(places)), key=places.__getitem__)
            cut = places[kind]
            if found[kind] is None or cut + CHECK_CHARS > len(rest):
                break                                   # wait for the text after it
            start = max(cut - CHECK_CHARS, 0)
            if _parts_at(tok, rest[start:cut + CHECK_CHARS], cut - start, allow_special):
                yield rest[:cut]
                rest, looked_from = rest[cut:], [PIECE_CHARS] * len(_CHECKED_CUTS)
            else:
                looked_from[kind] = cut + SKIP_CHARS
    if rest:
        yield rest


def _parts_at(tok, window, cut, allow_special):
    """Whether `tok` encodes `window` cut at `cut` into the ids of it whole. A text it cannot
    encode is not checked: no cut there, and encoding its piece names the error."""
    try:
        return (tok.encode(window, allow_special=allow_special)
                == tok.encode(window[:cut], allow_special=allow_special)
                + tok.encode(window[cut:], allow_special=allow_special))
    except EncodeError:
        return False


def check_special_tokens(special_tokens: Iterable[str]) -> list[str]:
    """The special tokens as a list; ValueError unless they are distinct non-empty strings.
    A lone string (or anything not iterable) is refused with a TypeError, not read as one
    special token per character."""
    if isinstance(special_tokens, (str, bytes)) or not isinstance(special_tokens, Iterable):
        got = "a str" if isinstance(special_tokens, str) else type(special_tokens).__name__
        raise TypeError(f"special_tokens must be a list of strings, e.g. ['<eos>'], got {got}")
    special_tokens = list(special_tokens)
    if not all(isinstance(s, str) and s for s in special_tokens):
        raise BadInput(f"special tokens must be non-empty strings, got "
                       f"{shown(special_tokens)}; leave out the empty ones (an empty list for "
                       f"no special tokens at all)")
    if len(set(special_tokens)) != len(special_tokens):
        raise BadInput(f"special tokens must be distinct, got {shown(special_tokens)}")
    for token in special_tokens:     # a lone surrogate (a file's "\udcff") matches no text
        check_utf8(token, f"special token {shown(token)}")
    return special_tokens


# The most ids a BPE is trained to (`train --vocab-size` takes as many): past any tokenizer in
# use, and before a size that is a typo (a zero too many) could be taken for one.
MAX_VOCAB_SIZE = 2 ** 20


def check_training(kind: str, vocab_size: int | None, special_tokens: Sequence[str],
                   name: Callable[[str], str] = str) -> int:
    """The vocabulary size to train a `kind` ("bpe" or "char") tokenizer with [512 for a BPE],
    or a one-line ValueError for settings that cannot work. `name(key)` says how a setting is
    called to the caller's user: `vocab_size` in Python, `--vocab-size` on the command line."""
    check_special_tokens(special_tokens)
    if kind == "char":
        if vocab_size is not None:
            raise BadInput(f"{name('vocab_size')} is for a bpe tokenizer; a char tokenizer's "
                           f"vocabulary is the characters of its text")
        return 0
    vocab_size = 512 if vocab_size is None else vocab_size
    if vocab_size < 256 + len(special_tokens):
        raise BadInput(f"{name('vocab_size')} {vocab_size} is too small: a byte-level BPE "
                       f"needs the 256 bytes plus {len(special_tokens)} special tokens, at "
                       f"least {256 + len(special_tokens)}")
    if vocab_size > MAX_VOCAB_SIZE:
        raise BadInput(f"{name('vocab_size')} must be at most {MAX_VOCAB_SIZE:,}, got "
                       f"{vocab_size:,}: each id is a merge learned from the text and a row "
                       f"of a model's embedding (GPT-2 has 50,257 ids, Llama 3 128,256)")
    return vocab_size


# Finding special tokens in a text compiles a pattern from them, which takes over 100 times
# their length in memory and a second per million characters: a file with a special token of
# 100 MB would need 12 GB or more. Real ones are short (GPT-2's <|endoftext|>, Qwen's <|im_start|>,
# Llama 3's <|reserved_special_token_250|>: under 40 characters, a few thousand in all).
MAX_SPECIAL_TOKEN_CHARACTERS = 2 ** 10
# And all of them together: a file of 100,000 special tokens of 1,000 characters each.
MAX_SPECIAL_CHARACTERS = 2 ** 20


def special_pattern(special_tokens: Sequence[str], what: str = "special token"
                    ) -> re.Pattern | None:
    """A regex matching any of the special tokens (None if there are none). Longest first, so
    that of two where one starts the other ("<eos>", "<eos2>") the longer wins. Every reader
    of a tokenizer builds its pattern here, so a ValueError refuses tokens too long to compile
    (`what` names them: "special token", or "added token")."""
    if not special_tokens:
        return None
    longest = max(special_tokens, key=len)
    if len(longest) > MAX_SPECIAL_TOKEN_CHARACTERS:
        # (shown with its length: it is longer than shown() quotes whole)
        raise BadInput(f"{what} {shown(longest)} is too long: a {what} may have at most "
                       f"{MAX_SPECIAL_TOKEN_CHARACTERS} characters")
    total = sum(map(len, special_tokens))
    if total > MAX_SPECIAL_CHARACTERS:
        raise BadInput(f"the {len(special_tokens)} {what}s have {total} characters in all; "
                       f"they may have at most {MAX_SPECIAL_CHARACTERS}")
    return re.compile("|".join(re.escape(s) for s in sorted(special_tokens, key=len,
                                                               reverse=True)))


# The whitespace that a special token with lstrip or rstrip takes into it: Unicode's
# White_Space characters, as Rust's char::is_whitespace, which the tokenizers library uses
# (Python's str.isspace also takes \x1c-\x1f, which are not whitespace there).
WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                       + "".join(map(chr, range(0x2000, 0x200b))))


def special_spans(pattern: re.Pattern | None, text: str, lstrip: Container[str] = (),
                  rstrip: Container[str] = ()) -> list[tuple[int, int, str]]:
    """(start, end, token) for each special token that `pattern` (special_pattern's) finds in
    `text`, in order. A token in `lstrip` takes the whitespace before it into its span (back
    to the previous token's end), one in `rstrip` the whitespace after it (up to the next
    token's start, as a special token may begin with a space): the tokenizers
    library's added-token settings of those names, as RoBERTa's <mask> has lstrip, so that
    "is <mask>" is "is" and the mask, and the model fills the mask with " red", space and
    all. Every tokenizer here encodes the special tokens of a text through this."""
    matches = list(pattern.finditer(text)) if pattern is not None else []
    spans, taken = [], 0                    # taken: where the last span ended
    for i, match in enumerate(matches):
        start, end, token = match.start(), match.end(), match.group()
        if token in lstrip:
            while start > taken and text[start - 1] in WHITESPACE:
                start -= 1
        if token in rstrip:         # up to the next token, which may begin with a space
            stop = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            while end < stop and text[end] in WHITESPACE:
                end += 1
        spans.append((start, end, token))
        taken = end
    return spans


def _id_sequence(ids):
    """`ids`, which decode iterates, or TypeError, in one line, saying what decode takes:
    Python's own error ("'NoneType' object is not iterable") says neither, and text or bytes
    would be taken apart into characters or byte values. A single id is checked by
    Tokenizer._check_id, as it is met."""
    takes = "decode takes a sequence of token ids (a list of ints or a 1-D integer array)"
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"{takes}, not {type(ids).__name__}; to get the ids of a text, use "
                        f"encode")
    if getattr(ids, "ndim", 1) != 1:            # an array, or a Tensor, of another shape
        batch = "; decode a batch (B, T) one row at a time" if ids.ndim == 2 else ""
        raise TypeError(f"{takes}, got an array of shape {tuple(ids.shape)}{batch}")
    if isinstance(ids, np.ndarray) and ids.size and ids.dtype.kind not in "iu":
        raise TypeError(f"{takes}, got an array of {ids.dtype}")
    try:
        iter(ids)
    except TypeError:
        one = "; for a single id, decode([id])" if isinstance(ids, (int, np.integer)) else ""
        raise TypeError(f"{takes}, got {type(ids).__name__}{one}") from None
    return ids


# What `load` returns: the class it is called on (CharTokenizer.load gives a CharTokenizer).
TokenizerT = TypeVar("TokenizerT", bound="Tokenizer")


class Tokenizer:
    """What both tokenizers share: special tokens, encode/decode, inspection, save/load.
    A subclass names its `kind` (the JSON "type"), counts its own tokens (`_own_size`), encodes
    ordinary text (`_encode_text`, given the text's offset in the input for its error
    messages), spells out each id (`_piece`),
    joins pieces (`_join`), shows them (`_readable`), and converts itself to and from JSON."""

    kind: str | None = None
    # Ids past the tokenizer's own (`pad_to`): a model's embedding may have more rows than its
    # tokenizer has tokens. They decode to nothing (the empty piece), and encode never gives them.
    padding = 0
    _NOTHING = b""

    def __init__(self, special_tokens: Iterable[str], first_special_id: int,
                 lstrip: Iterable[str] = (), rstrip: Iterable[str] = ()) -> None:
        """A subclass's part: `special_tokens` (strings) take the ids from `first_special_id`
        on, in order. Those in `lstrip` take the whitespace before them into them where they
        are found in a text, those in `rstrip` the whitespace after them (special_spans)."""
        self.special_tokens = check_special_tokens(special_tokens)
        self._special_ids = {s: first_special_id + i for i, s in enumerate(self.special_tokens)}
        self._special_re = special_pattern(self.special_tokens)
        self.lstrip_tokens = self._stripping(lstrip, "lstrip")
        self.rstrip_tokens = self._stripping(rstrip, "rstrip")

    def _stripping(self, tokens, setting):
        """`tokens`, special tokens of this tokenizer's, as a list in its order of them;
        ValueError, one line, for one that is none."""
        tokens = check_special_tokens(tokens)
        unknown = [token for token in tokens if token not in self._special_ids]
        if unknown:
            raise BadInput(f"{setting} token {shown(unknown[0])} is not one of the special "
                           f"tokens {shown(self.special_tokens)}")
        return [token for token in self.special_tokens if token in tokens]

    def __repr__(self) -> str:
        # As transformers shows a tokenizer: what it is and its size (a notebook showed
        # <tinyformer.tokenizers.CharTokenizer at 0x...>).
        special = self.special_tokens
        shown = ", ".join(map(repr, special[:6])) + (f", ... {len(special)} in all"
                                                     if len(special) > 6 else "")
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, special_tokens=[{shown}])"

    # -- encoding and decoding -------------------------------------------------------------

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        """The ids of `text` (list of int). Special tokens written in the text get their own
        ids only with allow_special=True; otherwise they are encoded as the text they are.
        transformers' tokenizers always do the first (their encode(text)); tiktoken's
        encode_ordinary(text) does the second."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        return self._encode_at(text, allow_special, 0)

    def _encode_at(self, text, allow_special, offset):
        """encode(text), where `text` starts at `offset` of a longer text (encode_pieces'
        piece), which an error names its positions in."""
        ids = []
        start = 0
        if allow_special:
            for begin, end, token in special_spans(self._special_re, text, self.lstrip_tokens,
                                                   self.rstrip_tokens):
                ids.extend(self._encode_text(text[start:begin], offset + start))
                ids.append(self._special_ids[token])
                start = end
        ids.extend(self._encode_text(text[start:], offset + start))
        return ids

    def decode(self, ids: Iterable[int] | np.ndarray, skip_special_tokens: bool = False) -> str:
        """The text of a sequence of ids (ints or a 1-D numpy array of integers), its special
        tokens' text ("<eos>") included, as transformers' decode(ids) gives it; with
        skip_special_tokens=True, without them, as its decode(ids, skip_special_tokens=True).
        An id outside the vocabulary is refused either way (ValueError, one line), where
        transformers' decode leaves it out without a word."""
        skipped = set(self._special_ids.values()) if skip_special_tokens else set()
        return self._join([self._checked_piece(i) for i in _id_sequence(ids)
                           if not skipped or self._check_id(i) not in skipped])

    @property
    def vocab_size(self) -> int:
        """How many ids there are: its own tokens', then any padding."""
        return self._own_size + self.padding

    def __len__(self) -> int:
        """vocab_size, as len() of a Hugging Face tokenizer."""
        return self.vocab_size

    def pad_to(self, vocab_size: int) -> None:
        """Give the tokenizer `vocab_size` ids, as many as a model's embedding has rows: the
        ids past its own tokens decode to nothing, and encode never gives them (nanoGPT pads
        GPT-2's 50257 to 50304; Qwen's models pad too). Saving writes its own tokens alone.
        ValueError, one line, if it has more tokens than that, or for a size that is no whole
        number (300.5 made a vocab_size of 300.5, whose id 300 decoded)."""
        check_settings({"vocab_size": vocab_size}, {"vocab_size": Whole(0, 2 ** 62)}, name=str)
        vocab_size = int(vocab_size)            # a numpy integer, a model's, as a Python int
        if self._own_size > vocab_size:
            raise BadInput(f"the tokenizer has {self._own_size} tokens, more than the "
                           f"model's {vocab_size}")
        self.padding = vocab_size - self._own_size

    def _checked_piece(self, i):
        i = self._check_id(i)
        return self._piece(i) if i < self._own_size else self._NOTHING

    def _check_id(self, i):
        try:    # an id is an integer: int() would read 1.7 as id 1 and the digits of "72" as ids
            if isinstance(i, bool):           # operator.index takes True for 1
                raise TypeError
            i = operator.index(i)
        except TypeError:
            row = isinstance(i, (list, tuple)) or isinstance(i, np.ndarray) and i.ndim > 0
            got = (f"a row of {len(i)} ids (decode a batch (B, T) one row at a time)"
                   if row else repr(i))
            raise TypeError(f"a token id must be an integer, got {got}") from None
        if not 0 <= i < self.vocab_size:          # a negative id would index from the end
            # (a char tokenizer made of no characters has no ids: not "ids 0 to -1")
            has = (f"has ids 0 to {self.vocab_size - 1}" if self.vocab_size else
                   "has no ids: the tokenizer has no tokens")
            raise BadInput(f"cannot decode id {i}: the vocabulary {has}")
        return i

    # -- inspection --------------------------------------------------------------------------

    def tokens_of(self, text: str, allow_special: bool = False) -> list[str]:
        """How `text` splits: the readable piece of each of its tokens (`allow_special` as
        encode's)."""
        return [self.id_to_token(i) for i in self.encode(text, allow_special)]

    def id_to_token(self, i: int) -> str:
        """The readable piece that id i stands for."""
        return self._readable(self._checked_piece(i))

    def id_to_bytes(self, i: int) -> bytes:
        """The bytes that id i stands for, as they are (a special token's: its UTF-8), where
        id_to_token shows them readably: a byte-level BPE's id_to_bytes(256 + k) is the bytes
        of merge k's two ids, joined, which may be part of a character's."""
        piece = self._checked_piece(i)
        return piece if isinstance(piece, bytes) else piece.encode("utf-8", "surrogatepass")

    def special_id(self, token: str) -> int | None:
        """The id of special token `token`, or None if this tokenizer has no such token."""
        return self._special_ids.get(token)

    def token_to_id(self, token: str) -> int:
        """The id whose readable piece is `token` (the inverse of id_to_token); ValueError if
        no entry of the vocabulary reads so. A byte-level BPE's tokens read as their text
        (" the"), where GPT-2's vocab.json, and transformers' convert_tokens_to_ids, spell
        each byte as a character of bytes_to_unicode's ("\u0120the", shown "Ġthe"): the
        error for such a spelling names the token to give instead."""
        try:
            return self._token_ids[token]
        except (KeyError, TypeError):
            raise BadInput(f"{token!r} is not a token of this vocabulary"
                           f"{self._spelled_in_bytes(token)}") from None

    # Whether the pieces are bytes that GPT-2's files spell as bytes_to_unicode's characters.
    byte_level = False

    def _spelled_in_bytes(self, token):
        """Where `token` spells a token of this byte-level vocabulary in bytes_to_unicode's
        characters, as GPT-2's vocab.json does: what to give instead, for token_to_id's error;
        else "" (a character vocabulary's tokens are spelled as themselves)."""
        byte_of = {char: b for b, char in bytes_to_unicode().items()}
        if not (self.byte_level and isinstance(token, str) and token
                and all(char in byte_of for char in token)):
            return ""
        readable = bytes(byte_of[char] for char in token).decode("utf-8", "backslashreplace")
        if readable not in self._token_ids:
            return ""
        return (f"; tinyformer names a token by the text it stands for: {readable!r} (id "
                f"{self._token_ids[readable]}), which Hugging Face's vocab.json and "
                f"tokenizer.json spell {token!r}")

    @cached_property
    def _token_ids(self):
        # Should two ids read the same (BPE can build one byte string by two merge orders),
        # the lowest id wins, and a special token wins over text.
        token_ids = {}
        for i in range(self._own_size):                    # (padding ids are no token)
            token_ids.setdefault(self.id_to_token(i), i)
        return {**token_ids, **self._special_ids}

    # -- save and load -----------------------------------------------------------------------

    def save(self, path: StrPath) -> None:
        """Write the tokenizer as JSON (no pickle: loading a file never runs code), all or
        nothing: a failure part way leaves any earlier file at `path` as it was."""
        with atomic_write(path, encoding="utf-8") as f:
            # ensure_ascii (the default) writes every non-ASCII character as \\uXXXX, so any
            # character, even a lone surrogate, survives the file.
            json.dump({"type": self.kind, "version": TOKENIZER_VERSION, **self._fields()}, f)

    @classmethod
    def load(cls: type[TokenizerT], path: StrPath) -> TokenizerT:
        """Read the tokenizer that `save` wrote at `path`. Tokenizer.load (as load_tokenizer) reads
        either kind, choosing the class by the file's "type"; a subclass's load (CharTokenizer.load,
        or a class of your own that derives from it) builds its own class, and refuses a file of
        another kind with a ValueError."""
        return cls._load(path)

    @classmethod
    def _load(cls: type[TokenizerT], path: StrPath, pipe: bool = False) -> TokenizerT:
        """load's work; with `pipe`, as load_tokenizer takes it."""
        # The checks of every way to load a tokenizer file live here: load_tokenizer calls this.
        check_exists(path, "tokenizer", f"tokenizer {str(path)!r} does not exist; make one "
                                        f"with `{command_line('tokenize', 'train')}`")
        if os.path.isdir(path):
            raise BadInput(_directory_advice(path))
        data = _read_json(path, pipe)
        problem = version_problem(path, "tokenizer format",
                                  data.get("version", TOKENIZER_VERSION), TOKENIZER_VERSION,
                                  "put back the tokenizer file tinyformer wrote")
        if problem:
            raise BadInput(problem)
        if cls is Tokenizer:
            return _build(TOKENIZERS[data["type"]], data, path)
        if data["type"] != cls.kind:
            raise BadInput(f"{path}: holds a {data['type']!r} tokenizer, not {cls.kind!r} "
                           f"(load_tokenizer reads either)")
        return _build(cls, data, path)


def _directory_advice(directory):
    """The one line that says what to give instead of `directory`, which holds files and is
    none: the tokenizer file of ours that it holds (a run's tokenizer.json, or the one that
    `tinyformer export` writes beside a model), the reader of a Hugging Face tokenizer's files,
    or what to fetch for a tokenizer.model."""
    directory = os.fspath(directory)
    ours = [path for path in (os.path.join(directory, name) for name in OUR_FILE_NAMES)
            if is_tokenizer_file(path)]
    if ours:
        return f"tokenizer {directory!r} is a directory; give its tokenizer file, {ours[0]!r}"
    if any(os.path.exists(os.path.join(directory, name)) for name in HUGGING_FACE_FILES):
        return (f"tokenizer {directory!r} is a Hugging Face tokenizer's folder: read it with "
                f"tinyformer.pretrained's load_gpt2_tokenizer (GPT-2's) or read_tokenizer_json "
                f"(any byte-level BPE's)")
    if os.path.exists(os.path.join(directory, TOKENIZER_MODEL)):
        return tokenizer_model_advice(directory)
    return (f"tokenizer {directory!r} is a directory with no tokenizer in it; give a tokenizer "
            f"file (`{command_line('tokenize', 'train')}` makes one)")


def tokenizer_model_advice(directory: StrPath) -> str:
    """The one line for a directory whose only tokenizer is a tokenizer.model (Llama 2's
    SentencePiece, say), saying what to fetch instead: every reader of a directory says it."""
    return (f"{os.fspath(directory)!r} has its tokenizer in {TOKENIZER_MODEL_FORMAT}: fetch the "
            f"model's tokenizer.json into it, if its page has one (a byte-level BPE's is read)")


def load_tokenizer(path: StrPath, pipe: bool = False) -> Tokenizer:
    """Read any tokenizer that `save` wrote, choosing the class by the file's "type" (as
    Tokenizer.load, which it is). With `pipe`, `path` may be a pipe, read once (a shell's
    `--tokenizer <(...)`): for a path the user named, not a file found in a folder, where a
    named pipe would wait for a writer that never comes."""
    return Tokenizer._load(path, pipe)


def encode_prompt(tokenizer: Tokenizer, prompt: str, allow_special: bool = False,
                  context: int | None = None,
                  name: Callable[[str], str] = str, pad_id: int | None = None) -> list[int]:
    """A user's prompt as ids, or a one-line ValueError that says what to change: a text that
    is not UTF-8, characters the tokenizer cannot encode, (given the model's `context`) more
    tokens than it reads, or (given the `pad_id` that the model hides from attention, a BERT's)
    a special token written in it that is that padding. `allow_special` as Tokenizer.encode's;
    `name(key)` says how the prompt is called to the caller's user: `prompt` in Python,
    `--prompt` on the command line."""
    check_utf8(prompt, name("prompt"))    # not a character the model lacks: no character at all
    try:
        ids = tokenizer.encode(prompt, allow_special=allow_special)
    except ValueError as e:
        # transformers' BERT writes its mask [MASK]; ours is the special token <mask>, in that
        # spelling only (<MASK> is text)
        masks = (re.search(r"[\[<] *mask *[\]>]", prompt, re.IGNORECASE) is not None
                 and "<mask>" in tokenizer.special_tokens)
        mask = "; a mask is written <mask> here" if masks else ""
        raise BadInput(f"{name('prompt')} cannot be encoded: {e}; use only characters the model "
                       f"was trained on{mask}") from None
    # A BERT's prompt has its special tokens for its <mask>; its <pad> would be hidden from
    # attention, read as nothing there, which the user did not write.
    if pad_id is not None and pad_id in ids:
        raise BadInput(f"{name('prompt')} holds {tokenizer.id_to_token(pad_id)}, the padding "
                       f"this model hides from attention: it would read as nothing there; "
                       f"leave it out")
    if context is not None:
        check_prompt_fits(len(ids), context, name=name)
    return ids


def check_prompt_fits(tokens: int, most: int, answer: str | None = None,
                      name: Callable[[str], str] = str, target: bool = False) -> None:
    """ValueError, in one line, where a prompt of `tokens` tokens is more than a model reads,
    `most`: the one message of every command that reads a prompt (generate, attention, lens,
    graph). `answer`: the answer an encoder-decoder's decoder reads after <bos> (the graph of
    its step), where it is that answer, `tokens` with <bos>, that does not fit. `target`: the
    prompt's last token is a target only (a GPT's training step: its inputs are the others),
    so one more than `most` fits, and the message says why, lest "at most 33" of the graph
    read as a contradiction of the "at most 32" of generate for the same model. `name` as
    encode_prompt's."""
    fits = most + 1 if target else most
    if tokens <= fits:
        return
    counted = (f"{name('prompt')} has {tokens} tokens" if answer is None else
               f"the answer to {name('prompt')}, {answer!r}, and <bos> make {tokens} tokens")
    why = f" (its context, {most}, and one target)" if target else ""
    raise BadInput(f"{counted}; this model reads at most {fits}{why}: shorten "
                   f"{'it' if answer is None else name('prompt')}")


# The files of a Hugging Face tokenizer, which are read together from their folder
# (`--tokenizer FOLDER`, pretrained.load_gpt2_tokenizer): a user who names one of them is told
# to give the folder, whatever the file holds (merges.txt is not even JSON).
HUGGING_FACE_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                      "special_tokens_map.json", "added_tokens.json")
# And those of a checkpoint, a run's or a Hugging Face model's, whose folder --tokenizer reads
# too: the tokenizer its model reads.
CHECKPOINT_FILES = ("config.json", "model.safetensors", "generation_config.json")
# What a tokenizer.model is: SentencePiece's file (Llama 2's, T5's), or tiktoken's (Llama 3's
# original/); tinyformer reads neither, but a model page may offer a tokenizer.json beside it.
TOKENIZER_MODEL = "tokenizer.model"
# The names a folder gives a tokenizer file of ours: a run's, and the one beside a model that
# `tinyformer export` writes (tokenizer.json is the tokenizers library's name there).
PRETRAINED_TOKENIZER = "tinyformer-tokenizer.json"
OUR_FILE_NAMES = ("tokenizer.json", PRETRAINED_TOKENIZER)
TOKENIZER_MODEL_FORMAT = ("SentencePiece's or tiktoken's format (a tokenizer.model), which "
                          "tinyformer does not read")


def _read_json(path, pipe=False):
    """A tokenizer file's JSON, checked to name one of TOKENIZERS; else a one-line ValueError
    that says what the file is, if it is another's that tinyformer knows, and what to give."""
    try:
        with open_regular(path, "r", pipe, encoding=EDITABLE_JSON) as f:  # not /dev/zero
            data = json.load(f)
    except NotRegularFile:              # a ValueError, but not the JSON's: said as it is
        raise
    # ValueError: not JSON, or a whole number of more digits than Python converts (4300)
    except (ValueError, RecursionError) as e:
        raise _not_ours(path, f"invalid JSON ({e})") from None
    kind = data.get("type") if isinstance(data, dict) else None
    if kind is None and isinstance(data, dict) and isinstance(data.get("model"), dict):
        # The tokenizers library's file (under any name), read from its folder; a run's
        # config.json has a "model" too, its name.
        raise BadInput(f"{path}: a Hugging Face tokenizer.json: give its folder, "
                       f"{folder_of(path)!r}")
    # "type" may be any JSON value; a list or an object is unhashable (TypeError from `in`).
    if not isinstance(kind, str) or kind not in TOKENIZERS:
        raise _not_ours(path, f"expected an object with \"type\" one of {sorted(TOKENIZERS)}")
    return data


def _not_ours(path, why):
    """The ValueError to raise for a file that is no tokenizer file of ours (`why`, for the
    user): one of a Hugging Face tokenizer's or of a checkpoint's, by its name, is sent to its
    folder; a tokenizer.model is named as a format not read."""
    name = os.path.basename(os.fspath(path))
    whose = ("a Hugging Face tokenizer's" if name in HUGGING_FACE_FILES
             else "a checkpoint's" if name in CHECKPOINT_FILES else None)
    if whose:
        return BadInput(f"{path}: {whose} {name}, read with the files beside it: give its "
                        f"folder, {folder_of(path)!r}")
    if name.endswith(".model"):
        return BadInput(f"{path} is in {TOKENIZER_MODEL_FORMAT}: fetch the model's "
                        f"tokenizer.json, if its page has one (a byte-level BPE's is read), "
                        f"and give its folder, {folder_of(path)!r}")
    return BadInput(f"{path}: not a tokenizer file: {why}")


def is_tokenizer_file(path: StrPath) -> bool:
    """Whether the file at `path` is a tokenizer file of tinyformer's (a JSON object whose
    "type" names one of its tokenizers), as opposed to the tokenizers library's tokenizer.json,
    which a directory may hold under the same name."""
    try:
        _read_json(path)
    except (OSError, ValueError):
        return False
    return True


def _build(cls, data, path):
    """The tokenizer of class cls from a file's fields; the constructor checks them, and any
    complaint is reported in one line naming the file."""
    try:
        return cls._from_fields(data)
    except KeyError as e:
        raise BadInput(f"{path}: not a valid {cls.kind} tokenizer file: missing {e}") from None
    except (TypeError, ValueError) as e:
        raise BadInput(f"{path}: not a valid {cls.kind} tokenizer file: {e}") from None


# ---------------------------------------------------------------------------------------------
# Characters
# ---------------------------------------------------------------------------------------------

class CharTokenizer(Tokenizer):
    """One id per character: the special tokens take ids 0, 1, ..., then the characters
    (`chars`, each a one-character string, in the order given; `train` sorts a text's).

        tok = CharTokenizer.train("hello", special_tokens=["<eos>"])
        tok.encode("hole")      # [2, 4, 3, 1]: <eos>=0 e=1 h=2 l=3 o=4
    """

    kind = "char"
    _NOTHING = ""

    def __init__(self, chars: Iterable[str], special_tokens: Iterable[str] = ()) -> None:
        chars = list(chars)
        if not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise BadInput("the vocabulary must be single characters")
        if len(set(chars)) != len(chars):
            # CharTokenizer("hello") takes its text as the vocabulary, where train() reads one
            twice = next(c for i, c in enumerate(chars) if c in chars[:i])
            raise BadInput(f"the vocabulary holds the character {twice!r} twice: give each "
                           f"character once (sorted(set(text))), or make the tokenizer from a "
                           f"text with CharTokenizer.train(text)")
        # Half of a UTF-16 pair (a JavaScript tool splits "😀" so) is no character: it could
        # not be written out by decode's text, and the whole character is still not encoded.
        halves = [c for c in chars if "\ud800" <= c <= "\udfff"]
        if halves:
            raise BadInput(f"the vocabulary holds {halves[0]!r}, a lone surrogate (half of a "
                           f"UTF-16 pair), which is no character and has no UTF-8 bytes; give "
                           f"whole characters")
        super().__init__(special_tokens, first_special_id=0)
        clash = sorted(set(chars) & set(self.special_tokens))
        if clash:
            raise BadInput(f"{clash[0]!r} is both a character of the vocabulary and a special "
                           f"token, which needs an id of its own; name the special token with "
                           f"more than one character, as <eos> is")
        self.chars = chars
        self._pieces = self.special_tokens + chars
        self._ids = {c: i for i, c in enumerate(chars, start=len(self.special_tokens))}

    @classmethod
    def train(cls, text: str, special_tokens: Iterable[str] = ()) -> CharTokenizer:
        """The tokenizer of the characters of `text`, in sorted (code point) order, after the
        `special_tokens`."""
        check_text_to_train_on(text)
        check_utf8(text, "the text to train on")     # as a BPE's: a lone surrogate is none
        return cls(sorted(set(text)), special_tokens)

    @property
    def _own_size(self) -> int:
        return len(self._pieces)

    def _encode_text(self, text, offset):
        try:
            return [self._ids[c] for c in text]
        except KeyError as e:
            position = offset + text.index(e.args[0])
            raise EncodeError(shown_char(e.args[0]), position,
                              f"not in the tokenizer's {len(self.chars)}-character vocabulary"
                              f"{self._special_token_around(text, position - offset)}"
                              f"{self._other_normal_form(text)}"
                              f"{self._windows_line_end(e.args[0])}") from None

    def _special_token_around(self, text, position):
        """Where the character at `position` of `text` is part of a special token written in
        it ("<" of "<eos>", read as plain text unless asked), how to read it as the token; else
        nothing."""
        for match in (self._special_re.finditer(text) if self._special_re else ()):
            if match.start() <= position < match.end():
                return (f"; it is part of the special token {match.group()!r}, which is plain "
                        f"text unless special tokens are allowed (--allow-special, where a "
                        f"command takes it; allow_special=True in Python)")
        return ""

    def _other_normal_form(self, text):
        """Where `text` spells its accents otherwise than the vocabulary ("e" and a combining
        accent where it has "é", say), what to do about it; else nothing."""
        for form in ("NFC", "NFD"):
            normal = unicodedata.normalize(form, text)
            if normal != text and all(c in self._ids for c in normal):
                # A command's user has a shell, not Python's prompt: a filter for a file or
                # a prompt (`--prompt "$(... < prompt.txt)"`), with the Python they run us on.
                in_a_shell = (f"python -c \"import sys, unicodedata; sys.stdout.write("
                              f"unicodedata.normalize('{form}', sys.stdin.read()))\"")
                return (f"; the text is in another Unicode normal form than the tokenizer's "
                        f"({form}): encode unicodedata.normalize({form!r}, text) in Python, "
                        f"or in a shell pipe the text through `{in_a_shell}`")
        return ""

    def _windows_line_end(self, c):
        """Where `c`, a character not in the vocabulary, is the \\r of a Windows line end
        (\\r\\n) and the vocabulary has new lines (a text read from a file, whose \\r\\n are
        read as \\n), what to do about it; else nothing."""
        if c == "\r" and "\n" in self._ids:
            return ("; a file's Windows line ends (\\r\\n) are read as \\n, so the tokenizer "
                    "has no \\r: end the text's lines with \\n alone")
        return ""

    def _piece(self, i):
        return self._pieces[i]

    @staticmethod
    def _join(pieces):
        return "".join(pieces)

    @staticmethod
    def _readable(piece):
        return piece

    def _fields(self):
        return {"chars": self.chars, "special_tokens": self.special_tokens}

    @classmethod
    def _from_fields(cls, data):
        return cls(_list_of(data["chars"], "chars"), _list_of(data["special_tokens"],
                                                               "special_tokens"))


def shown_char(c: str) -> str:
    """A character as an error names it: quoted, and unless it is printable ASCII with its code
    point and name, since a combining accent, an invisible character or a space of another
    width cannot be told from another in print: 'é' (U+00E9 LATIN SMALL LETTER E WITH ACUTE),
    '\u0301' (U+0301 COMBINING ACUTE ACCENT)."""
    if " " <= c <= "~":
        return repr(c)
    # A mark would sit on the quote before it; what prints as nothing is spelled by its code.
    visible = c.isprintable() and not unicodedata.category(c).startswith("M")
    name = unicodedata.name(c, "")                      # control characters have none
    return f"{repr(c) if visible else ascii(c)} (U+{ord(c):04X}{' ' + name if name else ''})"


def _list_of(value, name):
    if not isinstance(value, list):
        raise TypeError(f"{name!r} must be a list")
    return value


# ---------------------------------------------------------------------------------------------
# Byte-pair encoding
# ---------------------------------------------------------------------------------------------

# GPT-2 cuts text into chunks before BPE, and merges never cross a chunk's border, so that
# "dog", "dog." and "dog!" share the token " dog" instead of learning " dog." and " dog!".
# This is GPT-2's own pattern: English contractions, then an optional space followed by a run
# of letters (\p{L}), of numbers (\p{N}: digits, but also "²", "½", "Ⅻ") or of other symbols,
# then whitespace (`\s+(?!\S)` leaves the last space of a run to start the next word, so
# " world" stays one chunk). The four classes cover every character, so the chunks always join
# back to the text. Python's `re` has no \p{...} classes; the third-party `regex` module has,
# and is what OpenAI's GPT-2 code used, so our chunks are GPT-2's exactly.
SPLIT_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


# Where encode_pieces may cut a text: a space after a character that is not whitespace (as
# SPLIT_PATTERN's \s has it), which is where one of its chunks starts.
_CUT = regex.compile(r"(?<=\S) ")
# The places where _checked_pieces tries to cut a text for any other tokenizer: _CUT's, and
# after a new line that a character that is not whitespace follows (a text of lines without
# spaces, Chinese say, or a pre-tokenizer whose chunks are lines). Each is checked first.
_CHECKED_CUTS = (_CUT, regex.compile(r"(?<=\n)(?=\S)"))


def pre_split(text: str) -> list[str]:
    """GPT-2's chunks of `text`: "Hello world's 42!" -> ['Hello', ' world', "'s", ' 42', '!']."""
    return SPLIT_PATTERN.findall(text)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's spelling of each byte as a printable character, {byte: character}, with which
    its vocab.json and merges.txt write tokens (which may be any bytes) as text: the printable
    bytes ("!" to "~", "¡" to "¬", "®" to "ÿ") stand for themselves, and the other 68 (space,
    control characters, ...) for the characters from U+0100 on, so the space is "Ġ". The
    dictionary is in GPT-2's order of ids 0-255: "!" (byte 33) is id 0."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable},
            **{b: chr(256 + n) for n, b in enumerate(others)}}


def merge(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """ids with every occurrence of pair, read left to right, replaced by new_id:
    merge([97, 97, 97, 98], (97, 97), 256) -> [256, 97, 98]."""
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def apply_merges(ids: Sequence[int], ranks: dict[tuple[int, int], tuple[int, int]]
                 ) -> list[int]:
    """A chunk's ids with BPE's merges applied. `ranks` maps each pair that is a merge to (its
    rank, the id it merges into). While some adjacent pair is a merge, the one of the lowest
    rank is merged, at its leftmost place first, and a pair that a merge makes joins the
    others at once: the tokenizers library's order (its BPE's `merge_all`), in which both our
    BPE and a tokenizer.json's encode. Where every merge joins tokens made by merges ranked
    before it, as in any trained BPE, this is the rounds of BPETokenizer's docstring (the
    lowest-ranked pair merged everywhere, left to right, then the next):
    apply_merges([97, 97, 97, 98], {(97, 97): (0, 256), (97, 98): (1, 257)}) -> [256, 257]."""
    # The rounds as written scan the whole chunk for each merge: their length times the
    # merges they apply, seconds for a long run without a space (Chinese, DNA). Instead a heap
    # holds each adjacent pair that is a merge by its rank and the place of its left token, so
    # the lowest rank, and of its places the leftmost, is on top. A merge joins a token and
    # its next into the left one's place (a linked list: nxt and prev), and makes new pairs
    # only with its two neighbours, which are pushed: n log n steps. An entry whose place no
    # longer holds its pair (a merge before took one of its tokens) is out of date, skipped.
    ids = list(ids)
    n = len(ids)
    prev, nxt = list(range(-1, n - 1)), list(range(1, n + 1))     # -1 and n: the ends
    # Each entry is one int, rank * (n + 1) + place, which orders as (rank, place) does and
    # compares faster than that tuple: a third less time in all.
    width = n + 1
    heap = [ranks[pair][0] * width + p for p, pair in enumerate(zip(ids, ids[1:]))
            if pair in ranks]
    heapq.heapify(heap)
    while heap:
        rank, p = divmod(heapq.heappop(heap), width)
        q = nxt[p]
        found = ranks.get((ids[p], ids[q])) if q < n else None
        if found is None or found[0] != rank:
            continue                                     # out of date
        ids[p], ids[q] = found[1], -1                    # -1: no token is here any more
        left, right = prev[p], nxt[q]
        nxt[p] = right
        if right < n:
            prev[right] = p
        for x, y in ((left, p), (p, right)):             # the new pairs beside the new token
            if x >= 0 and y < n and (ids[x], ids[y]) in ranks:
                heapq.heappush(heap, ranks[ids[x], ids[y]][0] * width + x)
    return [i for i in ids if i >= 0]


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding (Sennrich et al. 2016; GPT-2, Radford et al. 2019).

    Vocabulary: ids 0-255 are the bytes; merge k makes id 256 + k, the concatenation of two
    earlier tokens; the special tokens come last (GPT-2's <|endoftext|> is its last id, 50256).
    Id b is byte b, unless `byte_order` says otherwise: byte_order[i] is the byte of id i
    (GPT-2 orders them as `bytes_to_unicode` does).

    Training (`train`) starts from the text's UTF-8 bytes and repeats: count every adjacent
    pair of tokens, and merge the most frequent pair into a new token, everywhere. On
    "aaabdaaabac" (the example of Wikipedia's article on byte-pair encoding):

        a a a b d a a a b a c       most frequent pair (a, a), 4 times: new token Z = aa
        Z a b d Z a b a c           (Z, a) and (a, b) tie at 2; the smaller ids win: Y = ab
        Z Y d Z Y a c               (Z, Y), twice: X = ZY = aaab
        X d X a c                   merges = [(a, a), (a, b), (Z, Y)]

    Encoding (`encode`) replays the merges on new text in the order they were learned: while
    some adjacent pair is a learned merge, merge the earliest-learned one. "aaab" -> Z a b ->
    Z Y -> X. Text the merges never saw ("é" is two bytes) falls back to its bytes, so every
    text encodes, and decoding concatenates the bytes and reads them as UTF-8: exact for any
    text. Both work within GPT-2's chunks (`pre_split`): a token never spans two words. A
    Python string may also hold a lone surrogate (half of a UTF-16 pair, as undecodable bytes
    of a command line become), which is no character and has no UTF-8: encode refuses it in
    one line naming its position, as GPT-2's tokenizer in transformers refuses it.

    Done as written, both take a chunk's length times the merges: fine for words, minutes for
    text without spaces (Chinese, DNA), which is one long chunk. So both keep a chunk's tokens
    in a linked list and change only the places a merge joins and their neighbours: training
    counts each pair once and then updates the counts of the pairs beside each place it
    merges; encoding takes the merges from a heap of the chunk's pairs. The merges and ids are
    exactly those of the rounds above (the tests compare them with the plain way).

    tinyformer.pretrained's `save_gpt2_tokenizer(tok, directory)` and
    `load_gpt2_tokenizer(directory)` write and read GPT-2's files (vocab.json, merges.txt),
    which transformers reads and writes: our encode(text, allow_special=True) and decode give
    the ids and text of its GPT-2 tokenizer's encode(text) and decode(ids).

        tok = BPETokenizer.train(text, vocab_size=512, special_tokens=["<|endoftext|>"])
        ids = tok.encode("the cat")       # list of int; tok.tokens_of("the cat"): the pieces
        tok.decode(ids)                   # 'the cat', exactly, for any text
        tok.save("tokenizer.json"); BPETokenizer.load("tokenizer.json")

    `merges` are the learned pairs of ids in the order learned, `special_tokens` the special
    tokens' strings, `byte_order` the byte of each of ids 0-255 (see above). ValueError for
    merges that are not pairs of earlier ids, or a byte_order that is not the 256 bytes.
    """

    kind = "bpe"
    byte_level = True
    CACHE_LIMIT = 100_000          # chunks whose encoding is remembered (bounds the memory)
    # The longest token a file may make. A BPE trained on 1 MB of one letter makes tokens of up
    # to 512 KiB, which stay loadable; a merge file that doubles a token 60 times does not.
    MAX_TOKEN_BYTES = 2 ** 20
    # And all tokens together (GPT-2's 50,000 take about 350 KB): a file that merged a 1 MiB
    # token with each of 100,000 ids would make 100 GB of them.
    MAX_VOCABULARY_BYTES = 2 ** 28

    def __init__(self, merges: Iterable[Sequence[int]] = (), special_tokens: Iterable[str] = (),
                 byte_order: Iterable[int] = range(256), lstrip: Iterable[str] | None = None,
                 rstrip: Iterable[str] = ()) -> None:
        """`lstrip` and `rstrip` as Tokenizer's: the special tokens that take the whitespace
        before, or after, them. lstrip None (the default, and a file saved without it): the
        mask, <mask>, if there is one, as RoBERTa's <mask>. A BERT hides a whole token, and a
        word's token holds the space before it (" red"): the mask of "is <mask>." takes the
        space, and the model fills it with " red", where a lone space before the mask would be
        a token it never saw there in training."""
        merges = [tuple(pair) for pair in merges]
        self.byte_order = list(byte_order)
        # Whole numbers first: JSON's true and 2.0 equal 1 and 2, and a string cannot be sorted
        # with them (a file's "byte_order" was refused as "'<' not supported ...").
        if not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool)
                   for b in self.byte_order) or sorted(self.byte_order) != list(range(256)):
            raise BadInput("byte_order must list each of the bytes 0-255 once")
        self._bytes = [bytes([b]) for b in self.byte_order]      # id -> the bytes it stands for
        # The id of each byte, as a table for bytes.translate, which swaps a text's bytes for
        # their ids all at once.
        id_of_byte = {b: i for i, b in enumerate(self.byte_order)}
        self._byte_ids = bytes(id_of_byte[b] for b in range(256))
        self._ranks = {}                      # pair -> (its rank k, the id it merges into)
        total = 256
        for new_id, pair in enumerate(merges, start=256):
            # JSON's true and false are Python's 1 and 0, which are ints: no ids, though.
            if len(pair) != 2 or not all(type(t) is int and 0 <= t < new_id for t in pair):
                raise BadInput(f"merge {new_id - 256} is {shown(list(pair))}: not a pair of "
                               f"existing ids (below {new_id})")
            if pair in self._ranks:       # encoding would apply the earlier one, never this
                raise BadInput(f"merge {new_id - 256} is {shown(list(pair))}, which merge "
                               f"{self._ranks[pair][0]} already is")
            # Each merge may double the longest token: 60 merges of a token with itself would
            # make one of 2**60 bytes. Check the length before joining the bytes.
            length = len(self._bytes[pair[0]]) + len(self._bytes[pair[1]])
            if length > self.MAX_TOKEN_BYTES:
                raise BadInput(f"merge {new_id - 256} makes a token of {length} bytes; a "
                               f"token may have at most {self.MAX_TOKEN_BYTES}")
            total += length
            if total > self.MAX_VOCABULARY_BYTES:
                raise BadInput(f"merge {new_id - 256} brings its tokens to {total} bytes in "
                               f"all; a vocabulary may have at most "
                               f"{self.MAX_VOCABULARY_BYTES}")
            self._bytes.append(self._bytes[pair[0]] + self._bytes[pair[1]])
            self._ranks[pair] = (new_id - 256, new_id)
        special_tokens = check_special_tokens(special_tokens)
        if lstrip is None:
            lstrip = _mask_of(special_tokens)
        super().__init__(special_tokens, len(self._bytes), lstrip, rstrip)
        self.merges = merges
        self._cache = {}                                     # chunk -> its ids

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens: Iterable[str] = (),
              name: Callable[[str], str] = str, progress: bool = False) -> BPETokenizer:
        """Learn vocab_size - 256 - len(special_tokens) merges from `text`, so that the
        tokenizer's vocab_size is exactly the one asked for. Special tokens written in the text
        are borders, not text to learn from (the tokenizers library's trainer learns merges
        inside their text too: "<eos>" gives it "eos"). Ties between equally frequent pairs go
        to the smallest pair of ids, so training is deterministic; the library breaks ties in
        another order (the bytes ordered by GPT-2's printable characters, so " " as "Ġ" comes
        after "é"), so on the same text its merges can differ from these where counts tie.
        A pair whose token would be longer than MAX_TOKEN_BYTES is not merged (a run of 2 MiB
        of one letter would make one). ValueError if the text runs out of pairs before so many
        merges, or their tokens would pass MAX_VOCABULARY_BYTES in all, naming the largest
        vocab_size it gives. `name(key)` says how a setting is called to the caller's user
        (`--vocab-size` on the command line). `progress=True` shows the merges done on stderr
        as training's progress line does, once training has taken a second (a 1024-id BPE of
        a few MB takes seconds to a minute); quiet by default."""
        special_tokens = check_special_tokens(special_tokens)
        check_text_to_train_on(text)
        check_utf8(text, "the text to train on")     # a lone surrogate has no bytes to merge
        check_settings({"vocab_size": vocab_size}, {"vocab_size": Whole(1, MAX_VOCAB_SIZE)},
                       name=name)
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise BadInput(f"{name('vocab_size')} {vocab_size} is below the 256 bytes plus "
                           f"{counted(len(special_tokens), 'special token')}; give at least "
                           f"{256 + len(special_tokens)}")
        # The work is proportional to the number of distinct chunks, not to the text's length:
        # a word that occurs 1000 times is one entry with weight 1000.
        specials = special_pattern(special_tokens)
        between_specials = specials.split(text) if specials else [text]
        # The chunks are counted as the regex finds them, one at a time: pre_split's list of
        # them all took 1.4 GB for a 100 MB text (25 million strings), 14 times the text.
        chunk_counts = Counter(match.group() for part in between_specials
                               for match in SPLIT_PATTERN.finditer(part))
        # No count made before training says how many merges the text has: one merge may
        # shorten many words at once, so counting the words' pairs says too many, and advice
        # from it fails. The loop below runs out of pairs at the true number, after the work
        # of learning a vocabulary of that size, no more.

        # The distinct chunks' tokens one after another in one list: the token at place p is
        # ids[p], in a chunk that occurs weight[p] times, and its neighbours in its chunk are
        # at prev[p] and nxt[p] (-1 past the chunk's ends). A merge joins a token and its next
        # into the left one's place and unlinks the right one (a doubly linked list), so it
        # costs the same in a word of 5 bytes as in a line of DNA of a million: rewriting the
        # whole chunk for each merge took minutes for text without spaces.
        ids, weight, prev, nxt = [], [], [], []
        for chunk, count in chunk_counts.items():
            start, data = len(ids), chunk.encode("utf-8")
            ids += data
            weight += [count] * len(data)
            prev += [-1] + list(range(start, start + len(data) - 1))
            nxt += list(range(start + 1, start + len(data))) + [-1]

        # pair -> how often it occurs (weighted), and pair -> the places of its left token.
        # A place is listed when the pair forms there and never taken out: an entry whose
        # tokens are no longer the pair's is out of date, and is skipped when the pair merges.
        pair_counts = Counter()
        places = defaultdict(list)

        changed = set()                              # the pairs whose counts a merge changed

        def tally(pair, p, change):
            """The pair at place p appears (change +1) or goes (-1)."""
            pair_counts[pair] += change * weight[p]
            if pair_counts[pair] == 0:
                del pair_counts[pair]
            elif change > 0:
                places[pair].append(p)
            changed.add(pair)

        for p, q in enumerate(nxt):
            if q != -1:
                tally((ids[p], ids[q]), p, +1)
        changed.clear()

        # The pairs in order, most frequent first and of equal counts the smallest ids first,
        # as a heap of (-count, pair): finding the best pair takes log(pairs) steps, where a
        # scan of all pairs for each merge took minutes for a few thousand merges. A pair whose
        # count changes is pushed again with its new count; an entry whose count is no longer
        # the pair's is out of date, and is thrown away when it comes to the top.
        queue = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(queue)

        # Each id's length in bytes. A pair that would make a token longer than a tokenizer
        # file may hold (MAX_TOKEN_BYTES: 2 MiB of one letter gives one) is never merged, as
        # the tokenizers library's trainer skips one past its max_token_length: a run of
        # a letter in a large text once trained into a tokenizer that its constructor refused.
        lengths = [1] * 256
        total = 256                     # the bytes of all tokens, as the constructor counts
        def too_long(pair):
            return lengths[pair[0]] + lengths[pair[1]] > cls.MAX_TOKEN_BYTES

        merges = []
        # A BPE of a few MB takes seconds to a minute, nearly all of it in the merges.
        merges_line = CountProgress("merge", n_merges) if progress else None
        try:
            for new_id in range(256, 256 + n_merges):
                while queue and (pair_counts.get(queue[0][1]) != -queue[0][0]
                                 or too_long(queue[0][1])):
                    heapq.heappop(queue)                 # out of date, or never to be merged
                if not queue:
                    raise BadInput(f"the text has only {counted(len(merges), 'merge')} to "
                                   f"learn; ask for a {name('vocab_size')} of at most "
                                   f"{new_id + len(special_tokens)}")
                best = heapq.heappop(queue)[1]
                merges.append(best)
                a, b = best
                lengths.append(lengths[a] + lengths[b])
                total += lengths[-1]
                if total > cls.MAX_VOCABULARY_BYTES:       # as the constructor would refuse it
                    raise BadInput(f"the text's merges make tokens of more than "
                                   f"{cls.MAX_VOCABULARY_BYTES:,} bytes in all, more than a "
                                   f"tokenizer may hold; ask for a {name('vocab_size')} of at "
                                   f"most {new_id + len(special_tokens)}")
                # Only the places holding the pair change, and the pairs beside them: (x, a) and
                # (b, y) around "a b" become (x, new) and (new, y). Left to right, as `merge` goes:
                # in "a a a" the first two join, and the third is left alone.
                for p in sorted(set(places.pop(best))):
                    q = nxt[p]
                    if ids[p] != a or q == -1 or ids[q] != b:
                        continue                 # out of date: a merge before took a token here
                    left, right = prev[p], nxt[q]
                    tally(best, p, -1)
                    if left != -1:
                        tally((ids[left], a), left, -1)
                        tally((ids[left], new_id), left, +1)
                    if right != -1:
                        tally((b, ids[right]), q, -1)
                        tally((new_id, ids[right]), p, +1)
                    ids[p], ids[q] = new_id, -1          # -1: no token is here any more
                    nxt[p] = right
                    if right != -1:
                        prev[right] = p
                for pair in changed:
                    if pair in pair_counts:
                        heapq.heappush(queue, (-pair_counts[pair], pair))
                changed.clear()
                if merges_line:
                    merges_line.update(len(merges))
        finally:
            if merges_line:
                merges_line.close()     # leaves the last count shown
        return cls(merges, special_tokens)

    @property
    def _own_size(self) -> int:
        return len(self._bytes) + len(self.special_tokens)

    def _encode_text(self, text, offset):
        ids = []
        for chunk in pre_split(text):
            if chunk not in self._cache:
                if len(self._cache) >= self.CACHE_LIMIT:
                    self._cache.clear()
                try:
                    self._cache[chunk] = self._encode_chunk(chunk)
                except UnicodeEncodeError as e:      # the text's first lone surrogate
                    bad = e.object[e.start]
                    raise lone_surrogate(bad, offset + text.index(bad)) from None
            ids.extend(self._cache[chunk])
        return ids

    def _encode_chunk(self, chunk):
        return apply_merges(chunk.encode("utf-8").translate(self._byte_ids), self._ranks)

    def _piece(self, i):
        if i < len(self._bytes):
            return self._bytes[i]
        return self.special_tokens[i - len(self._bytes)].encode("utf-8")

    @staticmethod
    def _join(pieces):
        # errors="replace": ids chosen freely (a model's samples) may cut a character's bytes
        # apart; the ids of a valid text always decode exactly.
        return b"".join(pieces).decode("utf-8", errors="replace")

    @staticmethod
    def _readable(piece):
        # A token may hold part of a character's bytes; show those as \xNN.
        return piece.decode("utf-8", errors="backslashreplace")

    def _fields(self):
        fields = {"merges": [list(pair) for pair in self.merges],
                  "special_tokens": self.special_tokens}
        # Written only where it is not what a file without it gives, as files were before.
        if self.lstrip_tokens != _mask_of(self.special_tokens):
            fields["lstrip"] = self.lstrip_tokens
        if self.rstrip_tokens:
            fields["rstrip"] = self.rstrip_tokens
        if self.byte_order != list(range(256)):       # only a GPT-2 vocabulary needs it
            fields["byte_order"] = self.byte_order
        return fields

    @classmethod
    def _from_fields(cls, data):
        merges = _list_of(data["merges"], "merges")
        if not all(isinstance(pair, list) for pair in merges):
            raise TypeError("'merges' must be a list of [id, id] pairs")
        # (a file saved before "lstrip" was written has none: its <mask> takes the space)
        lstrip = data.get("lstrip")
        return cls(merges, _list_of(data["special_tokens"], "special_tokens"),
                   _list_of(data.get("byte_order", list(range(256))), "byte_order"),
                   None if lstrip is None else _list_of(lstrip, "lstrip"),
                   _list_of(data.get("rstrip", []), "rstrip"))


def _mask_of(special_tokens):
    """[MASK] if it is one of `special_tokens`, else []: a BPE's default lstrip tokens."""
    return [MASK] if MASK in special_tokens else []


TOKENIZERS = {cls.kind: cls for cls in (CharTokenizer, BPETokenizer)}
