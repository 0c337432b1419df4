"""What a PyTorch user trying the Python API in a notebook meets: copies, printouts and the
Python protocols, each as torch (or numpy) has them, or refused in one line where they would
silently do otherwise."""

import copy
import pickle

import numpy as np
import pytest
import torch

from tinyautograd import Tensor, nn, optim

# ------------------------------------------------------------------ copy.deepcopy


def test_deepcopy_of_a_computed_tensor_is_refused_as_torch_refuses_it():
    # The copy took along a copy of the graph: its backward filled the .grad of copies of the
    # leaves, and the original leaf's stayed None, without a word.
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"^deepcopy: this tensor was computed by mul, .*"
                                           r"copy t\.detach\(\) for its numbers"):
        copy.deepcopy(x * 2)
    with pytest.raises(RuntimeError):                     # torch's own refusal, for comparison
        copy.deepcopy(torch.tensor([1.0], requires_grad=True) * 2)
    with pytest.raises(RuntimeError, match=r"^deepcopy: "):      # inside a container too
        copy.deepcopy({"logits": x * 2})
    # A shallow copy is left as it was: it shares the graph, so its backward reaches x.
    copy.copy(x * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_deepcopy_of_a_leaf_copies_its_data_grad_and_flags_without_a_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward(create_graph=True)
    assert x.grad_tensor is not None
    c = copy.deepcopy(x)
    assert c.requires_grad and c.is_leaf and c.grad.tolist() == [3.0, 3.0]
    assert not np.shares_memory(c.data, x.data) and not np.shares_memory(c.grad, x.grad)
    assert c.grad_tensor is None                   # the original's graph stays the original's
    # A model copies whole, as before: Parameters stay Parameters, tied ones stay tied.
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[1].weight = model[0].weight
    twin = copy.deepcopy(model)
    assert isinstance(twin[0].weight, nn.Parameter) and twin[1].weight is twin[0].weight
    assert twin[0].weight is not model[0].weight
    assert all(np.array_equal(a, b) for a, b in zip(twin.state_dict().values(),
                                                    model.state_dict().values()))


# ------------------------------------------------------------------ printouts


def test_gelu_prints_as_torch_prints_the_tanh_form_it_computes():
    # A bare GELU() is torch's exact erf form: a printed model said that, and computed the tanh.
    assert repr(nn.GELU()) == repr(torch.nn.GELU(approximate="tanh")) == "GELU(approximate='tanh')"
    model = nn.Sequential(nn.Linear(2, 3), nn.GELU())
    assert "  (1): GELU(approximate='tanh')" in repr(model).splitlines()


# ------------------------------------------------------------------ optimizers


def test_an_optimizers_state_is_found_by_the_parameter_as_torchs_is():
    # optimizer.state[p] was a KeyError printing the whole parameter, and `p in state` False:
    # the state was found only under id(p), which tinyformer's code still uses.
    model = nn.Linear(2, 3)
    optimizer = optim.Adam(model.parameters(), lr=0.1)
    model(Tensor(np.ones((4, 2)))).sum().backward()
    optimizer.step()
    weight = model.weight
    assert weight in optimizer.state and id(weight) in optimizer.state
    assert optimizer.state[weight] is optimizer.state[id(weight)]
    assert optimizer.state.get(weight)["step"] == 1
    assert optimizer.state[weight]["exp_avg"].shape == weight.shape == (2, 3)
    assert Tensor([0.0]) not in optimizer.state and len(optimizer.state) == 2
    # Set by the parameter, the state is the one the next step updates, as in torch.
    optimizer.state[weight] = {**optimizer.state[weight], "step": 10}
    optimizer.step()
    assert optimizer.state[id(weight)]["step"] == 11 and len(optimizer.state) == 2
    # After a load too.
    resumed = optim.Adam(model.parameters(), lr=0.1)
    resumed.load_state_dict(optimizer.state_dict())
    assert resumed.state[model.weight]["step"] == 11 and resumed.state[model.bias]["step"] == 2



def test_an_optimizers_state_is_set_read_and_removed_by_the_parameter_in_every_dict_way():
    # Each way the dict offers keys the parameter as the steps read it, by id: update() and
    # pop() by a parameter kept or looked for it as a key of its own, which no step reads.
    weight = nn.Parameter(np.ones(2))
    optimizer = optim.SGD([weight], lr=0.1, momentum=0.9)
    optimizer.state.update({weight: {"momentum_buffer": np.full(2, 5.0)}})
    assert list(optimizer.state) == [id(weight)]
    weight.grad = np.zeros(2)
    optimizer.step()                                   # the buffer set by the parameter, used
    np.testing.assert_allclose(weight.data, [1 - 0.1 * 0.9 * 5.0] * 2, rtol=1e-6)
    assert optimizer.state.setdefault(weight, {}) is optimizer.state[id(weight)]
    assert optimizer.state.pop(weight)["momentum_buffer"].shape == (2,)
    assert optimizer.state.get(weight) is None and weight not in optimizer.state
    optimizer.state.setdefault(weight, {"momentum_buffer": np.zeros(2)})
    del optimizer.state[weight]
    assert len(optimizer.state) == 0


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_optimizer_keeps_each_parameters_state_on_the_copys_parameter(how):
    # The state is keyed by id(param): the copy's stayed under the originals' ids, found by
    # none of its parameters, and its next step began Adam's moments again from zero.
    model = nn.Linear(2, 3)
    frozen = nn.Parameter(np.ones(2))                      # never updated: no state
    optimizer = optim.Adam([*model.parameters(), frozen], lr=0.1)
    model(Tensor(np.ones((4, 2)))).sum().backward()
    optimizer.step()
    if how == "deepcopy":
        model_copy, optimizer_copy = copy.deepcopy((model, optimizer))
    else:
        model_copy, optimizer_copy = pickle.loads(pickle.dumps((model, optimizer)))
    assert optimizer_copy.param_groups[0]["params"][0] is model_copy.weight
    assert len(optimizer_copy.state) == 2 and frozen not in optimizer.state
    copied = optimizer_copy.state[model_copy.weight]
    assert copied["step"] == 1 and copied["exp_avg"] is not optimizer.state[model.weight][
        "exp_avg"]
    # The next step is the same from the copy as from the original.
    for m, o in ((model, optimizer), (model_copy, optimizer_copy)):
        m(Tensor(np.ones((4, 2)))).sum().backward()
        o.step()
    np.testing.assert_array_equal(model_copy.weight.data, model.weight.data)
    assert optimizer_copy.state[model_copy.weight]["step"] == 2


# ------------------------------------------------------------------ torch's spellings


def test_backward_given_torchs_gradient_keyword_says_to_write_grad():
    # Python's own error said only that the keyword was unexpected.
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"^Tensor\.backward\(\) got an unexpected keyword "
                                        r"argument 'gradient': that is PyTorch's; here, grad: "
                                        r"backward\(grad=g\), or backward\(g\)$"):
        (x * 2).backward(gradient=np.ones(2))
    assert x.grad is None                                   # nothing was run
    (x * 2).backward(grad=np.ones(2))
    assert x.grad.tolist() == [2.0, 2.0]


# ------------------------------------------------------------------ pickle


def test_pickle_keeps_a_tensors_numbers_and_flags_not_its_graph_as_torchs():
    x = Tensor([1.0, 2.0], requires_grad=True)
    # A computed tensor failed with "cannot pickle 'weakref.ReferenceType' object"; torch's
    # comes back a leaf that requires a gradient, and so does ours.
    y = pickle.loads(pickle.dumps(x * 2))
    assert y.is_leaf and y.requires_grad and y.tolist() == [2.0, 4.0]
    assert pickle.loads(pickle.dumps(torch.tensor([1.0], requires_grad=True) * 2)).is_leaf
    # A leaf with a hook failed on the lambda; the hook is left behind, as torch leaves it.
    handle = x.register_hook(lambda grad: grad * 2)
    z = pickle.loads(pickle.dumps(x))
    z.sum().backward()
    assert z.grad.tolist() == [1.0, 1.0]
    handle.remove()
    # A model goes through whole; a shallow copy still shares the graph and the hooks.
    model = nn.Linear(2, 3)
    again = pickle.loads(pickle.dumps(model))
    assert isinstance(again.weight, nn.Parameter)
    assert np.array_equal(again.weight.data, model.weight.data)
    x.register_hook(lambda grad: grad * 2)
    shallow = copy.copy(x * 3)
    shallow.sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]
