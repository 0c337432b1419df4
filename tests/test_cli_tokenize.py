"""`tinyformer tokenize`: train, encode, decode, show, end to end; and every kind of bad input
ends in one line `Error: ...`, exit status 2, no traceback, and no file written."""

import contextlib
import dataclasses
import functools
import json
import os
import shlex
import stat
import subprocess
import sys
import tracemalloc

import pytest
from click.testing import CliRunner

from full_disk import files_limited_to
from tinyformer import tokenizers
from tinyformer.files import iter_text, single_byte_conversion
from tinyformer.pretrained import save_gpt2_tokenizer
from tinyformer.progress import CountProgress
from tinyformer.tokenizers import compression, load_tokenizer, split_shown
from tinyformer.train import Trainer
from tinyformer.train_config import TrainConfig
from tinyformer_cli import main

TEXT = ("The cat sat on the mat. The dog sat on the log; the cats and dogs sat there.\n"
        "Don't they've 12 345 naïve café 東京 😀 ok\n") * 20


def run(*args):
    return CliRunner().invoke(main, ["tokenize", *map(str, args)])


def train(corpus, tokenizer, out, *more):
    """`tinyformer train` of the smallest model, with this tokenizer (and `more` options)."""
    return CliRunner().invoke(main, [str(a) for a in (
        "train", "--corpus", corpus, "--tokenizer", tokenizer, *more, "--n-layer", 1,
        "--n-head", 1, "--d-model", 8, "--context", 8, "--batch-size", 2, "--eval-iters", 1,
        "--threads", 1, "--out", out)])


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def bpe(tmp_path, corpus):
    out = tmp_path / "bpe.json"
    result = run("train", corpus, "--vocab-size", 300, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def char(tmp_path, corpus):
    out = tmp_path / "char.json"
    result = run("train", corpus, "--kind", "char", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def peak_and_output(monkeypatch, tmp_path, *args):
    """The most memory (bytes) that Python objects took at once while `tinyformer tokenize
    ARGS` ran, and what it wrote: to a file, which CliRunner would hold in memory."""
    out_path = tmp_path / "out.txt"
    with open(out_path, "w", encoding="utf-8") as out:
        monkeypatch.setattr(sys, "stdout", out)
        tracemalloc.start()
        try:
            main(["tokenize", *map(str, args)], standalone_mode=False)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return peak, out_path.read_text(encoding="utf-8")


@pytest.mark.parametrize("command, size", [("encode", 300_000), ("show", 40_000)])
def test_encode_and_show_of_a_file_write_its_ids_as_they_go(tmp_path, monkeypatch, bpe,
                                                            command, size):
    # They held every id of the file in a list, and joined them into one string: 180 MB of
    # memory for a 4.4 MB text, 40 times it (24 times here).
    line = "The cat sat on the mat. The dog sat on the log; the cats and dogs sat there.\n"
    text = line * (size // len(line))
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    # Small pieces, read in small blocks, as a large file's are to their sizes.
    monkeypatch.setattr(tokenizers, "PIECE_CHARS", 1000)
    monkeypatch.setattr(tokenizers, "iter_text", functools.partial(iter_text, chunk_bytes=4096))
    options = ["--no-color"] if command == "show" else []
    peak, out = peak_and_output(monkeypatch, tmp_path, command, "--file", path, *options,
                                "--tokenizer", bpe)
    tok = load_tokenizer(bpe)
    ids = tok.encode(text)
    assert out.startswith(" ".join(map(str, ids)) + "\n" if command == "encode" else
                          split_shown(tok, ids) + "\n" + compression(text, ids) + "\n")
    assert peak < len(text) * 5            # a few pieces and blocks: 0.2 to 2 times it here


def assert_input_error(result, *words):
    """Exit status 2 and one line `Error: ...` on stderr, naming each of `words`. Only train's
    progress note ("Training ...") may come before it."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    *before, error = result.stderr.strip().splitlines()
    assert error.startswith("Error: ") and all(line.startswith("Training") for line in before)
    assert "Traceback" not in result.output
    for word in words:
        assert word in error, error


# -- train ------------------------------------------------------------------------------------

def test_train_bpe_saves_a_tokenizer_of_the_size_asked_and_reports_it(bpe):
    data = json.loads(bpe.read_text())
    assert data["type"] == "bpe"
    assert 256 + len(data["merges"]) + len(data["special_tokens"]) == 300
    assert data["special_tokens"] == ["<pad>", "<bos>", "<eos>", "<mask>"]


def test_train_prints_vocabulary_time_and_compression(tmp_path, corpus):
    result = run("train", corpus, "--vocab-size", 280, "--special", "<eos>",
                 "--out", tmp_path / "t.json")
    assert result.exit_code == 0, result.output
    assert "280 ids: 256 bytes + 23 merges + 1 special (<eos>)" in result.stdout
    assert "bytes per token" in result.stdout and " s, saved to " in result.stdout
    assert "Training" in result.stderr          # the progress note stays off stdout


def test_train_shows_the_merges_learned_on_stderr(tmp_path, corpus, monkeypatch):
    # A BPE of 2 MB with 1024 ids trained for seconds with no sign of life. Lines from the
    # first merge on here, not after a second; into a pipe, a plain line each tenth.
    monkeypatch.setattr(CountProgress, "AFTER", 0.0)
    result = run("train", corpus, "--vocab-size", 300, "--out", tmp_path / "t.json")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Training a 300-token BPE")
    merges = [line for line in lines[1:] if line.startswith("merge ")]
    assert len(merges) == 10 == len(lines) - 1
    assert merges[-1].startswith("merge 40/40 | ")      # 300 - 256 bytes - 4 special
    assert result.stdout.startswith("Trained a 300-token BPE")   # stdout keeps the report


def test_train_of_a_run_shows_the_merges_of_its_bpe(tmp_path, corpus, monkeypatch):
    monkeypatch.setattr(CountProgress, "AFTER", 0.0)
    result = train(corpus, "bpe", tmp_path / "run", "--vocab-size", 300, "--iters", 1)
    assert result.exit_code == 0, result.output
    assert "merge 44/44 | " in result.stderr        # 300 - 256 bytes: no special token


def test_train_of_the_bytes_alone_says_it_has_no_merges(tmp_path, corpus):
    result = run("train", corpus, "--vocab-size", 256, "--no-special", "--out", tmp_path / "t.json")
    assert result.exit_code == 0, result.output
    assert "  first merges (none)\n  longest      (none)\n" in result.stdout


def test_the_report_of_one_of_a_kind_says_it_in_the_singular(tmp_path):
    # "1 ids: 1 characters", "1 merges", "(1 bytes)", "(1 tokens)"
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "ab.txt").write_text("ab")
    char = run("train", tmp_path / "a.txt", "--kind", "char", "--no-special", "--out",
               tmp_path / "c.json")
    assert "Training a char tokenizer on" in char.stderr and "(1 byte)..." in char.stderr
    assert "vocabulary   1 id: 1 character\n" in char.stdout, char.output
    assert "on the input (1 token)\n" in char.stdout
    bpe = run("train", tmp_path / "ab.txt", "--vocab-size", 257, "--no-special", "--out",
              tmp_path / "b.json")
    assert "vocabulary   257 ids: 256 bytes + 1 merge\n" in bpe.stdout, bpe.output
    assert "on the input (1 token)\n" in bpe.stdout


def test_train_char_with_no_special_tokens(tmp_path, corpus):
    out = tmp_path / "c.json"
    result = run("train", corpus, "--kind", "char", "--no-special", "--out", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["type"] == "char" and data["special_tokens"] == []
    assert sorted(data["chars"]) == sorted(set(TEXT))
    assert "1.00 bytes per token" not in result.stdout    # multi-byte characters count


def test_train_force_overwrites(tmp_path, corpus, bpe):
    result = run("train", corpus, "--kind", "char", "--out", bpe, "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(bpe.read_text())["type"] == "char"


def test_a_full_disk_as_train_saves_is_one_line_naming_the_file_and_keeps_the_old_one(
        tmp_path, corpus, bpe):
    """The disk filling up between the check of --out and the save: the file named, exit 2,
    no temporary file left, and a tokenizer that --force was to replace left as it was."""
    before = bpe.read_bytes()
    for out, force in ((tmp_path / "new.json", []), (bpe, ["--force"])):
        with files_limited_to(100):
            result = run("train", corpus, "--vocab-size", 300, "--out", out, *force)
        assert_input_error(result, f"{out}: file too large")
        assert sorted(os.listdir(tmp_path)) == ["bpe.json", "corpus.txt"]
    assert bpe.read_bytes() == before


@pytest.mark.parametrize("record", ["manifest", "config"])
def test_train_will_not_write_over_a_runs_tokenizer_even_with_force(tmp_path, corpus, record):
    """The run's checkpoint was then refused as corrupted: its tokenizer was not the one its
    model was trained with. A run records its files in its manifest.json (one from before
    manifests, in its config.json)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "tokenizer.json").write_text("the run's")
    (run_dir / f"{record}.json").write_text(json.dumps(
        {"format": "tinyformer-run", "version": 1, "owns": ["config.json", "tokenizer.json"],
         "checkpoint": None} if record == "manifest" else
        {"format": "tinyformer-checkpoint", "files": {"tokenizer": "tokenizer.json"}}))
    result = run("train", corpus, "--kind", "char", "--out", run_dir / "tokenizer.json",
                 "--force")
    assert_input_error(result, f"--out {str(run_dir / 'tokenizer.json')!r} is a file of the "
                               f"run in {str(run_dir)!r}, whose checkpoint needs it as the run "
                               f"wrote it; write to another file")
    assert (run_dir / "tokenizer.json").read_text() == "the run's"
    # Beside it, a file of no run's is written as anywhere.
    assert run("train", corpus, "--kind", "char", "--out", run_dir / "mine.json").exit_code == 0


# -- encode, decode, show ---------------------------------------------------------------------

@contextlib.contextmanager
def through_a_pipe(path):
    """The path of a pipe that holds the file's bytes, as a shell's <(cat FILE) gives one:
    /dev/fd/N, its writer closed once they are in (a tokenizer file fits a pipe's buffer)."""
    reader, writer = os.pipe()
    try:
        os.write(writer, path.read_bytes())
        os.close(writer)
        yield f"/dev/fd/{reader}"
    finally:
        os.close(reader)


def test_a_tokenizer_may_be_given_as_a_pipe_read_once(tmp_path, monkeypatch, corpus, char):
    """`--config <(...)` and `--file <(...)` were read, `--tokenizer <(...)` refused as a
    named pipe: each reads its file once."""
    ids = run("encode", "hello", "--tokenizer", char).stdout
    with through_a_pipe(char) as pipe:
        assert run("encode", "hello", "--tokenizer", pipe).stdout == ids
    # train reads it, then checks the memory the run needs: refused there, for speed.
    monkeypatch.setattr("tinyformer.resources.available_memory", lambda: 1)
    with through_a_pipe(char) as pipe:
        assert_input_error(train(corpus, pipe, tmp_path / "run"), "training with these sizes")
    # A folder's tokenizer.json is found there, not named: a named pipe in its place, which
    # no one writes, is refused rather than waited on.
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "folder" / "tokenizer.json")
    assert_input_error(run("encode", "hello", "--tokenizer", tmp_path / "folder"))


def test_a_run_given_a_piped_tokenizer_records_its_own_copy(tmp_path, corpus, char):
    """The manifest and config.json recorded the pipe's name, /dev/fd/N, which names nothing
    once the run is over (or another file, in the process that resumes it)."""
    config = TrainConfig(corpus=str(corpus), n_layer=1, n_head=1, d_model=8, context=8,
                         batch_size=2, eval_iters=1, iters=1)
    with through_a_pipe(char) as pipe:
        trainer = Trainer.start(dataclasses.replace(config, tokenizer=pipe), tmp_path / "run",
                                log=lambda line: None)
    try:
        trainer.save()                           # config.json, as a checkpoint writes it
    finally:
        trainer.close()
    own_copy = tmp_path / "run" / "tokenizer.json"
    assert own_copy.read_bytes() == char.read_bytes()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["settings"]["tokenizer"] == str(own_copy)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["tokenizer"] == str(own_copy)


@pytest.mark.parametrize("which", ["bpe", "char"])
def test_train_encode_decode_round_trip(request, tmp_path, which):
    tok = request.getfixturevalue(which)
    text = "The cats sat on the log. naïve 東京 😀"
    result = run("encode", text, "--tokenizer", tok)
    assert result.exit_code == 0, result.output
    ids = result.stdout.split()
    assert ids and all(i.isdigit() for i in ids)
    result = run("decode", *ids, "--tokenizer", tok)
    assert result.exit_code == 0, result.output
    assert result.stdout == text + "\n"


def test_encode_a_file_gives_the_ids_of_its_text(tmp_path, corpus, bpe):
    by_file = run("encode", "--file", corpus, "--tokenizer", bpe)
    by_text = run("encode", TEXT, "--tokenizer", bpe)
    assert by_file.exit_code == 0 and by_file.stdout == by_text.stdout
    assert len(by_file.stdout.split()) < len(TEXT)          # BPE merged something


@pytest.mark.parametrize("command", ["encode", "show"])
@pytest.mark.parametrize("bad, where", [
    (b"q", "cannot encode 'q' at line 61, column 8: not in the tokenizer's"),
    (b"\xff", "not UTF-8 text (invalid byte at offset {}, on line 61)")])
def test_an_error_late_in_a_file_names_its_line_after_the_output_before_it(
        tmp_path, monkeypatch, char, command, bad, where):
    """A file is encoded as it is read: an error part way named only its position among the
    file's characters (or its byte offset), and came on the end of the partial output's line."""
    monkeypatch.setattr(tokenizers, "PIECE_CHARS", 1000)
    monkeypatch.setattr(tokenizers, "iter_text", functools.partial(iter_text, chunk_bytes=512))
    good = TEXT[:TEXT.index("\n") + 1] * 60            # 60 lines the tokenizer encodes
    path = tmp_path / "late.txt"
    path.write_bytes(good.encode() + b"The cat" + bad + b" sat\n")
    options = ["--no-color"] if command == "show" else []
    result = run(command, "--file", path, "--tokenizer", char, *options)
    assert_input_error(result, f"file {str(path)!r}", where.format(len(good.encode()) + 7))
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1
    first_ids = " ".join(map(str, load_tokenizer(char).encode(good[:1000])))
    assert command == "show" or result.stdout.startswith(first_ids)


@pytest.mark.parametrize("command", ["encode", "show"])
def test_a_character_a_char_tokenizer_lacks_is_said_with_what_to_do(tmp_path, char, command):
    # `generate --prompt` said what to do ("use only characters the model was trained on");
    # `tokenize` said only what was wrong, of a text and of a file.
    path = tmp_path / "q.txt"
    path.write_text("The quiet cat\n", encoding="utf-8")
    for given in (["The quiet cat"], ["--file", path]):
        result = run(command, *given, "--tokenizer", char)
        assert_input_error(result, "cannot encode 'q'", "; use only characters the tokenizer "
                           "was trained on, or train one on a text that has them: "
                           "`tinyformer tokenize train FILE --kind char --out chars.json`")
        assert result.stderr.count("trained on") == 1


def test_a_text_saved_on_windows_is_read_as_the_same_text(tmp_path, corpus):
    """Windows line ends and a byte order mark are read as Python's open() reads text (\\r\\n
    as \\n, the mark dropped): the same tokenizers, the same ids, no \\r or \\ufeff token."""
    windows = tmp_path / "windows.txt"
    windows.write_bytes(b"\xef\xbb\xbf" + TEXT.replace("\n", "\r\n").encode("utf-8"))
    for kind in ("char", "bpe"):
        unix_json, windows_json = tmp_path / f"unix-{kind}.json", tmp_path / f"win-{kind}.json"
        reports = []
        for path, out in ((corpus, unix_json), (windows, windows_json)):
            result = run("train", path, "--kind", kind, "--out", out,
                         *(["--vocab-size", 300] if kind == "bpe" else []))
            assert result.exit_code == 0, result.output
            reports.append(result.stdout.splitlines()[1:])       # after "Trained ... in 0.01 s"
        assert windows_json.read_text() == unix_json.read_text()
        assert reports[1] == reports[0]                          # the compression too
        by_windows = run("encode", "--file", windows, "--tokenizer", unix_json).stdout
        assert by_windows == run("encode", "--file", corpus, "--tokenizer", unix_json).stdout


def test_a_tokenizer_file_saved_again_on_windows_is_the_same_tokenizer(tmp_path, char):
    """A tokenizer file opened and saved by a Windows editor (a byte order mark and \\r\\n
    line ends, as PowerShell's -Encoding UTF8 writes) gives the same ids, as a file and as a
    folder's tokenizer.json: it was refused, the file sent to its folder and the folder to
    nowhere."""
    windows = tmp_path / "windows" / "tokenizer.json"
    windows.parent.mkdir()
    windows.write_bytes(b"\xef\xbb\xbf" + char.read_bytes().replace(b"\n", b"\r\n"))
    expected = run("encode", TEXT, "--tokenizer", char)
    for tokenizer in (windows, windows.parent):
        result = run("encode", TEXT, "--tokenizer", tokenizer)
        assert result.exit_code == 0, result.output
        assert result.stdout == expected.stdout


def test_a_line_end_cut_by_a_chunk_is_one_line_end(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes(b"ab\r\ncd\re\r")
    for chunk_bytes in (1, 2, 3, 4, 100):
        assert "".join(iter_text(path, chunk_bytes=chunk_bytes)) == "ab\ncd\ne\n"


def test_a_checkpoint_directory_gives_the_tokenizer_its_model_reads(tmp_path, corpus):
    """--tokenizer takes a run's directory, or its Hugging Face export, as generate's
    --checkpoint does: the same ids as the run's own tokenizer file."""
    run_dir, exported = tmp_path / "run", tmp_path / "hf"
    trained = train(corpus, "bpe", run_dir, "--vocab-size", 300, "--iters", 1)
    assert trained.exit_code == 0, trained.output
    assert CliRunner().invoke(main, ["export", "--checkpoint", str(run_dir),
                                     "--out", str(exported)]).exit_code == 0
    by_file = run("encode", TEXT, "--tokenizer", run_dir / "tokenizer.json")
    assert by_file.exit_code == 0, by_file.output
    for directory in (run_dir, exported):
        by_directory = run("encode", TEXT, "--tokenizer", directory)
        assert by_directory.exit_code == 0, by_directory.output
        assert by_directory.stdout == by_file.stdout
    # One of a checkpoint's files is no tokenizer: its folder is.
    for file in (run_dir / "config.json", exported / "config.json",
                 exported / "model.safetensors"):
        assert_input_error(run("encode", TEXT, "--tokenizer", file),
                           f"{file}: a checkpoint's {file.name}, read with the files beside "
                           f"it: give its folder, {str(file.parent)!r}")
    # A Hugging Face model's weights (they can be gigabytes) are not read, only its
    # tokenizer: it reads the same with them gone.
    (exported / "model.safetensors").unlink()
    again = run("encode", TEXT, "--tokenizer", exported)
    assert again.stdout == by_file.stdout, again.output


def test_a_run_stopped_before_its_first_checkpoint_gives_its_tokenizer(tmp_path, corpus,
                                                                        monkeypatch):
    """Its tokenizer.json is there from the start, the one its checkpoints will hold: the run
    directory gives it, as the file does. A run whose config.json went missing after a
    checkpoint is damaged, and is refused still."""
    from tinyformer.train import Trainer

    def ctrl_c(self, title, threads=1):                 # during the evaluation at step 0
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "evaluate", ctrl_c)
    run_dir = tmp_path / "run"
    stopped = train(corpus, "bpe", run_dir, "--vocab-size", 300, "--iters", 2)
    assert stopped.exit_code == 130 and not (run_dir / "config.json").exists(), stopped.output
    monkeypatch.undo()
    by_file = run("encode", TEXT, "--tokenizer", run_dir / "tokenizer.json")
    by_directory = run("encode", TEXT, "--tokenizer", run_dir)
    assert by_directory.exit_code == 0, by_directory.output
    assert by_directory.stdout == by_file.stdout
    trained = train(corpus, run_dir, tmp_path / "again", "--iters", 1)
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == \
        (run_dir / "tokenizer.json").read_bytes()
    (tmp_path / "again" / "config.json").unlink()
    assert_input_error(run("encode", TEXT, "--tokenizer", tmp_path / "again"),
                       "config.json is missing, though the run's manifest records a "
                       "checkpoint at step 1")


@pytest.mark.parametrize("which", ["bpe", "char"])
def test_a_tokenizer_file_trains_a_run_that_keeps_its_own_copy(request, tmp_path, corpus, which):
    """train --tokenizer FILE encodes with the file's tokenizer, of the file's size, and the
    run keeps its own copy: generate needs the file no more."""
    tok, run_dir = request.getfixturevalue(which), tmp_path / "run"
    trained = train(corpus, tok, run_dir, "--iters", 1)
    assert trained.exit_code == 0, trained.output
    by_file = run("encode", TEXT, "--tokenizer", tok)
    by_run = run("encode", TEXT, "--tokenizer", run_dir / "tokenizer.json")
    assert by_run.exit_code == 0 and by_run.stdout == by_file.stdout, by_run.output
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["model_config"]["vocab_size"] == load_tokenizer(tok).vocab_size
    os.remove(tok)
    generated = CliRunner().invoke(main, ["generate", "--checkpoint", str(run_dir), "--prompt",
                                          "The cat", "--max-new-tokens", "3"])
    assert generated.exit_code == 0, generated.output
    assert generated.stdout.startswith("The cat")
    # A run directory gives its own tokenizer to the next run, as to `tokenize --tokenizer`.
    again = train(corpus, run_dir, tmp_path / "again", "--iters", 1)
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == \
        (run_dir / "tokenizer.json").read_bytes()


def test_bpe_compresses_the_text_it_learned_from(bpe):
    ids = run("encode", "The cat sat on the mat.", "--tokenizer", bpe).stdout.split()
    assert len(ids) < len("The cat sat on the mat.")


def test_special_tokens_get_their_ids_only_when_allowed(bpe):
    plain = run("encode", "<eos>", "--tokenizer", bpe).stdout.split()
    special = run("encode", "<eos>", "--allow-special", "--tokenizer", bpe).stdout.split()
    assert special == ["298"] and len(plain) > 1      # <pad> <bos> <eos> <mask> end at 299


def test_show_names_as_many_special_tokens_as_it_shows_with_no_and_0_more():
    from types import SimpleNamespace
    from tinyformer_cli import SHOWN_SPECIALS, special_tokens_named
    specials = [f"<s{k}>" for k in range(SHOWN_SPECIALS)]
    named = special_tokens_named(SimpleNamespace(special_tokens=specials))
    assert named == "special tokens " + " ".join(specials)


def test_show_names_the_special_tokens_and_says_when_the_text_holds_one_as_plain_text(
        tmp_path, corpus, bpe):
    """`<eos>` split into |<|e|o|s|>| with no word of why, and --allow-special with a token the
    tokenizer lacks changed nothing, silently: show names the tokenizer's special tokens."""
    plain = run("show", "hi<eos>", "--tokenizer", bpe, "--no-color").stdout.splitlines()
    assert plain[-2].endswith(", special tokens <pad> <bos> <eos> <mask>")
    assert plain[-1] == ("special tokens read as plain text: <eos> (--allow-special gives each "
                         "its own id)")
    allowed = run("show", "hi<eos>", "--tokenizer", bpe, "--no-color", "--allow-special")
    assert "plain text" not in allowed.stdout
    many = [f"<s{k}>" for k in range(10)]
    result = run("train", corpus, "--vocab-size", 300, "--out", tmp_path / "many.json",
                 *[f"--special={s}" for s in many])
    assert result.exit_code == 0, result.output
    shown = run("show", "hi", "--tokenizer", tmp_path / "many.json", "--no-color").stdout
    assert shown.splitlines()[-1].endswith(" ".join(many[:8]) + " and 2 more")
    result = run("train", corpus, "--kind", "char", "--out", tmp_path / "none.json",
                 "--no-special")
    assert result.exit_code == 0, result.output
    shown = run("show", "cat", "--tokenizer", tmp_path / "none.json", "--allow-special",
                "--no-color").stdout
    assert shown.splitlines()[-1].endswith(", no special tokens")


def test_show_frames_the_tokens_and_counts_them(bpe):
    result = run("show", "the cat sat", "--tokenizer", bpe, "--ids", "--no-color")
    assert result.exit_code == 0, result.output
    pieces, ids, counts, source = result.stdout.splitlines()
    assert pieces.startswith("|") and pieces.endswith("|")
    assert "".join(pieces.split("|")) == "the cat sat"
    n = len(pieces.split("|")) - 2
    assert ids.startswith("ids: ") and len(ids.split()) - 1 == n
    assert counts.startswith(f"{n} tokens, 11 characters (11 bytes): ")
    assert "characters per token" in counts and "bpe, 300 ids" in source
    # Bytes are the text's in UTF-8, not its characters again.
    counts = run("show", "café 東京", "--tokenizer", bpe, "--no-color").stdout.splitlines()[1]
    assert " tokens, 7 characters (12 bytes): " in counts, counts


def test_paths_given_from_python_as_path_objects_are_read_as_their_strings(tmp_path):
    # main([... pathlib.Path(...)]), as a script calls the program: "--file must be a file's
    # path, got PosixPath(...)" was its answer.
    (tmp_path / "story.txt").write_text("the cat")
    result = CliRunner().invoke(main, ["tokenize", "show", "--file", tmp_path / "story.txt",
                                       "--no-color"])
    assert result.exit_code == 0 and result.stdout.startswith("|"), result.output


def test_show_escapes_newlines_and_colours_on_request(bpe, char):
    result = run("show", "q\tz\n", "--tokenizer", bpe, "--no-color")
    assert result.stdout.splitlines()[0] == r"|q|\t|z|\n|"
    coloured = run("show", "at", "--tokenizer", char, "--color")
    assert "\x1b[" in coloured.stdout and "|" not in coloured.stdout.splitlines()[0]


def test_no_color_frames_the_tokens_on_a_terminal_that_shows_colours(char, monkeypatch):
    import tinyformer_cli
    monkeypatch.setattr(tinyformer_cli, "colour_wanted", lambda: True)    # such a terminal
    assert "\x1b[" in run("show", "at", "--tokenizer", char).stdout       # its default
    plain = run("show", "at", "--tokenizer", char, "--no-color").stdout
    assert plain.splitlines()[0] == "|a|t|" and "\x1b[" not in plain


def test_show_frames_a_bar_of_the_text_apart_from_the_borders(bpe):
    result = run("show", "a<|x||", "--tokenizer", bpe, "--no-color")
    assert result.stdout.splitlines()[0] == r"|a|<|\||x|\||\||"


def read_frame(frame):
    r"""The tokens' bytes back from a frame, by the rules the help gives: a "|" alone is a
    border, a backslash starts an escape (\\ \| \n \r \t \xNN \uNNNN \UNNNNNNNN)."""
    pieces, piece, k = [], bytearray(), 1
    while k < len(frame):
        c = frame[k]
        if c == "|":
            pieces.append(bytes(piece))
            piece = bytearray()
        elif c == "\\":
            k += 1
            if frame[k] == "x":
                piece.append(int(frame[k + 1:k + 3], 16))
                k += 2
            elif frame[k] in "uU":                   # a whole character that prints as nothing
                digits = 4 if frame[k] == "u" else 8
                piece += chr(int(frame[k + 1:k + 1 + digits], 16)).encode()
                k += digits
            else:
                piece += {"n": "\n", "r": "\r", "t": "\t"}.get(frame[k], frame[k]).encode()
        else:
            piece += c.encode()
        k += 1
    return pieces


@pytest.mark.parametrize("text", ["C:\\new", "C:|new", "a\\|b", "x\\\\y|", "\\n and\n",
                                  "caf\u00e9 \u65e5\u672c", "<|endoftext|>\\",
                                  "\u0085\u0085 \u0085 \x85\u0085"])
def test_a_frame_reads_back_as_the_tokens_it_shows(bpe, text):
    # A backslash of the text once read as the start of an escape: C:\ then new as "|new".
    tok = load_tokenizer(bpe)
    frame = run("show", text, "--tokenizer", bpe, "--no-color").stdout.splitlines()[0]
    assert read_frame(frame) == [tok.id_to_bytes(i) for i in tok.encode(text)]


def shown_by_a_char_tokenizer_of(text, tmp_path):
    """The frame `tokenize show` writes of `text` with a char tokenizer trained on it."""
    (tmp_path / "text.txt").write_text(text, encoding="utf-8")
    assert run("train", tmp_path / "text.txt", "--kind", "char", "--out",
               tmp_path / "char.json").exit_code == 0
    return run("show", text, "--tokenizer", tmp_path / "char.json",
               "--no-color").stdout.splitlines()[0]

def test_show_writes_a_character_that_prints_as_nothing_by_its_code_point(tmp_path):
    """A zero-width joiner, a right-to-left override (which printed the rest of the line
    backwards) or a language tag showed as nothing: |a||b| looked like an empty token."""
    text = "a\u200db\u202ec\U000e0067"
    frame = shown_by_a_char_tokenizer_of(text, tmp_path)
    assert frame == r"|a|\u200d|b|\u202e|c|\U000e0067|"
    assert read_frame(frame) == [c.encode() for c in text]


def test_show_writes_a_combining_mark_that_starts_a_token_by_its_code_point(tmp_path):
    """An accent that starts a token (text in NFD) sat on the frame's "|": |e|́| looked like
    |e|| with an empty token. Within a token it stays on its letter."""
    text = "e\u0301\u0302\n\u0301 e\u0301"
    frame = shown_by_a_char_tokenizer_of(text, tmp_path)
    assert frame == r"|e|\u0301|\u0302|\n|\u0301| |e|\u0301|"
    assert read_frame(frame) == [c.encode() for c in text]
    # A BPE's token of two accents, after a letter's: the frame, and the report's quotes.
    bpe = tokenizers.BPETokenizer.train("e\u0301\u0302 " * 5, 259)
    assert split_shown(bpe, bpe.encode("e\u0301\u0302 ")) == r"|e|\u0301\u0302| |"
    assert tokenizers.shown_token(bpe, 258) == r'"\u0301\u0302"'
    # After a character shown as an escape (a control character's \x01), the accent would
    # sit on the escape's last letter: it is written by its code point too.
    bpe = tokenizers.BPETokenizer.train("\x01\u0301 " * 5, 259)
    assert split_shown(bpe, bpe.encode("\x01\u0301 ")) == r"|\x01\u0301| |"


def test_show_escapes_control_characters_that_a_terminal_would_act_on(bpe):
    """An escape sequence or a bell in the text is shown, not sent to the terminal."""
    result = run("show", "a\x1b[31mred\x07\x7f", "--tokenizer", bpe, "--no-color")
    assert result.stdout.splitlines()[0].startswith(r"|a|\x1b|[")
    assert r"\x07" in result.stdout and r"\x7f" in result.stdout
    assert not {"\x1b", "\x07", "\x7f"} & set(result.stdout)


def test_show_needs_no_tokenizer_file():
    result = run("show", "Hello, the sun has set.", "--no-color")
    assert result.exit_code == 0, result.output
    assert "| the|" in result.stdout and "| has|" in result.stdout   # the corpus's common words
    assert "|H|" in result.stdout                          # the corpus is lowercase
    assert "the default" in result.stdout


def test_the_default_tokenizer_of_show_has_the_special_tokens():
    result = run("show", "the kite<eos>", "--allow-special", "--no-color")
    assert result.exit_code == 0, result.output
    assert "| kite|<eos>|\n" in result.stdout        # one token, not pieces of text


def test_help_has_examples():
    for command in ([], ["train"], ["encode"], ["decode"], ["show"]):
        result = CliRunner().invoke(main, ["tokenize", *command, "--help"])
        assert result.exit_code == 0 and "Examples:" in result.output


# -- bad input --------------------------------------------------------------------------------

def binary_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"abc\0\x01\x02")
    return path


def latin1_file(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café".encode("latin-1"))
    return path


def utf16_unmarked_file(tmp_path, encoding="utf-16-le"):
    """As Python's "utf-16-le" (or "-be") writes text: two bytes a character, and no mark."""
    path = tmp_path / "utf16.txt"
    path.write_text("the cat 猫 sat\n", encoding=encoding)
    return path


def utf16_file(tmp_path):
    """As Windows writes "Unicode" text: a byte order mark, then two bytes a character."""
    path = tmp_path / "utf16.txt"
    path.write_text("the cat sat\n", encoding="utf-16")
    return path


def utf32_file(tmp_path):
    path = tmp_path / "utf32.txt"
    path.write_text("the cat sat\n", encoding="utf-32")
    return path


def empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    return path


def byte_order_mark_only(tmp_path):
    path = tmp_path / "mark.txt"
    path.write_bytes(b"\xef\xbb\xbf")
    return path


def test_a_bad_byte_is_named_by_its_offset_in_the_file(tmp_path):
    from tinyformer.files import iter_text
    path = tmp_path / "bad.txt"
    for content, chunk_bytes, problem in [
            (b"\xef\xbb\xbfab\xff", 1 << 20, "invalid byte at offset 5"),   # a mark counts
            (b"\xef\xbb\xbfab\0", 1 << 20, "NUL byte at offset 5"),
            ("abé".encode() + b"\xff", 3, "invalid byte at offset 4"),    # é cut by a chunk
            (b"abc\0", 3, "NUL byte at offset 3"),
            (b"a\nb\r\n\n\xff", 1 << 20, "invalid byte at offset 6, on line 4"),
            (b"a\nb\r\n\n\xff", 2, "invalid byte at offset 6, on line 4"),   # lines before
            ("a\né".encode() + b"\xff", 3, "invalid byte at offset 4, on line 2")]:
        path.write_bytes(content)
        with pytest.raises(ValueError, match=problem):
            list(iter_text(path, chunk_bytes=chunk_bytes))


@pytest.mark.parametrize("make_input, words", [
    (lambda tmp: tmp / "missing.txt", ["does not exist"]),
    (lambda tmp: f"{latin1_file(tmp)}/", ["ends in '/'", "is a file; drop the '/'"]),
    (lambda tmp: tmp, ["is a directory"]),
    (empty_file, ["is empty"]),
    (byte_order_mark_only, ["is empty"]),
    (binary_file, ["NUL byte"]),
    (lambda tmp: (tmp / "zeros.bin").write_bytes(bytes(64)) and tmp / "zeros.bin",
     ["NUL byte", "looks binary"]),                                   # not UTF-16: no text
    (latin1_file, ["not UTF-8"]),
    (utf16_file, ["is UTF-16 text", "iconv -f utf-16 -t utf-8"]),      # not "looks binary"
    (utf32_file, ["is UTF-32 text", "iconv -f utf-32 -t utf-8"]),
    (utf16_unmarked_file, ["looks like UTF-16 text", "iconv -f utf-16le -t utf-8"]),
    (lambda tmp: utf16_unmarked_file(tmp, "utf-16-be"), ["iconv -f utf-16be -t utf-8"]),
    (lambda tmp: (tmp / "hi.txt").write_text("hi!\n", encoding="utf-16-le") and tmp / "hi.txt",
     ["looks like UTF-16 text"]),                       # four characters are enough to tell
])
def test_train_refuses_bad_input_files(tmp_path, make_input, words):
    out = tmp_path / "out.json"
    assert_input_error(run("train", make_input(tmp_path), "--out", out), *words)
    assert not out.exists()


@pytest.mark.parametrize("text, encoding", [
    ("café", "latin-1"),
    # As Windows saves text (Notepad's "ANSI", Word's "Plain Text"): its quotes, dashes and
    # euro sign are bytes that Latin-1 reads as invisible control characters.
    ("“café” – 3 €", "cp1252"),
])
def test_the_conversion_that_a_non_utf8_error_suggests_converts_the_file(tmp_path, text,
                                                                          encoding):
    # iconv comes with the C library's tools (Debian's libc-bin), on every machine CI runs on.
    path = tmp_path / "saved.txt"
    path.write_bytes(text.encode(encoding))
    refused = run("train", path, "--out", tmp_path / "out.json")
    assert_input_error(refused, "is not UTF-8 text")
    command = shlex.split(refused.stderr.strip().split(": ")[-1]) + [str(path)]
    # In a UTF-8 locale, as most are: iconv reads from the locale's encoding without -f.
    converted = subprocess.run(command, capture_output=True,
                               env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert converted.returncode == 0 and converted.stdout.decode("utf-8") == text


@pytest.mark.parametrize("text, encoding", [
    ("吾輩は猫である。名前はまだ無い。\n", "shift_jis"),
    ("我们在学习注意力机制。\n", "gbk"),
    ("Привет, мир! Как дела?\n", "cp1251"),
])
def test_a_text_whose_letters_are_runs_of_bytes_is_not_told_to_convert_as_latin1(
        tmp_path, text, encoding):
    # Latin-1 and Windows-1252 read any bytes without an error: iconv would turn these into
    # nonsense that a model learns, without a word.
    path = tmp_path / "saved.txt"
    path.write_bytes(text.encode(encoding))
    refused = run("train", path, "--out", tmp_path / "out.json")
    assert_input_error(refused, "is not UTF-8 text", "come in runs", "find which encoding")
    assert "latin1" not in refused.stderr and "cp1252" not in refused.stderr


def test_a_western_european_text_with_two_letters_in_a_row_is_still_told_latin1(tmp_path):
    path = tmp_path / "saved.txt"
    path.write_bytes("Die Größe der Äpfel über alles.\n".encode("latin-1"))
    assert_input_error(run("train", path, "--out", tmp_path / "out.json"),
                       "iconv -f latin1 -t utf-8")


@pytest.mark.parametrize("args, words", [
    (["--vocab-size", "259"], ["--vocab-size 259", "at least 260"]),
    (["--vocab-size", "0"], ["too small"]),
    (["--vocab-size", "-5"], ["too small"]),
    (["--vocab-size", "100000"], ["merges to learn"]),     # the text has too few pairs
    (["--kind", "char", "--vocab-size", "300"], ["--vocab-size"]),
    (["--special", "<eos>", "--no-special"], ["--no-special"]),
    (["--special", "<eos>", "--special", ""], ["--special '' is an empty special token; "
                                                "leave it out (--no-special for no special "
                                                "tokens at all)"]),
])
def test_train_refuses_bad_options(tmp_path, corpus, args, words):
    out = tmp_path / "out.json"
    assert_input_error(run("train", corpus, *args, "--out", out), *words)
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_train_refuses_a_vocabulary_too_large_before_it_says_it_trains(tmp_path, corpus):
    # It printed "Training a 99999999999999999999-token BPE", then refused it below 2^62.
    out = tmp_path / "out.json"
    result = run("train", corpus, "--vocab-size", 99999999999999999999, "--out", out)
    assert_input_error(result, "--vocab-size must be at most 1,048,576, got "
                               "99,999,999,999,999,999,999: each id is a merge")
    assert "Training" not in result.output
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_train_will_not_overwrite_without_force(tmp_path, corpus):
    out = tmp_path / "out.json"
    out.write_text("precious")
    assert_input_error(run("train", corpus, "--out", out), "--force")
    assert out.read_text() == "precious"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX's")
@pytest.mark.parametrize("force", [[], ["--force"]])
def test_train_never_replaces_a_pipe_or_device_at_out(tmp_path, corpus, force):
    # Saving renames a new file over --out: `--out /dev/null --force` (as root) put a plain
    # file in place of /dev/null. A named pipe stands in for the device here.
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    result = run("train", corpus, "--vocab-size", 300, "--out", pipe, *force)
    assert_input_error(result, "is a named pipe (FIFO), not a regular file, which saving "
                               "would replace; give the path of a file")
    assert "Training" not in result.stderr
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt", "pipe.json"]


def test_an_out_files_suffix_is_read_in_any_case_as_the_writers_read_it(tmp_path):
    from tinyformer.files import check_out_file
    check_out_file(tmp_path / "Report.HTML", [".png", ".html"])      # Windows' own spelling
    with pytest.raises(ValueError, match="should end in .png or .html"):
        check_out_file(tmp_path / "report.htm", [".png", ".html"])


@pytest.mark.parametrize("out, words", [
    ("no-such-dir/out.json", ["does not exist"]),
    (".", ["is a directory"]),
])
def test_train_refuses_an_unwritable_out(tmp_path, corpus, out, words):
    assert_input_error(run("train", corpus, "--out", tmp_path / out), *words)
    assert not (tmp_path / "no-such-dir").exists()


def test_train_refuses_an_empty_out_before_training(corpus):
    # Found only by the save, after the training, as "no such file or directory".
    result = run("train", corpus, "--out", "")
    assert_input_error(result, "--out must be a file's path, got ''")
    assert "Training" not in result.stderr


def test_a_value_error_from_training_a_tokenizer_is_a_bug_of_ours_not_the_texts(
        tmp_path, corpus, monkeypatch):
    """The text is checked as it is read (exit 2); a ValueError from the training itself is
    ours (exit 1), where it was said as the user's bad input."""
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")
    monkeypatch.setattr(tokenizers.BPETokenizer, "train", broken)
    result = run("train", corpus, "--vocab-size", 300, "--out", tmp_path / "tok.json")
    assert result.exit_code == 1, result.output
    assert "internal error (ValueError: operands" in result.stderr
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    assert_input_error(run("train", tmp_path / "empty.txt", "--out", tmp_path / "tok.json"),
                       "is empty")


def test_a_value_error_from_reading_a_tokenizer_is_a_bug_of_ours_not_the_file(tmp_path,
                                                                              monkeypatch, char):
    """A tokenizer file that its reading refuses is the input's fault (exit 2); a ValueError
    from the reading itself is ours (exit 1), where it was said as the user's bad input."""
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")
    with monkeypatch.context() as deep_inside_the_reading:
        deep_inside_the_reading.setattr(tokenizers, "_read_json", broken)
        result = run("encode", "hi", "--tokenizer", char)
    assert result.exit_code == 1, result.output
    assert "internal error (ValueError: operands" in result.stderr
    (tmp_path / "damaged.json").write_text("{", encoding="utf-8")
    assert_input_error(run("encode", "hi", "--tokenizer", tmp_path / "damaged.json"),
                       "damaged.json")


@pytest.mark.parametrize("command", ["encode", "show"])
def test_a_value_error_from_encoding_is_a_bug_of_ours_not_the_text(monkeypatch, char, command):
    """A character the tokenizer cannot encode is the text's fault (exit 2); a ValueError from
    the encoding itself is ours (exit 1), where it was said as the user's bad input."""
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")
    with monkeypatch.context() as deep_inside_the_encoding:
        deep_inside_the_encoding.setattr(tokenizers.CharTokenizer, "_encode_at", broken)
        result = run(command, "hi", "--tokenizer", char)
    assert result.exit_code == 1, result.output
    assert "internal error (ValueError: operands" in result.stderr
    assert_input_error(run(command, "hi \u2603", "--tokenizer", char), "cannot encode")


@pytest.mark.parametrize("out", ["new-dir/", "corpus.txt/"])
def test_train_refuses_an_out_ending_in_a_separator_before_training(tmp_path, corpus, out):
    # A directory's path that names none (or a file): found only by the save, after the
    # training, as "not a directory", which said nothing of what to give.
    result = run("train", corpus, "--out", f"{tmp_path}/{out}")
    assert_input_error(result, "ends in '/', as a directory's path does; give a file name")
    assert "Training" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt"]


def test_train_never_saves_over_the_text_it_learns_from(corpus, tmp_path):
    # --force overwrites a file that is in the way, not the input: that would lose the text
    text = corpus.read_bytes()
    link = tmp_path / "same.txt"
    link.symlink_to(corpus)                      # the same file by another name
    for out in (corpus, link):
        result = run("train", corpus, "--out", out, "--force")
        assert_input_error(result, "is the file this command reads; give another file")
        assert corpus.read_bytes() == text


def test_train_refuses_a_read_only_directory(tmp_path, corpus, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:            # root may write anywhere: let the check see what a user's
        real_access = os.access      # permissions would say
        monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(locked)
                            else real_access(path, mode))
    try:
        assert_input_error(run("train", corpus, "--out", locked / "t.json"), "not writable")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("content, words", [
    (None, ["does not exist"]),
    ("", ["invalid JSON"]),
    ("{not json", ["invalid JSON"]),
    ('{"type": "char", "chars": 1' + "0" * 5000 + "}",          # more digits than Python reads
     ["not a tokenizer file: invalid JSON (Exceeds the limit (4300 digits)"]),
    ("[1, 2]", ["not a tokenizer file"]),
    ('{"type": []}', ["not a tokenizer file"]),
    ('{"type": "bpe"}', ["missing 'merges'"]),
    ('{"type": "bpe", "merges": [[1, 999]], "special_tokens": []}', ["merge 0"]),
    ('{"type": "char", "chars": ["ab"], "special_tokens": []}', ["single characters"]),
    ('{"type": "char", "chars": ["a"], "special_tokens": ["<eos\\udcff>"]}',
     ["special token '<eos\\udcff>' is not valid UTF-8"]),
])
def test_commands_refuse_a_bad_tokenizer_file(tmp_path, content, words):
    path = tmp_path / "tok.json"
    if content is not None:
        path.write_text(content)
    for args in (["encode", "hi"], ["decode", "1"], ["show", "hi"]):
        assert_input_error(run(*args, "--tokenizer", path), *words)


@pytest.mark.parametrize("name", ["tok.json", "tokenizer.json"])
def test_a_tokenizer_file_that_links_to_a_device_is_said_to_be_one(tmp_path, name):
    # Not "invalid JSON (... a device ...)", nor, under a Hugging Face file's name, "give its
    # folder": the file is no file to read at all.
    path = tmp_path / name
    path.symlink_to(os.devnull)
    for args in (["encode", "hi"], ["decode", "1"], ["show", "hi"]):
        result = run(*args, "--tokenizer", path)
        assert_input_error(result, f"{path} is a link to {os.devnull}, a device, not a regular "
                                   f"file; put the file itself there")
        assert "JSON" not in result.stderr and "folder" not in result.stderr


def test_a_tokenizer_files_path_ending_in_a_separator_is_said_to_name_a_file(char):
    # "does not exist" sent the user looking for a file that is there (a shell's completion
    # may add the /).
    for args in (["encode", "hi"], ["decode", "1"], ["show", "hi"]):
        assert_input_error(run(*args, "--tokenizer", f"{char}/"),
                           f"tokenizer '{char}/' ends in '/', as a directory's path does, but "
                           f"'{char}' is a file; drop the '/'")


def test_a_binary_tokenizer_file_or_a_directory_without_a_checkpoint_is_refused(tmp_path):
    assert_input_error(run("encode", "hi", "--tokenizer", binary_file(tmp_path)), "tokenizer")
    assert_input_error(run("encode", "hi", "--tokenizer", tmp_path), "holds no tokenizer")


def test_a_directory_of_gpt2_tokenizer_files_gives_their_tokenizer(tmp_path, corpus, bpe):
    """As save_gpt2_tokenizer writes them (no config.json: no model), for tokenize and train
    alike."""
    save_gpt2_tokenizer(load_tokenizer(bpe), tmp_path / "gpt2")
    by_file = run("encode", TEXT, "--allow-special", "--tokenizer", bpe)
    by_directory = run("encode", TEXT, "--allow-special", "--tokenizer", tmp_path / "gpt2")
    assert by_directory.exit_code == 0, by_directory.output
    assert by_directory.stdout == by_file.stdout
    trained = train(corpus, tmp_path / "gpt2", tmp_path / "run", "--iters", 1)
    assert trained.exit_code == 0, trained.output
    assert load_tokenizer(tmp_path / "run" / "tokenizer.json").merges == \
        load_tokenizer(bpe).merges


@pytest.mark.parametrize("name", ["vocab.json", "merges.txt", "tokenizer_config.json"])
def test_a_file_of_a_gpt2_tokenizer_folder_is_sent_to_its_folder(tmp_path, corpus, bpe, name):
    """As `hf download gpt2` leaves them: vocab.json is JSON but not ours, merges.txt is not
    JSON at all; either way the user is told to give the folder, which reads."""
    save_gpt2_tokenizer(load_tokenizer(bpe), tmp_path / "gpt2")
    told = f"{tmp_path / 'gpt2' / name}: a Hugging Face tokenizer's {name}, read with the " \
           f"files beside it: give its folder, {str(tmp_path / 'gpt2')!r}"
    assert_input_error(run("encode", "hi", "--tokenizer", tmp_path / "gpt2" / name), told)
    assert_input_error(train(corpus, tmp_path / "gpt2" / name, tmp_path / "run"), told)
    assert run("encode", "hi", "--tokenizer", tmp_path / "gpt2").exit_code == 0


@pytest.mark.parametrize("kept", ["vocab.json", "merges.txt"])
def test_half_of_gpt2s_tokenizer_files_names_the_missing_half(tmp_path, corpus, bpe, kept):
    save_gpt2_tokenizer(load_tokenizer(bpe), tmp_path / "gpt2")
    missing = {"vocab.json": "merges.txt", "merges.txt": "vocab.json"}[kept]
    (tmp_path / "gpt2" / missing).unlink()
    for result in (run("encode", "hi", "--tokenizer", tmp_path / "gpt2"),
                   train(corpus, tmp_path / "gpt2", tmp_path / "run")):
        assert_input_error(result, f"{missing}: cannot read it", "holds vocab.json and merges.txt")


def test_a_sentencepiece_tokenizer_model_is_refused_saying_what_to_fetch(tmp_path, corpus):
    """Llama 2's tokenizer.model (SentencePiece's), as a file or alone in its folder."""
    folder = tmp_path / "llama2"
    folder.mkdir()
    (folder / "tokenizer.model").write_bytes(b"\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02")
    format_ = "in SentencePiece's or tiktoken's format (a tokenizer.model), which tinyformer " \
              "does not read: fetch the model's tokenizer.json"
    assert_input_error(run("encode", "hi", "--tokenizer", folder / "tokenizer.model"),
                       f"{folder / 'tokenizer.model'} is {format_}",
                       f"give its folder, {str(folder)!r}")
    for result in (run("encode", "hi", "--tokenizer", folder),
                   train(corpus, folder, tmp_path / "run")):
        assert_input_error(result, f"{str(folder)!r} has its tokenizer {format_} into it")


def test_a_value_error_from_decoding_is_a_bug_of_ours_not_the_ids(monkeypatch, bpe):
    """An id outside the vocabulary is the input's fault (exit 2); a ValueError from the
    decoding itself is ours (exit 1), where it was said as the user's bad input."""
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")
    with monkeypatch.context() as deep_inside_the_decoding:
        deep_inside_the_decoding.setattr(tokenizers.BPETokenizer, "_join", broken)
        result = run("decode", "72", "--tokenizer", bpe)
    assert result.exit_code == 1, result.output
    assert "internal error (ValueError: operands" in result.stderr
    assert_input_error(run("decode", "300", "--tokenizer", bpe), "cannot decode id 300")

def test_char_tokenizer_names_the_character_it_cannot_encode(char):
    assert_input_error(run("encode", "cat §", "--tokenizer", char), "'§'", "position 4")
    assert_input_error(run("show", "§", "--tokenizer", char), "'§'")
    # A special token of the tokenizer, written in the text, is plain text unless allowed.
    assert_input_error(run("encode", "cat<eos>", "--tokenizer", char), "'<' at position 3",
                       "part of the special token '<eos>'", "--allow-special")


def test_decode_writes_the_whole_text_escape_sequences_included(bpe):
    # click.echo drops escape sequences where the output is no terminal: decoding into a file
    # or a pipe lost the "\x1b[31m" that the ids hold.
    text = "a \x1b[31mred\x1b[0m log\x07 line"
    ids = load_tokenizer(bpe).encode(text)
    result = run("decode", *ids, "--tokenizer", bpe)
    assert result.exit_code == 0, result.output
    assert result.stdout == text + "\n"


@pytest.mark.parametrize("command", ["encode", "show"])
def test_a_text_that_starts_with_a_dash_is_told_how_to_give_it(bpe, command):
    # click reads "-hello world" as the options -h and -e: "No such option '-e'" alone left
    # the user looking for an option of that name.
    assert_input_error(run(command, "-hello world", "--tokenizer", bpe),
                       "No such option '-e': '-hello world' starts with '-' and is read as "
                       "options; to give it as TEXT, put -- before it, after the options: "
                       f"`tinyformer tokenize {command} ... -- '-hello world'`")
    assert_input_error(run(command, "-- a", "--tokenizer", bpe),
                       "No such option '-- a': '-- a' starts with '-'",
                       f"`tinyformer tokenize {command} ... -- '-- a'`")
    # Given so, it is the text; a misspelt option is still one.
    result = run(command, "--tokenizer", bpe, "--", "-hello world")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("45 " if command == "encode" else "|-|")      # "-" is 45
    assert_input_error(run(command, "x", "--tokenzier", bpe), "Did you mean '--tokenizer'?")


@pytest.mark.parametrize("which", ["bpe", "char"])
def test_decode_leaves_out_the_special_tokens_when_asked(request, which):
    # As transformers' decode(ids, skip_special_tokens=True): a sample's <bos> and <eos> are
    # not its text. Without the flag they are written, as transformers' decode(ids) writes them.
    tokenizer = request.getfixturevalue(which)
    ids = load_tokenizer(tokenizer).encode("<bos>the cat<eos><pad>", allow_special=True)
    result = run("decode", *ids, "--skip-special", "--tokenizer", tokenizer)
    assert result.exit_code == 0, result.output
    assert result.stdout == "the cat\n"
    assert run("decode", *ids, "--tokenizer", tokenizer).stdout == "<bos>the cat<eos><pad>\n"
    # An id out of the vocabulary is refused all the same.
    assert_input_error(run("decode", "1", "300", "--skip-special", "--tokenizer", tokenizer),
                       "cannot decode id 300")


def test_decode_refuses_ids_out_of_range(bpe):
    assert_input_error(run("decode", "1", "300", "--tokenizer", bpe), "300", "0 to 299")
    # click reads -1 as an option: said so ("No such option '-1'" alone sent the user looking
    # for one), with how to give it as an id, which is refused as any id out of range.
    result = run("decode", "-1", "--tokenizer", bpe)
    assert_input_error(result, "No such option '-1': a number that starts with '-' is read as "
                               "an option; to give it as an argument, put -- before it, after "
                               "the options: `tinyformer tokenize decode ... -- -1`")
    assert_input_error(run("decode", "--tokenizer", bpe, "--", "-1"),
                       "cannot decode id -1: the vocabulary has ids 0 to 299")
    # click names '-1' of -15 (a short option's first character): the advice gives -15.
    result = run("decode", "5", "-15", "--tokenizer", bpe)
    assert_input_error(result, "No such option '-15'", "`tinyformer tokenize decode ... -- -15`")
    assert_input_error(run("encode", "-1.5", "--tokenizer", bpe), "`tinyformer tokenize encode "
                       "... -- -1.5`")
    # After --, -15 is an id already: the unknown option -1x before it gets no advice to
    # put -15 after a --.
    assert_input_error(run("decode", "-1x", "--tokenizer", bpe, "--", "-15"),
                       "Error: No such option '-1'. (see ")
    result = run("decode", "x", "--tokenizer", bpe)
    assert result.exit_code == 2 and "not a valid integer" in result.output
    result = run("decode", "--tokenizer", bpe)            # no ids: not an empty line
    assert_input_error(result, "give IDS or --file PATH (one of them)")
    assert_input_error(run("decode", "--file", "missing.txt", "--tokenizer", bpe),
                       "does not exist")


@pytest.mark.parametrize("args, words", [
    ([], ["TEXT or --file"]),
    (["hi", "--file", "x.txt"], ["TEXT or --file"]),
    (["--file", "missing.txt"], ["does not exist"]),
    (["\udcff"], ["not valid UTF-8"]),      # a command line's undecodable byte
])
def test_encode_refuses_bad_text(bpe, args, words):
    assert_input_error(run("encode", *args, "--tokenizer", bpe), *words)


@pytest.mark.parametrize("command", ["encode", "show"])
def test_utf8_text_under_an_ascii_locale_is_read_as_utf8(bpe, command):
    """Under LC_ALL=C, Python's UTF-8 mode off, a command line's bytes above 127 arrive as
    lone surrogates: 'héllo' arrives as below, and was refused as not UTF-8."""
    result = run(command, "h\udcc3\udca9llo", "--tokenizer", bpe)
    assert result.exit_code == 0, result.output
    assert result.output == run(command, "héllo", "--tokenizer", bpe).output


def test_text_an_output_encoding_lacks_is_written_escaped(bpe):
    """A terminal in latin-1 (or, on Windows, output sent to a file in cp1252) cannot encode
    東; the command printed nothing and ended in an internal error, as a training run did at
    its first sample."""
    cli = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cli.py")
    shown = subprocess.run([sys.executable, cli, "tokenize", "show", "café 東京", "--tokenizer",
                            bpe], capture_output=True, env={**os.environ,
                                                            "PYTHONIOENCODING": "latin-1"})
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode("latin-1")
    assert "é" in text and "|\\u4eac|" in text


def test_a_file_name_printed_under_an_ascii_locale_names_the_file(tmp_path):
    """Under LC_ALL=C, Python's UTF-8 mode off, a path's bytes above 127 are lone surrogates,
    which click's writer printed as "??": `f=$(tinyformer graph ...)` named no file."""
    cli = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cli.py")
    folder = tmp_path / "ünï"
    folder.mkdir()
    out = os.fsencode(folder / "g.dot")
    drawn = subprocess.run([sys.executable, cli, "graph", "--example", "mlp", "--out", out],
                           capture_output=True, env={**os.environ, "LC_ALL": "C",
                                                     "PYTHONUTF8": "0",
                                                     "PYTHONCOERCECLOCALE": "0"})
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stdout == out + b"\n"
    assert os.path.isfile(out)


@pytest.fixture
def piped():
    """A pipe holding a text, by the name a shell gives one (/dev/stdin, <(...)): a file that
    has no size and can be read once."""
    if not os.path.isdir("/dev/fd"):
        pytest.skip("no /dev/fd (Windows)")
    ends = []
    def pipe_of(text):
        read_end, write_end = os.pipe()
        os.write(write_end, text.encode("utf-8"))
        os.close(write_end)
        ends.append(read_end)
        return f"/dev/fd/{read_end}"
    yield pipe_of
    for end in ends:
        os.close(end)


def test_a_text_piped_in_is_read_as_a_file_is(tmp_path, corpus, bpe, piped):
    # `echo TEXT | tinyformer tokenize encode --file /dev/stdin`: the pipe's size, 0, was
    # taken for an empty file. A run's corpus, read twice, is refused in one line.
    encoded = run("encode", "--file", piped("the cat"), "--tokenizer", bpe)
    assert encoded.exit_code == 0, encoded.output
    assert encoded.stdout.split() == [str(i) for i in load_tokenizer(bpe).encode("the cat")]
    trained = run("train", piped(TEXT), "--vocab-size", 300, "--out", tmp_path / "piped.json")
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "piped.json").read_bytes() == bpe.read_bytes()
    assert f"({len(TEXT.encode()):,} bytes)..." in trained.stderr     # not (0 bytes)
    empty = run("encode", "--file", piped(""), "--tokenizer", bpe)     # no ids, as of ""
    assert empty.exit_code == 0 and empty.stdout == "\n", empty.output
    refused = train(piped(TEXT), "char", tmp_path / "run")
    assert refused.exit_code == 2 and "is a pipe or a device, not a file" in refused.stderr
    assert not (tmp_path / "run").exists()


def test_a_dash_for_the_standard_input_says_how_to_read_a_text_piped_in(tmp_path, bpe):
    # "-" is a file's name here, not the standard input as many tools read it: it was said
    # not to exist, "check the path", which told a user of those tools nothing.
    piped_in = "'-' is read as a file's name, not as the standard input; to read a text piped in"
    for result in (run("encode", "--file", "-", "--tokenizer", bpe),
                   run("train", "-", "--out", tmp_path / "t.json")):
        assert_input_error(result, piped_in, "give /dev/stdin" if os.path.exists("/dev/stdin")
                           else "save it to a file")                # Windows has none
    # A run's corpus is read more than once, which a pipe cannot be.
    assert_input_error(train("-", "char", tmp_path / "run"), piped_in, "save it to a file")
    assert sorted(os.listdir(tmp_path)) == ["bpe.json", "corpus.txt"]


def test_a_file_named_dash_is_read_as_any_file_is_and_a_pattern_of_folders_is_no_files(
        tmp_path, monkeypatch):
    from tinyformer.files import read_text, unexpanded_pattern
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_text("hi\n")                # "-" is a file's name here
    assert read_text("-") == "hi\n"
    # "run*" matching folders alone names no files to join: "does not exist", not "join the 2"
    (tmp_path / "run1").mkdir()
    (tmp_path / "run2").mkdir()
    assert unexpanded_pattern("run*") is None


def test_encode_refuses_a_binary_file_and_reads_an_empty_one_as_an_empty_text(tmp_path, bpe):
    assert_input_error(run("encode", "--file", binary_file(tmp_path), "--tokenizer", bpe),
                       "NUL byte")
    # An empty text has no ids: an empty file (or one of a byte order mark) was refused as
    # "empty", where the same text given as TEXT printed its empty line of ids.
    for command in ("encode", "show"):
        given = run(command, "", "--tokenizer", bpe)
        assert given.exit_code == 0, given.output
        for path in (empty_file(tmp_path), byte_order_mark_only(tmp_path)):
            read = run(command, "--file", path, "--tokenizer", bpe)
            assert read.exit_code == 0, read.output
            assert read.stdout == given.stdout
    assert given.stdout.startswith("(no tokens)\n")


def test_decode_reads_ids_from_a_file_as_encode_writes_them(tmp_path, bpe):
    """A long list of ids hit the shell's limit on a command line ("argument list too
    long"): --file reads them, as encode --file reads a text, a chunk at a time."""
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    encoded = run("encode", "--file", tmp_path / "text.txt", "--tokenizer", bpe)
    (tmp_path / "ids.txt").write_text(encoded.stdout, encoding="utf-8")
    decoded = run("decode", "--file", tmp_path / "ids.txt", "--tokenizer", bpe)
    assert decoded.exit_code == 0, decoded.output
    assert decoded.stdout == TEXT + "\n"
    ids = load_tokenizer(bpe).encode("naïve café")
    (tmp_path / "lines.txt").write_text(" ".join(map(str, ids[:3])) + "\n\n  "
                                        + "\n".join(map(str, ids[3:])), encoding="utf-8")
    assert run("decode", "--file", tmp_path / "lines.txt", "--tokenizer", bpe).stdout == \
        "naïve café\n"
    assert run("decode", "--file", empty_file(tmp_path), "--tokenizer", bpe).stdout == "\n"
    (tmp_path / "bad.txt").write_text("72 101\n108 1O8\n", encoding="utf-8")
    assert_input_error(run("decode", "--file", tmp_path / "bad.txt", "--tokenizer", bpe),
                       f"file {str(tmp_path / 'bad.txt')!r}, line 2: '1O8' is no token id; "
                       f"give whole numbers separated by spaces")
    (tmp_path / "out.txt").write_text("72 300", encoding="utf-8")
    assert_input_error(run("decode", "--file", tmp_path / "out.txt", "--tokenizer", bpe),
                       "cannot decode id 300: the vocabulary has ids 0 to 299")
    # A whole number too large for an id is one still: it was told to be a whole number.
    (tmp_path / "huge.txt").write_text("72\n1 99999999999999999999", encoding="utf-8")
    assert_input_error(run("decode", "--file", tmp_path / "huge.txt", "--tokenizer", bpe),
                       f"file {str(tmp_path / 'huge.txt')!r}, line 2: cannot decode id "
                       f"99999999999999999999: it is outside every vocabulary's ids")
    for both_or_neither in (["72", "--file", tmp_path / "ids.txt"], []):
        assert_input_error(run("decode", *both_or_neither, "--tokenizer", bpe),
                           "give IDS or --file PATH (one of them)")


def test_a_file_of_ids_is_read_whole_across_its_chunks(tmp_path, monkeypatch):
    """An id cut by a chunk's end is read whole, and a bad word's line is counted over the
    chunks before it."""
    path = tmp_path / "ids.txt"
    path.write_text("12 345 6\n78 9\n1 x", encoding="utf-8")
    monkeypatch.setattr(tokenizers, "iter_text", functools.partial(iter_text, chunk_bytes=2))
    with pytest.raises(ValueError, match="line 3: 'x' is no token id"):
        tokenizers.ids_in_file(path)
    path.write_text("12 345 6\n78 9\n1 ", encoding="utf-8")
    assert tokenizers.ids_in_file(path).tolist() == [12, 345, 6, 78, 9, 1]


def test_the_largest_vocabulary_a_refusal_names_is_one_that_trains(tmp_path):
    # One merge shortens many words: a count of the words' pairs promised more merges than
    # training finds, and the size it advised was refused in turn.
    (tmp_path / "a.txt").write_text(" the cat the mat the hat " * 30)
    result = run("train", tmp_path / "a.txt", "--vocab-size", 1_000_000, "--out",
                 tmp_path / "t.json")
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "ask for a --vocab-size of at most" in line and "vocab_size" not in line
    largest = line.rsplit(" ", 1)[-1]
    result = run("train", tmp_path / "a.txt", "--vocab-size", largest, "--out",
                 tmp_path / "t.json")
    assert result.exit_code == 0, result.output
    assert f"vocabulary   {largest} ids" in result.output


def test_a_vocabulary_the_text_runs_out_of_merges_for_names_the_option(tmp_path):
    (tmp_path / "a.txt").write_text("aaaa aaaa")     # 3 merges: aa, aaaa, then " aaaa"
    result = run("train", tmp_path / "a.txt", "--vocab-size", 256 + 4 + 5, "--out",
                 tmp_path / "t.json")
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "only 3 merges to learn; ask for a --vocab-size of at most 263" in line, line


def test_a_whole_c1_control_character_reads_apart_from_a_cut_byte(tmp_path):
    # U+0085 is the bytes c2 85: merged, it showed as \x85, as the byte 85 cut from it does.
    from tinyformer.tokenizers import BPETokenizer, split_shown
    tok = BPETokenizer.train("\u0085\u0085\u0085 \u0085 " * 20, 258)
    ids = tok.encode("a\u0085b") + [0x85]               # the character, then a lone byte
    assert any(tok.id_to_bytes(i) == "\u0085".encode() for i in ids)
    assert read_frame(split_shown(tok, ids)) == [tok.id_to_bytes(i) for i in ids]


@pytest.mark.parametrize("text", [
    "Die Größe der Äpfel über alles; Müßiggang ist süß.\n",
    "Não há ações possíveis; põe o pão à disposição.\n",
    "¿Qué pasó? ¡Ésta es la canción del niño!\n",
    "Þjóðhátíðardagurinn er í júní; Ægir og Þórður fæddust á Íslandi.\n",
    # No-break spaces run beside the letters and quotes they keep together: French puts one
    # inside « » and before ? ! : ;, and text copied from a web page is indented with them.
    "«\xa0À la carte\xa0»\n",
    "Il répondit\xa0: «\xa0Allé\xa0»\n",
    "\xa0\xa0\xa0\xa0It was a dark and stormy night.\n\xa0\xa0\xa0\xa0She ordered a café.\n",
])
def test_western_european_texts_are_told_to_convert_as_latin1(text):
    assert single_byte_conversion(text.encode("latin-1")).endswith(
        "iconv -f latin1 -t utf-8")


@pytest.mark.parametrize("before", ["“Quoted” — text, déjà vu.\n" * 3, "你好\n"])
def test_a_utf8_text_with_one_stray_byte_is_told_to_mend_that_byte_not_to_convert(tmp_path,
                                                                                  before):
    # Converting the whole file from another encoding would garble every character before it.
    path = tmp_path / "saved.txt"
    path.write_bytes(before.encode("utf-8") + b"a stray \xff byte\n")
    refused = run("train", path, "--out", tmp_path / "out.json")
    assert_input_error(refused, "is not UTF-8 text", "though the text before it is",
                       f"remove or fix it on line {before.count(chr(10)) + 1}")
    assert "iconv" not in refused.stderr


def test_a_stray_byte_after_utf8_in_an_earlier_block_is_told_to_be_mended(tmp_path):
    # The blocks are read one after another: the characters beyond ASCII may all lie in one
    # before the block that holds the stray byte.
    from tinyformer.files import iter_text
    path = tmp_path / "saved.txt"
    path.write_bytes("déjà vu\n".encode("utf-8") + b"plain ascii text, then \xff here\n")
    with pytest.raises(ValueError, match="though the text before it is: that byte looks "
                                         "damaged or stray; remove or fix it on line 2"):
        list(iter_text(path, chunk_bytes=16))
