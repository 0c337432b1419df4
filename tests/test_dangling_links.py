"""A symbolic link to nothing (or a loop of links), given where a command reads or writes a
path, is named as a link, in one wording, in one line that exits 2: it is there, as `ls`
shows, where "does not exist" would send the user looking for a mistake in the name, and
writing through it would make the folder it names, or fail only after the work."""

import os

import pytest
from click.testing import CliRunner

from tinyformer.files import check_exists, check_out_file
from tinyformer.schema import BadInput
from tinyformer_cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result):
    """The line of an input error: exit status 2, one line on stderr, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0][len("Error: "):]


LINKED = "is a link to 'gone', which does not exist (or is a loop of links); mend the link, or "


@pytest.fixture
def link(tmp_path, monkeypatch):
    """LINK, a link to nothing, in the current directory (tmp_path)."""
    monkeypatch.chdir(tmp_path)
    os.symlink("gone", "LINK")
    return "LINK"


def test_a_checkpoint_or_a_run_directory_that_links_to_nothing_is_named_a_link(link):
    # Both said "does not exist", of the name `ls` shows.
    assert one_line_error(run("generate", "--checkpoint", link, "--prompt", "a")) == (
        f"checkpoint 'LINK' {LINKED}give the --out directory of a `tinyformer train` run, or "
        f"a Hugging Face model's directory (GPT-2, Llama or Qwen3)")
    assert one_line_error(run("plot", link)) == (
        f"run directory 'LINK' {LINKED}give a run directory (or its metrics.jsonl)")


def test_an_export_into_a_link_to_nothing_is_refused_before_loading_the_model(
        link, one_step_gpt_run, monkeypatch):
    # It got past the check, loaded the model, and only then failed: "LINK: not a directory".
    import tinyformer_cli
    monkeypatch.setattr(tinyformer_cli, "load_model", lambda *a, **k: pytest.fail("loaded"))
    assert one_line_error(run("export", "--checkpoint", one_step_gpt_run.out, "--out", link)) \
        == f"'LINK' {LINKED}give a new directory to export into"
    assert os.listdir(".") == ["LINK"] and os.readlink("LINK") == "gone"


def test_a_link_to_nothing_among_the_folders_of_a_path_is_named_a_link(link, tmp_path,
                                                                       one_step_gpt_run):
    # mkdir's "File exists" (export, train) or "does not exist" (generate) said nothing of it.
    named = f"{str(tmp_path / 'LINK')!r} is a link to 'gone', which does not exist (or is a " \
            f"loop of links)"
    export = ["export", "--checkpoint", one_step_gpt_run.out, "--out", "LINK/hf"]
    assert one_line_error(run(*export)) == f"cannot export to 'LINK/hf': {named}"
    assert one_line_error(run("train", "--iters", 1, "--out", "LINK/run")) == (
        f"cannot write to --out 'LINK/run': {named}; choose another --out")
    assert one_line_error(run("generate", "--checkpoint", "LINK/run", "--prompt", "a")) == (
        f"checkpoint 'LINK/run': {named}; give the --out directory of a `tinyformer train` "
        f"run, or a Hugging Face model's directory (GPT-2, Llama or Qwen3)")
    assert os.listdir(".") == ["LINK"]


def test_every_dangling_link_is_said_in_the_same_words(tmp_path):
    # A file read, and a file of a Hugging Face folder, had two wordings of the same thing.
    from tinyformer.safetensors import load_file
    os.symlink("gone", tmp_path / "model.safetensors")
    with pytest.raises(BadInput) as read:
        check_exists(tmp_path / "model.safetensors", "weights")
    with pytest.raises(ValueError) as loaded:
        load_file(tmp_path / "model.safetensors")
    path = repr(str(tmp_path / "model.safetensors"))
    assert str(read.value) == f"weights {path} {LINKED}give the file's own path"
    assert str(loaded.value).startswith(f"{path} {LINKED}put the file itself there")


def test_an_out_file_that_links_to_nothing_is_named_a_link_and_kept(tmp_path, monkeypatch,
                                                                    one_step_gpt_run):
    # Saving renamed a plain file over the link (plot overwrites its --out): the user's link
    # was gone. Where a command needs --force to overwrite, the link is no file that exists.
    monkeypatch.chdir(tmp_path)
    os.symlink("gone", "loss.png")
    assert one_line_error(run("plot", one_step_gpt_run.out, "--out", "loss.png")) == (
        f"--out 'loss.png' {LINKED}choose another --out")
    for force in (True, False):
        with pytest.raises(BadInput) as refused:
            check_out_file("loss.png", [".png"], force=force)
        assert str(refused.value) == f"--out 'loss.png' {LINKED}choose another --out"
    assert os.listdir(".") == ["loss.png"] and os.readlink("loss.png") == "gone"
