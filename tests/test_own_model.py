"""A model of your own in the trainer: Trainer.start(config, directory, model=model), its
checkpoints, resuming it, and what refuses such a checkpoint."""

import json
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

import tinyautograd as ta
from tinyautograd import nn
from tinyformer import BERT, GPT, checkpoint, layers, rundir
from tinyformer import train as train_module
from tinyformer.tokenizers import CharTokenizer
from tinyformer.train import TrainConfig, Trainer
from own_modules import TwoExperts
from tinyformer_cli import main

# The built-in stories' characters: the vocabulary the settings give a GPT on them.
TINY = dict(n_layer=1, n_head=2, d_model=16, context=16, batch_size=4, eval_iters=2,
            sample_tokens=10)
VOCAB = 26
OWN = "decoder.layers.0.ffn (TwoExperts)"


class OtherExperts(TwoExperts):
    """TwoExperts' weights, mixed otherwise: the sum of both experts, the gate unused."""

    def forward(self, x):
        return self.e0(x) + self.e1(x)


def own_model(seed=0, ffn=TwoExperts, **sizes):
    ta.manual_seed(seed)
    model = GPT(**{"vocab_size": VOCAB, "context": 16, "n_layer": 1, "n_head": 2,
                   "d_model": 16, **sizes})
    model.decoder.layers[0].ffn = ffn(model.config["d_model"])
    return model


def quiet(*args):
    pass


def losses(directory):
    with open(os.path.join(directory, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def train(directory, model=None, threads=1, **settings):
    trainer = Trainer.start(TrainConfig(**{**TINY, "iters": 2, **settings}), str(directory),
                            log=quiet, model=model)
    assert trainer.train(threads=threads) == "done"
    return trainer


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("own")
    return directory, train(directory, own_model()).model


def test_the_trainer_trains_the_model_given_and_its_checkpoint_holds_its_modules(tmp_path,
                                                                                 own_run):
    directory, model = own_run
    plain = train(tmp_path / "plain")
    assert [line["train_loss"] for line in losses(directory)] != \
        [line["train_loss"] for line in losses(tmp_path / "plain")]
    config = rundir.read_config(str(directory))
    assert config["modules_of_your_own"] == [OWN]
    assert rundir.read_config(str(tmp_path / "plain"))["modules_of_your_own"] == []
    weights = rundir.load_arrays(os.path.join(directory, config["files"]["weights"]))
    for name, p in model.named_parameters():              # the trained ones, the expert's too
        np.testing.assert_array_equal(weights[name], p.data)
    assert "decoder.layers.0.ffn.gate.weight" in weights
    assert "decoder.layers.0.ffn.fc1.weight" in dict(plain.model.named_parameters())


def test_the_trainer_builds_the_model_again_once_to_find_its_modules_of_your_own(
        tmp_path, monkeypatch):
    # Each such build is GPT-2 small's size: seconds. Starting with a model of your own
    # builds the settings' model (its config checked) and compares its modules with that
    # or one more; a plain start and resuming (config.json records the modules) build none
    # beside the model itself.
    builds = []
    skip_init = nn.skip_init
    monkeypatch.setattr(nn, "skip_init", lambda *a, **k: builds.append(a[0]) or
                        skip_init(*a, **k))
    Trainer.start(TrainConfig(**TINY, iters=1), str(tmp_path / "plain"), log=quiet).close()
    assert builds == []
    train(tmp_path / "own", own_model(), iters=1)
    assert len(builds) <= 2
    builds.clear()
    Trainer.resume(str(tmp_path / "own"), log=quiet, model=own_model()).close()
    assert len(builds) <= 1                 # checking its modules against config.json's


def test_the_workers_that_share_a_step_train_the_model_given(tmp_path):
    # Forked for the micro-batches, they compute on the model they were forked with: a plain
    # one rebuilt there would give other losses than one process alone.
    settings = dict(micro_batches=2, iters=3)
    alone = train(tmp_path / "alone", own_model(), threads=1, **settings)
    shared = train(tmp_path / "shared", own_model(), threads=2, **settings)
    assert losses(tmp_path / "alone") == losses(tmp_path / "shared")
    for (name, a), (_, b) in zip(alone.model.named_parameters(),
                                 shared.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


def test_a_run_of_your_own_model_resumes_exactly_given_it_again(tmp_path):
    settings = dict(TINY, iters=5, eval_every=2, dropout=0.1)
    train(tmp_path / "whole", own_model(dropout=0.1), **settings)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path / "cut"), log=quiet,
                            model=own_model(dropout=0.1))
    for _ in range(3):
        trainer.train_step()
    trainer.save()
    trainer.close()
    # Built the same way, other initial weights: the checkpoint's replace them.
    resumed = Trainer.resume(str(tmp_path / "cut"), log=quiet, model=own_model(seed=1,
                                                                                dropout=0.1))
    assert resumed.step == 3 and resumed.train(threads=1) == "done"
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")[3:]   # bit for bit
    # and its checkpoints still say what it holds
    assert rundir.read_config(str(tmp_path / "cut"))["modules_of_your_own"] == [OWN]


class Adapted(GPT):
    """A GPT with a module of its own at the top level: a name of neither of GPT's layouts."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.adapter = nn.Linear(self.config["d_model"], self.config["d_model"])


def test_a_run_with_a_module_of_your_own_at_the_top_level_resumes(tmp_path):
    # Its weights' names are its model's, never renamed from the previous layout, whose
    # check would take `adapter` for the name of no GPT parameter.
    def adapted(seed):
        ta.manual_seed(seed)
        return Adapted(VOCAB, 16, n_layer=1, n_head=2, d_model=16)
    trained = train(tmp_path, adapted(0), iters=1).model
    resumed = Trainer.resume(str(tmp_path), log=quiet, model=adapted(1))
    np.testing.assert_array_equal(resumed.model.adapter.weight.data,
                                  trained.adapter.weight.data)


def test_its_checkpoint_is_refused_by_what_builds_a_model_from_config_alone_and_says_how(
        own_run):
    directory, trained = own_run
    with pytest.raises(checkpoint.CheckpointError) as refused:
        checkpoint.load_model(directory)
    message = str(refused.value)
    assert "\n" not in message and f"modules of your own ({OWN})" in message
    # What it says to do works: the model built the same way, the weights the file it names.
    load = re.search(r"`(model\.load_state_dict\(tinyformer\.rundir\.load_arrays\(.*?\)\))`",
                     message).group(1)
    model = own_model(seed=1)
    exec(load, {"model": model, "tinyformer": __import__("tinyformer")})
    x = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(model.eval()(x).data, trained.eval()(x).data)
    assert f"Trainer.resume({str(directory)!r}, model=model)" in message


@pytest.mark.parametrize("command", [
    ["generate", "--checkpoint", "{run}", "--prompt", "a"],
    ["train", "--resume", "{run}"],
    ["export", "--checkpoint", "{run}", "--out", "{out}"],
    ["graph", "--checkpoint", "{run}", "--prompt", "a", "--out", "{out}.svg"],
    ["lens", "--checkpoint", "{run}", "--prompt", "a"],
])
def test_the_command_line_refuses_such_a_run_in_one_line(own_run, tmp_path, command):
    directory, _ = own_run
    args = [arg.format(run=directory, out=tmp_path / "hf") for arg in command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"modules of your own ({OWN})" in result.output
    assert "Traceback" not in result.output


def test_resuming_it_without_the_model_is_refused_saying_to_pass_it(own_run):
    directory, _ = own_run
    with pytest.raises(checkpoint.CheckpointError, match=re.escape(
            f"Trainer.resume({str(directory)!r}, model=model)")):
        Trainer.resume(str(directory), log=quiet)
    assert not rundir.is_training(str(directory))          # let go of


@pytest.mark.parametrize("model, message", [
    (lambda: GPT(VOCAB, 16, n_layer=1, n_head=2, d_model=16),
     f"its modules of your own are none, where the run in {{run!r}} holds {OWN}"),
    (lambda: own_model(d_model=32), "its d_model is 32, where {config} has 16"),
    # Another module at the same path, with the same weights' names: another function.
    (lambda: own_model(ffn=OtherExperts),
     "its modules of your own are decoder.layers.0.ffn (OtherExperts), where the run in "
     "{run!r} holds " + OWN),
    (lambda: BERT(VOCAB, 16, n_layer=1, n_head=2, d_model=16),
     "model: {config} has a GPT (or a subclass of it), this is a BERT; pass a GPT, or no "
     "model to have one built"),
])
def test_resuming_it_with_another_model_is_refused(own_run, model, message):
    directory, _ = own_run
    expected = message.format(run=str(directory), config=directory / "config.json")
    with pytest.raises(ValueError, match=re.escape(expected)):
        Trainer.resume(str(directory), log=quiet, model=model())


def test_a_plain_run_resumed_with_a_model_of_your_own_is_refused(tmp_path):
    train(tmp_path)
    with pytest.raises(ValueError, match=re.escape(
            f"its modules of your own are {OWN}, where the run in {str(tmp_path)!r} "
            f"holds none; pass no model")):
        Trainer.resume(str(tmp_path), log=quiet, model=own_model())


@pytest.mark.parametrize("model, message", [
    (lambda: own_model(vocab_size=40), "model: its vocab_size is 40, where the settings give 26"),
    (lambda: own_model(context=8), "model: its context is 8, where the settings give 16"),
    (lambda: own_model(d_ff=48), "model: its d_ff is 48, where the settings give 64"),
    (lambda: BERT(VOCAB, 16, n_layer=1, n_head=2, d_model=16),
     "model: the settings give a GPT (or a subclass of it), this is a BERT; pass a GPT, or "
     "no model to have one built"),
])
def test_a_model_other_than_the_settings_describe_is_refused_in_one_line(tmp_path, model,
                                                                         message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Trainer.start(TrainConfig(**TINY, iters=2), str(tmp_path / "run"), log=quiet,
                      model=model())
    assert not (tmp_path / "run").exists()          # nothing left behind


def test_a_model_other_than_the_settings_describe_is_refused_before_the_corpus_is_read(
        tmp_path):
    # The corpus was tokenised (minutes, for a large one) before the model was refused. Its
    # vocabulary, which the text gives, is checked once the tokenizer is made.
    corpus = tmp_path / "text.txt"
    corpus.write_text("the cat sat on the mat.\n" * 50)
    for model, message in [(own_model(vocab_size=12, context=8), "its context is 8, where the "
                                                                 "settings give 16"),
                           (own_model(vocab_size=40), "its vocab_size is 40, where the "
                                                      "settings give 12")]:
        told = []
        with pytest.raises(ValueError, match=re.escape(f"model: {message}")):
            Trainer.start(TrainConfig(**TINY, iters=2, corpus=str(corpus), tokenizer="char"),
                          str(tmp_path / "run"), log=told.append, model=model)
        assert not (tmp_path / "run").exists()
        tokenised = [line for line in told if "tokenising" in line]
        assert len(tokenised) == (message.startswith("its vocab_size")), told


def test_a_vocabulary_other_than_the_tokenizer_files_is_refused_before_the_corpus_is_read(
        tmp_path, monkeypatch):
    # A tokenizer file's vocabulary is known before the text is read, yet the model was
    # refused only after the corpus was tokenised with it (minutes, for a large one).
    corpus = tmp_path / "text.txt"
    corpus.write_text("the cat sat on the mat.\n" * 50)
    CharTokenizer.train("the cat sat on the mat.\n").save(tmp_path / "chars.json")   # 12

    def tokenise(*args, **kwargs):
        raise AssertionError("the corpus was tokenised before the model was checked")

    monkeypatch.setattr(train_module, "prepare_data", tokenise)
    with pytest.raises(ValueError, match=re.escape("model: its vocab_size is 40, where the "
                                                   "settings give 12; build it with "
                                                   "vocab_size=12")):
        Trainer.start(TrainConfig(**TINY, iters=2, corpus=str(corpus),
                                  tokenizer=str(tmp_path / "chars.json")),
                      str(tmp_path / "run"), log=quiet, model=own_model(vocab_size=40))
    assert not (tmp_path / "run").exists()


def test_a_run_whose_own_module_has_weights_the_plain_model_would_take_is_refused(tmp_path):
    # A ReLU in place of GELU: the weights fit the plain model, which would load them and
    # compute another function.
    model = own_model()
    model.decoder.layers[0].ffn = GPT(VOCAB, 16, n_layer=1, n_head=2,
                                      d_model=16).decoder.layers[0].ffn
    model.decoder.layers[0].ffn.act = nn.ReLU()
    train(tmp_path, model, iters=1)
    with pytest.raises(checkpoint.CheckpointError,
                       match=re.escape("modules of your own (decoder.layers.0.ffn.act (ReLU))")):
        checkpoint.load_model(tmp_path)


def test_a_run_that_stopped_before_its_first_checkpoint_starts_again_only_with_the_model(
        tmp_path, own_run):
    directory = tmp_path / "early"
    Trainer.start(TrainConfig(**{**TINY, "iters": 2}), str(directory), log=quiet,
                  model=own_model()).close()            # no step: no checkpoint yet
    with pytest.raises(rundir.CheckpointError, match=re.escape(f"({OWN})") + ".*model=model"):
        Trainer.resume(str(directory), log=quiet)
    with pytest.raises(ValueError, match="modules of your own are none"):
        Trainer.resume(str(directory), log=quiet, model=GPT(VOCAB, 16, 1, 2, 16))
    assert Trainer.resume(str(directory), log=quiet, model=own_model()).train(threads=1) == "done"
    assert losses(directory) == losses(own_run[0])    # as the run that never stopped


@pytest.mark.parametrize("model", ["gpt", nn.Linear(2, 2)])
def test_what_is_no_model_of_ours_is_refused_in_one_line(tmp_path, own_run, model):
    # The same refusal at each way in: starting, resuming, loading a checkpoint.
    refusal = f"model: a GPT, BERT or Transformer of tinyformer's .*not {type(model).__name__}"
    with pytest.raises(TypeError, match=refusal):
        Trainer.start(TrainConfig(**TINY, iters=2), str(tmp_path / "run"), log=quiet,
                      model=model)
    assert not (tmp_path / "run").exists()
    with pytest.raises(TypeError, match=refusal):
        checkpoint.load_model(own_run[0], model=model)
    with pytest.raises(TypeError, match=refusal):
        Trainer.resume(str(own_run[0]), log=quiet, model=model)


def test_a_hugging_face_folder_refuses_a_model_of_your_own(tmp_path):
    GPT(VOCAB, 16, n_layer=1, n_head=2, d_model=16).save_pretrained(tmp_path / "hf")
    with pytest.raises(ValueError, match="Hugging Face model's directory, which builds its own "
                                         "model; load it without model="):
        checkpoint.load_model(tmp_path / "hf", model=own_model())


def test_a_model_refused_leaves_the_run_it_would_have_replaced_byte_for_byte(tmp_path):
    # --force replaces a previous run only once the new one may start: a model refused
    # (its vocab_size is known only once the corpus is tokenised) leaves the old run whole.
    train(tmp_path, iters=1)

    def files():
        return {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)
                if name != rundir.LOCK}
    before = files()
    with pytest.raises(ValueError, match="model: its vocab_size is 40"):
        Trainer.start(TrainConfig(**TINY, iters=2), str(tmp_path), force=True, log=quiet,
                      model=own_model(vocab_size=40))
    assert files() == before


@pytest.mark.parametrize("own", [[1], ["decoder.layers.0.ffn (TwoExperts)", None], "a name"])
def test_a_config_json_whose_modules_of_your_own_are_not_names_is_damaged(own):
    # Each entry is printed, joined, in the refusal of a model loaded without its own model:
    # a number there failed as a bug (TypeError), not as the damaged file it is.
    config = {"model": "gpt", "model_config": {}, "files": {"weights": "weights-000002.npz"},
              "modules_of_your_own": own}
    with pytest.raises(checkpoint.CheckpointError, match=re.escape(
            "run/config.json is damaged (its modules_of_your_own is not a list of names)")):
        checkpoint.model_to_load(config, "run", None, 0)


def test_a_setting_the_model_has_and_the_settings_leave_out_must_be_its_default():
    # A config.json written before a setting was added lacks it: the model is checked to be
    # built with that setting's default (None), not let through whatever it holds.
    model = GPT(VOCAB, 16, n_layer=1, n_head=2, d_model=16, d_head=4)
    settings = {key: value for key, value in model.config.items() if key != "d_head"}
    with pytest.raises(ValueError, match=re.escape(
            "model: its d_head is 4, where the settings give None; build it with "
            "d_head=None")):
        checkpoint.check_built_as(model, "gpt", settings, "the settings give")
    checkpoint.check_built_as(GPT(VOCAB, 16, n_layer=1, n_head=2, d_model=16), "gpt",
                              settings, "the settings give")


class HotterLogits(GPT):
    """A GPT whose forward is its own, and nothing else: the modules its config builds."""

    def forward(self, idx, *args, **kwargs):
        return super().forward(idx, *args, **kwargs) * 3.0


class ScaledLogits(GPT):
    """A GPT with a parameter of its own (no module), read by its own forward."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logit_scale = nn.Parameter(np.full(1, 2.0, np.float32))

    def forward(self, idx, *args, **kwargs):
        return super().forward(idx, *args, **kwargs) * self.logit_scale


@pytest.mark.parametrize("cls, own", [
    (HotterLogits, ["HotterLogits.forward"]),
    (ScaledLogits, ["ScaledLogits.forward", "logit_scale (Parameter)"]),
])
def test_a_subclass_with_a_forward_or_a_parameter_of_its_own_is_not_loaded_as_a_plain_gpt(
        tmp_path, cls, own):
    # Its modules are all GPT's, so its checkpoint recorded no modules of your own: a
    # forward of its own was loaded into a plain GPT, which computed another function
    # without a word, and a parameter of its own made the weights' file "not the weights of
    # the model config.json describes", as if damaged.
    def build(seed):
        ta.manual_seed(seed)
        return cls(VOCAB, 16, n_layer=1, n_head=2, d_model=16)
    trained = train(tmp_path, build(0), iters=1).model
    assert rundir.read_config(str(tmp_path))["modules_of_your_own"] == own
    with pytest.raises(checkpoint.CheckpointError,
                       match=re.escape(f"modules of your own ({', '.join(own)})")):
        checkpoint.load_model(tmp_path)
    with pytest.raises(ValueError, match="its modules of your own are none"):
        Trainer.resume(str(tmp_path), log=quiet, model=GPT(VOCAB, 16, 1, 2, 16))
    # Built the same way again, it loads and goes on.
    x = np.array([[1, 2, 3]])
    loaded = checkpoint.load_model(tmp_path, model=build(1))[0]
    np.testing.assert_array_equal(loaded(x).data, trained.eval()(x).data)
    assert Trainer.resume(str(tmp_path), log=quiet, model=build(1)).step == 1


def test_a_subclass_that_only_swaps_modules_in_its_init_names_those_alone():
    # Its __init__ is read through what it builds: no method of its own to name.
    assert layers.modules_of_your_own(Adapted(VOCAB, 16, n_layer=1, n_head=2,
                                              d_model=16)) == ["adapter (Linear)"]
    plain = GPT(VOCAB, 16, n_layer=1, n_head=2, d_model=16)
    plain.decoder.layers[0].attn.q.bias = None               # a parameter removed
    assert layers.modules_of_your_own(plain) == ["decoder.layers.0.attn.q.bias (None)"]


def test_save_pretrained_refuses_a_forward_of_your_own(tmp_path):
    with pytest.raises(ValueError, match=re.escape("no Hugging Face format expresses "
                                                   "HotterLogits.forward")):
        HotterLogits(VOCAB, 16, n_layer=1, n_head=2, d_model=16).save_pretrained(tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
