"""A Module of your own whose parameters or layers are set in the class body: the class's,
shared by every instance, which parameters(), state_dict() and train()/eval() never see; or
made in forward(), anew at every call, which no optimizer ever trains."""

import re

import numpy as np
import pytest

from tinyautograd import Tensor, nn


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


class MadeInForward(nn.Module):
    """PyTorch's beginner's slip: a layer and a Parameter made in forward(), anew each call."""

    def __init__(self):
        self.hidden = nn.Linear(2, 2)

    def forward(self, x):
        self.out = nn.Linear(2, 1)
        self.scale = nn.Parameter(np.ones(1))
        return self.out(self.hidden(x).relu()) * self.scale


class Subclassed(MadeInForward):
    def forward(self, x):
        return super().forward(x) + 1          # the parent's forward, run for this module


@pytest.mark.parametrize("model_class", [MadeInForward, Subclassed])
def test_a_layer_made_anew_in_each_forward_is_refused_at_the_second_call(model_class):
    # The new one replaced the old at every step: the optimizer's parameters were never those
    # used, and the loss wandered at random, without a word.
    model = model_class()
    x = Tensor(np.ones((3, 2)))
    assert model(x).shape == (3, 1)            # the first call makes them: a lazy layer's way
    with pytest.raises(RuntimeError, match=rf"^{model_class.__name__}\.out: a new Linear made "
                                           rf"in forward\(\) replaces the one before it at "
                                           rf"every call, so the parameters an optimizer holds "
                                           rf"are never those used, and nothing is learned; "
                                           rf"make it once, in __init__, and only call it in "
                                           rf"forward\(\)$"):
        model(x)


def test_a_parameter_made_anew_in_forward_is_refused_and_one_set_outside_it_is_not():
    class Scaled(nn.Module):
        def __init__(self):
            self.scale = nn.Parameter(np.ones(1))

        def forward(self, x):
            self.scale = nn.Parameter(np.ones(1))
            return x * self.scale

    model = Scaled()
    with pytest.raises(RuntimeError, match=r"^Scaled\.scale: a new Parameter made in forward"):
        model(Tensor(np.ones(2)))
    model.scale = nn.Parameter(np.full(1, 2.0))      # outside forward: replacing is fine
    assert model.scale.item() == 2.0


def test_tying_switching_own_layers_or_a_new_layer_without_parameters_in_forward_is_fine():
    # Not new ones: the optimizer holds these very parameters, so they are learned.
    class Tied(nn.Module):
        def __init__(self):
            self.embed = nn.Parameter(np.ones(2))
            self.unembed = nn.Parameter(np.zeros(2))

        def forward(self, x):
            self.unembed = self.embed                  # tied where it is used
            return x * self.unembed

    class Switching(nn.Module):
        def __init__(self):
            self.even, self.odd = nn.Linear(2, 2), nn.Linear(2, 2)
            self.current = self.even

        def forward(self, x):
            self.current = self.odd if self.current is self.even else self.even
            return self.current(x)

    class Activation(nn.Module):                   # a new layer without parameters: no loss
        def __init__(self):
            self.act = nn.ReLU()

        def forward(self, x):
            self.act = nn.GELU() if self.training else nn.ReLU()
            return self.act(x)

    tied, switching, activation = Tied(), Switching(), Activation()
    x = Tensor(np.ones((1, 2)))
    for _ in range(2):
        assert tied(x).tolist() == [[1.0, 1.0]]
        switching(x)
        activation(x)
    assert tied.unembed is tied.embed and switching.current is switching.even


def test_the_check_reads_an_inherited_forward_and_only_the_modules_own_running_forward():
    class Inheriting(MadeInForward):           # forward() is MadeInForward's, not overridden
        pass

    model = Inheriting()
    x = Tensor(np.ones((3, 2)))
    model(x)
    with pytest.raises(RuntimeError, match=r"^Inheriting\.out: a new Linear made in forward"):
        model(x)

    # Another module of the same class, given a layer while this one's forward runs (a target
    # network made to share this one's layer): not that module's forward, so not refused.
    class WithTarget(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            target = WithTarget()
            target.fc = self.fc                 # replaces target's own fc, outside its forward
            self.targets = [target]
            return self.fc(x)

    with_target = WithTarget()
    with_target(x)
    assert with_target.targets[0].fc is with_target.fc
