"""The README's promises: its Python tour runs, its test command is what CI runs, and the
example behind its first command learns."""

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from command_lines import parse

from tinyformer_cli import example_lines

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the tour divides by zero on purpose
def test_the_python_tour_runs_in_order(capsys, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 5
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    # The graph block's comment offers render(picture, "mlp.svg"), which its import lacked.
    # Run as written, but to .dot, which needs no graphviz program.
    offered = re.search(r"# (render\(picture, \"mlp)\.svg(\"\)) to see it", README)
    monkeypatch.chdir(tmp_path)
    exec(offered.group(1) + ".dot" + offered.group(2), namespace)
    assert (tmp_path / "mlp.dot").read_text().startswith("digraph")
    printed = capsys.readouterr().out
    shown = re.search(r"^print\(y\) +# (Tensor\(.*)\.\.\.(.*)$", README, re.M)  # as README has it
    assert re.search(re.escape(shown.group(1)) + r"\d*" + re.escape(shown.group(2)), printed)
    assert "grad_fn=<sum>" in printed and "[0 1 1 0]" in printed
    assert "sqrt backward" in printed and "dL/dh = [1. 1.]" in printed
    trained = re.search(r"^loss (\S+)$", printed, re.M)    # the step by hand, in place, trained
    assert float(trained.group(1)) < 1e-3
    assert re.search(r"^pink\.$", printed, re.M)      # the GPT trained by hand recalls the colour
    assert re.search(r"^\(2, 4, 14\)$", printed, re.M)  # the encoder-decoder's logits' shape
    # What the blocks' comments and the text block under the modern GPT say they print.
    code = "".join(blocks)
    for shown in ("<tanh>", "Tensor([6., 0., 0.], dtype=float64)", "(1, 21)"):
        assert re.search(rf"# {re.escape(shown)}", code) and f"\n{shown}\n" in printed, shown
    assert printed.splitlines().count("True") == len(re.findall(r"# True\b", code))
    summary = re.search(r"print\(summary\(modern\)\)\n```\n\n```text\n(.*?)```", README, re.S)
    assert summary.group(1) in printed


def test_ci_runs_the_readme_test_command():
    extract = re.search(r"^test_command=\$\((.*)\)$", (ROOT / ".ci/run").read_text(), re.M)
    done = subprocess.run(["bash", "-c", extract.group(1)], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    command = done.stdout.strip()
    assert command.startswith("pip install torch==")
    assert command.endswith("python -m pytest -n auto")        # on every core
    assert f"```bash\n{command}\n```" in README


def import_moons():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import moons
    finally:
        sys.path.pop(0)
    return moons


def test_the_moons_example_learns_to_full_accuracy():
    loss, accuracy = import_moons().train(verbose=False)
    assert accuracy == 1.0 and loss < 0.05


def test_the_moons_example_takes_the_steps_asked_and_reports_the_model_they_leave(monkeypatch):
    # It took one update more than asked, and reported the loss from before the last one.
    import tinyautograd.functional as F
    from tinyautograd import optim
    moons, events = import_moons(), []
    adamw_step, cross_entropy = optim.AdamW.step, F.cross_entropy

    def step(self):
        events.append("update")
        adamw_step(self)

    def loss_of(*args, **kwargs):
        loss = cross_entropy(*args, **kwargs)
        events.append(loss.item())
        return loss

    monkeypatch.setattr(optim.AdamW, "step", step)
    monkeypatch.setattr(F, "cross_entropy", loss_of)
    loss, _ = moons.train(steps=3, verbose=False)
    assert events.count("update") == 3
    assert events[-2:] == ["update", loss]          # the loss of the model the updates leave


def test_every_command_in_the_readme_and_the_course_is_one_the_program_takes():
    for name in ("README.md", "docs/course.md"):
        blocks = (ROOT / name).read_text().split("```")[1::2]
        lines = [line for block in blocks for line in example_lines(block)]
        assert len(lines) > 5, name
        for line in lines:
            try:
                parse(line)
            except click.ClickException as error:
                raise AssertionError(f"{name}: {line}: {error}") from None


def _github_anchor(heading):
    """The #fragment GitHub gives a heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_and_picture_in_the_markdown_pages_is_there():
    # Nothing checked the pages' own links: a renamed heading, file or picture would leave a
    # link that goes nowhere.
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
    checked = 0
    for page in pages:
        text = page.read_text()
        anchors = {_github_anchor(heading)
                   for heading in re.findall(r"^#+ (.+)$", text, re.M)}
        targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'<img src="([^"]+)"', text)
        for target in targets:
            if re.match(r"\w+://|mailto:", target):
                continue
            path, _, fragment = target.partition("#")
            where = page.parent / path if path else page
            assert where.exists(), f"{page.name}: {target} is not in the repository"
            if fragment:
                assert where == page, f"{page.name}: {target}: only the page's own headings"
                assert fragment in anchors, f"{page.name}: {target} names no heading"
            checked += 1
    assert checked > 20


def test_the_models_top_level_names_are_as_the_readme_says_none_where_it_says_so():
    # The README named GPT's and the encoder-decoder's `head`, which is None by default (tied
    # to the token embedding), without saying so.
    from tinyformer import BERT, GPT, Transformer
    sentence = re.search(r"GPT is (`embed`.*?)\. So a GPT", README, re.S).group(1)
    parts = re.split(r"; (?:BERT|the encoder-decoder) ", " ".join(sentence.split()))
    models = [GPT(11, context=8, n_layer=1, n_head=2, d_model=16),
              BERT(11, context=8, n_layer=1, n_head=2, d_model=16),
              Transformer(11, 11, context=8, n_layer=1, n_head=2, d_model=16)]
    assert len(parts) == len(models)
    for said, model in zip(parts, models):
        names = dict(re.findall(r"`(\w+)`( \(None\b)?", said))    # name -> " (None" or ""
        held = {name for name, _ in model.named_children()}
        assert {name for name in names if getattr(model, name) is not None} == held, said
        for name, none in names.items():
            assert (getattr(model, name) is None) == bool(none), (name, said)


def test_the_course_keeps_runs_gpt_builtin_for_the_default_gpt():
    # Followed in order, the course's first GPT (chapter 5's, with sinusoidal positions) took
    # runs/gpt-builtin, so every later command on runs/gpt-builtin read it, not chapter 8's.
    course = (ROOT / "docs/course.md").read_text()
    commands = re.findall(r"`(tinyformer train[^`]*)`", " ".join(course.split()))
    commands += [line for block in course.split("```")[1::2] for line in example_lines(block)
                 if line.startswith("tinyformer train")]
    assert len(commands) > 5
    for command in commands:
        options = command.split("#")[0].split()[2:]
        writes_default_gpt = not any(word in options for word in ("--model", "--task", "--out"))
        if writes_default_gpt:
            assert options == [], command


def test_what_the_readme_says_is_below_or_above_is_there():
    # It said a tokenizer.json is read "as `read_tokenizer_json` below does", and no section
    # below names it.
    text = " ".join(README.split())
    pointers = list(re.finditer(r'(?:"([A-Z][^"]{0,60})"|`([^`]+)`) (below|above)\b', text))
    assert len(pointers) >= 3
    for pointer in pointers:
        section, name, where = pointer.groups()
        there = text[pointer.end():] if where == "below" else text[:pointer.start()]
        assert (f"# {section} " if section else f"`{name}`") in there, pointer.group(0)


def test_the_exercise_commands_the_readme_names_take_the_argument_it_gives_them():
    # It wrote `predict N` among commands that take an exercise's number N; predict takes a
    # chapter, so `predict 10` asked chapter 10's question, not exercise 10's chapter's.
    from tinyformer_cli import main
    exercises = main.commands["exercises"]
    named = re.findall(r"`(\w+) ([A-Z])` ", " ".join(README.split()))
    named = [(command, letter) for command, letter in named if command in exercises.commands]
    assert len(named) >= 5
    for command, letter in named:
        (argument,) = [p for p in exercises.commands[command].params
                       if isinstance(p, click.Argument)]
        assert (argument.metavar or argument.name).strip("[]").upper()[0] == letter, command


def test_the_built_in_runs_last_recall_is_the_one_its_transcript_shows():
    # The blocks section said `tinyformer train` now ends at recall 1.00, the transcript 0.99.
    text = " ".join(README.split())
    shown = re.search(r"step 800 \(end of training\): val_loss \S+, val_recall (\S+)", text)
    quoted = [re.search(r"([\d.]+) at 800\b", text),
              re.search(r"`tinyformer train` now ends GPT-2's block at recall ([\d.]+)", text)]
    assert shown and all(quoted)
    for figure in quoted:
        assert float(figure.group(1)) == float(shown.group(1)), figure.group(0)


def test_the_length_the_course_and_readme_give_a_file_is_its_length():
    # The course sent its reader to tinyautograd/engine.py "(about 1,500 lines)": it had grown
    # to about 1,800.
    claims = [(name, claim) for name in ("README.md", "docs/course.md")
              for claim in re.finditer(r"`([\w/]+\.\w+)`[^`.]*?\(about ([\d,]+) lines[;)]",
                                       " ".join((ROOT / name).read_text().split()))]
    assert claims
    for name, claim in claims:
        said = int(claim.group(2).replace(",", ""))
        lines = len((ROOT / claim.group(1)).read_text().splitlines())
        assert abs(lines - said) <= 0.1 * said, f"{name}: {claim.group(0)}, but it has {lines}"


def test_the_engines_core_is_as_long_as_the_course_says():
    # The course said engine.py's core "comes first, in about 1,400" lines: it runs to line
    # 1,557, where the file says a first reading can skip the rest.
    course = " ".join((ROOT / "docs/course.md").read_text().split())
    said = int(re.search(r"`tinyautograd/engine\.py` .*?its core, .*?comes first, in about "
                         r"([\d,]+)\)", course).group(1).replace(",", ""))
    lines = (ROOT / "tinyautograd/engine.py").read_text().splitlines()
    core = next(number for number, line in enumerate(lines, start=1)
                if line.startswith("#") and "what a first reading" in line)
    assert abs(core - said) <= 0.1 * said, f"the core is {core} lines, the course says {said}"


def test_a_corpus_as_short_as_the_readme_allows_trains_and_a_shorter_one_is_refused(tmp_path):
    # It said "any UTF-8 text longer than the context": such a text was refused, since the
    # last tenth, held out, must itself hold more than a context.
    from tinyformer.train import Trainer
    from tinyformer.train_config import TrainConfig
    contexts = int(re.search(r"--out runs/mine +# any UTF-8 text over (\d+) contexts long",
                             README).group(1))
    corpus, context = tmp_path / "text.txt", 4
    config = TrainConfig(corpus=str(corpus), context=context, n_layer=1, n_head=1, d_model=8)
    corpus.write_text(("abcdefg" * contexts * context)[:contexts * context + 1])
    Trainer.start(config, tmp_path / "long-enough", log=lambda line: None).close()
    corpus.write_text(("abcdefg" * contexts * context)[:contexts * context])
    with pytest.raises(ValueError, match="its validation part has 4 tokens"):
        Trainer.start(config, tmp_path / "too-short", log=lambda line: None)


def test_the_readmes_reader_that_stops_early_stops_before_the_output_ends(tmp_path):
    # Its example was `tinyformer tokenize show --file big.txt | head`: show writes the whole
    # text on one line (its new lines as \n) and two lines of summary, so head read to the end
    # and the command exited 0, not the 141 the README promised.
    from click.testing import CliRunner
    from tinyformer_cli import main
    text = " ".join(README.split())
    command, reader = re.search(r"a reader that stops early .*?`tinyformer ([^`|]+?) \| ([^`]+)`",
                                text).groups()
    big = tmp_path / "big.txt"
    big.write_text("eve has a red kite. it rained. the kite of eve is red.\n" * 1000)
    written = CliRunner().invoke(main, command.replace("big.txt", str(big)).split()).output
    unit, limit = re.fullmatch(r"head(?: -([cn]) ?(\d+))?", reader).groups()
    size = len(written.encode()) if unit == "c" else len(written.splitlines())
    assert size > int(limit or 10), f"`{reader}` reads all {size} of what `{command}` writes"


def test_the_context_names_the_readme_says_are_the_engines_own_are_all_those_refused():
    # Its list of the names a Function's ctx refuses left out freed_by_error, which is refused
    # as the others are.
    import tinyautograd as ta
    text = " ".join(README.split())
    listed = re.search(r"not (`\w+`(?:, `\w+`)* or `\w+`), the context's own: they are refused",
                       text).group(1)
    names = set(re.findall(r"`(\w+)`", listed))

    def stores(name):
        class Storing(ta.Function):
            @staticmethod
            def forward(ctx, x):
                setattr(ctx, name, "mine")
                return x * 2
        try:
            Storing.apply(ta.Tensor([1.0]))
        except AttributeError as error:
            return "is the engine's own" not in str(error)
        return True

    assert not [name for name in sorted(names) if stores(name)], "listed, but not refused"
    assert names == set(ta.engine._ENGINE_NAMES), "refused, but not listed"


def test_the_settings_the_readme_says_only_a_file_sets_are_those_with_no_option():
    # A new setting left out of `tinyformer train`'s options, or given one, would leave the
    # README's count, list or defaults stale: the help's own list is made from the fields.
    import dataclasses
    from tinyformer.train_config import TrainConfig
    text = " ".join(README.split())
    count, listed = re.search(r"(\w+) settings only a file sets: (.*?)\. `tinyformer train "
                              r"--help` lists every option", text).groups()
    names = re.findall(r"`(\w+)`", listed)
    file_only = [f.name for f in dataclasses.fields(TrainConfig) if "help" not in f.metadata]
    assert sorted(names) == sorted(file_only)
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
    assert words.index(count.lower()) + 1 == len(names)
    betas = re.search(r"`beta1`, `beta2` \(AdamW's, ([\d.]+) and ([\d.]+)\)", listed).groups()
    sample = re.search(r"`sample_tokens` \(.*?, (\d+)\)", listed).group(1)
    resolved = TrainConfig().resolved()                   # the built-in GPT's settings
    assert (resolved.beta1, resolved.beta2) == tuple(map(float, betas))
    assert resolved.sample_tokens == int(sample)
