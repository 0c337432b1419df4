"""Reference solution: a scalar autograd engine."""

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
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent):
        assert isinstance(exponent, (int, float)), "only a plain number as the exponent"
        out = Value(self.data ** exponent, (self,), f"**{exponent}")

        def _backward():
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def tanh(self):
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():
            self.grad += (1 - out.data ** 2) * out.grad

        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad

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
        order, visited = [], set()

        def visit(value):
            if value not in visited:
                visited.add(value)
                for child in value._children:
                    visit(child)
                order.append(value)        # after all its children

        visit(self)
        self.grad = 1.0
        for value in reversed(order):
            value._backward()
