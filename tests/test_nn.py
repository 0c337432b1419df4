"""nn: parameter discovery and naming, saving and loading, modes, the layers against PyTorch,
initialisers, and an MLP that learns."""

import gc
import inspect
import math
import re
import threading
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.testing import assert_array_equal

import tinyautograd as ta
from dot_source import ops_behind
from precision import to_float64
from tinyautograd import ShapeError, Tensor, nn
from tinyautograd.nn import Parameter


def torch_leaf(array):
    return torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


class Block(nn.Module):
    def __init__(self):
        self.attn = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(x + self.attn(x))


class Model(nn.Module):
    """Every way of holding parameters: attribute, nested module, list, tuple, dict."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.blocks = [Block(), Block()]
        self.heads = {"main": nn.Linear(4, 3), "aux": nn.Linear(4, 1, bias=False)}
        self.scales = (Parameter(np.ones(4)), Parameter(np.ones(4)))
        self.temperature = Parameter(1.0)
        self.not_learned = Tensor(np.ones(3))     # a plain Tensor is not a parameter
        self.sizes = [1, 2, 3]                    # nor are other values in lists
        self.name = "model"

    def forward(self, idx):
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.heads["main"](x * self.scales[0]) / self.temperature


MODEL_NAMES = [
    "scales.0", "scales.1", "temperature",
    "embed.weight",
    "blocks.0.attn.weight", "blocks.0.attn.bias", "blocks.0.norm.weight", "blocks.0.norm.bias",
    "blocks.1.attn.weight", "blocks.1.attn.bias", "blocks.1.norm.weight", "blocks.1.norm.bias",
    "heads.main.weight", "heads.main.bias", "heads.aux.weight",
]


# ------------------------------------------------------------------ Parameter


def test_parameter_is_a_float32_tensor_that_requires_grad():
    p = Parameter([1.0, 2.0])
    assert isinstance(p, Tensor) and p.requires_grad and p.dtype == np.float32
    assert Parameter([1.0], dtype=np.float64).dtype == np.float64
    assert not Parameter([1.0], requires_grad=False).requires_grad
    assert "Parameter" in repr(p)


def test_parameter_works_in_every_op_and_results_are_plain_tensors():
    p = Parameter([1.0, -2.0, 3.0])
    y = ((p * 2 + 1) @ p).tanh() + p.relu().sum() + (np.ones(3) - p)[1]
    assert type(y) is Tensor
    y.backward()
    assert p.grad.shape == (3,) and np.all(np.isfinite(p.grad))
    assert type(p.detach()) is Tensor


# ------------------------------------------------------------------ discovery and names


def test_parameters_are_found_in_attributes_lists_tuples_dicts_and_nested_modules():
    model = Model()
    assert [name for name, _ in model.named_parameters()] == MODEL_NAMES
    assert len(list(model.parameters())) == len(MODEL_NAMES)
    assert model.num_parameters() == 2 * 4 + 1 + 10 * 4 + 2 * (4 * 4 + 4 + 4 + 4) + 4 * 3 + 3 + 4


def test_named_modules_children_and_modules():
    model = Model()
    assert [name for name, _ in model.named_modules()] == [
        "", "embed", "blocks.0", "blocks.0.attn", "blocks.0.norm",
        "blocks.1", "blocks.1.attn", "blocks.1.norm", "heads.main", "heads.aux"]
    assert [name for name, _ in model.named_children()] == [
        "embed", "blocks.0", "blocks.1", "heads.main", "heads.aux"]
    assert list(model.children())[1] is model.blocks[0]
    assert next(model.modules()) is model
    assert dict(model.named_modules())["blocks.1.norm"] is model.blocks[1].norm


def test_modules_in_nested_lists_and_dicts_are_found_with_torchs_names():
    # One level only, they were silently left out of parameters(), training and state_dict.
    class Ours(nn.Module):
        def __init__(self):
            self.transformer = dict(wte=nn.Embedding(5, 4), h=[nn.Linear(4, 4), nn.Linear(4, 4)])
            self.layers = [[nn.Linear(4, 4)], (Parameter(np.ones(2)),)]

    class Torchs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = torch.nn.ModuleDict(dict(
                wte=torch.nn.Embedding(5, 4),
                h=torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)])))
            self.layers = torch.nn.ModuleList([torch.nn.ModuleList([torch.nn.Linear(4, 4)])])

    model = Ours()
    names = [name for name, _ in model.named_parameters()]
    # (the root's own parameter first, as torch orders them)
    assert names[0] == "layers.1.0" and names[1:] == list(Torchs().state_dict())
    assert list(model.state_dict()) == names
    assert dict(model.named_modules())["transformer.h.1"] is model.transformer["h"][1]
    assert model.num_parameters() == 5 * 4 + 3 * (4 * 4 + 4) + 2


def test_a_list_or_dict_that_holds_itself_is_walked_once():
    # Python lets a container hold itself; walking into it again had no end (RecursionError).
    model = nn.Module()
    model.layers = [nn.Linear(2, 3)]
    model.layers.append(model.layers)
    model.heads = {"out": nn.Linear(3, 1)}
    model.heads["again"] = model.heads
    model.more = (model.layers, [model.heads])          # reached again from elsewhere
    assert [name for name, _ in model.named_modules()] == ["", "layers.0", "heads.out"]
    assert list(model.state_dict()) == ["layers.0.weight", "layers.0.bias",
                                        "heads.out.weight", "heads.out.bias"]
    assert model.num_parameters() == 2 * 3 + 3 + 3 * 1 + 1


def test_walking_the_modules_leaves_no_garbage_for_the_cycle_collector():
    # A recursive closure is a reference cycle: one for the collector at every parameters().
    model = Model()
    gc.collect()
    for _ in range(3):
        list(model.named_parameters())
    assert gc.collect() == 0


def test_module_without_super_init_works():
    class Bare(nn.Module):
        def __init__(self):
            self.w = Parameter(np.zeros(2))

        def forward(self, x):
            return x * self.w

    bare = Bare()
    assert bare.training and [n for n, _ in bare.named_parameters()] == ["w"]
    assert bare(Tensor([1.0, 2.0])).shape == (2,)
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


def test_tied_parameter_is_yielded_once_under_its_first_name():
    class Tied(nn.Module):
        def __init__(self):
            self.wte = nn.Embedding(5, 3)
            self.head = nn.Linear(5, 3, bias=False)
            self.head.weight = self.wte.weight

    model = Tied()
    assert [name for name, _ in model.named_parameters()] == ["wte.weight"]
    assert model.num_parameters() == 15
    assert list(model.state_dict()) == ["wte.weight"]


def test_a_tied_parameter_loads_under_any_of_its_names_as_from_torchs_state_dict():
    # torch's state_dict saves a tied parameter (and those of a module held twice) under each
    # name; those names were refused here as unexpected keys, "not in the model".
    class Tied(nn.Module):
        def __init__(self):
            self.encoder = nn.Embedding(5, 3)
            self.decoder = nn.Embedding(5, 3)
            self.decoder.weight = self.encoder.weight
            self.mlp = nn.Sequential(nn.Linear(3, 3))
            self.mlp_again = self.mlp

    class TorchTied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Embedding(5, 3)
            self.decoder = torch.nn.Embedding(5, 3)
            self.decoder.weight = self.encoder.weight
            self.mlp = torch.nn.Sequential(torch.nn.Linear(3, 3))
            self.mlp_again = self.mlp

    torch_state = {name: value.numpy() for name, value in TorchTied().state_dict().items()}
    torch_state["mlp.0.weight"] = torch_state["mlp_again.0.weight"] = (
        torch_state["mlp.0.weight"].T)                          # (out, in) -> (in, out)
    assert sorted(torch_state) == ["decoder.weight", "encoder.weight", "mlp.0.bias",
                                   "mlp.0.weight", "mlp_again.0.bias", "mlp_again.0.weight"]
    model = Tied()
    assert model.load_state_dict(torch_state) == ([], [])
    assert model.decoder.weight is model.encoder.weight
    assert_array_equal(model.encoder.weight.data, torch_state["encoder.weight"])
    assert_array_equal(model.mlp[0].weight.data, torch_state["mlp.0.weight"])
    # One name alone loads it too: the tied one's second name, or the first (state_dict's).
    ones = {**model.state_dict(), "encoder.weight": np.ones((5, 3))}
    assert model.load_state_dict({**ones, "decoder.weight": np.ones((5, 3))}) == ([], [])
    del ones["encoder.weight"]
    ones["decoder.weight"] = np.full((5, 3), 2.0)
    assert model.load_state_dict(ones) == ([], [])
    assert_array_equal(model.encoder.weight.data, np.full((5, 3), 2.0))
    # Two names of one parameter holding different numbers: refused, nothing loaded.
    with pytest.raises(RuntimeError, match=r"nothing was loaded:\n  one parameter \(tied\) "
                                           r"given different numbers under its names: "
                                           r"encoder\.weight and decoder\.weight$"):
        model.load_state_dict({**ones, "encoder.weight": np.zeros((5, 3))})
    assert_array_equal(model.encoder.weight.data, np.full((5, 3), 2.0))
    # A wrong shape under the second name is named as such.
    with pytest.raises(RuntimeError, match=r"decoder\.weight: \(3, 5\) in the state"):
        model.load_state_dict({**ones, "decoder.weight": np.zeros((3, 5))})
    # Under both names, one of them misshapen: the shape is what is wrong, not the numbers.
    with pytest.raises(RuntimeError, match=r"decoder\.weight: \(3, 5\) in the state") as refused:
        model.load_state_dict({**ones, "encoder.weight": np.ones((5, 3)),
                               "decoder.weight": np.zeros((3, 5))})
    assert "tied" not in str(refused.value)


def test_a_module_that_holds_its_parent_loads_under_every_name_without_walking_forever():
    # Every path to a parameter is a name it loads under; a module that holds one of the
    # modules above it (a layer keeping its owner) would lead back up without end.
    model = nn.Module()
    model.layer = nn.Linear(2, 2)
    model.layer.owner = model
    model.again = model.layer
    state = {"again.weight": np.ones((2, 2)), "layer.bias": np.full(2, 2.0)}
    assert model.load_state_dict(state) == ([], [])
    assert_array_equal(model.layer.weight.data, np.ones((2, 2)))
    assert_array_equal(model.layer.bias.data, np.full(2, 2.0))


def test_a_module_that_holds_its_parent_prints_and_applies_without_walking_forever():
    # print(model) and model.apply(init) were a RecursionError for the model loaded above.
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    model[0].owner = model
    assert repr(model) == (
        "Sequential(  # 6 params\n"
        "  (0): Linear(in_features=2, out_features=2, bias=True  # 6 params\n"
        "    (owner): <the Sequential above>\n"
        "  )\n"
        "  (1): ReLU()\n"
        ")")
    visited = []
    assert model.apply(visited.append) is model
    assert [type(m).__name__ for m in visited] == ["Linear", "ReLU", "Sequential"]
    assert repr(model[0]).splitlines()[1:3] == [            # printed from the layer instead
        "  (owner): Sequential(  # 6 params", "    (0): <the Linear above>"]


@pytest.mark.parametrize("walk", ["print", "apply"])
def test_a_model_printed_or_applied_in_two_threads_at_once_is_walked_whole_in_each(walk):
    # The modules being printed (or applied) were kept in one set for all threads: a model
    # printed in one thread while another printed it came out as "<the Sequential above>",
    # and apply skipped its layers.
    entered, go = threading.Event(), threading.Event()

    class Paused(nn.Module):              # holds the other thread inside the walk
        def extra_repr(self):
            if threading.current_thread().name == "other":
                entered.set()
                go.wait(10)
            return ""

    model = nn.Sequential(nn.Sequential(Paused()), nn.ReLU())    # paused two modules deep
    pause = (lambda: repr(model)) if walk == "print" else (lambda: model.apply(
        lambda m: isinstance(m, Paused) and m.extra_repr()))
    other = threading.Thread(target=pause, name="other")
    other.start()
    try:
        assert entered.wait(10)
        visited = []
        if walk == "print":
            assert repr(model) == ("Sequential(\n  (0): Sequential(\n    (0): Paused()\n  )\n"
                                   "  (1): ReLU()\n)")
        else:
            model.apply(visited.append)
            assert [type(m).__name__ for m in visited] == ["Paused", "Sequential", "ReLU",
                                                           "Sequential"]
    finally:
        go.set()
        other.join()


def test_pytorchs_weight_tying_by_assignment_is_refused_at_the_layers_first_forward():
    # nanoGPT's `wte.weight = lm_head.weight`: here a Linear's weight is the transpose of an
    # Embedding's, so the tied embedding would pick rows of (d_model, vocab) and fail only in
    # the sum with the positions, under another op's name.
    wte, head = nn.Embedding(11, 4), nn.Linear(4, 11, bias=False)
    wte.weight = head.weight
    with pytest.raises(ShapeError, match=r"^Embedding: its weight has shape \(4, 11\), not "
                                         r"\(num_embeddings, embedding_dim\) = \(11, 4\); .* "
                                         r"compute the logits as x @ embedding.weight.T$"):
        wte(np.array([[1, 2]]))
    head.weight = nn.Embedding(11, 4).weight                  # the other way round
    with pytest.raises(ShapeError, match=r"^Linear: its weight has shape \(11, 4\)"):
        head(Tensor(np.ones((1, 4))))
    head.weight = Parameter(np.ones((5, 11)))                 # any other shape: no tying advice
    with pytest.raises(ShapeError, match=r"\(4, 11\); make a new layer of the size you need$"):
        head(Tensor(np.ones((1, 4))))


def test_a_parameter_replaced_by_a_plain_tensor_or_array_is_refused_as_torch_refuses_it():
    # Replaced, it would silently leave parameters(): an optimizer would not train it.
    layer = nn.Linear(3, 2)
    for value in (Tensor(np.zeros((3, 2)), requires_grad=True), np.zeros((3, 2))):
        with pytest.raises(TypeError, match=r"as parameter 'weight' of Linear: it would no "
                                            r"longer be learned or saved; assign nn.Parameter"
                                            r"\(value\), or set the values with \.weight\.data "
                                            r"= array$"):
            layer.weight = value
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    layer.weight = Parameter(np.ones((3, 2)))              # what it says works, as None does
    layer.bias = None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    layer.weight.data = np.zeros((3, 2), dtype=np.float32)  # and so does the other way
    assert_array_equal(layer(Tensor(np.ones((1, 3)))).data, [[0.0, 0.0]])


def test_shared_module_is_visited_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [name for name, _ in model.named_modules()] == ["", "0", "1"]
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]


def test_a_module_held_under_two_names_is_one_child_and_apply_visits_it_once_as_torch():
    # children() gave it once per name, so apply ran fn on it once per name: an init that
    # rescales (GPT-2's residual projections) rescaled a shared block twice.
    block = nn.Linear(2, 2)
    ours, theirs = nn.ModuleList([block] * 2), torch.nn.ModuleList([torch.nn.Linear(2, 2)] * 2)
    assert len(list(ours.children())) == len(list(theirs.children())) == 1
    assert list(ours.children())[0] is block
    before = block.weight.data.copy()

    def halve(module):
        if isinstance(module, nn.Linear):
            module.weight.data *= 0.5
    ours.apply(halve)
    assert_array_equal(block.weight.data, before * 0.5)
    assert repr(ours).count("(1): Linear") == 1             # the tree still shows both names


# ------------------------------------------------------------------ containers


def test_sequential_indexing_iteration_naming_and_forward():
    ta.manual_seed(0)
    seq = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    assert len(seq) == 3 and isinstance(seq[1], nn.Tanh) and seq[-1] is seq[2]
    assert [type(m) for m in seq] == [nn.Linear, nn.Tanh, nn.Linear]
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is seq[0]
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)))
    expected = np.tanh(x.data @ seq[0].weight.data + seq[0].bias.data) @ seq[2].weight.data
    np.testing.assert_allclose(seq(x).data, expected + seq[2].bias.data, rtol=1e-5)


def test_sequential_of_a_list_says_to_unpack_it():
    layers = [nn.Linear(3, 5), nn.Tanh()]
    for packed in (layers, tuple(layers)):
        with pytest.raises(TypeError, match=rf"^Sequential holds Modules, not "
                                            rf"{type(packed).__name__}; unpack it: "
                                            r"Sequential\(\*layers\)$"):
            nn.Sequential(packed)
    assert len(nn.Sequential(*layers)) == 2


def test_sequential_of_torchs_ordered_dict_says_how_to_pass_the_modules():
    # It said only "Sequential holds Modules, not OrderedDict".
    layers = OrderedDict(fc=nn.Linear(3, 5), act=nn.Tanh())
    with pytest.raises(TypeError, match=r"^Sequential holds Modules, not OrderedDict: its modules "
                                        r"are named by position here.*Sequential\(\*layers"
                                        r"\.values\(\)\)"):
        nn.Sequential(layers)
    assert len(nn.Sequential(*layers.values())) == 2


def test_module_list_indexing_append_and_names_inside_a_module():
    class Stack(nn.Module):
        def __init__(self):
            self.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))
            self.layers.append(nn.LayerNorm(2))

    model = Stack()
    assert len(model.layers) == 3 and isinstance(model.layers[-1], nn.LayerNorm)
    assert isinstance(model.layers[:2], nn.ModuleList) and len(model.layers[:2]) == 2
    assert [n for n, _ in model.named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
        "layers.2.weight", "layers.2.bias"]
    assert [n for n, _ in model.named_modules()][:3] == ["", "layers", "layers.0"]
    with pytest.raises(TypeError, match="Modules"):
        model.layers.append(Parameter([1.0]))


def test_a_module_assigned_to_an_index_replaces_that_layer_as_in_torch():
    # `model.layers[i] = ...` (swapping a block for another) failed: no item assignment.
    ours, theirs = nn.Sequential(nn.Linear(2, 3), nn.ReLU()), torch.nn.Sequential(
        torch.nn.Linear(2, 3), torch.nn.ReLU())
    ours[-1], theirs[-1] = nn.Linear(3, 1), torch.nn.Linear(3, 1)
    names = [n for n, _ in ours.named_parameters()]
    assert names == [n for n, _ in theirs.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias"]
    assert ours(Tensor(np.ones((4, 2)))).shape == (4, 1)
    layers = nn.ModuleList([nn.Linear(2, 2)])
    with pytest.raises(TypeError, match=r"^ModuleList holds Modules, not Parameter$"):
        layers[0] = Parameter([1.0])
    with pytest.raises(IndexError):
        layers[1] = nn.Linear(2, 2)


def test_module_list_inserts_pops_deletes_and_extends_with_plus_equals_as_torch():
    # None of these was there: AttributeError for insert and pop, TypeError for del and +=.
    a, b, c, d = nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 2), nn.Tanh()
    layers = nn.ModuleList([a])
    layers += [b]
    layers.insert(0, c)
    assert list(layers) == [c, a, b]
    assert layers.pop() is b and layers.pop(0) is c and list(layers) == [a]
    layers.extend([b, c, d])
    del layers[1]
    del layers[-1:]
    assert list(layers) == [a, c] and [n for n, _ in layers.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias"]                  # renumbered, as torch's
    with pytest.raises(TypeError, match=r"^ModuleList holds Modules, not int$"):
        layers.insert(0, 3)
    with pytest.raises(IndexError):
        layers.pop(5)
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    del seq[1]
    assert len(seq) == 1 and seq(Tensor(np.ones((1, 2)))).shape == (1, 2)


def test_extending_a_module_list_checks_every_module_first_and_may_extend_it_by_itself():
    a, b = nn.Linear(1, 1), nn.ReLU()
    layers = nn.ModuleList([a])
    with pytest.raises(TypeError, match=r"^ModuleList holds Modules, not int$"):
        layers += [b, 3]                      # b was added before the error
    with pytest.raises(TypeError, match=r"^Sequential holds Modules, not str$"):
        nn.Sequential(a).extend([b, "relu"])
    assert list(layers) == [a]

    def at_most(n, modules):                  # a failure, where the old extend never ended
        for i, module in enumerate(modules):
            if i == n:
                raise AssertionError("extend kept reading the modules it was adding")
            yield module

    layers.append(b)
    layers.extend(at_most(4, layers))         # it read the list it was appending to
    assert list(layers) == [a, b, a, b]
    layers += layers                          # as a list's l += l
    assert len(layers) == 8 and [n for n, _ in layers.named_parameters()] == [
        "0.weight", "0.bias"]


def test_module_lists_and_sequentials_concatenate_with_plus_as_torchs():
    # `+` was a TypeError, unsupported operand; torch's gives a new list of the same modules.
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    first = nn.ModuleList([a])
    both = first + nn.ModuleList([b]) + [c]
    assert type(both) is nn.ModuleList and list(both) == [a, b, c] and list(first) == [a]
    seq = nn.Sequential(a, b) + nn.Sequential(c)
    assert type(seq) is nn.Sequential and list(seq) == [a, b, c]
    assert seq(Tensor(np.ones((4, 2)))).shape == (4, 1)
    with pytest.raises(TypeError, match=r"^ModuleList holds Modules, not int$"):
        first + [1]


def test_a_subclass_of_sequential_or_module_list_keeps_its_own_parameters_and_modules():
    class Scaled(nn.Sequential):
        def __init__(self):
            super().__init__(nn.Linear(2, 2))
            self.scale = Parameter(np.ones(2))
            self.head = nn.Linear(2, 1)

        def forward(self, x):
            return self.head(super().forward(x) * self.scale)

    class Tower(nn.ModuleList):
        def __init__(self):
            super().__init__([nn.Linear(2, 2)])
            self.gain = Parameter(np.ones(1))

    model = Scaled()
    # as torch: the module's own parameters first, then its children's, items before the rest
    assert [n for n, _ in model.named_parameters()] == [
        "scale", "0.weight", "0.bias", "head.weight", "head.bias"]
    assert list(model.state_dict()) == [n for n, _ in model.named_parameters()]
    assert [n for n, _ in model.named_children()] == ["0", "head"]
    assert [n for n, _ in Tower().named_parameters()] == ["gain", "0.weight", "0.bias"]
    assert len(model) == 1 and [type(m) for m in model] == [nn.Linear]


# ------------------------------------------------------------------ state_dict


def test_a_module_list_subclass_need_not_call_super_init_as_the_module_docstring_says():
    # It was AttributeError: 'Blocks' object has no attribute '_modules'.
    class Blocks(nn.ModuleList):
        def __init__(self, n_layer):
            for _ in range(n_layer):
                self.append(nn.Linear(2, 2))

    class Scaled(nn.Sequential):
        def __init__(self):
            self.scale = Parameter(np.full(2, 3.0))

        def forward(self, x):
            return super().forward(x) * self.scale

    blocks, scaled = Blocks(2), Scaled()
    assert len(blocks) == 2 and [n for n, _ in blocks.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias"]
    assert len(scaled) == 0 and [n for n, _ in scaled.named_parameters()] == ["scale"]
    scaled.append(blocks[0])
    assert_array_equal(scaled(Tensor(np.zeros((1, 2)))).data, 3 * blocks[0].bias.data[None])


def test_a_pytorch_module_method_missing_here_says_what_to_write_instead():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(AttributeError, match=r"^'Sequential' object has no attribute 'double': "
                                             r"that is PyTorch's; here, for p in model"):
        model.double()
    exec(nn._TORCH_MODULE_NAMES["double"], {"np": np, "model": model})    # what it says works
    x = Tensor(np.random.default_rng(0).normal(size=(4, 3)), requires_grad=True, dtype=np.float64)
    assert model(x).dtype == np.float64 and ta.gradcheck(model, x)
    for name in nn._TORCH_MODULE_NAMES:               # each is torch's, and missing here
        assert hasattr(torch.nn.Module(), name) and not hasattr(model, name), name
    with pytest.raises(AttributeError, match=r"^'Sequential' object has no attribute 'nothing'$"):
        _ = model.nothing
    # torch's lookups by name (a bare AttributeError) say where the names are
    with pytest.raises(AttributeError, match=r"'get_submodule': that is PyTorch's; here, "
                                             r"dict\(model\.named_modules\(\)\)\[name\]"):
        model.get_submodule("0")
    assert eval("dict(model.named_modules())['0']") is model[0]
    assert eval("dict(model.named_parameters())['0.bias']") is model[0].bias


def test_a_buffer_is_a_frozen_parameter_saved_by_state_dict_and_moved_by_no_optimizer():
    with pytest.raises(AttributeError, match=r"'register_buffer': that is PyTorch's; here, an "
                                             r"attribute: self.name = nn.Parameter\(array, "
                                             r"requires_grad=False\)"):
        nn.Linear(2, 2).register_buffer("running_mean", np.zeros(2))

    class Shifted(nn.Module):                  # what the error says, followed
        def __init__(self):
            self.layer = nn.Linear(2, 2)
            self.running_mean = nn.Parameter(np.full(2, 0.5), requires_grad=False)

        def forward(self, x):
            return self.layer(x - self.running_mean)

    model = Shifted()
    optimizer = ta.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    model(Tensor(np.ones((3, 2)))).sum().backward()
    optimizer.step()
    assert_array_equal(model.running_mean.data, [0.5, 0.5])
    assert [name for name, p in model.named_parameters() if not p.requires_grad] == [
        "running_mean"]
    fresh = Shifted()
    fresh.running_mean.data = np.zeros(2, dtype=np.float32)
    fresh.load_state_dict(model.state_dict())
    assert_array_equal(fresh.running_mean.data, [0.5, 0.5])


def test_unfreezing_a_module_leaves_its_integer_buffers_frozen_as_torchs_buffers():
    # Hugging Face's models keep int64 position_ids as a buffer, a frozen Parameter here.
    # Unfreezing the model raised on it, after the layers before it had been unfrozen.
    class Positions(nn.Module):
        def __init__(self):
            self.position_ids = nn.Parameter(np.arange(4), requires_grad=False)
            self.is_pad = nn.Parameter(np.zeros(4, dtype=bool), requires_grad=False)

    class Model(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)
            self.positions = Positions()
            self.scale = nn.Parameter(np.ones(2), requires_grad=False)   # a float buffer

    model = Model().requires_grad_(False)
    assert model.requires_grad_(True) is model
    assert {name: p.requires_grad for name, p in model.named_parameters()} == {
        "scale": True, "layer.weight": True, "layer.bias": True,
        "positions.position_ids": False, "positions.is_pad": False}
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_state_dict_round_trip_into_a_fresh_model():
    ta.manual_seed(1)
    source = Model()
    ta.manual_seed(2)
    target = Model()
    assert not np.array_equal(source.embed.weight.data, target.embed.weight.data)
    arrays_before = [p.data for p in target.parameters()]
    result = target.load_state_dict(source.state_dict())
    assert result == ([], []) and result.missing_keys == [] and result.unexpected_keys == []
    for (name, p), (_, q) in zip(source.named_parameters(), target.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    # in place: the same arrays hold the new values
    assert all(p.data is a for p, a in zip(target.parameters(), arrays_before))
    idx = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(source(idx).data, target(idx).data)


@pytest.mark.parametrize("change", ["load_state_dict", "initialiser"])
def test_a_backward_through_weights_loaded_or_initialised_since_the_forward_refuses(change):
    # Loading and the initialisers write into the parameters' own arrays: a backward of a
    # forward made before would pair the old activations with the new weights, a wrong
    # gradient without a word, so it refuses as for any tensor changed in place.
    model = nn.Linear(3, 2)
    x = Tensor(np.ones((4, 3)), requires_grad=True)
    loss = model(x).sum()
    if change == "load_state_dict":
        model.load_state_dict(nn.Linear(3, 2).state_dict())
    else:
        nn.init.normal_(model.weight)
    with pytest.raises(RuntimeError, match=r"^backward of linear: its input 1 \(shape \(3, 2\)\) "
                                           r"was changed in place"):
        loss.backward()


def test_state_dict_holds_copies():
    model = nn.Linear(2, 2)
    state = model.state_dict()
    assert list(state) == ["weight", "bias"] and isinstance(state["weight"], np.ndarray)
    state["weight"][...] = 7.0
    assert not np.any(model.weight.data == 7.0)
    model.weight.data[...] = 3.0
    assert np.all(state["weight"] == 7.0)


def test_load_keeps_the_parameter_dtype_and_accepts_tensors():
    model = nn.Linear(2, 3)
    model.load_state_dict({"weight": np.full((2, 3), 0.5, np.float64), "bias": Tensor([1, 2, 3])})
    assert model.weight.dtype == np.float32 and model.bias.dtype == np.float32
    np.testing.assert_array_equal(model.bias.data, [1.0, 2.0, 3.0])


def test_load_takes_another_models_parameters_themselves():
    # Tensors that require a gradient, as torch's load_state_dict takes them: loading copies
    # their numbers, which is no op of a graph (numpy's reading them was refused as one).
    source, model = nn.Linear(2, 3), nn.Linear(2, 3)
    model.load_state_dict(dict(source.named_parameters()))
    np.testing.assert_array_equal(model.weight.data, source.weight.data)
    np.testing.assert_array_equal(model.bias.data, source.bias.data)
    assert model.weight.data is not source.weight.data


def test_strict_load_lists_every_missing_unexpected_and_misshapen_key():
    model = Model()
    state = model.state_dict()
    del state["blocks.0.attn.bias"], state["heads.aux.weight"]
    state["blocks.9.attn.weight"] = np.zeros(3)
    state["extra"] = np.zeros(1)
    state["embed.weight"] = np.zeros((11, 4))
    state["heads.main.weight"] = np.zeros((3, 4))
    before = model.embed.weight.data.copy(), model.temperature.data.copy()
    state["temperature"] = np.array(5.0)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    for key in ["blocks.0.attn.bias", "heads.aux.weight", "blocks.9.attn.weight", "extra"]:
        assert key in message
    assert "embed.weight: (11, 4) in the state, (10, 4) in the model" in message
    assert "heads.main.weight: (3, 4) in the state, (4, 3) in the model" in message
    assert "missing keys" in message and "unexpected keys" in message
    # nothing was loaded, not even the keys that fit
    np.testing.assert_array_equal(model.embed.weight.data, before[0])
    np.testing.assert_array_equal(model.temperature.data, before[1])


def test_non_strict_load_returns_the_mismatches_but_still_refuses_wrong_shapes():
    model = nn.Linear(2, 3)
    result = model.load_state_dict({"weight": np.ones((2, 3)), "other": np.zeros(1)},
                                   strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    np.testing.assert_array_equal(model.weight.data, np.ones((2, 3)))
    with pytest.raises(RuntimeError, match=r"bias: \(2,\) in the state, \(3,\) in the model"):
        model.load_state_dict({"bias": np.zeros(2)}, strict=False)


def test_a_matrix_in_the_models_shape_reversed_is_named_a_pytorch_linear_weight():
    model = nn.Sequential(nn.Linear(4, 8))
    torch_state = {"0.weight": np.zeros((8, 4)), "0.bias": np.zeros(8)}      # (out, in)
    with pytest.raises(RuntimeError, match=r"wrong shapes: 0\.weight: \(8, 4\) in the state, "
                                           r"\(4, 8\) in the model \(a PyTorch Linear weight "
                                           r"is \(out, in\): transpose it, \.T\)$"):
        model.load_state_dict(torch_state)
    with pytest.raises(RuntimeError, match=r"\(4, 8\) in the model$"):     # another misfit
        model.load_state_dict({"0.weight": np.zeros((4, 9)), "0.bias": np.zeros(8)})
    # A square weight that fits is no PyTorch weight: the misfit is elsewhere.
    square = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4))
    state = {**square.state_dict(), "0.weight": np.zeros((11, 4))}
    with pytest.raises(RuntimeError, match=r"\(10, 4\) in the model$"):
        square.load_state_dict(state)


@pytest.mark.parametrize("state", [nn.Linear(2, 3), None, [1, 2]], ids=["model", "None", "list"])
def test_loading_what_is_not_a_state_dict_says_what_to_pass(state):
    # were: "argument of type 'Linear' is not iterable", and a str join error for the list
    with pytest.raises(TypeError, match=r"^load_state_dict: expected a state dict \(a mapping "
                                        r"of names to arrays\), got (Linear|NoneType|list); "
                                        r"pass model\.state_dict\(\) or np\.load\(path\)$"):
        nn.Linear(2, 3).load_state_dict(state)


def test_an_unexpected_key_that_is_not_a_string_is_listed():
    with pytest.raises(RuntimeError, match=r"unexpected keys \(in the state, not in the "
                                           r"model\): 7$"):
        nn.Linear(2, 3).load_state_dict({**nn.Linear(2, 3).state_dict(), 7: np.zeros(1)})


@pytest.mark.parametrize("bad_bias", [np.array(["1", "2", "3"]), np.array([1j, 2j, 3j])],
                         ids=["text", "complex"])
def test_a_value_that_cannot_be_a_parameters_dtype_is_refused_before_anything_is_loaded(bad_bias):
    model = nn.Linear(2, 3)
    weight_before = model.weight.data.copy()
    with pytest.raises(RuntimeError, match=r"nothing was loaded:\n  wrong dtypes: bias: "):
        model.load_state_dict({"weight": np.ones((2, 3)), "bias": bad_bias})
    np.testing.assert_array_equal(model.weight.data, weight_before)


def test_the_models_own_parameters_under_each_others_names_are_swapped():
    # Two layers swapped from named_parameters(): the second was read after the first had
    # been written over, and both layers ended up with the second's weight (as in torch).
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    first, second = model[0].weight.data.copy(), model[1].weight.data.copy()
    params = dict(model.named_parameters())
    model.load_state_dict({"0.weight": params["1.weight"], "1.weight": params["0.weight"][:]},
                          strict=False)
    np.testing.assert_array_equal(model[0].weight.data, second)
    np.testing.assert_array_equal(model[1].weight.data, first)

def test_a_read_only_parameter_is_refused_before_anything_is_loaded():
    # A Tensor keeps the array it is made from (np.load's with mmap_mode="r", say); numpy
    # refused it only when its turn came, "assignment destination is read-only", naming no
    # parameter, after the parameters before it had been loaded.
    model = nn.Linear(2, 3)
    frozen = model.bias.data.copy()
    frozen.flags.writeable = False
    model.bias.data = frozen
    weight_before = model.weight.data.copy()
    with pytest.raises(RuntimeError, match=r"nothing was loaded:\n  read-only in the model .*"
                                           r"p\.data = p\.data\.copy\(\)\): bias$"):
        model.load_state_dict({"weight": np.ones((2, 3)), "bias": np.ones(3)})
    np.testing.assert_array_equal(model.weight.data, weight_before)
    model.bias.data = model.bias.data.copy()                    # the advice, taken
    model.load_state_dict({"weight": np.ones((2, 3)), "bias": np.ones(3)})
    np.testing.assert_array_equal(model.bias.data, np.ones(3))


# ------------------------------------------------------------------ modes and gradients


def test_train_and_eval_reach_every_module_and_return_self():
    model = Model()
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    assert not model.blocks[1].norm.training and not model.heads["aux"].training
    assert model.train() is model and all(m.training for m in model.modules())
    model.train(False)
    assert not model.blocks[0].attn.training


@pytest.mark.parametrize("mode", ["eval", None, 0])
def test_train_refuses_a_mode_that_is_not_a_bool_as_torch(mode):
    # It was kept as it was and read by its truth: train("eval") left dropout on.
    model = nn.Sequential(nn.Dropout(0.5))
    with pytest.raises(ValueError, match=rf"^train: mode must be True or False, got "
                                         rf"{re.escape(repr(mode))}; model.eval\(\)"):
        model.train(mode)
    with pytest.raises(ValueError):
        torch.nn.Dropout().train(mode)
    assert model[0].training is True and model.train(np.bool_(False)).training is False


def test_dropout_drops_and_rescales_in_training_and_is_the_identity_in_eval():
    ta.manual_seed(0)
    dropout = nn.Dropout(0.25)
    x = Tensor(np.ones((100, 100)))
    y = dropout(x).data
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    assert dropout.eval()(x) is x
    # "0.1" and None failed in a comparison; nan was refused too, True taken as 1
    for p in (1.5, -0.1, float("nan"), "0.1", None, True):
        with pytest.raises(ValueError, match=r"^Dropout: p must be a finite number in \[0, 1\], "
                                             rf"got {re.escape(repr(p))}$"):
            nn.Dropout(p)


def test_dropout_of_zero_is_the_tensor_itself_and_draws_nothing_as_torch():
    # A draw spent on it would shift every later mask of the same seed.
    t = torch.ones(3, 4, requires_grad=True)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    assert torch.nn.functional.dropout(t, 0.0) is t
    assert torch.equal(torch.get_rng_state(), state)
    x = Tensor(np.ones((3, 4)), requires_grad=True)
    generator = np.random.default_rng(0)
    assert ta.functional.dropout(x, 0.0, generator=generator) is x
    assert generator.random() == np.random.default_rng(0).random()


def test_dropout_of_one_drops_everything_as_torch():
    x = Tensor(np.ones((4, 5)), requires_grad=True)
    dropout = nn.Dropout(1.0)
    y = dropout(x)
    assert_array_equal(y.data, torch.nn.functional.dropout(torch.ones(4, 5), 1.0).numpy())
    assert_array_equal(y.data, np.zeros((4, 5)))
    y.sum().backward()
    assert_array_equal(x.grad, np.zeros((4, 5)))
    assert dropout.eval()(x) is x
    assert_array_equal(ta.functional.dropout_mask((3,), 1.0), np.zeros(3))


def test_apply_visits_children_before_parents_as_torch_and_returns_the_module():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    twin = torch.nn.Sequential(torch.nn.Linear(2, 3),
                               torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(3, 1)))
    seen, seen_torch = [], []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    twin.apply(lambda m: seen_torch.append(type(m).__name__))
    assert seen == seen_torch == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]

    def init_weights(module):                                # the usual use: init by type
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
    model.apply(init_weights)
    assert all(not layer.bias.data.any() for layer in (model[0], model[1][1]))


def test_zero_grad_clears_grad_and_grad_tensor():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    model(Tensor([[1.0, 2.0]])).sum().backward(create_graph=True)
    assert all(p.grad is not None and p.grad_tensor is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None and p.grad_tensor is None for p in model.parameters())


# ------------------------------------------------------------------ layers against torch


def test_linear_forward_is_x_at_w_plus_b_and_gradients_match_torch():
    ta.manual_seed(0)
    layer = to_float64(nn.Linear(3, 4))
    assert layer.weight.shape == (3, 4) and layer.bias.shape == (4,)
    x_np = np.random.default_rng(0).standard_normal((2, 5, 3))
    x = Tensor(x_np, requires_grad=True, dtype=np.float64)
    y = layer(x)
    np.testing.assert_allclose(y.data, x_np @ layer.weight.data + layer.bias.data, rtol=1e-12)
    g = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(Tensor(g, dtype=np.float64))      # a bare array would be made float32

    tx, tw, tb = torch_leaf(x_np), torch_leaf(layer.weight.data.T), torch_leaf(layer.bias.data)
    F.linear(tx, tw, tb).backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-7)
    np.testing.assert_allclose(layer.weight.grad, tw.grad.numpy().T, rtol=1e-7)
    np.testing.assert_allclose(layer.bias.grad, tb.grad.numpy(), rtol=1e-7)


def test_linear_without_bias():
    layer = nn.Linear(3, 2, bias=False)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    x = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(layer(x).data, x @ layer.weight.data)


def test_a_linear_layer_with_no_inputs_is_built_empty_as_torchs():
    # 1 / sqrt(0) raised ZeroDivisionError. torch builds it, its bias bound 0 with no fan-in:
    # the output is the bias, zero.
    layer = nn.Linear(0, 3)
    assert layer.weight.shape == (0, 3)
    assert_array_equal(layer.bias.data, np.zeros(3))
    assert_array_equal(layer(np.ones((2, 0), np.float32)).data, np.zeros((2, 3)))


@pytest.mark.parametrize("make, message", [
    # numpy's or math's errors, or a failure at the first forward, before
    (lambda: nn.Linear(-1, 3), "Linear: in_features must be a whole number >= 0, got -1"),
    (lambda: nn.Linear(3, 2.5), "Linear: out_features must be a whole number >= 0, got 2.5"),
    (lambda: nn.Linear(None, 3), "Linear: in_features must be a whole number >= 0, got None"),
    (lambda: nn.Embedding(True, 3),
     "Embedding: num_embeddings must be a whole number >= 0, got True"),
    (lambda: nn.LayerNorm(-1), "LayerNorm: dim must be a whole number >= 0, got -1"),
    (lambda: nn.LayerNorm(2.5), "LayerNorm: dim must be a whole number >= 0, got 2.5"),
    (lambda: nn.RMSNorm("4"), "RMSNorm: dim must be a whole number >= 0, got '4'"),
    (lambda: nn.LayerNorm(4, eps="1e-5"), "LayerNorm: eps must be a finite number, got '1e-5'"),
    (lambda: nn.LayerNorm(4, eps=None), "LayerNorm: eps must be a finite number, got None"),
    (lambda: nn.RMSNorm(4, eps=float("nan")), "RMSNorm: eps must be a finite number, got nan"),
])
def test_layers_refuse_bad_arguments_when_built_in_one_line(make, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make()


def test_rms_norm_with_eps_none_takes_the_inputs_machine_epsilon_as_torch():
    x = np.full((1, 4), 1e-4, np.float32)          # mean(x^2) = 1e-8, below float32's eps
    y = nn.RMSNorm(4, eps=None)(Tensor(x)).data
    expected = torch.nn.RMSNorm(4, eps=None)(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    # float64's own epsilon (2e-16), not float32's (1e-7), which would swamp mean(x^2) = 1e-18
    x = np.full((1, 4), 1e-9)
    y = nn.RMSNorm(4, eps=None)(Tensor(x, dtype=np.float64)).data
    expected = torch.nn.RMSNorm(4, eps=None, dtype=torch.float64)(torch.tensor(x))
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-12)


def test_functional_rms_norm_with_eps_none_takes_the_machine_epsilon_as_torchs():
    # torch.nn.functional.rms_norm's eps=None, as the layer's; it was a TypeError (float + None)
    x = np.full((1, 4), 1e-9)
    y = ta.functional.rms_norm(Tensor(x, dtype=np.float64), None, None).data
    expected = F.rms_norm(torch.tensor(x), (4,), eps=None).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-12)


@pytest.mark.parametrize("x", [np.array([[1, 2, 3, 4]]), [[1.0, 2.0, 3.0, 4.0]]],
                         ids=["integers", "a list"])
def test_rms_norm_layer_with_eps_none_takes_integers_and_lists_as_layer_norm_does(x):
    # Integers compute in float32, so float32's epsilon; numpy's finfo refused int64, and a
    # list has no dtype at all
    y = nn.RMSNorm(4, eps=None)(x)
    expected = nn.RMSNorm(4, eps=np.finfo(np.float32).eps.item())(np.float32(x))
    np.testing.assert_array_equal(y.data, expected.data)


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize("eps", ["1e-5", float("nan"), True])
def test_a_functional_norm_refuses_an_eps_that_is_no_finite_number_in_one_line(name, eps):
    # as the layers do; "1e-5" reached the compiled loop, whose ctypes call said "argument 6:
    # TypeError: wrong type"
    with pytest.raises(ValueError, match=rf"^{name}: eps must be a finite number, got "
                                         rf"{re.escape(repr(eps))}$"):
        getattr(ta.functional, name)(Tensor(np.ones((2, 3))), eps=eps)


def test_linear_init_is_torch_default_uniform():
    ta.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for p in (layer.weight, layer.bias):
        assert p.dtype == np.float32 and np.abs(p.data).max() <= bound
    assert abs(layer.weight.data.std() / (bound / math.sqrt(3)) - 1) < 0.02
    assert abs(layer.bias.data.std() / (bound / math.sqrt(3)) - 1) < 0.15


def test_embedding_matches_torch():
    ta.manual_seed(0)
    emb = to_float64(nn.Embedding(6, 3))
    assert emb.weight.shape == (6, 3)
    idx = np.array([[0, 5, 2], [2, 2, 1]])
    y = emb(idx)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(Tensor(g, dtype=np.float64))

    tw = torch_leaf(emb.weight.data)
    ty = F.embedding(torch.tensor(idx), tw)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-7)
    np.testing.assert_allclose(emb.weight.grad, tw.grad.numpy(), rtol=1e-7)


def test_embedding_init_is_standard_normal():
    ta.manual_seed(0)
    w = nn.Embedding(1000, 100).weight.data
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01


def test_layer_norm_matches_torch():
    norm = to_float64(nn.LayerNorm(5, eps=1e-3))
    np.testing.assert_array_equal(norm.weight.data, np.ones(5))
    np.testing.assert_array_equal(norm.bias.data, np.zeros(5))
    rng = np.random.default_rng(0)
    norm.weight.data = rng.standard_normal(5)        # away from ones and zeros, so that the
    norm.bias.data = rng.standard_normal(5)          # parameter gradients are really tested
    x_np = rng.standard_normal((2, 3, 5)) * 3 + 1
    x = Tensor(x_np, requires_grad=True, dtype=np.float64)
    y = norm(x)
    g = rng.standard_normal(y.shape)
    y.backward(Tensor(g, dtype=np.float64))

    tx, tw, tb = torch_leaf(x_np), torch_leaf(norm.weight.data), torch_leaf(norm.bias.data)
    ty = F.layer_norm(tx, (5,), tw, tb, eps=1e-3)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-7)
    for ours, theirs in [(x.grad, tx), (norm.weight.grad, tw), (norm.bias.grad, tb)]:
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
def test_a_norm_called_with_torchs_normalized_shape_says_so(name):
    x = Tensor(np.ones((2, 4)))
    getattr(F, name)(torch.ones(2, 4), (4,), torch.ones(4))         # torch's order works there
    with pytest.raises(ta.ShapeError, match=r"got \(1,\).*; \(4,\) was taken as the weight: "
                                            r"the norm is always over the last axis, so there "
                                            r"is no normalized_shape argument"):
        getattr(ta.functional, name)(x, (4,), Tensor(np.ones(4)))
    with pytest.raises(ta.ShapeError) as info:
        getattr(ta.functional, name)(x, [1.0, 2.0])     # a weight, only too short: no hint
    assert "normalized_shape" not in str(info.value)
    # torch's whole call, with eps (and layer_norm's bias): one argument more than ours takes
    w = np.ones(4, np.float32)
    torch_call = [(4,), w, w, 1e-5] if name == "layer_norm" else [(4,), w, 1e-5]   # after x
    getattr(F, name)(torch.ones(2, 4), *[torch.tensor(a) if a is w else a for a in torch_call])
    with pytest.raises(TypeError, match=rf"^{name} takes at most {len(torch_call)} positional "
                                        rf"arguments, got {len(torch_call) + 1}; \(4,\) was "
                                        r"taken as the weight: .*no normalized_shape argument"):
        getattr(ta.functional, name)(x, *torch_call)


@pytest.mark.parametrize("name", ["LayerNorm", "RMSNorm"])
def test_a_norm_layer_given_torchs_normalized_shape_says_to_give_the_size(name):
    getattr(torch.nn, name)((4,))                               # torch's takes a tuple
    with pytest.raises(ValueError, match=rf"^{name}: dim must be a whole number >= 0, got "
                                         rf"\(4,\); the norm is over the last axis and takes "
                                         rf"its size \(torch's normalized_shape is a tuple\): "
                                         rf"{name}\(4\)$"):
        getattr(nn, name)((4,))
    with pytest.raises(ValueError, match=rf"reshape the last 2 axes into one and take "
                                         rf"{name}\(12\)$"):
        getattr(nn, name)((3, 4))
    with pytest.raises(ValueError, match=r"got 4\.0$"):       # no tuple: no hint
        getattr(nn, name)(4.0)


def test_norms_without_their_affine_parameters_have_what_torchs_have_and_match_them():
    # LayerNorm(bias=False) has a weight only; RMSNorm(elementwise_affine=False) has nothing.
    x = np.random.default_rng(0).standard_normal((2, 5)) * 3 + 1
    pairs = [(nn.LayerNorm(5, bias=False), torch.nn.LayerNorm(5, bias=False)),
             (nn.RMSNorm(5, elementwise_affine=False),
              torch.nn.RMSNorm(5, eps=1e-6, elementwise_affine=False))]
    for ours, theirs in pairs:
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
        y = ours(Tensor(x, dtype=np.float64))
        expected = theirs.double()(torch.tensor(x)).detach().numpy()
        np.testing.assert_allclose(y.data, expected, rtol=1e-6, atol=1e-12)


def test_layer_norm_given_torchs_elementwise_affine_says_what_to_write():
    torch.nn.LayerNorm(4, elementwise_affine=False)
    with pytest.raises(TypeError, match=r"^LayerNorm\(\) got an unexpected keyword argument "
                                        r"'elementwise_affine': that is PyTorch's; here, drop "
                                        r"it: .*LayerNorm\(dim\)\.requires_grad_\(False\) keeps "
                                        r"them at ones and zeros, which computes the same$"):
        nn.LayerNorm(4, elementwise_affine=False)
    # what it says computes the same as torch's, and learns nothing
    x = np.random.default_rng(0).standard_normal((2, 4)) * 3 + 1
    ours = nn.LayerNorm(4).requires_grad_(False)
    expected = torch.nn.LayerNorm(4, elementwise_affine=False)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours(Tensor(x, dtype=np.float64)).data, expected, atol=1e-12)
    assert not any(p.requires_grad for p in ours.parameters())


LAYERS_WITH_TORCH_NAMESAKES = ["Linear", "Embedding", "LayerNorm", "RMSNorm", "Dropout", "ReLU",
                               "GELU", "SiLU", "Tanh", "Sigmoid", "Sequential", "ModuleList"]


@pytest.mark.parametrize("name", LAYERS_WITH_TORCH_NAMESAKES)
def test_a_layer_given_a_keyword_of_torchs_that_it_lacks_says_what_to_write(name):
    # Every keyword of the torch layer's constructor that ours does not take is named in the
    # error with what to write here (torch's private _weight and _freeze aside).
    ours = inspect.signature(getattr(nn, name)).parameters
    theirs = inspect.signature(getattr(torch.nn, name)).parameters
    lacking = [k for k, p in theirs.items() if k not in ours and not k.startswith("_")
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    args = {"Linear": (2, 3), "Embedding": (5, 3), "LayerNorm": (4,), "RMSNorm": (4,)}
    for keyword in lacking:
        with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument "
                                            rf"'{keyword}': that is PyTorch's; here, "):
            getattr(nn, name)(*args.get(name, ()), **{keyword: None})
    if name in args:                           # any other keyword: Python's own error
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'nothing'$"):
            getattr(nn, name)(*args[name], nothing=None)


def test_every_torch_keyword_hint_is_for_a_keyword_a_torch_layer_takes_and_ours_lacks():
    used = {k for name in LAYERS_WITH_TORCH_NAMESAKES
            for k in inspect.signature(getattr(torch.nn, name)).parameters
            if k not in inspect.signature(getattr(nn, name)).parameters}
    assert set(nn._TORCH_KEYWORDS) <= used, set(nn._TORCH_KEYWORDS) - used


def test_rms_norm_module_takes_its_eps_as_torch():
    x = np.random.default_rng(0).standard_normal((2, 5)) * 0.1     # mean(x^2) well below eps
    y = nn.RMSNorm(5, eps=0.5)(Tensor(x, dtype=np.float64))
    expected = torch.nn.RMSNorm(5, eps=0.5).double()(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(y.data, expected, rtol=1e-6)


def test_a_norm_refuses_a_bias_or_weight_that_does_not_fit_the_last_axis():
    x = Tensor(np.ones((2, 4)))
    with pytest.raises(ta.ShapeError, match=r"layer_norm: input \(2, 4\) needs weight and bias "
                                            r"of shape \(4,\), got \(4,\) and \(3,\)$"):
        ta.functional.layer_norm(x, np.ones(4), np.zeros(3))
    with pytest.raises(ta.ShapeError, match=r"rms_norm: input \(2, 4\) needs a weight of shape "
                                            r"\(4,\), got \(5,\)$"):
        ta.functional.rms_norm(x, np.ones(5))


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
def test_a_norm_of_a_0d_input_says_it_needs_an_axis_to_normalise(name):
    # It was IndexError: tuple index out of range
    with pytest.raises(ta.ShapeError, match=rf"^{name}: a 0-d input has no axis to normalise "
                                            r"\(the norm is over the last axis\): give it at "
                                            r"least one, as x.reshape\(1\)$"):
        getattr(ta.functional, name)(Tensor(np.float32(3.0)))


def test_activation_modules_match_torch():
    x_np = np.linspace(-4, 4, 17)
    x = Tensor(x_np, dtype=np.float64)
    tx = torch.tensor(x_np)
    for module, reference in [(nn.ReLU(), torch.relu), (nn.Tanh(), torch.tanh),
                              (nn.Sigmoid(), torch.sigmoid), (nn.SiLU(), F.silu),
                              (nn.GELU(), lambda t: F.gelu(t, approximate="tanh"))]:
        np.testing.assert_allclose(module(x).data, reference(tx).numpy(), rtol=1e-7, atol=1e-15)


def test_activation_and_dropout_modules_take_torchs_options_where_they_compute_the_same():
    x = Tensor(np.linspace(-4, 4, 17), dtype=np.float64)
    np.testing.assert_array_equal(nn.GELU(approximate="tanh")(x).data, nn.GELU()(x).data)
    np.testing.assert_array_equal(nn.ReLU(inplace=False)(x).data, x.relu().data)
    np.testing.assert_array_equal(nn.SiLU(inplace=False)(x).data, nn.SiLU()(x).data)
    assert nn.Dropout(0.1, inplace=False).p == 0.1
    with pytest.raises(ValueError, match=r"^GELU: approximate='none' is not computed here: ours "
                                         r"is the tanh form \(torch's default 'none' is the "
                                         r"exact erf form\); pass approximate='tanh' or "
                                         r"nothing$"):
        nn.GELU(approximate="none")
    # F.gelu and Tensor.gelu take torch's F.gelu's keyword the same way, with the same check
    ours = nn.GELU()(x).data
    np.testing.assert_array_equal(ta.functional.gelu(x, approximate="tanh").data, ours)
    np.testing.assert_array_equal(x.gelu(approximate="tanh").data, ours)
    for gelu in (ta.functional.gelu, Tensor.gelu):
        with pytest.raises(ValueError, match=r"^gelu: approximate='none' is not computed here: "
                                             r"ours is the tanh form"):
            gelu(x, approximate="none")
    for make in (lambda: nn.ReLU(inplace=True), lambda: nn.SiLU(inplace=True),
                 lambda: nn.Dropout(0.1, inplace=True)):
        with pytest.raises(ValueError, match=r"^(ReLU|SiLU|Dropout): no op works in place here; "
                                             r"drop inplace$"):
            make()


# ------------------------------------------------------------------ initialisers


def relative_error(value, target):
    return abs(value / target - 1)


@pytest.mark.parametrize("shape", [(800, 200), (200, 800)])
def test_scaled_initialisers_have_the_formula_std_with_fan_in_on_axis_0(shape):
    fan_in, fan_out = shape      # our weights are (in, out): the opposite of torch's
    t = Parameter(np.zeros(shape))
    cases = [
        (nn.init.xavier_uniform_, {}, math.sqrt(2 / (fan_in + fan_out))),
        (nn.init.xavier_normal_, {"gain": 2.0}, 2 * math.sqrt(2 / (fan_in + fan_out))),
        (nn.init.kaiming_uniform_, {}, math.sqrt(2 / fan_in)),
        (nn.init.kaiming_normal_, {}, math.sqrt(2 / fan_in)),
        (nn.init.kaiming_normal_, {"nonlinearity": "linear"}, math.sqrt(1 / fan_in)),
        (nn.init.kaiming_uniform_, {"mode": "fan_out"}, math.sqrt(2 / fan_out)),
    ]
    for initialiser, options, std in cases:
        assert initialiser(t, **options) is t
        assert t.dtype == np.float32
        assert relative_error(t.data.std(), std) < 0.02, (initialiser.__name__, options)
        assert abs(t.data.mean()) < 0.02 * std
    bound = math.sqrt(6 / (fan_in + fan_out))
    nn.init.xavier_uniform_(t)
    assert np.abs(t.data).max() <= bound and np.abs(t.data).max() > 0.99 * bound


def test_scaled_initialisers_read_the_fans_from_the_last_two_axes_of_a_stacked_weight():
    # Per-head weights (heads, in, out): the leading axis holds independent copies, so the
    # fans are in = 100 and out = 400, not the heads and the inputs.
    t = Parameter(np.zeros((3, 100, 400)))
    rng = np.random.default_rng(0)
    nn.init.kaiming_normal_(t, generator=rng)
    assert relative_error(t.data.std(), math.sqrt(2 / 100)) < 0.02
    nn.init.xavier_normal_(t, generator=rng)
    assert relative_error(t.data.std(), math.sqrt(2 / (100 + 400))) < 0.02


def test_simple_initialisers_fill_in_place_and_keep_dtype():
    t = Tensor(np.zeros((300, 300)), dtype=np.float64)
    array = t.data
    nn.init.normal_(t, mean=2.0, std=0.5)
    assert t.data is array and t.dtype == np.float64
    assert abs(t.data.mean() - 2.0) < 0.01 and relative_error(t.data.std(), 0.5) < 0.01
    nn.init.uniform_(t, -3.0, -1.0)
    assert t.data.min() >= -3.0 and t.data.max() < -1.0 and abs(t.data.mean() + 2) < 0.01
    np.testing.assert_array_equal(nn.init.zeros_(t).data, 0.0)
    np.testing.assert_array_equal(nn.init.ones_(t).data, 1.0)


def test_torchs_constant_initialiser_is_here_and_its_others_say_what_to_write():
    # nn.init.constant_(layer.bias, 0.0), in most torch models' init, was an AttributeError
    # of a SimpleNamespace, as were trunc_normal_ and orthogonal_, with no word of ours.
    bias = nn.Linear(2, 3).bias
    array = bias.data
    assert nn.init.constant_(bias, 0.25) is bias and bias.data is array
    assert_array_equal(bias.data, torch.nn.init.constant_(torch.empty(3), 0.25).numpy())
    for name in ("trunc_normal_", "orthogonal_", "eye_"):
        assert hasattr(torch.nn.init, name)
        with pytest.raises(AttributeError, match=rf"^'nn.init' has no attribute '{name}': that "
                                                 rf"is PyTorch's; here, .*tensor\.data\[\.\.\.\]"):
            getattr(nn.init, name)
    with pytest.raises(AttributeError, match=r"^'nn.init' has no attribute 'normal'$"):
        nn.init.normal(Tensor([0.0]))


def test_initialisers_are_seeded_and_accept_a_generator():
    def draw(seed=None, generator=None):
        if seed is not None:
            ta.manual_seed(seed)
        return nn.init.kaiming_normal_(Parameter(np.zeros((4, 3))), generator=generator).data

    np.testing.assert_array_equal(draw(seed=3), draw(seed=3))
    assert not np.array_equal(draw(seed=3), draw(seed=4))
    np.testing.assert_array_equal(draw(generator=np.random.default_rng(7)),
                                  draw(generator=np.random.default_rng(7)))


GAINS = [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
         ("selu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0)]


@pytest.mark.parametrize("nonlinearity, param", GAINS)
def test_gains_are_torchs(nonlinearity, param):
    import torch
    expected = torch.nn.init.calculate_gain(nonlinearity, param)
    assert nn.init.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("nonlinearity, a", [("tanh", 0.0), ("selu", 0.0), ("sigmoid", 0.0),
                                             ("leaky_relu", math.sqrt(5))])
def test_kaiming_takes_torchs_nonlinearities_and_slope(nonlinearity, a):
    import torch
    fan_in, fan_out = 400, 300           # our weights are (in, out), torch's (out, in)
    ours = nn.init.kaiming_normal_(Parameter(np.zeros((fan_in, fan_out))), a=a,
                                   nonlinearity=nonlinearity, generator=np.random.default_rng(0))
    theirs = torch.nn.init.kaiming_normal_(torch.zeros(fan_out, fan_in), a=a,
                                           nonlinearity=nonlinearity,
                                           generator=torch.Generator().manual_seed(0))
    assert relative_error(ours.data.std(), theirs.std().item()) < 0.02
    bound = nn.init.kaiming_uniform_(Parameter(np.zeros((fan_in, fan_out))), a,
                                     nonlinearity=nonlinearity).data
    theirs = torch.nn.init.kaiming_uniform_(torch.zeros(fan_out, fan_in), a,
                                            nonlinearity=nonlinearity)
    assert relative_error(np.abs(bound).max(), theirs.abs().max().item()) < 0.01


@pytest.mark.parametrize("initialiser", ["xavier_normal_", "xavier_uniform_", "kaiming_normal_",
                                         "kaiming_uniform_"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_the_scaled_initialisers_fans_are_torchs_on_a_linear_and_swapped_on_an_embedding(
        initialiser, mode):
    # Our fans are the last two axes read as (in, out): a Linear's (in, out) weight gets the
    # numbers torch's (out, in) one gets. An Embedding's (num, dim) table has the same layout
    # in both, which torch reads as (out, in): its kaiming fans are ours swapped (README's
    # "Coming from PyTorch" says so, and that mode="fan_out" here is torch's "fan_in").
    swapped = {"fan_in": "fan_out", "fan_out": "fan_in"}

    def spread(weight):                     # a uniform's bound, a normal's std
        values = np.asarray(weight)
        return np.abs(values).max() if initialiser.endswith("uniform_") else values.std()

    def ours(layer, mode):
        options = {"mode": mode} if initialiser.startswith("kaiming") else {}
        return spread(getattr(nn.init, initialiser)(layer.weight, **options).data)

    def theirs(layer):
        options = {"mode": mode} if initialiser.startswith("kaiming") else {}
        with torch.no_grad():
            return spread(getattr(torch.nn.init, initialiser)(layer.weight, **options).numpy())

    assert relative_error(ours(nn.Linear(400, 100), mode), theirs(torch.nn.Linear(400, 100))) < 0.02
    embedding, torch_embedding = nn.Embedding(400, 100), torch.nn.Embedding(400, 100)
    assert relative_error(ours(embedding, swapped[mode]), theirs(torch_embedding)) < 0.02
    if initialiser.startswith("kaiming"):   # xavier's add the two fans: the same either way
        assert relative_error(ours(embedding, mode), theirs(torch_embedding)) > 0.4


def test_initialiser_errors():
    with pytest.raises(ValueError, match="at least 2 axes"):
        nn.init.xavier_normal_(Parameter(np.zeros(5)))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.init.kaiming_normal_(Parameter(np.zeros((2, 2))), nonlinearity="swish")
    with pytest.raises(ValueError, match="mode"):
        nn.init.kaiming_uniform_(Parameter(np.zeros((2, 2))), mode="fan_both")


@pytest.mark.parametrize("initialiser, arguments, message", [
    (nn.init.normal_, (0.0, float("nan")), r"normal_: std must be a finite number, got nan"),
    (nn.init.normal_, (0.0, -1.0), r"normal_: std must be >= 0, got -1.0"),
    (nn.init.normal_, (float("nan"), 1.0), r"normal_: mean must be a finite number, got nan"),
    (nn.init.uniform_, (1.0, 0.0), r"uniform_: a must be <= b \(the range is \[a, b\)\), "
                                   r"got a=1.0, b=0.0"),
    (nn.init.uniform_, (0.0, float("nan")), r"uniform_: b must be a finite number, got nan"),
])
def test_initialisers_refuse_a_range_or_spread_that_is_no_distribution_in_one_line(
        initialiser, arguments, message):
    # torch refuses these; a NaN std filled the weights with NaN without a word, and numpy's
    # own errors ("high - low < 0") named neither the initialiser nor its argument.
    weight = Parameter(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=rf"^{message}$"):
        initialiser(weight, *arguments)
    if "mean" not in message:                     # torch's fills a NaN mean in
        with pytest.raises(RuntimeError):
            getattr(torch.nn.init, initialiser.__name__)(torch.zeros(2, 3), *arguments)
    assert_array_equal(weight.data, np.zeros((2, 3)))


@pytest.mark.parametrize("initialiser", [nn.init.normal_, nn.init.uniform_,
                                         nn.init.xavier_normal_, nn.init.xavier_uniform_,
                                         nn.init.kaiming_normal_, nn.init.kaiming_uniform_])
@pytest.mark.parametrize("dtype", [np.int64, np.bool_])
def test_random_initialisers_refuse_an_integer_or_bool_tensor_as_torchs(initialiser, dtype):
    # `for p in model.parameters(): normal_(p, std=0.02)` over a model with an integer buffer
    # (position ids) wrote truncated draws, mostly zeros, over its values without a word.
    buffer = Parameter(np.arange(6).reshape(2, 3).astype(dtype), requires_grad=False)
    before = buffer.data.copy()
    name = initialiser.__name__
    with pytest.raises(TypeError, match=rf"^{name}: random values need a floating-point tensor, "
                                        rf"this one is {np.dtype(dtype)}; leave it out"):
        initialiser(buffer)
    assert_array_equal(buffer.data, before)
    # the filling ones keep working on any dtype, as torch's
    assert_array_equal(nn.init.constant_(buffer, 1).data, np.ones((2, 3), dtype))


@pytest.mark.parametrize("initialiser", [nn.init.xavier_normal_, nn.init.xavier_uniform_,
                                         nn.init.kaiming_normal_, nn.init.kaiming_uniform_])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_scaled_initialisers_leave_an_empty_weight_as_it_is_as_torchs(initialiser, mode):
    # A layer with no inputs (Linear(0, 3)) made model.apply(init) divide by a fan of 0.
    layer = nn.Linear(0, 3)
    keywords = {"mode": mode} if "kaiming" in initialiser.__name__ else {}
    for shape in [(0, 3), (3, 0), (0, 0), (2, 0, 0)]:
        empty = Parameter(np.zeros(shape))
        assert initialiser(empty, **keywords) is empty and empty.shape == shape
    initialiser(layer.weight, **keywords)
    assert layer(Tensor(np.zeros((2, 0)))).shape == (2, 3)


def test_the_same_seed_builds_the_same_model():
    def build(seed):
        ta.manual_seed(seed)
        return Model().state_dict()

    first, second, other = build(0), build(0), build(1)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert not np.array_equal(first["blocks.1.attn.weight"], other["blocks.1.attn.weight"])


# ------------------------------------------------------------------ repr


def test_repr_is_a_tree_with_names_settings_and_parameter_counts():
    class GPTish(nn.Module):
        def __init__(self):
            self.wte = nn.Embedding(65, 128)
            self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(128, 4), nn.GELU())])
            self.drop = nn.Dropout(0.1)
            self.ln_f = nn.LayerNorm(128)

    text = repr(GPTish())
    lines = text.splitlines()
    total = 65 * 128 + 128 * 4 + 4 + 2 * 128
    assert lines[0] == f"GPTish(  # {total:,} params"
    assert "  (wte): Embedding(65, 128)  # 8,320 params" in lines
    assert "  (blocks): ModuleList(  # 516 params" in lines
    assert "    (0): Sequential(  # 516 params" in lines
    assert "      (0): Linear(in_features=128, out_features=4, bias=True)  # 516 params" in lines
    assert "      (1): GELU(approximate='tanh')" in lines
    assert "  (drop): Dropout(p=0.1)" in lines
    assert "  (ln_f): LayerNorm(128, eps=1e-05)  # 256 params" in lines
    assert lines[-1] == ")"


# ------------------------------------------------------------------ learning


def two_moons(n, noise, rng):
    angle = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.where(label == 0, np.cos(angle), 1 - np.cos(angle))
    y = np.where(label == 0, np.sin(angle), 0.5 - np.sin(angle))
    points = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))
    return points.astype(np.float32), label


def test_mlp_learns_two_moons_with_plain_gradient_descent():
    ta.manual_seed(0)
    points, labels = two_moons(200, 0.1, np.random.default_rng(0))
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 2))
    x = Tensor(points)
    for _ in range(1000):
        model.zero_grad()
        loss = ta.functional.cross_entropy(model(x), labels)
        loss.backward()
        for p in model.parameters():
            p.data -= 0.5 * p.grad
    accuracy = (model(x).data.argmax(axis=1) == labels).mean()
    assert accuracy == 1.0, f"accuracy {accuracy}, loss {loss.item()}"


def test_a_hand_written_sgd_step_with_augmented_assignment_trains_the_model():
    # The classic loop of a first course: `p -= lr * p.grad` changes the model's parameters
    # in place; parameters() gives the same objects afterwards.
    ta.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
    params = list(model.parameters())
    x = Tensor(np.random.default_rng(0).standard_normal((32, 2)))
    y = Tensor((x.data[:, :1] * x.data[:, 1:] > 0).astype(np.float32))
    losses = []
    for _ in range(30):
        loss = ((model(x) - y) ** 2).mean()
        losses.append(loss.item())
        model.zero_grad()
        loss.backward()
        with ta.no_grad():
            for p in model.parameters():
                p -= 0.2 * p.grad
    assert losses[-1] < 0.8 * losses[0]
    assert all(a is b for a, b in zip(model.parameters(), params))


def test_record_module_paths_stamps_each_op_with_the_module_that_made_it():
    from tinyformer.gpt import GPT
    ta.manual_seed(0)
    model = GPT(vocab_size=7, context=8, n_layer=2, n_head=2, d_model=8)
    idx = np.random.default_rng(0).integers(0, 7, (2, 5))
    unrecorded = model(idx)
    with nn.record_module_paths(model):
        logits = model(idx)
        loss = logits.sum()
    assert unrecorded.grad_fn.module_path is None          # nothing recorded outside
    assert loss.grad_fn.module_path is None                 # made outside any module
    nodes = ops_behind(logits)
    assert all(node.module_path is not None for node in nodes)   # all made inside the model
    recorded = {node.module_path for node in nodes}
    module_names = {name for name, _ in model.named_modules()}
    assert recorded <= module_names
    assert {"decoder.layers.0", "decoder.layers.1"} & {p.rsplit(".", 1)[0] for p in recorded}
    assert any(p.startswith("decoder.layers.1.") for p in recorded)
    # Without a model, the outermost module called is the root: the same paths.
    with nn.record_module_paths():
        again = model(idx)
    assert {n.module_path for n in ops_behind(again)} == recorded


class MakesALayerOnTheFly(nn.Module):
    def __init__(self):
        self.first = nn.Linear(3, 3)

    def forward(self, x):
        h = self.first(x)
        extra = nn.Linear(3, 2)                      # not in the model's tree
        return extra(h) * 2


def test_a_module_outside_the_tree_records_the_path_of_its_caller_and_each_root_its_own():
    model, other = MakesALayerOnTheFly(), nn.Linear(3, 1)
    x = Tensor(np.ones((2, 3)))
    for recorder in (nn.record_module_paths(model), nn.record_module_paths()):
        with recorder:
            y = model(x)
            z = other(x)
        extra = y.grad_fn.inputs[0].grad_fn
        first = extra.inputs[0].grad_fn
        assert (y.grad_fn.module_path, extra.module_path, first.module_path) == ("", "", "first")
    assert z.grad_fn.module_path == ""               # without a model, a second root: its own


def test_a_module_outside_the_tree_called_deep_inside_records_its_callers_path_not_the_roots():
    model, other = nn.Sequential(MakesALayerOnTheFly()), nn.Linear(3, 1)
    x = Tensor(np.ones((2, 3)))
    with nn.record_module_paths(model):
        y = model(x)
        z = other(x)                                 # called by no module of the model's
    extra = y.grad_fn.inputs[0].grad_fn
    assert (y.grad_fn.module_path, extra.module_path) == ("0", "0")
    assert z.grad_fn.module_path is None


def test_skip_init_builds_the_module_without_drawing_random_numbers():
    ta.manual_seed(0)
    state = ta.random.get_state()
    layer = nn.skip_init(nn.Linear, 4, 3)
    assert ta.random.get_state() == state                      # nothing was drawn
    assert layer.weight.shape == (4, 3) and not layer.weight.data.any()
    assert nn.Linear(4, 3).weight.data.any()                   # and afterwards init draws again
    state = ta.random.get_state()
    table = nn.skip_init(nn.Embedding, 5, 2)                   # normal_, as uniform_ above
    assert ta.random.get_state() == state and not table.weight.data.any()


def test_skip_init_refuses_a_seed_given_for_a_generator_as_a_build_that_draws_does():
    # Nothing is drawn, but the module is refused where it would be built without skip_init.
    class SeededByMistake(nn.Module):
        def __init__(self, init):
            super().__init__()
            self.weight = init(ta.zeros(3), generator=7)
    for init in (nn.init.normal_, nn.init.uniform_):
        with pytest.raises(TypeError, match=rf"^{init.__name__}: generator must be a numpy "):
            nn.skip_init(SeededByMistake, init)


def test_forward_hooks_read_and_replace_as_torchs_and_their_handles_remove_them():
    ta.manual_seed(0)
    ours = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        for i in (0, 2):
            theirs[i].weight.copy_(torch.tensor(ours[i].weight.data.T))
            theirs[i].bias.copy_(torch.tensor(ours[i].bias.data))
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    results = []
    for model, wrap in ((ours, Tensor), (theirs, torch.tensor)):
        seen = []
        keep = seen.append
        handles = [model[1].register_forward_pre_hook(lambda m, args: (args[0] * 0 + 1,)),
                   model[1].register_forward_hook(lambda m, args, out, keep=keep: keep(args[0])),
                   model[2].register_forward_hook(lambda m, args, out: out * 10)]
        hooked = model(wrap(x))
        for handle in handles:
            handle.remove()
        plain = model(wrap(x))
        results.append([np.asarray(t.detach().numpy()) for t in (hooked, plain, seen[0])])
    for mine, torchs in zip(*results):
        np.testing.assert_allclose(mine, torchs, rtol=1e-6, atol=1e-6)


def test_a_forward_hook_fires_while_module_paths_are_recorded_and_may_remove_itself():
    layer, calls = nn.Linear(2, 2), []

    def once(module, args, output):
        calls.append(output.shape)
        handle.remove()
        return output * 0

    handle = layer.register_forward_hook(once)
    with nn.record_module_paths(layer):
        assert np.all(layer(Tensor(np.ones((1, 2)))).data == 0)
    assert np.any(layer(Tensor(np.ones((1, 2)))).data != 0)     # removed: once only
    assert calls == [(1, 2)]


@pytest.mark.parametrize("kind", ["pre", "forward"])
def test_a_hook_that_removes_itself_leaves_the_next_hook_to_run(kind):
    # Every hook registered when the call began runs, as in torch: a walk over the list itself
    # would skip the hook after one that removes itself.
    layer, calls = nn.Linear(2, 2), []
    register = (layer.register_forward_pre_hook if kind == "pre"
                else layer.register_forward_hook)

    def first(*_):
        calls.append("first")
        handle.remove()

    handle = register(first)
    register(lambda *_: calls.append("second"))
    layer(Tensor(np.ones((1, 2))))
    layer(Tensor(np.ones((1, 2))))
    assert calls == ["first", "second", "second"]


def test_a_module_given_as_a_hook_is_not_part_of_the_hooked_modules_state():
    # A probe with weights of its own, hooked on a layer: torch keeps it out of the layer's
    # parameters, so that an optimizer does not train it and a checkpoint does not carry it.
    class Probe(nn.Module):
        def __init__(self):
            self.scale = nn.Parameter(np.ones(2))

        def forward(self, module, args, output):
            return output * self.scale

    layer = nn.Linear(2, 2)
    layer.register_forward_hook(Probe())
    layer.register_forward_pre_hook(Probe())
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert list(layer.state_dict()) == ["weight", "bias"]
    assert list(layer.children()) == []


def test_a_hook_handle_removes_its_registration_once_and_as_a_context():
    layer, calls = nn.Linear(2, 2), []

    def count(*_):
        calls.append(1)

    first = layer.register_forward_hook(count)
    layer.register_forward_hook(count)            # the same function, registered again
    first.remove()
    first.remove()                                # again: the other registration stays
    layer(Tensor(np.ones((1, 2))))
    assert len(calls) == 1
    with layer.register_forward_pre_hook(count):
        layer(Tensor(np.ones((1, 2))))
    layer(Tensor(np.ones((1, 2))))
    assert len(calls) == 1 + 2 + 1                # the pre-hook ran inside the block only


def test_a_pre_hook_returning_one_value_replaces_the_one_argument():
    # torch's rule: a tuple replaces the arguments, any other value is the one argument.
    layer = nn.Linear(3, 2)
    layer.register_forward_pre_hook(lambda module, args: args[0] * 0)
    out = layer(Tensor(np.ones((4, 3))))
    assert out.shape == (4, 2)
    assert np.array_equal(out.data, np.broadcast_to(layer.bias.data, (4, 2)))
