"""Where numpy and PyTorch have a convention, Tensor keeps it: the array protocol, dtypes,
conversions to Python numbers, the grad modes, in-place operators."""

import numpy as np
import pytest

from tinyautograd import Tensor

# ------------------------------------------------------------------ the array protocol


def test_np_array_copies_unless_told_not_to():
    t = Tensor([1.0, 2.0])
    for copied in (np.array(t), np.array(t, copy=True), np.array(t, dtype=np.float64)):
        copied[0] = 99.0
        assert t.data[0] == 1.0
    assert np.asarray(t) is t.data                          # as for an ndarray: no copy
    assert np.shares_memory(np.array(t, copy=False), t.data)
    with pytest.raises(ValueError, match="copy"):
        np.array(t, dtype=np.float64, copy=False)           # a new dtype needs a copy
