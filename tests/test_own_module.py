"""A Module of your own whose parameters or layers are set in the class body: the class's,
shared by every instance, which parameters(), state_dict() and train()/eval() never see."""

import re

import numpy as np
import pytest

from tinyautograd import nn


def test_a_parameter_set_in_the_class_body_is_refused_as_the_class_is_defined():
    # It was left out of parameters() without a word: no optimizer trained it, no
    # state_dict saved it.
    with pytest.raises(TypeError, match=re.escape(
            "Scaled.scale: a Parameter set in the class body belongs to the class, where "
            "parameters(), state_dict() and train() do not look; set it in __init__, "
            "self.scale = ...")):
        class Scaled(nn.Module):
            scale = nn.Parameter(np.ones(3))

            def forward(self, x):
                return x * self.scale


@pytest.mark.parametrize("body, named", [
    ({"drop": nn.Dropout(0.5)}, "Block.drop: a Dropout"),      # eval() never reached it
    ({"layers": [nn.Linear(2, 2), nn.Linear(2, 2)]}, "Block.layers.0: a Linear"),
])
def test_a_module_set_in_the_class_body_is_refused(body, named):
    with pytest.raises(TypeError, match=re.escape(named) + ".*self." + list(body)[0] + " = "):
        type("Block", (nn.Module,), body)


def test_settings_in_the_class_body_and_modules_in_init_are_fine():
    class Block(nn.Module):
        d_model = 4                                 # a number, shared: as any class's
        kinds = ("a", "b")

        def __init__(self):
            self.proj = nn.Linear(self.d_model, self.d_model)

    assert [name for name, _ in Block().named_parameters()] == ["proj.weight", "proj.bias"]


def test_torchs_backward_hook_says_how_to_read_a_modules_output_gradient():
    from tinyautograd import Tensor
    model = nn.Sequential(nn.Linear(3, 2))
    for name in ("register_full_backward_hook", "register_backward_hook"):
        with pytest.raises(AttributeError, match=re.escape(
                f"'{name}': that is PyTorch's; here, a forward hook that calls "
                f"out.register_hook(fn)")):
            getattr(model, name)
    # What it says works: the hook hears dL/d(output), and the output is left as it was.
    heard = []

    def fn(grad):
        heard.append(grad.data)

    def hook(module, args, out):
        out.register_hook(fn)

    model[0].register_forward_hook(hook)
    out = model(Tensor(np.ones((4, 3))))
    assert isinstance(out, Tensor)
    (out * 3).sum().backward()
    np.testing.assert_array_equal(heard[0], np.full((4, 2), 3.0))


@pytest.mark.parametrize("name", ["register_module", "add_module"])
def test_torchs_way_to_add_a_submodule_says_to_set_an_attribute(name):
    with pytest.raises(AttributeError, match=re.escape(
            f"'{name}': that is PyTorch's; here, an attribute, self.name = module")):
        getattr(nn.Linear(2, 2), name)
