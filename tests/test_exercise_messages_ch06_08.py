"""The checkers of chapters 6-8 (attention, the block, training) say what is wrong: each test
breaks a reference solution the way a learner might and reads the message."""

import pytest
from solutions import edited_message, expect_changed_in_place



# ---------------------------------------------------------------------------------------------
# Chapter 6: attention


@pytest.mark.parametrize("old, new, says", [
    (" / math.sqrt(q.shape[-1])", "", "without dividing the scores by sqrt(d_k)"),
    ("softmax(axis=-1)", "softmax(axis=-2)", "softmax over the queries (axis -2)"),
    ("masked_fill(~mask", "masked_fill(mask", "the mask the wrong way round"),
    ("if mask is not None:", "if False:", "ignoring the mask"),
    ("masked_fill(~mask, -1e9)", "masked_fill(~mask, 0.0)", "setting the blocked scores to 0"),
    ("q @ k.swapaxes(-2, -1)", "k @ q.swapaxes(-2, -1)", "the scores k @ q^T, the transpose"),
    ("q @ k.swapaxes(-2, -1)", "q @ k", "the scores q @ k, k not transposed"),
    ("scores.softmax(axis=-1) @ v", "v @ scores.softmax(axis=-1)", "with v @ weights"),
])
def test_06_attention_scaled_dot_product_names_the_mistake(tmp_path, old, new, says):
    message = edited_message(tmp_path, "scaled_dot_product", old, new)
    assert message.startswith("scaled_dot_product(q=")
    assert "at [" in message and says in message


def test_06_attention_scaled_dot_product_names_the_input_cut_off_from_the_graph(tmp_path):
    message = edited_message(tmp_path, "scaled_dot_product",
                             "k.swapaxes(-2, -1)", "k.swapaxes(-2, -1).detach()")
    assert "`k` has no gradient" in message


def test_06_attention_scaled_dot_product_demands_a_tensor(tmp_path):
    message = edited_message(tmp_path, "scaled_dot_product",
                             "return scores.softmax(axis=-1) @ v",
                             "return (scores.softmax(axis=-1) @ v).data")
    assert "it should be a Tensor" in message


def test_06_attention_scaled_dot_product_as_an_array_names_no_mistake_of_its_values(tmp_path):
    # The first case has T == d_k, where dividing by sqrt(T) is right: the values are right,
    # only the type is wrong, and no wrong formula may be blamed.
    message = edited_message(tmp_path, "scaled_dot_product",
                             "return scores.softmax(axis=-1) @ v",
                             "return (scores.softmax(axis=-1) @ v).data")
    assert "exactly what you get" not in message


def test_06_attention_scaled_dot_product_of_the_wrong_shape_says_it_is_a_tensor(tmp_path):
    message = edited_message(tmp_path, "scaled_dot_product",
                             "return scores.softmax(axis=-1) @ v",
                             "return (scores.softmax(axis=-1) @ v)[0]")
    assert "returned a Tensor of shape (2, 2); expected shape (1, 2, 2)" in message


def test_06_attention_causal_mask_the_wrong_way_round(tmp_path):
    message = edited_message(tmp_path, "causal_mask",
                             "np.tril(np.ones((T, T), dtype=bool))",
                             "np.triu(np.ones((T, T), dtype=bool), k=1)")
    assert "causal_mask(T=4)" in message and "the other way round" in message


def test_06_attention_causal_mask_off_by_one(tmp_path):
    message = edited_message(tmp_path, "causal_mask",
                             "np.tril(np.ones((T, T), dtype=bool))",
                             "np.tril(np.ones((T, T), dtype=bool), k=1)")
    assert "at [0, 1] (query 0, key 1): expected False, got True" in message


def test_06_attention_causal_mask_must_be_boolean(tmp_path):
    message = edited_message(tmp_path, "causal_mask",
                             "np.tril(np.ones((T, T), dtype=bool))", "np.tril(np.ones((T, T)))")
    assert "dtype float64" in message and "boolean" in message


def test_06_attention_causal_attention_that_sees_the_future(tmp_path):
    message = edited_message(tmp_path, "causal_mask",
                             "attention(q, k, v, causal_mask(q.shape[1]))", "attention(q, k, v)")
    assert message.startswith("causal_attention(q=")
    assert "changing the token at position 1" in message
    assert "changed the output at position 0" in message


def test_06_attention_causal_attention_with_the_mask_inverted_is_not_told_to_pass_one(tmp_path):
    # ~causal_mask, or torch's convention (True = blocked) copied: a mask is passed already.
    message = edited_message(tmp_path, "causal_mask",
                             "attention(q, k, v, causal_mask(q.shape[1]))",
                             "attention(q, k, v, ~causal_mask(q.shape[1]))")
    assert "can see its future" in message and "the mask the wrong way round" in message
    assert "Pass the causal mask" not in message


@pytest.mark.parametrize("old, new, function, says", [
    ("x.reshape(B, T, n_head, C // n_head).swapaxes(1, 2)", "x.reshape(B, n_head, T, C // n_head)",
     "split_heads", "reshaping straight to (B, n_head, T, d_head)"),
    ("x.reshape(B, T, n_head, C // n_head).swapaxes(1, 2)",
     "x.reshape(B, T, C // n_head, n_head).transpose(0, 3, 1, 2)",
     "split_heads", "reshaping to (B, T, d_head, n_head)"),
    ("x.swapaxes(1, 2).reshape(B, T, n_head * d_head)", "x.reshape(B, T, n_head * d_head)",
     "merge_heads", "reshaping straight to (B, T, C)"),
    ("merge_heads(attention(q, k, v, mask)) @ w_o", "merge_heads(attention(q, k, v, mask))",
     "multi_head_attention", "without the output projection w_o"),
    ("attention(q, k, v, mask)", "attention(q, k, v)", "multi_head_attention",
     "ignoring the mask"),
    ("q = split_heads(x @ w_q, n_head)", "q = split_heads(x @ w_q.T, n_head)",
     "multi_head_attention", "with w_q transposed"),
    ("@ w_o", "@ w_o.T", "multi_head_attention", "with w_o transposed"),
])
def test_06_attention_multi_head_attention_names_the_mistake(tmp_path, old, new, function, says):
    message = edited_message(tmp_path, "multi_head_attention", old, new)
    assert message.startswith(f"{function}(x=") and "at [" in message and says in message


def test_06_attention_split_heads_with_the_head_axes_swapped_names_them_by_the_shape(tmp_path):
    # Where n_head == d_head (the lesson's example) the slip gives the right answer; the next
    # case gets a wrong shape, which is the slip's own.
    message = edited_message(tmp_path, "multi_head_attention",
                             "x.reshape(B, T, n_head, C // n_head)",
                             "x.reshape(B, T, C // n_head, n_head)")
    assert message.startswith("split_heads(x=Tensor of shape (2, 3, 6)")
    assert "expected shape (2, 3, 3, 2)" in message
    assert "by reshaping to (B, T, d_head, n_head)" in message


def test_06_attention_multi_head_attention_gradient_of_the_wrong_weight(tmp_path):
    # v made from a detached w_v: the output is right, w_v's gradient is missing.
    message = edited_message(tmp_path, "multi_head_attention",
                             "v = split_heads(x @ w_v, n_head)",
                             "v = split_heads(x @ w_v.detach(), n_head)")
    assert "`w_v` has no gradient" in message


# ---------------------------------------------------------------------------------------------
# Chapter 7: the Transformer block


@pytest.mark.parametrize("old, new, says", [
    ("return 0.5 * x * (1 + inner.tanh())", "return x * (1 + inner.tanh())",
     "without the factor 0.5"),
    ("(x * x * x)", "(x * x)", "x^2 instead of x^3"),
    ("math.sqrt(2 / math.pi)", "math.sqrt(2 * math.pi)", "sqrt(2 * pi) instead of sqrt(2 / pi)"),
    ("math.sqrt(2 / math.pi)", "math.sqrt(math.pi / 2)", "sqrt(pi / 2) instead of sqrt(2 / pi)"),
    ("math.sqrt(2 / math.pi)", "(2 / math.pi)",
     "2 / pi in front of the bracket, without its square root"),
])
def test_07_block_gelu_names_the_mistake(tmp_path, old, new, says):
    message = edited_message(tmp_path, "feed_forward", old, new)
    assert message.startswith("gelu(x=Tensor([-2., -1., 0., 1., 2.]))") and says in message


def test_07_block_gelu_gradient_through_numpy(tmp_path):
    message = edited_message(tmp_path, "feed_forward",
                             "return 0.5 * x * (1 + inner.tanh())",
                             "import numpy as np\n"
                             "    return 0.5 * x * (1 + np.tanh(inner.data))")
    assert "gradient with respect to `x`" in message and "at [" in message
    assert "tanh(...) taken as a constant" in message


def test_07_block_gelu_with_tanh_wrapped_in_a_new_tensor_is_not_told_its_constants_are_off(
        tmp_path):
    # Tensor(...) of numbers is float32: the values differ from float64's in the 8th digit, and
    # the gradient misses tanh's part. The constants are right; the graph is what is cut.
    message = edited_message(tmp_path, "feed_forward",
                             "return 0.5 * x * (1 + inner.tanh())",
                             "import numpy as np\n"
                             "    from tinyautograd import Tensor\n"
                             "    return 0.5 * x * (1 + Tensor(np.tanh(inner.data)))")
    assert "tanh(...) taken as a constant" in message and "Slightly off" not in message


def test_07_block_gelu_through_a_numpy_function_is_told_to_use_the_tensors_own(tmp_path):
    # np.tanh(tensor) raises numpy's own TypeError about ufuncs; the check says what it means.
    message = edited_message(tmp_path, "feed_forward",
                             "return 0.5 * x * (1 + inner.tanh())",
                             "import numpy as np\n"
                             "    return 0.5 * x * (1 + np.tanh(inner))")
    assert "raised an error" in message and "does not support ufuncs" in message
    assert "A numpy function (np.tanh, np.exp, np.maximum, ...) was given a Tensor: use the " \
           "Tensor's own operations (x.tanh(), x.exp(), x.relu(), ...)" in message


def test_07_block_gelu_with_a_constant_slightly_off_is_told_of_its_values(tmp_path):
    # Close enough to pass the comparison of values, not that of the gradient; but the
    # learner wrote no gradient, so the message is about the values.
    message = edited_message(tmp_path, "feed_forward", "0.044715", "0.0447")
    assert message.startswith("gelu(x=Tensor of shape (2, 3, 4), float64) returned a wrong "
                              "value.")
    assert "Slightly off, and its gradient more so: compare your constants" in message
    assert "gradient with respect to" not in message


def test_07_block_feed_forward_with_relu(tmp_path):
    message = edited_message(tmp_path, "feed_forward", "h = gelu(x @ w1 + b1)",
                             "h = (x @ w1 + b1).relu()")
    assert message.startswith("feed_forward(x=") and "with ReLU instead of GELU" in message


def test_07_block_pre_ln_block_without_residual(tmp_path):
    message = edited_message(tmp_path, "residual_blocks", "x = x + attn(ln1(x))",
                             "x = attn(ln1(x))")
    assert message.startswith("pre_ln_block(x=")
    assert "attn=attn giving zeros" in message
    assert "must return x unchanged" in message


def test_07_block_pre_ln_block_with_the_wrong_norm(tmp_path):
    message = edited_message(tmp_path, "residual_blocks", "return x + ffn(ln2(x))",
                             "return x + ffn(ln1(x))")
    assert "ln1 for both sub-layers" in message


@pytest.mark.parametrize("old, new, block", [
    ("    x = x + attn(ln1(x))           # the residual stream: x itself is never normalised\n"
     "    return x + ffn(ln2(x))", "    return x + attn(ln1(x)) + ffn(ln2(x))", "pre_ln_block"),
    ("    x = ln1(x + attn(x))           # normalise after adding\n"
     "    return ln2(x + ffn(x))", "    y = ln1(x + attn(x))\n    return ln2(y + ffn(x))",
     "post_ln_block"),
])
def test_07_block_with_both_sub_layers_reading_the_input(tmp_path, old, new, block):
    message = edited_message(tmp_path, "residual_blocks", old, new)
    assert message.startswith(f"{block}(x=") and "both sub-layers reading the block's input" \
        in message


@pytest.mark.parametrize("more, says", [
    ((), "ln2(x) + ffn(x): post-LN normalises the sum, ln2(x + ffn(x))"),
    ((("x = ln1(x + attn(x))", "x = ln1(x) + attn(x)"),),
     "ln1(x) + attn(x) and ln2(x) + ffn(x): post-LN normalises the sum"),
])
def test_07_block_post_ln_block_normalising_x_before_adding(tmp_path, more, says):
    message = edited_message(tmp_path, "residual_blocks", "return ln2(x + ffn(x))",
                             "return ln2(x) + ffn(x)", *more)
    assert message.startswith("post_ln_block(x=") and "at [" in message and says in message


def test_07_block_post_ln_block_in_pre_ln_order(tmp_path):
    message = edited_message(tmp_path, "residual_blocks",
                             "x = ln1(x + attn(x))           # normalise after adding\n"
                             "    return ln2(x + ffn(x))",
                             "x = x + attn(ln1(x))\n    return x + ffn(ln2(x))")
    assert message.startswith("post_ln_block(x=") and "attn=attn giving zeros" in message
    assert "returned x unchanged, which is what a pre-LN block does" in message


def test_07_block_post_ln_block_gradient(tmp_path):
    message = edited_message(tmp_path, "residual_blocks", "return ln2(x + ffn(x))",
                             "return ln2(x + ffn(x.detach()))")
    assert "post_ln_block(" in message and "gradient with respect to `x`" in message


# ---------------------------------------------------------------------------------------------
# Chapter 8: training


@pytest.mark.parametrize("old, new, says", [
    ("    m_hat = m / (1 - beta1 ** step)\n    v_hat = v / (1 - beta2 ** step)\n",
     "    m_hat, v_hat = m, v\n", "without the bias correction"),
    ("(np.sqrt(v_hat) + eps)", "np.sqrt(v_hat + eps)", "eps inside the square root"),
    ("beta1 ** step)\n    v_hat = v / (1 - beta2 ** step)",
     "beta1 ** (step + 1))\n    v_hat = v / (1 - beta2 ** (step + 1))",
     "with step + 1 in the bias correction"),
    ("    param = param * (1 - lr * weight_decay)                 # decoupled decay, first\n"
     "    param = param - lr * m_hat / (np.sqrt(v_hat) + eps)",
     "    param = param - lr * m_hat / (np.sqrt(v_hat) + eps)\n"
     "    param = param * (1 - lr * weight_decay)", "decaying after the Adam step"),
    ("param = param * (1 - lr * weight_decay)", "param = param * (1 - weight_decay)",
     "shrinking the parameter by weight_decay alone: the decay is scaled by the learning rate"),
])
def test_08_training_adam_step_names_the_mistake(tmp_path, old, new, says):
    message = edited_message(tmp_path, "adam_step", old, new)
    assert message.startswith("adam_step(param=") and "as new_param" in message
    assert says in message


@pytest.mark.parametrize("number", ["1e-6", "1e-8", "1e-4"])
def test_08_training_adam_step_with_eps_written_in_as_a_number(tmp_path, number):
    # Whatever the number, one of the cases where eps matters gives another eps.
    message = edited_message(tmp_path, "adam_step", "(np.sqrt(v_hat) + eps)",
                             f"(np.sqrt(v_hat) + {number})")
    assert message.startswith("adam_step(param=") and "as new_param" in message
    assert f"with eps = {float(number):.3g} in place of the `eps` argument" in message


def test_08_training_adam_step_without_eps(tmp_path):
    message = edited_message(tmp_path, "adam_step", "(np.sqrt(v_hat) + eps)", "np.sqrt(v_hat)")
    assert "as new_param" in message and "without eps: add it after the square root" in message


@pytest.mark.parametrize("new", ["param = param * (1 - weight_decay)", "param = param * 1"])
def test_08_training_adam_step_shows_a_decay_mistake_on_the_lessons_example(tmp_path, new):
    # The worked example again, with weight decay: numbers to follow by hand, not the random
    # ones of the steps after it.
    message = edited_message(tmp_path, "adam_step", "param = param * (1 - lr * weight_decay)",
                             new)
    assert message.startswith("adam_step(param=[ 1., -2.], grad=[0.5, 0.5], ")
    assert "weight_decay=0.5)" in message.splitlines()[0]


def test_08_training_adam_step_returning_the_corrected_averages(tmp_path):
    message = edited_message(tmp_path, "adam_step", "return param, m, v",
                             "return param, m_hat, v_hat")
    assert message.startswith("adam_step(param=") and "as new_m" in message
    assert "returning the bias-corrected m_hat: return m itself" in message


def test_08_training_adam_step_with_l2_decay(tmp_path):
    message = edited_message(tmp_path, "adam_step", "    m = beta1 * m",
                             "    grad = grad + weight_decay * param\n    m = beta1 * m")
    assert "as new_m" in message and "Adam's L2 decay" in message


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")   # the learner's 1/0
def test_08_training_adam_step_counting_from_zero(tmp_path):
    message = edited_message(tmp_path, "adam_step", "beta1 ** step",
                             "beta1 ** (step - 1)")
    assert "step=1" in message and "not every value is a finite number" in message


@pytest.mark.parametrize("old, new, name", [
    ("    m = beta1 * m + (1 - beta1) * grad",
     "    m *= beta1\n    m += (1 - beta1) * grad", "m"),
    ("param = param * (1 - lr * weight_decay)", "param *= 1 - lr * weight_decay", "param"),
])
def test_08_training_adam_step_that_changes_its_arguments_in_place(tmp_path, old, new, name):
    expect_changed_in_place(
        edited_message(tmp_path, "adam_step", old, new), "adam_step(param=", f"the {name}",
        f"`{name} *= ...`, `{name} -= ...` and `{name}[...] = ...` write into the caller's "
        f"array, and the docstring asks for new arrays: write `{name} = ...`, which makes a new "
        f"one and leaves the argument as it was.")


@pytest.mark.parametrize("new, says", [
    ("return None, m, v", "returned, as new_param, None. Did you forget a `return`?"),
    ("return 'param', m, v", "returned, as new_param, 'param', which is not an array of numbers"),
])
def test_08_training_adam_step_without_a_new_param(tmp_path, new, says):
    message = edited_message(tmp_path, "adam_step", "return param, m, v", new)
    assert message.startswith("adam_step(param=") and says in message
    assert "finite" not in message


def test_08_training_adam_step_returning_a_tensor_names_no_mistake_of_its_values(tmp_path):
    # At weight_decay 0, Adam's L2 decay is AdamW: right values, only the type is wrong.
    message = edited_message(tmp_path, "adam_step", "return param, m, v",
                             "return Tensor(param), m, v", ("import numpy as np",
                                                            "import numpy as np\n"
                                                            "from tinyautograd import Tensor"))
    assert "return an ndarray" in message and "exactly what you get" not in message


def test_08_training_adam_step_returns_three_arrays(tmp_path):
    message = edited_message(tmp_path, "adam_step", "return param, m, v",
                             "return param")
    assert "return three arrays" in message


@pytest.mark.parametrize("old, new, step, says", [
    ("base_lr * (step + 1) / (warmup_steps + 1)", "base_lr * step / warmup_steps", 0,
     "in the warmup"),
    ("progress = (step - warmup_steps) / (total_steps - warmup_steps)",
     "progress = step / total_steps", 3, "measure it from the end of the warmup"),
    ("return min_lr + (base_lr - min_lr) *", "return base_lr *", 4, "without min_lr"),
    ("(1 + math.cos(math.pi * progress)) / 2", "math.cos(math.pi * progress / 2)", 4,
     "with cos(pi * progress / 2), a quarter of a cosine wave"),
    ("    if step >= total_steps:\n        return min_lr\n", "", 10, "past the end"),
])
def test_08_training_warmup_schedule_names_the_step_and_the_mistake(tmp_path, old, new, step, says):
    message = edited_message(tmp_path, "warmup_schedule", old, new)
    assert message.startswith(f"warmup_schedule(step={step}, base_lr=1.0")
    assert says in message


def test_08_training_warmup_schedule_that_reaches_the_cosine_at_the_end_divides_by_zero(tmp_path):
    # Tested after the cosine, the end is reached only past total_steps: a warmup as long as
    # the run then has a cosine of no steps at all, whose progress divides by zero.
    message = edited_message(tmp_path, "warmup_schedule", "if step >= total_steps:",
                             "if step > total_steps:")
    assert message.startswith("warmup_schedule(step=4, base_lr=1.0, warmup_steps=4, "
                              "total_steps=4")
    assert "ZeroDivisionError" in message
    assert "Step 4 is past the end (step >= total_steps), where the lr is min_lr" in message


@pytest.mark.parametrize("old, new", [
    ("if step >= total_steps:", "if step > total_steps:"),
    # The end tested after the cosine: the same cosine of no steps.
    ("    if step >= total_steps:\n        return min_lr\n    progress = (step - warmup_steps) / "
     "(total_steps - warmup_steps)\n",
     "    progress = (step - warmup_steps) / (total_steps - warmup_steps)\n"
     "    if step >= total_steps:\n        return min_lr\n"),
])
def test_08_training_warmup_schedule_dividing_by_zero_at_the_end_says_why(tmp_path, old, new):
    message = edited_message(tmp_path, "warmup_schedule", old, new)
    assert "whose progress divides by total_steps - warmup_steps = 0" in message


def test_08_training_training_loop_without_zero_grad(tmp_path):
    message = edited_message(tmp_path, "training_loop",
                             "        optimizer.zero_grad()                                   "
                             "# backward adds: clear first\n", "")
    assert message.startswith("train(model=Bigram(...)")
    assert "at step 2" in message and "zero_grad" in message


def test_08_training_training_loop_with_a_new_optimizer_every_step(tmp_path):
    # Also right at step 1 and wrong at step 2, like a missing zero_grad: not to be blamed on it.
    message = edited_message(
        tmp_path, "training_loop",
        "        logits = model(inputs)  ",
        "        optimizer = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)\n"
        "        logits = model(inputs)  ")
    assert message.startswith("train(model=Bigram(...)") and "at step 2" in message
    assert "a new optimizer in every step" in message and "zero_grad" not in message


def test_08_training_training_loop_zero_grad_between_backward_and_step(tmp_path):
    message = edited_message(tmp_path, "training_loop",
                             "        optimizer.zero_grad()                                   "
                             "# backward adds: clear first\n        loss.backward()",
                             "        loss.backward()\n        optimizer.zero_grad()")
    assert "no parameter of the model changed" in message
    assert "zero_grad() cleared the gradients before the step" in message


def test_08_training_training_loop_without_the_step(tmp_path):
    message = edited_message(tmp_path, "training_loop", "        optimizer.step()\n", "")
    assert "no parameter of the model changed" in message and "cleared" not in message


def test_08_training_training_loop_records_the_loss_after_the_update(tmp_path):
    message = edited_message(tmp_path, "training_loop",
                             "losses.append(loss.item())",
                             "losses.append(functional.cross_entropy(model(inputs), "
                             "targets).item())")
    assert "at step 0" in message and "one step early" in message


def test_08_training_training_loop_records_the_loss_tensor(tmp_path):
    message = edited_message(tmp_path, "training_loop", "losses.append(loss.item())",
                             "losses.append(loss)")
    assert message.startswith("train(model=Bigram(...)")
    assert "item 0 is a Tensor" in message and "append loss.item()" in message


def test_08_training_training_loop_one_step_short(tmp_path):
    message = edited_message(tmp_path, "training_loop", "for _ in range(steps):",
                             "for _ in range(steps - 1):")
    assert "returned 44 losses for 45 steps" in message


def test_08_training_training_loop_that_ignores_its_arguments(tmp_path):
    message = edited_message(tmp_path, "training_loop", "for _ in range(steps):",
                             "for _ in range(60):")
    assert message.startswith("train(model=Bigram(...)") and "steps=45, lr=0.06" in message
    assert "returned 60 losses for 45 steps: loop `steps` times (the argument)" in message


def test_attention_scaled_by_the_sequence_length_says_so(tmp_path):
    # The first inputs have T == d_k, where this slip gives the right answer.
    message = edited_message(tmp_path, "scaled_dot_product", "math.sqrt(q.shape[-1])",
                             "math.sqrt(q.shape[-2])")
    assert message.startswith("scaled_dot_product(q=Tensor of shape (2, 5, 4)")
    assert "dividing the scores by the square root of the sequence length" in message


@pytest.mark.parametrize("old, new, norm, call", [      # (post-LN's: its zero probe says)
    ("return x + ffn(ln2(x))", "return x + ffn(x)", "ln2", "pre_ln_block("),
    ("x = x + attn(ln1(x))", "x = x + attn(x)", "ln1", "pre_ln_block("),
])
def test_a_block_that_leaves_out_a_norm_says_which(tmp_path, old, new, norm, call):
    message = edited_message(tmp_path, "residual_blocks", old, new)
    assert message.startswith(call)
    assert f"exactly what you get leaving out {norm}: each sub-layer has its own norm" in message


@pytest.mark.parametrize("old, new, says", [
    ("return h @ w2 + b2", "return h @ w2", "without b2, the second layer's bias"),
    ("h = gelu(x @ w1 + b1)", "h = gelu(x @ w1)", "without b1, the first layer's bias"),
    ("    h = gelu(x @ w1 + b1)          # (B, T, d_ff)\n    return h @ w2 + b2",
     "    return gelu((x @ w1 + b1) @ w2 + b2)", "with GELU after the second layer"),
])
def test_feed_forward_names_a_missing_bias_and_a_misplaced_gelu(tmp_path, old, new, says):
    message = edited_message(tmp_path, "feed_forward", old, new)
    assert message.startswith("feed_forward(x=") and f"exactly what you get {says}" in message


# The expected answers are worked out from the arrays under the Tensors given to the learner's
# function: one that zeroed them in place, and answered for the zeros, matched them.
@pytest.mark.parametrize("slug, old, new, opening, changed", [
    ("multi_head_attention", "    B, n_head, T, d_head = x.shape\n",
     "    B, n_head, T, d_head = x.shape\n    x.data[...] = 0\n", "merge_heads(x=", "the x"),
    ("multi_head_attention", "    B, T, C = x.shape\n",
     "    B, T, C = x.shape\n    x.data[...] = 0\n", "split_heads(x=", "the x"),
    ("causal_mask", "    return attention(q, k, v, causal_mask(q.shape[1]))",
     "    for t in (q, k, v):\n        t.data[...] = 0\n"
     "    return attention(q, k, v, causal_mask(q.shape[1]))",
     "causal_attention(q=", "the q and the k and the v"),
])
def test_answers_that_zero_the_tensors_they_were_given_do_not_pass(tmp_path, slug, old, new,
                                                                   opening, changed):
    expect_changed_in_place(edited_message(tmp_path, slug, old, new), opening, changed)


def test_training_loop_that_rewrites_the_data_it_was_given_does_not_pass(tmp_path):
    # It trains a copy of the model for the right losses, leaves the model untrained but for
    # one large bias, and rewrites the targets to the token that bias picks: the final loss
    # was measured on those targets, and came out near zero.
    message = edited_message(
        tmp_path, "training_loop",
        "    optimizer = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)\n",
        "    import copy\n    given, model = model, copy.deepcopy(model)\n"
        "    inputs, targets, targets_given = inputs.copy(), targets.copy(), targets\n"
        "    given.out.bias.data[0] = 100.0\n    targets_given[...] = 0\n"
        "    optimizer = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)\n")
    assert message.startswith("train(model=Bigram(...)"), message
    assert "after training, the model's loss on the data is" in message


@pytest.mark.parametrize("old, new, says", [
    (" / math.sqrt(q.shape[-1])", " * math.sqrt(q.shape[-1])",
     "multiplying the scores by sqrt(d_k) instead of dividing by it"),
    ("softmax(axis=-1)", "softmax(axis=0)",
     "taking the softmax over the batch (axis 0) instead of the keys (axis -1)"),
])
def test_06_attention_scaled_dot_product_names_more_mistakes(tmp_path, old, new, says):
    message = edited_message(tmp_path, "scaled_dot_product", old, new)
    assert message.startswith("scaled_dot_product(q=") and says in message


@pytest.mark.parametrize("old, new", [("x @ w1 + b1", "x @ w1.T + b1"),
                                      ("h @ w2 + b2", "h @ w2.T + b2")])
def test_07_block_feed_forward_with_a_transposed_weight_is_told_the_weights_shapes(tmp_path,
                                                                                   old, new):
    message = edited_message(tmp_path, "feed_forward", old, new)
    assert message.startswith("feed_forward(x=") and "ShapeError: matmul" in message
    assert "The weights are (in, out), used as they are (not transposed" in message
    assert "w1 is (C, d_ff) = (2, 3), so x @ w1 is (B, T, d_ff)" in message
