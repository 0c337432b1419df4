"""Does attention beat a Markov chain on the built-in corpus?

Every story of the built-in corpus (tinyformer/data.py) names a colour in its first sentence and
recalls it in its last one, a few dozen characters later:

    eve has a green kite. the sun was hot. the kite of eve is green.

A Markov chain sees only its last k characters, so at "the kite of eve is " it can only guess
the colour. A small GPT can look back. This script trains both on the same text and compares:

    python benchmarks/corpus.py                      # the recommended `tinyformer train` run
    OPENBLAS_NUM_THREADS=1 python benchmarks/corpus.py   # steadier timing on a busy machine
    python benchmarks/corpus.py --iters 200          # a shorter run
    python benchmarks/corpus.py --n-layer 3 --d-model 48 --lr 3e-3

What it reports, for the Markov chain and for the GPT:
  val loss   mean cross-entropy per character on the last 10% of the corpus (nats/char)
  recall     on stories from a different seed: given the text up to and including
             "the {thing} of {name} is ", does the greedy continuation spell the right colour?
             Chance is 1 / len(COLOURS).
  ms/step    the GPT's training time per step, wall clock and processor time (the load
             average is printed too: other programs running at the same time slow it down;
             on a busy machine OPENBLAS_NUM_THREADS=1 avoids threads waiting on each other)
"""

import argparse
import math
import os
import sys
import time
from collections import Counter, defaultdict

import numpy as np

from alternate import Help, at_least, settings_refused_as_usage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tinyautograd as ta  # noqa: E402
import tinyautograd.functional as F  # noqa: E402
from tinyautograd.optim import (AdamW, WarmupCosine, clip_grad_norm,  # noqa: E402
                                weight_decay_groups)
from tinyformer.data import (COLOURS, builtin_corpus, lm_batch, recall_prompts,  # noqa: E402
                             recalled)
from tinyformer.gpt import GPT  # noqa: E402
from tinyformer.tokenizers import CharTokenizer  # noqa: E402


def orders(text):
    """The type of --orders: whole numbers, 1 or more, separated by commas."""
    return [at_least(1)(k) for k in text.split(",")]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=Help)
    p.add_argument("--n-chars", type=at_least(1), default=200_000, help="corpus size in characters")
    p.add_argument("--seed", type=at_least(0), default=0, help="corpus, model and batch seed")
    p.add_argument("--orders", type=orders, default="3,5,8,10",
                   help="Markov orders to try (comma-separated); the best on val is reported")
    p.add_argument("--n-layer", type=at_least(1), default=2, help="transformer blocks")
    p.add_argument("--n-head", type=at_least(1), default=4, help="attention heads per block")
    p.add_argument("--d-model", type=at_least(1), default=64,
                   help="width of the residual stream")
    p.add_argument("--context", type=at_least(2), default=128,
                   help="longest sequence the model sees")
    # ReLU: in our runs GELU learned the recall more slowly, and its x ** 3 is slow in numpy.
    p.add_argument("--activation", default="relu", choices=["gelu", "relu"],
                   help="the feed-forward's")
    p.add_argument("--positions", default="learned",
                   choices=["learned", "sinusoidal", "rope", "none"], help="position encoding")
    p.add_argument("--batch-size", type=at_least(1), default=16, help="sequences per step")
    p.add_argument("--iters", type=at_least(1), default=600, help="training steps")
    p.add_argument("--lr", type=float, default=8e-3, help="peak learning rate")
    p.add_argument("--min-lr", type=float, default=1e-4, help="learning rate at the end")
    p.add_argument("--warmup", type=at_least(0), default=60, help="warmup steps")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW's weight decay")
    p.add_argument("--recall-stories", type=at_least(1), default=500,
                   help="held-out stories used to measure recall")
    p.add_argument("--log-every", type=at_least(1), default=100,
                   help="steps between the printed losses")
    return p.parse_args()


# --------------------------------------------------------------------------------------------
# Data


def split(text, val_fraction=0.1):
    """The first 90% of the stories for training, the rest for validation (cut at a line)."""
    cut = text.rfind("\n", 0, int(len(text) * (1 - val_fraction))) + 1
    if not text[:cut].strip() or not text[cut:].strip():
        raise ValueError("too few characters to hold stories back for validation: give "
                         "--n-chars 1000 or more")
    return text[:cut], text[cut:]


# --------------------------------------------------------------------------------------------
# The Markov chain baseline


class MarkovChain:
    """Order-k character model: P(next | last k characters), from counts.

    Contexts seen rarely or never are common at high orders, so each order is smoothed towards
    the order below it (a Dirichlet prior, as in PPM compression):

        P_k(c | h) = (count(h, c) + beta * P_{k-1}(c | h[1:])) / (count(h) + beta)

    down to P_0, the add-one character frequencies. beta = 1 gives the counts most of the say
    once a context has been seen a few times.
    """

    def __init__(self, text, order, vocab, beta=1.0):
        self.order, self.vocab, self.beta = order, vocab, beta
        self.counts = defaultdict(Counter)       # context string (length 0..order) -> counts
        for i in range(len(text)):
            for k in range(min(order, i) + 1):
                self.counts[text[i - k:i]][text[i]] += 1
        self.totals = {h: sum(c.values()) for h, c in self.counts.items()}

    def probs(self, history):
        """A dict char -> probability of the next character, given the text so far."""
        unigram = self.counts[""]
        p = {c: (unigram[c] + 1) / (self.totals[""] + len(self.vocab)) for c in self.vocab}
        for k in range(1, self.order + 1):
            h = history[-k:] if len(history) >= k else None
            if h is None or h not in self.counts:
                break                            # longer contexts are unseen too
            counts, total = self.counts[h], self.totals[h]
            p = {c: (counts[c] + self.beta * p[c]) / (total + self.beta) for c in self.vocab}
        return p

    def loss(self, text):
        """Mean -log P(char | the chars before it), in nats."""
        return -np.mean([math.log(self.probs(text[max(0, i - self.order):i])[text[i]])
                         for i in range(len(text))])

    def greedy(self, prompt, n):
        """The n most likely next characters, one at a time."""
        for _ in range(n):
            p = self.probs(prompt[-self.order:])
            prompt += max(p, key=p.get)
        return prompt[-n:]


def markov_baseline(train_text, val_text, prompts, orders):
    """Fit each order, keep the one with the best val loss (flattering to the baseline)."""
    # The whole corpus's characters, as the GPT's tokenizer has them: a small corpus's
    # validation part can hold one the training part never shows (add-one gives it a chance).
    vocab = sorted(set(train_text) | set(val_text))
    best = None
    for k in orders:
        chain = MarkovChain(train_text, k, vocab)
        loss = chain.loss(val_text)
        print(f"  markov order {k:2d}: val loss {loss:.3f}")
        if best is None or loss < best[1]:
            best = (k, loss, chain)
    k, loss, chain = best
    n = max(map(len, COLOURS)) + 1
    hits = sum(recalled(chain.greedy(prompt, n), colour) for prompt, colour in prompts)
    return k, loss, hits / len(prompts)


# --------------------------------------------------------------------------------------------
# The GPT


def build_gpt(args, vocab_size):
    """The GPT the options describe and its AdamW (decay on matrices only), linear warmup then
    cosine decay: before any work, so that bad sizes or rates are refused at once."""
    ta.manual_seed(args.seed)
    with settings_refused_as_usage(__file__):
        model = GPT(vocab_size, args.context, args.n_layer, args.n_head, args.d_model,
                    activation=args.activation, positions=args.positions)
        optimizer = AdamW(weight_decay_groups(model.named_parameters(), args.weight_decay),
                          lr=args.lr, betas=(0.9, 0.99))
        warmup = min(args.warmup, args.iters)     # a short test run (--iters 20) still works
        schedule = WarmupCosine(optimizer, warmup, args.iters, args.min_lr)
    return model, optimizer, schedule


def train_gpt(args, model, optimizer, schedule, train_ids):
    """The training loop, with gradient clipping."""
    rng = np.random.default_rng(args.seed)
    print(f"GPT: {model.num_parameters():,} parameters, {args.iters} steps")
    start, start_cpu = time.perf_counter(), time.process_time()
    for step in range(1, args.iters + 1):
        x, y = lm_batch(train_ids, args.batch_size, args.context, rng)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % args.log_every == 0 or step == args.iters:
            elapsed = time.perf_counter() - start
            print(f"  step {step:5d}  loss {loss.item():.3f}  "
                  f"{1000 * elapsed / step:.0f} ms/step  {elapsed:.0f} s")
    return time.perf_counter() - start, time.process_time() - start_cpu


def gpt_val_loss(model, val_ids, context):
    """Mean loss per character of the validation text, each character predicted from at least
    context / 2 characters before it, as the Markov chain is given its k: the windows overlap
    by half, and each is scored on its second half only (the first window on all of it)."""
    stride = context // 2
    starts = range(0, len(val_ids) - context, stride)
    x = np.stack([val_ids[s:s + context] for s in starts])
    y = np.stack([val_ids[s + 1:s + 1 + context] for s in starts])
    model.eval()
    nll = []                                                   # (windows, T): -log p(target)
    with ta.no_grad():
        for i in range(0, len(x), 32):
            logits = model(x[i:i + 32]).data
            logits = logits - logits.max(-1, keepdims=True)
            log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            nll.append(-np.take_along_axis(log_probs, y[i:i + 32, :, None], -1)[..., 0])
    nll = np.concatenate(nll)
    return (nll[0].sum() + nll[1:, stride:].sum()) / (nll[0].size + nll[1:, stride:].size)


def gpt_recall(model, tok, prompts):
    """Greedy continuation of every prompt (all exactly `context` characters long)."""
    n = max(map(len, COLOURS)) + 1
    hits = 0
    for i in range(0, len(prompts), 50):
        chunk = prompts[i:i + 50]
        idx = np.array([tok.encode(prompt) for prompt, _ in chunk])
        out = model.generate(idx, n, temperature=0)[:, idx.shape[1]:]
        hits += sum(recalled(tok.decode(row.tolist()), colour)
                    for row, (_, colour) in zip(out, chunk))
    return hits / len(prompts)


# --------------------------------------------------------------------------------------------


def main():
    args = parse_args()
    print(f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f} (before)")
    text = builtin_corpus(args.n_chars, seed=args.seed)
    with settings_refused_as_usage(__file__):
        train_text, val_text = split(text)
    prompts = recall_prompts(args.recall_stories, seed=args.seed + 1000, context=args.context)
    lines = text.splitlines()
    print(f"corpus: {len(text):,} chars, {len(lines):,} stories of {min(map(len, lines))} to "
          f"{max(map(len, lines))} chars; {len(COLOURS)} colours, so chance recall is "
          f"{1 / len(COLOURS):.0%}")

    # The recall stories' characters too: a small corpus may lack a name or colour they hold.
    tok = CharTokenizer.train(text + "".join(prompt for prompt, _ in prompts))
    model, optimizer, schedule = build_gpt(args, tok.vocab_size)

    start = time.perf_counter()
    k, markov_loss, markov_recall = markov_baseline(train_text, val_text, prompts, args.orders)
    markov_time = time.perf_counter() - start

    train_ids = np.array(tok.encode(train_text), dtype=np.int64)
    val_ids = np.array(tok.encode(val_text), dtype=np.int64)
    train_time, cpu_time = train_gpt(args, model, optimizer, schedule, train_ids)
    gpt_loss = gpt_val_loss(model, val_ids, args.context)
    recall = gpt_recall(model, tok, prompts)
    print(f"load average {os.getloadavg()[0]:.2f} (after)")

    gpt_name = f"GPT {args.n_layer}x{args.d_model}, {args.n_head} heads, ctx {args.context}"
    print()
    print(f"{'model':<34} {'ms/step':>8} {'cpu ms':>7} {'train s':>8} {'val loss':>9} "
          f"{'recall':>7}")
    print("-" * 78)
    print(f"{f'Markov chain, order {k}':<34} {'':>8} {'':>7} {markov_time:8.1f} "
          f"{markov_loss:9.3f} {markov_recall:7.0%}")
    print(f"{gpt_name:<34} {1000 * train_time / args.iters:8.0f} "
          f"{1000 * cpu_time / args.iters:7.0f} {train_time:8.1f} {gpt_loss:9.3f} {recall:7.0%}")
    print(f"\nrecall on {len(prompts)} held-out stories; chance is {1 / len(COLOURS):.0%}. "
          f"ms/step is wall-clock time; cpu ms is the\nprocessor time this process used per "
          f"step (all its threads), which other programs do not inflate.")


if __name__ == "__main__":
    main()
