"""Reading the user's text files and writing ours, carefully.

A text file given on the command line may be missing, a directory, empty, binary, UTF-16 or
otherwise not UTF-8; each gets a ValueError of one line that says what is wrong and what to do,
before any work starts. Text is read in chunks, so a 100 MB corpus is never one Python string.

Everything we write goes through `atomic_write`: a temporary file in the same directory, then
a rename. A rename within a directory is atomic, so a crash or a kill at any moment leaves either
the old file or the new one, never half of one.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import glob
import io
import os
import re
import reprlib
import shlex
import stat
import sys
import tempfile
from typing import IO, Any, Iterator, Sequence, Union

from .schema import BadInput, Text

CHUNK_BYTES = 1 << 20          # 1 MiB at a time

# The encoding of the JSON files a user may open and save again (a tokenizer file, a checkpoint's
# config.json, the exercises' progress): UTF-8, a byte order mark at the start dropped, as
# iter_text drops it. Windows tools write one (PowerShell's -Encoding UTF8, Notepad's "UTF-8
# with BOM"), and json.load refuses the text that holds it.
EDITABLE_JSON = "utf-8-sig"

StrPath = Union[str, os.PathLike]   # a file or directory: a str or a pathlib.Path


def check_text_file(path: StrPath, what: str = "file") -> int:
    """ValueError unless `path` is a UTF-8 text file with something in it besides whitespace
    (spaces and blank lines alone are as empty a text to learn from as no bytes); returns its
    size in bytes.

    Reads the whole file once, in chunks, to find a bad byte before any training starts. Its
    reader reads it again, so a pipe (/dev/stdin, a shell's <(...)), whose text the first
    reading takes, is refused, before that."""
    check_not_dash(path, what, None)
    if os.path.exists(path) and not os.path.isdir(path) and not os.path.isfile(path):
        raise BadInput(f"{what} {path!r} is a pipe or a device, not a file, and a {what} is "
                       f"read more than once; save the text to a file and give that")
    blank = True
    for chunk in iter_text(path, what):
        blank = blank and chunk.isspace()
    if blank:
        raise BadInput(f"{what} {path!r} holds only whitespace (spaces, tabs and new lines); "
                       f"give a file with some text")
    return os.path.getsize(path)


def check_not_dash(path: StrPath, what: str, piped: str | None) -> None:
    """ValueError for a path "-" that names no file: many tools read it as the standard input,
    where here a path is always a file's name. The message says how to read a text piped in
    (`piped`, where the reader can), else to save it to a file."""
    if os.fspath(path) == "-" and not os.path.exists(path):
        raise BadInput(f"{what} '-' does not exist: '-' is read as a file's name, not as the "
                       f"standard input; to read a text piped in, "
                       f"{piped or 'save it to a file and give that'}")


def iter_text(path: StrPath, what: str = "file", chunk_bytes: int = CHUNK_BYTES,
              allow_empty: bool = False) -> Iterator[str]:
    """The text of a UTF-8 file as a sequence of strings of about `chunk_bytes` each.

    Read as Python's open() reads text: Windows line ends (\\r\\n, and a lone \\r) become \\n,
    so that a text saved on Windows trains the model that the same text saved elsewhere does,
    and a byte order mark at the start (which Windows tools write) is not part of the text.
    A character whose bytes straddle two chunks is kept whole (an incremental decoder), and so
    is a \\r\\n. ValueError, naming the byte offset, on a NUL byte (a binary file) or invalid
    UTF-8 (and its line: the conversion to make, or, after text that was UTF-8 beyond ASCII,
    the byte to mend); and on an empty file unless `allow_empty` (a file that holds settings,
    where none is a valid file of them: all the defaults)."""
    check_not_dash(path, what, "give /dev/stdin" if os.path.exists("/dev/stdin") else None)
    check_exists(path, what)
    if os.path.isdir(path):
        raise BadInput(f"{what} {path!r} is a directory; give a text file")
    # Empty is found by reading: a pipe (/dev/stdin) has no size to ask for beforehand.
    empty = BadInput(f"{what} {path!r} is empty; give a file with some text")
    decoder = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder("utf-8")(),
                                           translate=True)
    offset = 0
    lines_before = 0          # the new lines in the blocks before, to name a bad byte's line
    read_any = False
    beyond_ascii = False      # whether the text so far held characters beyond ASCII
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk_bytes)
            final = not block
            if offset == 0:
                check_not_utf16(block, path, what)
                if block.startswith(codecs.BOM_UTF8):
                    block = block[len(codecs.BOM_UTF8):]
                    offset = len(codecs.BOM_UTF8)
            nul = block.find(b"\0")
            if nul >= 0:
                if offset == 0:
                    check_not_utf16_unmarked(block, path, what)
                raise BadInput(f"{what} {path!r} holds a NUL byte at offset {offset + nul}: "
                               f"it looks binary; give a UTF-8 text file")
            # The decoder may hold the first bytes of a character cut by the previous block;
            # an error's e.start counts from them.
            held = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError as e:
                bad = e.start - held                 # in `block`; < 0: in the held bytes
                line = lines_before + block.count(b"\n", 0, max(0, bad)) + 1
                where = f"invalid byte at offset {max(0, offset + bad)}, on line {line}"
                if beyond_ascii or not block[:max(0, bad)].isascii():
                    # What came before it decoded as UTF-8, characters beyond ASCII included
                    # (which another encoding's would not, but by chance): a UTF-8 text with a
                    # damaged byte, which no conversion of the whole file mends.
                    raise BadInput(f"{what} {path!r} is not UTF-8 text ({where}), though the "
                                   f"text before it is: that byte looks damaged or stray; "
                                   f"remove or fix it on line {line}") from None
                raise BadInput(f"{what} {path!r} is not UTF-8 text ({where}); convert it to "
                               f"UTF-8, {single_byte_conversion(block)}") from None
            if text:
                read_any = True
                beyond_ascii = beyond_ascii or not text.isascii()
                yield text
            if final:
                if not read_any and not allow_empty:   # nothing, or a byte order mark alone
                    raise empty
                return
            offset += len(block)
            lines_before += block.count(b"\n")


def single_byte_conversion(block: bytes) -> str:
    """The iconv command, with its words before it, that converts a text of `block`'s bytes
    to UTF-8 when they are one byte a character, as a text that is not UTF-8 usually is. It is
    Latin-1's, but where a byte 0x80 to 0x9F occurs and Windows-1252 gives each such byte a
    character: a text saved on Windows holds its curly quotes, dashes and euro signs there,
    which Latin-1 reads as invisible control characters that a model would then learn. The
    two agree on every other byte, so a Latin-1 text is converted by either.

    Not where the bytes above 127 come in runs, most of them three or more in a row: a
    Western European text has one here and there (café, Größe), but a Chinese, Japanese or
    Korean one has two or more a character and a Cyrillic or Greek one a byte a letter, whole
    words of them. Read as Latin-1 those convert without an error into nonsense that a model
    would learn; which encoding it is cannot be told from the bytes alone, so none is named.
    A no-break space (0xA0) ends a run, as the space it is in Latin-1 and Windows' own
    encodings: French quotes spaced with them («, a no-break space, À) or lines indented
    with them are Western still."""
    runs = re.findall(rb"[\x80-\x9f\xa1-\xff]+", block)
    if sum(len(run) for run in runs if len(run) >= 3) > sum(map(len, runs)) / 2:
        return ("its bytes above 127 come in runs, as in Chinese, Japanese, Korean or Cyrillic "
                "text, not Western European: find which encoding it is in (`uchardet FILE`, or "
                "what saved it), e.g. for Shift-JIS: iconv -f shift_jis -t utf-8")
    if any(0x80 <= byte <= 0x9F for byte in block):
        try:
            block.decode("cp1252")          # fails on the five bytes Windows-1252 leaves out
            return "e.g. from Windows-1252: iconv -f cp1252 -t utf-8"
        except UnicodeDecodeError:
            pass
    return "e.g. from Latin-1: iconv -f latin1 -t utf-8"


# The byte order marks that start a UTF-32 or UTF-16 text (as Windows tools write it: Notepad's
# "Unicode", PowerShell's `>`), the longer first: UTF-32-LE's begins with UTF-16-LE's.
OTHER_ENCODINGS = [(codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                   (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")]


# What ends a directory's name in a path: / (on Windows, \ too).
SEPARATORS = tuple(filter(None, (os.sep, os.altsep)))


def check_exists(path: StrPath, what: str, missing: str | None = None) -> None:
    """ValueError unless `path` exists: `missing`, the line that says so (by default "{what}
    {path!r} does not exist; check the path"), or for a file's path with a separator at its
    end, "{what} " and separator_after_file's words; for a link to nothing, the line that
    names it a link and its target."""
    if os.path.exists(path):
        return
    link = dangling_link(path, what, "give the file's own path")
    if link:                        # there, as `ls` shows: "check the path" would not help
        raise BadInput(link)
    why = separator_after_file(path)
    if why:
        raise BadInput(f"{what} {why}")
    pattern = unexpanded_pattern(path)
    if pattern:
        raise BadInput(f"{what} {os.fspath(path)!r} does not exist: {pattern}")
    raise BadInput(missing or f"{what} {os.fspath(path)!r} does not exist; check the path")


def dangling_link(path: StrPath, what: str, instead: str) -> str | None:
    """The line for `path` where it is a symbolic link to nothing (or a loop of links), else
    None: "{what} 'PATH' is a link to 'TARGET', which does not exist (or is a loop of links);
    mend the link, or {instead}". `what` names the path as the command does ("corpus",
    "--out"; "" for none). The one wording of a dangling link, for a file read, a directory
    read, or a path to write: the link is there, as `ls` shows, where "does not exist" or
    "check the path" would send the user looking for a mistake in the name, and writing
    through it would make the folder it names, or replace the link."""
    if not os.path.islink(path) or os.path.exists(path):
        return None
    named = f"{what} {os.fspath(path)!r}" if what else repr(os.fspath(path))
    return f"{named} {link_to_nothing(path)}; mend the link, or {instead}"


def link_to_nothing(path: StrPath) -> str:
    """What the link at `path`, which names nothing, is, in dangling_link's words."""
    return f"is a link to {os.readlink(path)!r}, which does not exist (or is a loop of links)"


def unexpanded_pattern(path: StrPath) -> str | None:
    """Why `path` names no file, where it is a pattern that files match ("data/*.txt", which a
    shell expands only unquoted, and Hugging Face's data_files would read as all of them): what
    to do instead. None for any other path."""
    given = os.fspath(path)
    if glob.escape(given) == given or os.path.lexists(given):      # no *, ? or [ in it
        return None
    matches = [match for match in glob.glob(given) if os.path.isfile(match)]
    if not matches:
        return None
    return (f"it is a pattern, and a path here names one file, read as it is written; join "
            f"the {len(matches)} files it matches into one and give that")


def separator_after_file(path: StrPath) -> str | None:
    """Why `path` names nothing, where it is a file's path with a separator at its end
    ("plain.txt/", as a shell's completion ends a directory's name, or a habit): with it, the
    path names a directory, and there is none, where "does not exist" would send the user
    looking for a file that is there. None for any other path."""
    given = os.fspath(path)
    file = given.rstrip("".join(SEPARATORS))
    if file == given or not file or os.path.exists(given) or not os.path.isfile(file):
        return None
    end = given[len(file):]
    return (f"{given!r} ends in {end!r}, as a directory's path does, but {file!r} is a file; "
            f"drop the {end!r}")


def check_not_utf16(start: bytes, path: StrPath, what: str) -> None:
    """ValueError if the first bytes of a file are the mark of a UTF-16 or UTF-32 text, whose
    NUL bytes would otherwise make it look binary."""
    for mark, encoding in OTHER_ENCODINGS:
        if start.startswith(mark):
            raise BadInput(f"{what} {path!r} is {encoding} text, not UTF-8; convert it, e.g. "
                           f"iconv -f {encoding.lower()} -t utf-8")


def check_not_utf16_unmarked(start: bytes, path: StrPath, what: str) -> None:
    """ValueError if a file starts as UTF-16 text without a byte order mark does (Python's
    encoding "utf-16-le" writes none): a NUL byte after (little-endian) or before (big-endian)
    each of its ASCII characters, at least half of its first ones, and none elsewhere; the
    other bytes text's, not control characters. A run's tokens.bin, small ids in two bytes
    each, has the NUL bytes too, but its other bytes are ids below 32 as often as not: it is
    binary, which the caller says."""
    head = start[:64]
    for endian, nuls, others in (("le", head[1::2], head[0::2]), ("be", head[0::2], head[1::2])):
        if len(head) >= 8 and nuls.count(0) >= len(nuls) / 2 and 0 not in others \
                and all(byte >= 32 or chr(byte) in "\t\n\r" for byte in others):
            raise BadInput(f"{what} {path!r} looks like UTF-16 text without a byte order "
                           f"mark, not UTF-8; convert it, e.g. iconv -f utf-16{endian} "
                           f"-t utf-8")


class NotRegularFile(BadInput):
    """What open_regular raises for what is not a regular file: a ValueError, told apart from
    one that reading the file raises (json.load's)."""


def not_regular(path: StrPath) -> str | None:
    """What `path` (its links followed) is, in words ("a named pipe (FIFO)", "a link to
    /dev/zero, a device"), when it is not a regular file; None when it is one. OSError as
    os.stat's for a missing file."""
    kind = os.stat(path).st_mode
    if stat.S_ISREG(kind):
        return None
    what = ("a directory" if stat.S_ISDIR(kind) else
            "a named pipe (FIFO)" if stat.S_ISFIFO(kind) else
            "a device" if stat.S_ISCHR(kind) or stat.S_ISBLK(kind) else
            "a socket" if stat.S_ISSOCK(kind) else "an unusual entry")
    if os.path.islink(path):
        what = f"a link to {os.path.realpath(path)}, {what}"
    return what


def open_regular(path: StrPath, mode: str = "rb", pipe: bool = False,
                 **open_kwargs: Any) -> IO:
    """open(path, mode), to read a file, when `path` (its links followed) is a regular file:
    else NotRegularFile, one line naming it. A link to a device such as /dev/zero reads on
    without end (a reader fills the memory, a checksum never finishes), and a named pipe
    (FIFO) waits for a writer that never comes. With `pipe`, a pipe is read too: for a path
    the user named, read once, as a shell's <(...) gives one. OSError as open's for a missing
    file."""
    what = not_regular(path)
    if what is not None and not (pipe and stat.S_ISFIFO(os.stat(path).st_mode)):
        raise NotRegularFile(f"{path} is {what}, not a regular file; put the file itself there")
    return open(path, mode, **open_kwargs)


def read_text(path: StrPath, what: str = "file", allow_empty: bool = False) -> str:
    """The whole text of a small UTF-8 file (a prompt, a config), checked as iter_text does."""
    return "".join(iter_text(path, what, allow_empty=allow_empty))


def current_umask() -> int:
    """The process's umask: the permission bits that the files it makes leave out."""
    mask = os.umask(0)           # the only way to read it is to set it, then put it back
    os.umask(mask)
    return mask


# How many bytes of a file's name its temporary (`temporary_prefix`) repeats: with ".tmp-", a
# "-" and mkstemp's 8 random characters well under the 255 bytes a name may have (ext4, XFS,
# tmpfs), where a legal name of over 241 bytes repeated whole made saving fail with "file name
# too long".
NAME_KEPT = 200


def temporary_prefix(name: str) -> str:
    """How atomic_write's temporary names for the file `name` (a base name) start: `.tmp-`,
    the name (its first NAME_KEPT bytes, where it is longer), `-`."""
    while len(os.fsencode(name)) > NAME_KEPT:      # by characters: none cut in two
        name = name[:-1]
    return f".tmp-{name}-"


@contextlib.contextmanager
def atomic_write(path: StrPath, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """`with atomic_write(path) as f:` writes `path` all or nothing.

    The data goes to a temporary file beside `path`, is flushed to disk, and only then renamed
    over `path`. If the block raises (or the process dies), `path` is untouched and the
    temporary file is removed (or, after a kill, left as a stray `.tmp-*` file that is
    never read)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=temporary_prefix(os.path.basename(path)))
    except OSError as error:
        raise OSError(error.errno, error.strerror, path) from None
    try:
        os.chmod(tmp, 0o666 & ~current_umask())    # mkstemp makes it private; ours need not be
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(error, OSError) and error.errno and error.filename in (tmp, None):
            # The user knows the file they asked for, not our temporary name for it (a full
            # disk's error, raised by write, names no file at all).
            raise OSError(error.errno, error.strerror, path) from None
        raise


def check_out_file(path: StrPath, suffixes: Sequence[str] | None = None,
                   force: bool = True, reads: Sequence[StrPath] = (),
                   dash: str | None = None) -> None:
    """ValueError unless a file can be written at `path` (a command's --out), checked before
    any work so that a mistake costs no waiting: not a directory, nor a device or pipe that
    saving would replace (/dev/null), a suffix among `suffixes` (which name the format) if
    given, not an existing file unless `force`, never one of the files the command `reads`
    (force or not: the input would be lost), in a directory that exists and is writable.
    `dash` says what `--out -` does, for a command that takes it besides a file ("to print
    the table"): the error of a wrong suffix names it among the forms accepted. (The command
    itself handles its -: here `-` is refused as a file's name.)"""
    why = Text("a file's path").why(os.fspath(path))   # "" is no file: found only by saving
    if why:
        raise BadInput(f"--out {why}")
    if os.fspath(path) == "-":      # the standard output, to other tools: not a file named -
        raise BadInput("--out - would be a file named '-': this command writes a file, not "
                       "the standard output; give the file's name")
    if os.path.isdir(path):
        raise BadInput(f"--out {path!r} is a directory; give a file name")
    # A path that ends in a separator names a directory, one that does not exist (or is a
    # file): only saving found that, after the work, and said "not a directory".
    if os.fspath(path).endswith(SEPARATORS):
        raise BadInput(f"--out {path!r} ends in {os.fspath(path)[-1]!r}, as a directory's "
                       f"path does; give a file name")
    if suffixes and not str(path).lower().endswith(tuple(suffixes)):
        dash_too = f", or be - {dash}" if dash else ""
        raise BadInput(f"--out {path!r} should end in {' or '.join(suffixes)}{dash_too}: the "
                       f"suffix says the format")
    # A name that is a suffix alone (".png") is a hidden file with no suffix to Python's
    # os.path and pathlib, whose readings the writers take the format from: refused here,
    # before the model runs, not by a writer after it (or as our bug).
    if suffixes and os.path.basename(path).lower() in suffixes:
        raise BadInput(f"--out {path!r} has no name before its suffix; give the file a "
                       f"name, as in {os.path.join(os.path.dirname(path), 'out')}"
                       f"{os.path.basename(path)}")
    if os.path.exists(path) and any(os.path.exists(r) and os.path.samefile(path, r)
                                    for r in reads):
        raise BadInput(f"--out {path!r} is the file this command reads; give another "
                       f"file to save to")
    # Saving writes a new file and renames it over `path` (atomic_write): over /dev/null, or
    # a named pipe, that would put a plain file in place of the device or pipe (root may
    # rename in /dev), where `--out /dev/null --force` meant "throw it away".
    what = not_regular(path) if os.path.exists(path) else None
    if what is not None:
        raise BadInput(f"--out {path!r} is {what}, not a regular file, which saving would "
                       f"replace; give the path of a file")
    if os.path.exists(path) and not force:
        raise BadInput(f"--out {path!r} exists; pass --force to overwrite it")
    # Saving would put a plain file in the link's place, --force or not: the link is the
    # user's (a name they keep pointing elsewhere), and it is there, as `ls` shows.
    broken = dangling_link(path, "--out", "choose another --out")
    if broken:
        raise BadInput(broken)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise BadInput(f"cannot write --out {path!r}: {why_not_a_directory(directory)}; "
                       f"give a path in a directory that exists")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write --out {path!r}: directory {directory!r} is not "
                       f"writable; give a path in a directory you can write to")


def why_not_a_directory(directory: StrPath) -> str:
    """Why `directory`, which is not a directory, is not: it, or the first folder of its path
    that exists, is a file; or it does not exist."""
    there = first_existing(directory)
    if os.path.islink(there) and not os.path.exists(there):
        return f"{there!r} {link_to_nothing(there)}"
    if os.path.exists(there) and not os.path.isdir(there):
        return f"{there!r} is a file, not a directory"
    return f"directory {str(directory)!r} does not exist"


def broken_link(path: StrPath) -> str | None:
    """The line for `path` where it is a symbolic link to nothing, else None. A folder copied
    out of the Hugging Face hub's cache with `cp -r` holds such links: the cache keeps each
    file in its blobs folder, and a snapshot links to it by a relative path, which names
    nothing where the copy is; "it has no config.json" would be no help beside the file
    `ls` shows."""
    return dangling_link(path, "", "put the file itself there (a folder copied out of the "
                         "Hugging Face hub's cache with `cp -r` keeps its links into the "
                         "cache: copy it with `cp -rL`)")


def not_a_directory(path: StrPath, what: str, instead: str) -> str:
    """The line for `path`, which names no directory, that the option or word `what` names
    ("checkpoint 'x' does not exist; {instead}"): it does not exist, it is a link to nothing
    (dangling_link's line), it is a file, or a folder of its path is a file. The one wording
    of each command that takes a directory. (Ask unreadable_folder first: in a folder that
    may not be entered every path seems missing, and its line has advice of its own.)"""
    link = dangling_link(path, what, instead)
    if link:
        return link
    there = first_existing(path)
    if os.path.isdir(there):
        why = f"{os.fspath(path)!r} does not exist"
    elif there == os.path.abspath(path):
        why = f"{os.fspath(path)!r} is a file, not a directory"
    else:
        why = f"{os.fspath(path)!r}: {why_not_a_directory(path)}"
    return f"{what} {why}; {instead}"


def unexpanded_home(path: Any, shell: str | None = None) -> str | None:
    """Why `path` names no file, when it starts with a ~ that nothing expanded: read as it is,
    it would be a folder named ~ in the current one (unless one is there: a path like any
    other). None for any other path. `shell` is how a command line named it (its option,
    "--out", or "" for an argument): a shell expands a ~ only unquoted, at the start of a word,
    so not in --out=~/x. None for a path from a TOML file, which no shell reads: it is taken
    as written there, as on the command line and in config.json, and the message says what to
    write in its place; so does one for a command line on Windows, whose cmd expands neither a
    ~ nor $HOME."""
    if not isinstance(path, (str, os.PathLike)):
        return None
    path = os.fspath(path)
    if not path.startswith("~") or os.path.lexists(path):
        return None
    home = os.path.expanduser(path)
    if shell is not None and WINDOWS:
        # cmd knows no ~ and no $HOME (which would be a folder of that name): the path itself.
        return (f"cmd and PowerShell do not expand a ~ in a program's words; write "
                f"{shell_quoted(home)} in its place")
    if shell is not None:
        where = f": not after {shell}=" if shell else ""
        return (f"the shell did not expand its ~ (it does only unquoted, at the start of a "
                f"word{where}); write $HOME in its place")
    instead = f"{home!r}" if home != path else "the home directory's path"
    return f"a ~ in a file is not expanded (only a shell does that); write {instead} in its place"


def folder_of(path: StrPath) -> str:
    """The folder holding the file at `path`, as the path was given ("." for a file of the
    current one): what to give where a file's folder is asked for."""
    return os.path.dirname(os.fspath(path)) or "."


def path_from_here(path: StrPath) -> str:
    """`path` as relative to the current directory, the shorter to give back on a command line;
    absolute where it has no relative form: on Windows, a file on another drive than the
    current directory's (D:\\x.txt, from C:), for which os.path.relpath raises ValueError."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return os.path.abspath(path)


def unreadable_folder(path: StrPath) -> str | None:
    """Why `path` cannot be read, where the folder that holds it (or `path` itself, a
    directory) is one this process may not enter (chmod 000, another user's): in it every
    file seems missing (os.path.exists says False, not "permission denied"), and a message
    would say "does not exist" or "has no config.json" where the permission is what is wrong.
    None where that folder can be entered: its files are then read by name, whether or not
    it can be listed (a folder of mode 711)."""
    there = first_existing(path)
    folder = there if os.path.isdir(there) else os.path.dirname(there)
    if os.access(folder, os.X_OK):
        return None
    named = (os.fspath(path) if folder == os.path.abspath(path) else         # as given
             folder_of(path) if folder == os.path.abspath(folder_of(path)) else folder)
    return (f"{named!r} cannot be read: permission denied; check its permissions "
            f"(ls -ld {shlex.quote(named)})")


def first_existing(path: StrPath) -> str:
    """`path` made absolute, or the nearest folder above it that exists (the root at worst).
    A link to nothing is there too, as `ls` shows: it stands in the path, as a file would,
    where a folder must be made (mkdir says "File exists")."""
    there = os.path.abspath(path)
    while not os.path.lexists(there) and os.path.dirname(there) != there:
        there = os.path.dirname(there)
    return there


def remove_made_folders(folder: StrPath, existing: StrPath) -> None:
    """Remove `folder` and the folders above it, up to `existing` (first_existing's of it,
    taken before they were made), each while it is empty: what a failed write made for its
    files goes with them, and a folder that holds anything stays."""
    folder, existing = os.path.abspath(folder), os.path.abspath(existing)
    with contextlib.suppress(OSError):          # rmdir refuses a folder not empty
        while folder != existing:
            os.rmdir(folder)
            folder = os.path.dirname(folder)


# The program that the commands messages advise start with: `tinyformer`, the installed
# command, unless the command line runs under another name (`python cli.py`, from a clone),
# as it says with `program_named`: a command advised must run where the user typed the last.
_program = ["tinyformer"]


@contextlib.contextmanager
def program_named(name: str) -> Iterator[None]:
    """Within this block, the commands of `command_line` start with `name`, the program as the
    user ran it (`python cli.py`: its words as a shell splits them)."""
    global _program
    before, _program = _program, shlex.split(name)
    try:
        yield
    finally:
        _program = before


def command_line(*words: StrPath) -> str:
    """`tinyformer WORDS...` as this system's shell reads it, each word quoted where it must be
    (a path with spaces, a prompt: `shell_quoted`): the commands that messages advise, to be
    copied as they stand. The program is named as it was run (`program_named`)."""
    return " ".join(map(shell_quoted, [*_program, *words]))


def command_line_in(directory: StrPath, *words: StrPath) -> str:
    """command_line's command as typed in `directory`, where a message first says to `cd`: a
    program run by its path (`python cli.py`, from a clone) is named by its path from there."""
    program = [*_program]
    if len(program) > 1 and not os.path.isabs(program[-1]) and os.path.isfile(program[-1]):
        program[-1] = script_path(program[-1], start=directory)
    return " ".join(map(shell_quoted, [*program, *words]))


def script_path(path: StrPath, start: StrPath = os.curdir) -> str:
    """A script's `path` (cli.py) as a command typed in `start` names it: relative to `start`,
    with "/" between the folders, which Windows reads too and no shell takes for an escape;
    absolute where no relative path leads there (another drive, on Windows)."""
    try:
        found = os.path.relpath(os.path.abspath(path), os.path.abspath(start))
    except ValueError:
        found = os.path.abspath(path)
    return found.replace(os.sep, "/")


def shell_path(path: StrPath) -> str:
    """`path` as a shell reads it back, to be copied into a command: quoted where it must be
    (a space, a quote: `shell_quoted`), and "./" before a leading "-", which a command (cd,
    mkdir) would read as its options."""
    path = os.fspath(path)
    if path.startswith("-"):
        path = os.path.join(".", path)
    return shell_quoted(path)


# Whether this is Windows, whose shells (cmd, PowerShell) quote otherwise than the POSIX
# shells of Linux and macOS (bash, zsh) do: the commands that messages advise follow it.
WINDOWS = sys.platform == "win32"

# A word that no shell reads otherwise than as it stands (on Windows, a path's \ too).
_PLAIN_WORD = re.compile(r"[\w@+=:,./\\-]+", re.ASCII)


def shell_quoted(word: StrPath) -> str:
    """`word` as this system's shell reads it back as one word, to be copied into a command:
    quoted where it must be (a space, a quote). In a POSIX shell in single quotes
    (shlex.quote). On Windows in double quotes, the only ones cmd knows (it would pass '...'
    on, quotes and all, and split it at its spaces), which PowerShell reads too; inside them
    a program reads a quote written \\" and a backslash before one doubled, as Python's own
    command line does."""
    word = os.fspath(word)
    if not WINDOWS:
        return shlex.quote(word)
    if _PLAIN_WORD.fullmatch(word):
        return word
    escaped = re.sub(r'(\\*)"', r'\1\1\\"', word)       # each backslash before a quote doubled
    escaped = re.sub(r"(\\+)$", r"\1\1", escaped)         # and those before the closing one
    return f'"{escaped}"'


def describe_os_error(error: OSError, then: str | None = None) -> str:
    """One line for an OSError: the file it concerns and what went wrong, with what to do
    when there is something obvious; and `then`, what to do once that is done, where it is
    not to run the same command again ("continue with: tinyformer train --resume DIR")."""
    what = error.strerror or str(error) or type(error).__name__
    advice = {errno.ENOSPC: "free some disk space", errno.EACCES: "check the permissions",
              errno.EROFS: "choose another place"}.get(error.errno)
    if then is None and error.errno == errno.ENOSPC:
        then = "try again"
    steps = " and ".join(step for step in (advice, then) if step)
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{what[:1].lower()}{what[1:]}{'; ' + steps if steps else ''}"


SIZE_UNITS = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"]    # powers of 1000, as disks are sold


def size_said(n_bytes: float) -> str:
    """A size in bytes, as every message says one: three figures in the largest unit under it
    ("950 bytes", "3.2 KB", "27.9 GB", "6.05 TB"), never "6,048.8 GB" nor "0.0 MB"."""
    value, unit = float(n_bytes), 0
    # Rounded to three figures first: 999.7 KB is said as 1 MB, not as "1e+03 KB".
    while float(f"{value:.3g}") >= 1000 and unit < len(SIZE_UNITS) - 1:
        value, unit = value / 1000, unit + 1
    if unit == 0:
        return f"{n_bytes:,.0f} byte{'s' * (n_bytes != 1)}"
    # Past the largest unit, whole ones with commas ("12,000 EB"): no exponent.
    figures = f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"
    return f"{figures} {SIZE_UNITS[unit]}"


# A file's values, shown in an error cut short: a stranger's name or token may be megabytes long.
# Names of GPT-2's tensors ("transformer.h.11.attn.c_attn.weight") still show whole.
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlist = _SHORT.maxdict = 8


def version_problem(path: StrPath, what: str, version: Any, reads: int,
                    otherwise: str) -> str | None:
    """What is wrong with the "version" of a file tinyformer writes (`what`: "checkpoint
    format"), in one line that says what to do; None where it is `reads`, the version this
    tinyformer reads. A later version may mean other things by the same names: it is read by
    a newer tinyformer only. Any other value is no version tinyformer wrote: `otherwise` says
    what to do then (put back the file as it was written)."""
    if type(version) is int and version == reads:          # not True, which == 1
        return None
    newer = type(version) is int and version > reads
    advice = "a newer tinyformer wrote it, update this one to read it" if newer else otherwise
    return (f"{os.fspath(path)} is {what} version {shown(version)}; this tinyformer reads "
            f"version {reads}: {advice}")


SHOWN_CHARACTERS = 40         # of a long text quoted in a message, before its length


def shown(value: Any) -> str:
    """repr(value), or as much of it as an error message needs: a text longer than 80
    characters as its first 40 and its length ('12345...' (3,000 characters)), where a prompt
    of thousands was quoted whole; a list, a dict or a text inside one as reprlib cuts them."""
    if isinstance(value, str):
        if len(value) <= _SHORT.maxstring:  # whole: reprlib, counting the quotes, cut 79 or 80
            return repr(value)
        start = repr(value[:SHOWN_CHARACTERS])
        return f"{start[:-1]}...{start[-1]} ({len(value):,} characters)"
    return _SHORT.repr(value)
