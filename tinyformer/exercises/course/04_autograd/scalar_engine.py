"""A scalar autograd engine

Training needs the derivative of the loss with respect to every weight. Backpropagation gets
them all in one sweep backwards through the computation, using one fact per operation: its
local derivative. Here you build that sweep for single numbers, as micrograd does; the Tensor
engine in tinyautograd/engine.py is the same idea on arrays.

Every `Value` remembers the Values it was made from (`_children`) and gets a `_backward`
function that, given `out.grad` (d loss / d out), adds each child's share to the child's grad:

    out = a + b       a.grad += out.grad              b.grad += out.grad
    out = a * b       a.grad += b.data * out.grad     b.grad += a.data * out.grad
    out = a ** n      a.grad += n * a.data ** (n - 1) * out.grad        (n a plain number)
    out = tanh(a)     a.grad += (1 - out.data ** 2) * out.grad
    out = exp(a)      a.grad += out.data * out.grad

Always `+=`, never `=`: a Value used twice (y = a * a, or a feeding two branches) receives a
contribution from each use, and the chain rule says they add up. For y = a * a with a = 3,
d y / d a = 2a = 6: the `*` node adds 3 for its left operand and 3 for its right one.

`backward()` runs on the final Value (the loss):
    1. list every Value it depends on in topological order: a Value after all its children;
    2. set its own grad to 1.0 (d loss / d loss);
    3. call `_backward` of each Value in the reverse of that order, so a node passes its grad
       on only when every use of it has already added its share.

Example: d = a * b + a with a = 2, b = -3 gives d.data = -4, a.grad = b + 1 = -2, b.grad = 2.

Subtraction, negation and division are written with +, * and ** here, so they need no
backward of their own.

Your task
    Fill in `_backward` inside __add__, __mul__, __pow__, tanh and exp, and write `backward`.

Check it with:  tinyformer exercises check scalar_engine
"""

import math


class Value:
    """One number, its gradient, and the Values it was computed from."""

    def __init__(self, data, _children=(), _op=""):
        self.data = float(data)
        self.grad = 0.0                   # d loss / d self, filled in by backward()
        self._children = tuple(_children)
        self._op = _op                    # "+", "*", ... (for printing only)
        self._backward = lambda: None     # a leaf has nothing to pass on

    def __repr__(self):
        return f"Value(data={self.data:.4g}, grad={self.grad:.4g})"

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            # TODO: d out / d self = 1 and d out / d other = 1. Add out.grad times each of these
            #       to self.grad and to other.grad (with +=).
            raise NotImplementedError

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            # TODO: d out / d self = other.data and d out / d other = self.data.
            raise NotImplementedError

        out._backward = _backward
        return out

    def __pow__(self, exponent):
        assert isinstance(exponent, (int, float)), "only a plain number as the exponent"
        out = Value(self.data ** exponent, (self,), f"**{exponent}")

        def _backward():
            # TODO: d out / d self = exponent * self.data ** (exponent - 1).
            raise NotImplementedError

        out._backward = _backward
        return out

    def tanh(self):
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():
            # TODO: d tanh(x) / dx = 1 - tanh(x)**2, and tanh(x) is out.data already.
            raise NotImplementedError

        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():
            # TODO: d exp(x) / dx = exp(x), which is out.data.
            raise NotImplementedError

        out._backward = _backward
        return out

    # Given: these are built from the operations above, so their gradients come for free.
    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __truediv__(self, other):
        return self * other ** -1

    def __rtruediv__(self, other):
        return other * self ** -1

    def __radd__(self, other):          # 2 + a
        return self + other

    def __rmul__(self, other):          # 2 * a
        return self * other

    def backward(self):
        """Fill in .grad of every Value this one depends on (d self / d that Value)."""
        # TODO: 1. build `order`, a list of every Value reachable through _children, each one
        #          after its children (a depth-first search with a `visited` set does it);
        #       2. self.grad = 1.0;
        #       3. for each Value in reversed(order): call its _backward().
        raise NotImplementedError
