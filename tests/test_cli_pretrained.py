"""The GPT-2 format on the command line: `tinyformer generate` reads a Hugging Face GPT-2
directory, and `tinyformer export` writes one that transformers loads (or a Llama or a Qwen3,
for a run with the modern block). Everything is built here (a random GPT-2 from transformers,
tiny runs of our own); nothing is downloaded."""

import json
import os
import re
import shutil
import threading

import numpy as np
import pytest
import torch
import transformers
from test_cli_train import TINY, assert_input_error, snapshot, tinyformer

from tinyformer.checkpoint import check_export_dir, load_model
from tinyformer.gpt import GPT
from tinyformer.pretrained import save_gpt2_tokenizer
from tinyformer.safetensors import load_file, save_file
from tinyformer.rundir import hub_snapshots
from tinyformer.tokenizers import BPETokenizer

EOT = "<|endoftext|>"
TEXT = ("the cat sat on the mat. the dog sat on the log. " * 20 + EOT) * 3


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A random GPT-2 saved by transformers, with a GPT-2 tokenizer of ours beside it."""
    directory = tmp_path_factory.mktemp("gpt2")
    tokenizer = BPETokenizer.train(TEXT, 270, special_tokens=[EOT])
    eot = tokenizer.token_to_id(EOT)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=32,
                                     n_layer=2, n_head=2, bos_token_id=eot, eos_token_id=eot)
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(directory)
    save_gpt2_tokenizer(tokenizer, directory)
    return directory, model, tokenizer


def test_generate_reads_a_gpt2_directory_and_continues_as_transformers_does(gpt2_dir):
    directory, model, tokenizer = gpt2_dir
    prompt = "the dog sat"
    result = tinyformer("generate", "--checkpoint", directory, "--prompt", prompt,
                        "--temperature", 0, "--max-new-tokens", 12)
    assert result.exit_code == 0, result.output
    ids = tokenizer.encode(prompt)
    with torch.no_grad():
        theirs = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids)),
                                do_sample=False, max_new_tokens=12)[0, len(ids):].tolist()
    # transformers stops at <|endoftext|> and keeps it; we stop there and do not print it.
    theirs = [i for i in theirs if i != tokenizer.token_to_id(EOT)]
    assert result.output == prompt + tokenizer.decode(theirs) + "\n"


def test_a_tokenizer_saved_by_transformers_5_works_too(gpt2_dir, tmp_path):
    directory, model, tokenizer = gpt2_dir
    model.save_pretrained(tmp_path)
    transformers.AutoTokenizer.from_pretrained(directory).save_pretrained(tmp_path)
    assert not (tmp_path / "vocab.json").exists()              # tokenizer.json instead
    request = ["--prompt", "the cat", "--temperature", 0, "--max-new-tokens", 8]
    assert (tinyformer("generate", "--checkpoint", tmp_path, *request).output
            == tinyformer("generate", "--checkpoint", directory, *request).output)


def tokenizers_library_bpe(vocab_size, path):
    """A byte-level BPE of TEXT as the tokenizers library's trainer makes it (its special
    token first, id 0, where GPT-2's own files put it last), saved to `path`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    theirs = Tokenizer(models.BPE())
    theirs.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    theirs.decoder = decoders.ByteLevel()
    theirs.train_from_iterator([TEXT], trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    theirs.save(str(path))
    return theirs


def test_a_gpt2_directory_reads_its_tokenizer_json_in_any_layout(tmp_path):
    """As transformers' AutoTokenizer reads it: the tokenizers library's trainer puts the
    special tokens first (ids GPT-2's own files give the bytes), and that is read too."""
    theirs = tokenizers_library_bpe(280, tmp_path / "tokenizer.json")
    eot = theirs.token_to_id(EOT)
    assert eot == 0
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=theirs.get_vocab_size(), n_positions=64, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=eot, eos_token_id=eot)).eval()
    model.save_pretrained(tmp_path)
    prompt = "the dog sat"
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", prompt,
                        "--temperature", 0, "--max-new-tokens", 12)
    assert result.exit_code == 0, result.output
    ids = theirs.encode(prompt).ids
    with torch.no_grad():
        written = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids)),
                                 do_sample=False, max_new_tokens=12)[0, len(ids):].tolist()
    written = [i for i in written if i != eot]          # transformers keeps the end; we do not
    assert result.output == prompt + theirs.decode(written) + "\n"


def test_generate_without_a_prompt_starts_from_endoftext(gpt2_dir):
    directory, _, _ = gpt2_dir
    result = tinyformer("generate", "--checkpoint", directory, "--max-new-tokens", 5)
    assert result.exit_code == 0 and EOT not in result.output, result.output


def test_a_gpt2_directory_without_a_tokenizer_is_refused(gpt2_dir, tmp_path):
    directory, _, _ = gpt2_dir
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x")
    assert_input_error(result, "has a model but no tokenizer", "vocab.json")


def test_a_gpt2_directory_whose_weights_hold_nan_is_told_to_download_them_not_to_train(
        gpt2_dir, tmp_path):
    # No run of ours made these weights: "a lower --lr" would be no help.
    directory, _, _ = gpt2_dir
    shutil.copytree(directory, tmp_path, dirs_exist_ok=True)
    weights = load_file(tmp_path / "model.safetensors")
    weights["transformer.wpe.weight"][0, 0] = np.nan
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "the")
    assert_input_error(result, "NaN or infinite", "download it again from the model's page")
    assert "--lr" not in result.output


def test_a_gpt2_directory_with_our_tokenizer_file_or_a_tokenizer_model_is_told_what_to_do(
        gpt2_dir, tmp_path):
    directory, _, tokenizer = gpt2_dir
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    # Llama 2's kind of tokenizer, which tinyformer does not read
    (tmp_path / "tokenizer.model").write_bytes(b"\n\x05<unk>\x15\x00\x00\x00\x00")
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x")
    assert_input_error(result, "has its tokenizer in SentencePiece's or tiktoken's format",
                       "fetch the model's tokenizer.json into it")
    # A run's tokenizer file of ours, copied in as tokenizer.json: the tokenizers library's name
    tokenizer.save(tmp_path / "tokenizer.json")
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x")
    assert_input_error(result, f"{tmp_path / 'tokenizer.json'} is a tokenizer file of "
                               f"tinyformer's", "name it tinyformer-tokenizer.json")
    (tmp_path / "tokenizer.json").rename(tmp_path / "tinyformer-tokenizer.json")     # as told
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "the",
                        "--max-new-tokens", 2)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("kind", ["folder", "pipe", "link to a device"])
def test_a_gpt2_directory_whose_tokenizer_json_is_no_file_is_told_so(gpt2_dir, tmp_path, kind):
    # Not the advice for a Llama's or a Qwen3's missing tokenizer.json: a GPT-2's is there, but
    # no file (a pipe would be waited on forever, /dev/zero read without end).
    directory, _, _ = gpt2_dir
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    tokenizer_json = tmp_path / "tokenizer.json"
    {"folder": tokenizer_json.mkdir, "pipe": lambda: os.mkfifo(tokenizer_json),
     "link to a device": lambda: tokenizer_json.symlink_to(os.devnull)}[kind]()
    result = tinyformer("tokenize", "show", "--tokenizer", tmp_path, "x")
    assert_input_error(result, f"{tokenizer_json} is ", ", not a regular file")
    assert "Llama" not in result.output


@pytest.mark.parametrize("name", ["vocab.json", "merges.txt", "tokenizer_config.json",
                                  "generation_config.json"])
def test_a_downloaded_folders_file_that_links_to_a_device_is_told_so(gpt2_dir, tmp_path, name):
    # A folder unpacked from a stranger's archive: a link to /dev/zero was read without end
    # until the memory ran out, a pipe waited forever; /dev/null stands for both here.
    directory, _, _ = gpt2_dir
    shutil.copytree(directory, tmp_path, dirs_exist_ok=True)
    (tmp_path / name).unlink()
    (tmp_path / name).symlink_to(os.devnull)
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x")
    assert_input_error(result, f"{tmp_path / name} is a link to {os.devnull}, a device, not a "
                               f"regular file")


@pytest.mark.parametrize("kind", ["folder", "link to a device"])
def test_a_model_safetensors_that_is_no_file_is_told_so_not_said_to_be_missing(gpt2_dir,
                                                                               tmp_path, kind):
    # "it needs config.json and model.safetensors" sent the user looking for a file that
    # `ls` shows there.
    directory, _, _ = gpt2_dir
    shutil.copytree(directory, tmp_path, dirs_exist_ok=True)
    weights = tmp_path / "model.safetensors"
    weights.unlink()
    {"folder": weights.mkdir, "link to a device": lambda: weights.symlink_to(os.devnull)}[kind]()
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x")
    assert_input_error(result, f"{weights} is ", ", not a regular file; put the file itself "
                                                 "there")


def test_a_begin_or_end_id_that_is_no_token_id_is_refused_as_transformers_refuses_it(
        gpt2_dir, tmp_path):
    # transformers refuses a string there (config.json's as it loads the model, a generation
    # config's as generate starts); ours read config.json's bos_token_id not at all, and
    # generated.
    directory, _, tokenizer = gpt2_dir
    shutil.copytree(directory, tmp_path, dirs_exist_ok=True)
    config = json.loads((directory / "config.json").read_text())
    eot = tokenizer.token_to_id(EOT)
    for file, field, bad, words in (
            ("config.json", "bos_token_id", "a", "begins a text"),
            ("config.json", "bos_token_id", [eot], "begins a text"),
            ("generation_config.json", "bos_token_id", "a", "begins a text"),
            # config.json's too, where the generation config names the end
            ("config.json", "eos_token_id", "a", "ends a text (a list of ids")):
        (tmp_path / "config.json").write_text(json.dumps(config))
        (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": eot}))
        original = json.loads((tmp_path / file).read_text())
        (tmp_path / file).write_text(json.dumps({**original, field: bad}))
        result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x")
        assert_input_error(result, f"{tmp_path / file}: {field} {bad!r} is not one token id",
                           f"write the id of the token that {words}", "or null for none")
    # Beyond the vocabulary, transformers warns and generates; no text ends there.
    (tmp_path / "config.json").write_text(json.dumps({**config, "bos_token_id": 999,
                                                      "eos_token_id": 999}))
    (tmp_path / "generation_config.json").unlink()
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x",
                        "--max-new-tokens", 2)
    assert result.exit_code == 0, result.output


def test_a_model_of_another_type_is_refused(gpt2_dir, tmp_path):
    directory, _, _ = gpt2_dir
    config = json.loads((directory / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "gpt_neox"}))
    (tmp_path / "model.safetensors").write_bytes((directory / "model.safetensors").read_bytes())
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x")
    assert_input_error(result, "model_type is 'gpt_neox'; tinyformer reads 'gpt2', 'llama' "
                               "and 'qwen3'")
    # A GPT-2 config.json relabelled llama lacks a Llama's sizes: named, in one line.
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x")
    assert_input_error(result, "hidden_size is missing; a llama config.json gives")
    # Without a model_type, beside a Hugging Face model's weights: that is what is missing,
    # not a run of tinyformer train that the folder never was.
    del config["model_type"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    for command in ("generate", "lens"):
        result = tinyformer(command, "--checkpoint", tmp_path, "--prompt", "x")
        assert_input_error(result, "config.json has no model_type, which names the model's "
                                   "architecture; tinyformer reads 'gpt2', 'llama' and 'qwen3' "
                                   "checkpoints: add the model's (\"model_type\": \"gpt2\", say)")


# -- export ------------------------------------------------------------------------------------


@pytest.fixture
def char_run(two_step_gpt_run):
    """A character-level GPT run: the one conftest trains once for every module that reads it
    (export and generate only read it)."""
    return two_step_gpt_run.out


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gpt-bpe"
    result = tinyformer("train", *TINY, "--iters", 2, "--eval-every", 2, "--tokenizer", "bpe",
                        "--vocab-size", 300, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_an_exported_run_generates_what_the_run_generates(char_run, tmp_path):
    out = tmp_path / "exported"
    result = tinyformer("export", "--checkpoint", char_run, "--out", out)
    assert result.exit_code == 0, result.output
    assert {"config.json", "model.safetensors", "tinyformer-tokenizer.json"} <= set(
        os.listdir(out))
    assert "transformers loads the model, and tinyformer reads the tokenizer" in result.stdout
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask      # not the temporary folder's 0o700
    request = ["--prompt", "eve has", "--max-new-tokens", 20, "--seed", 3]
    assert (tinyformer("generate", "--checkpoint", out, *request).output
            == tinyformer("generate", "--checkpoint", char_run, *request).output)


def test_transformers_loads_an_export_and_computes_our_logits(bpe_run, tmp_path):
    out = tmp_path / "exported"
    exported = tinyformer("export", "--checkpoint", bpe_run, "--out", out)
    assert exported.exit_code == 0 and "no GPT-2 form" not in exported.output
    ours, tokenizer, _ = load_model(bpe_run)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    their_tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    text = "bob has a blue kite."
    ids = tokenizer.encode(text)
    assert their_tokenizer.encode(text) == ids
    with torch.no_grad():
        their_logits = theirs(torch.tensor([ids])).logits.numpy()
    np.testing.assert_allclose(ours(np.array([ids])).data, their_logits, atol=1e-4)


MODERN_RUNS = {   # the modern block's switches on the command line, and what they export as
    "llama": (["--positions", "rope", "--normalization", "rmsnorm", "--activation", "swiglu",
               "--n-kv-head", "1"], "LlamaForCausalLM"),
    "qwen3": (["--positions", "rope", "--rope-theta", "500", "--normalization", "rmsnorm",
               "--activation", "swiglu", "--qk-norm", "--no-bias"], "Qwen3ForCausalLM"),
}


@pytest.fixture(scope="module", params=list(MODERN_RUNS))
def modern_bpe_run(request, tmp_path_factory):
    switches, architecture = MODERN_RUNS[request.param]
    out = tmp_path_factory.mktemp("runs") / request.param
    result = tinyformer("train", *TINY, "--iters", 2, "--eval-every", 2, "--tokenizer", "bpe",
                        "--vocab-size", 300, *switches, "--out", out)
    assert result.exit_code == 0, result.output
    return out, architecture


def test_a_run_with_the_modern_block_exports_as_a_llama_or_qwen3(modern_bpe_run, tmp_path):
    run, architecture = modern_bpe_run
    out = tmp_path / "exported"
    exported = tinyformer("export", "--checkpoint", run, "--out", out)
    assert exported.exit_code == 0, exported.output
    ours, tokenizer, _ = load_model(run)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(theirs).__name__ == architecture
    text = "bob has a blue kite."
    ids = tokenizer.encode(text)
    assert transformers.AutoTokenizer.from_pretrained(out).encode(text) == ids
    with torch.no_grad():
        their_logits = theirs(torch.tensor([ids])).logits.numpy()
    np.testing.assert_allclose(ours(np.array([ids])).data, their_logits, atol=3e-5)
    request = ["--prompt", "eve has", "--max-new-tokens", 12, "--seed", 3]   # read back here
    again, original = (tinyformer("generate", "--checkpoint", directory, *request)
                       for directory in (out, run))
    assert again.exit_code == 0 and again.output == original.output, again.output


@pytest.fixture
def seq2seq_run(one_step_reverse_run):
    """An encoder-decoder run: conftest's shared one (export only reads it)."""
    return one_step_reverse_run.out


def test_export_refuses_an_existing_directory_and_a_seq2seq_run(char_run, seq2seq_run,
                                                                tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    assert_input_error(tinyformer("export", "--checkpoint", char_run, "--out", taken), "exists")
    # The --out is looked at first, before the checkpoint is read.
    assert_input_error(tinyformer("export", "--checkpoint", tmp_path / "no-run", "--out", taken),
                       "exists")
    assert snapshot(tmp_path) == before
    assert_input_error(tinyformer("export", "--checkpoint", char_run, "--out", ""),
                       "must be a directory's path")
    with pytest.raises(ValueError, match="empty"):       # a name of spaces, before any work
        check_export_dir("  ")
    result = tinyformer("export", "--checkpoint", seq2seq_run, "--out", tmp_path / "x")
    assert_input_error(result, "only GPT models have a Hugging Face format here (GPT-2's, "
                               "Llama's or Qwen3's); this is a Transformer")
    assert not (tmp_path / "x").exists()


def test_a_value_error_of_ours_in_writing_an_export_is_a_bug_exit_1_not_bad_input(
        char_run, tmp_path, monkeypatch):
    # Every ValueError in writing the files was said as bad input (exit 2), a bug of ours
    # among them; the input's own (a setting no format expresses) are PretrainedError.
    def broken(*args, **kwargs):
        raise ValueError("a bug of ours")
    monkeypatch.setattr(GPT, "save_pretrained", broken)
    result = tinyformer("export", "--checkpoint", char_run, "--out", tmp_path / "hf")
    assert result.exit_code == 1, result.output
    assert "internal error (ValueError: a bug of ours)" in result.stderr
    assert not (tmp_path / "hf").exists()
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".export-")]
    (tmp_path / "a-file").write_text("mine")          # a file where a folder should be
    result = tinyformer("export", "--checkpoint", char_run, "--out", tmp_path / "a-file" / "x")
    assert_input_error(result, "a-file' is a file, not a directory")
    assert (tmp_path / "a-file").read_text() == "mine"


def test_export_makes_the_folders_its_directory_goes_in(char_run, tmp_path):
    """As train's --out and transformers' save_pretrained do."""
    out = tmp_path / "exports" / "2024" / "hf"
    result = tinyformer("export", "--checkpoint", char_run, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "config.json").exists()
    assert os.listdir(out.parent) == ["hf"]                        # no staging folder left


def test_a_model_with_more_rows_than_tokens_loads_from_vocab_json_as_from_tokenizer_json(
        gpt2_dir, tmp_path):
    """nanoGPT pads GPT-2's 50257 rows to 50304: the ids past the tokenizer's tokens decode to
    nothing, whichever tokenizer files the folder has."""
    _, _, tokenizer = gpt2_dir                                   # 270 tokens
    torch.manual_seed(0)
    eot = tokenizer.token_to_id(EOT)
    config = transformers.GPT2Config(vocab_size=280, n_positions=64, n_embd=32, n_layer=2,
                                     n_head=2, bos_token_id=eot, eos_token_id=eot)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():        # greedy decoding picks the padding rows, tied to the head
        model.transformer.wte.weight[270:] = 10 * model.transformer.wte.weight[:10]
    openai, saved = tmp_path / "vocab-json", tmp_path / "tokenizer-json"
    model.save_pretrained(openai)
    save_gpt2_tokenizer(tokenizer, openai)
    model.save_pretrained(saved)
    transformers.AutoTokenizer.from_pretrained(openai).save_pretrained(saved)
    assert not (saved / "vocab.json").exists()
    loaded = {}
    for directory in (openai, saved):
        _, loaded[directory], _ = load_model(directory)
    ids = tokenizer.encode("the cat sat") + [269, 270, 279]
    for padded in loaded.values():
        assert padded.vocab_size == 280
        assert padded.encode("the cat sat") == tokenizer.encode("the cat sat")
        assert padded.decode(ids) == "the cat sat" + EOT
        assert [padded.id_to_token(i) for i in (270, 279)] == ["", ""]
        with pytest.raises(ValueError, match="not a token"):    # padding is no token
            padded.token_to_id("")
    prompt = tokenizer.encode("the cat")
    with torch.no_grad():
        theirs = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt)),
                                do_sample=False, max_new_tokens=6)[0, len(prompt):].tolist()
    assert min(theirs) >= 270                                    # padding ids only
    request = ["--prompt", "the cat", "--temperature", 0, "--max-new-tokens", 6]
    for directory in (openai, saved):
        result = tinyformer("generate", "--checkpoint", directory, *request)
        assert result.exit_code == 0, result.output
        assert result.output == "the cat\n"
    # Saved back, the padded tokenizer writes its own tokens, which transformers reads.
    save_gpt2_tokenizer(loaded[openai], tmp_path / "back")
    assert len(json.loads((tmp_path / "back" / "vocab.json").read_text())) == 270
    assert len(transformers.AutoTokenizer.from_pretrained(tmp_path / "back")) == 270


def test_tokenize_pads_to_gpt2s_default_vocabulary_as_load_model_does(gpt2_dir, tmp_path):
    # A GPT-2 config.json that leaves vocab_size out has GPT2Config's 50257 rows: tokenize
    # refused it ("vocab_size ... got None") where load_model built the model and decoded
    # its padding ids.
    _, _, tokenizer = gpt2_dir                                   # 270 tokens
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_positions=16, n_embd=8, n_layer=1, n_head=2))
    model.save_pretrained(tmp_path)
    save_gpt2_tokenizer(tokenizer, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["vocab_size"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    _, padded, _ = load_model(tmp_path)
    assert padded.vocab_size == 50257 == transformers.GPT2Config.from_pretrained(
        tmp_path).vocab_size
    ids = [*tokenizer.encode("the cat"), 50000]
    result = tinyformer("tokenize", "decode", *ids, "--tokenizer", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output == padded.decode(ids) + "\n" == "the cat\n"


def test_a_model_folder_without_model_type_is_told_so_by_tokenize_as_by_generate(gpt2_dir,
                                                                               tmp_path):
    # tokenize called it "not a tinyformer checkpoint config" and sent its user to a run's
    # --out; the model's reader says what is missing, and how to add it.
    directory, _, _ = gpt2_dir
    shutil.copytree(directory, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    del config["model_type"]
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    problem = f"{tmp_path / 'hf' / 'config.json'} has no model_type"
    assert_input_error(tinyformer("generate", "--checkpoint", tmp_path / "hf", "--prompt", "a"),
                       problem)
    assert_input_error(tinyformer("tokenize", "decode", 5, "--tokenizer", tmp_path / "hf"),
                       problem, "\"model_type\": \"gpt2\"")


@pytest.mark.parametrize("files", ["vocab.json", "tokenizer.json"])
def test_a_tokenizer_with_more_tokens_than_the_model_has_rows_is_refused(gpt2_dir, tmp_path,
                                                                         files):
    directory, _, _ = gpt2_dir                                   # 270 rows
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    save_gpt2_tokenizer(BPETokenizer.train(TEXT, 274, special_tokens=[EOT]), tmp_path)
    if files == "tokenizer.json":
        transformers.AutoTokenizer.from_pretrained(tmp_path).save_pretrained(tmp_path / "t")
        for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
            (tmp_path / name).unlink()
        (tmp_path / "tokenizer.json").write_bytes((tmp_path / "t" / "tokenizer.json").read_bytes())
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x")
    assert_input_error(result, "has 274 tokens, more than the model's 270")


def test_an_export_the_system_refuses_is_one_line(char_run, tmp_path, monkeypatch):
    def refuse(**_):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr("tinyformer.checkpoint.tempfile.mkdtemp", refuse)
    result = tinyformer("export", "--checkpoint", char_run, "--out", tmp_path / "x")
    assert_input_error(result, "permission denied; check the permissions")
    assert not (tmp_path / "x").exists()


def test_the_stream_holds_back_a_character_until_all_its_bytes_are_there():
    from tinyformer.prompts import TextStream
    written = []
    stream = TextStream(BPETokenizer(), written.append, end_of_text=None)
    shown = []
    for byte in "é!".encode() + "€".encode()[:2]:          # é is 2 bytes, € 3: cut short
        stream(np.array([byte]))
        shown.append("".join(written))
        written.clear()
    assert shown == ["", "é", "!", "", ""]
    stream.close()
    assert "".join(written) == "\ufffd"                  # the cut € at the very end


def hub_cache(directory, cache):
    """`directory`'s files laid out as the Hugging Face hub's cache keeps a download: each in
    blobs/, linked from snapshots/REVISION/, refs/main naming the revision."""
    snapshot = cache / "snapshots" / "0123abcd"
    for folder in (cache / "blobs", snapshot, cache / "refs"):
        folder.mkdir(parents=True)
    (cache / "refs" / "main").write_text("0123abcd")
    for i, path in enumerate(sorted(directory.iterdir())):
        (cache / "blobs" / f"blob{i}").write_bytes(path.read_bytes())
        (snapshot / path.name).symlink_to(f"../../blobs/blob{i}")
    return snapshot


def test_the_hub_caches_folder_of_a_model_points_to_its_snapshot(gpt2_dir, tmp_path):
    cache = tmp_path / "models--org--tiny"
    snapshot = hub_cache(gpt2_dir[0], cache)
    request = ["--prompt", "the cat", "--temperature", 0, "--max-new-tokens", 8]
    advice = f"is a model's folder in the Hugging Face hub's cache, which keeps the files in a " \
             f"snapshot: give {str(snapshot)!r}"
    assert_input_error(tinyformer("generate", "--checkpoint", cache, *request), advice)
    with pytest.raises(ValueError, match=re.escape(advice)):
        GPT.from_pretrained(cache)
    assert (tinyformer("generate", "--checkpoint", snapshot, *request).output
            == tinyformer("generate", "--checkpoint", gpt2_dir[0], *request).output)
    # Two snapshots and no refs/main, or one naming a snapshot that is gone: the advice
    # offers each snapshot (the snapshots folder itself does not load).
    other = snapshot.parent / "4567cdef"
    other.mkdir()
    # Two snapshots, refs/main naming one: that one alone is the advice.
    (cache / "refs" / "main").write_text(snapshot.name)
    with pytest.raises(ValueError, match=re.escape(f"snapshot: give {str(snapshot)!r}")):
        GPT.from_pretrained(cache)
    advice = f"snapshot: give one of {str(snapshot)!r}, {str(other)!r}"
    for refs in ("gone0000", None):
        if refs is None:
            (cache / "refs" / "main").unlink()
        else:
            (cache / "refs" / "main").write_text(refs)
        assert_input_error(tinyformer("generate", "--checkpoint", cache, *request), advice)
        with pytest.raises(ValueError, match=re.escape(advice)):
            GPT.from_pretrained(cache)
    # refs/main a pipe (or a link to /dev/zero) in a folder unpacked from an archive: it is
    # not read, which would wait for a writer (or never end), and every snapshot is offered.
    os.mkfifo(cache / "refs" / "main")                   # (the loop above removed the file)
    writer = os.open(cache / "refs" / "main", os.O_RDWR)      # open, and never writing
    try:
        reading = threading.Thread(target=hub_snapshots, args=(cache,), daemon=True)
        reading.start()
        reading.join(timeout=2)
        assert not reading.is_alive(), "refs/main, a pipe, was read"
    finally:
        os.close(writer)                                  # (lets a read that began end)
    assert_input_error(tinyformer("generate", "--checkpoint", cache, *request), advice)
    # No snapshot at all: no advice to give one, but the folder's own fault.
    for folder in (snapshot, other):
        shutil.rmtree(folder)
    assert_input_error(tinyformer("generate", "--checkpoint", cache, *request), "no config.json")


def test_a_snapshot_copied_without_its_links_followed_is_told_to_copy_with_cp_rl(gpt2_dir,
                                                                               tmp_path):
    # `cp -r` of a snapshot keeps its relative links into blobs/, which name nothing in the
    # copy: "it has no config.json" beside the config.json that `ls` shows would mislead.
    snapshot = hub_cache(gpt2_dir[0], tmp_path / "models--someone--gpt2")
    shutil.copytree(snapshot, tmp_path / "copy", symlinks=True)
    result = tinyformer("generate", "--checkpoint", tmp_path / "copy", "--prompt", "the")
    assert_input_error(result, f"{str(tmp_path / 'copy' / 'config.json')!r} is a link to "
                               f"'../../blobs/blob0', which does not exist", "cp -rL")
    shutil.copytree(snapshot, tmp_path / "copied", symlinks=False)        # cp -rL: it works
    (tmp_path / "copied" / "model.safetensors").unlink()
    (tmp_path / "copied" / "model.safetensors").symlink_to("../../blobs/gone")
    for load in (GPT.from_pretrained, load_model):
        with pytest.raises(ValueError, match=r"model.safetensors' is a link to '../../blobs/gone'"
                                             r", which does not exist \(or is a loop of links\); "
                                             r"mend the link, or put the file itself"):
            load(tmp_path / "copied")


def test_a_folder_with_both_tokenizers_reads_its_tokenizer_json_as_transformers_does(
        gpt2_dir, tmp_path):
    """AutoTokenizer reads tokenizer.json wherever there is one, in any layout (special tokens
    first, here): GPT-2's vocab.json and merges.txt beside it are not read."""
    directory, _, tokenizer = gpt2_dir                           # 270 rows
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    save_gpt2_tokenizer(tokenizer, tmp_path)                     # <|endoftext|> last
    theirs = tokenizers_library_bpe(270, tmp_path / "tokenizer.json")  # <|endoftext|> first
    _, loaded, _ = load_model(tmp_path)
    assert loaded.token_to_id(EOT) == theirs.token_to_id(EOT) == 0
    assert loaded.encode("the dog sat") == theirs.encode("the dog sat").ids
