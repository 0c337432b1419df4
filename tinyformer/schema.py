"""What a setting may be: one rule per setting, used wherever settings come in.

A run's settings arrive from command-line options, from a TOML file and, when a run is resumed
or a checkpoint loaded, from config.json. Each source is checked against the same rules, here,
before any work starts, so that a wrong type, a value out of range, NaN or infinity gets one
line naming the setting and where it came from, never a traceback from deep inside numpy.

    RULES = {"lr": Number(above=0), "n_layer": Whole(1, 1_000), "model": OneOf("gpt", "bert")}
    check_settings({"lr": float("nan")}, RULES, where="run.toml")
    # ValueError: lr in run.toml must be a finite number > 0, got nan
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
from typing import Any, Callable, Sequence


class BadInput(ValueError):
    """A ValueError that is the input's fault, not the code's: a setting, a file, a text or a
    checkpoint refused, the message one line saying what is wrong and what to do. The checks
    of what comes in raise it (CheckpointError and the other refusals of a file derive from
    it), so that a program around a whole piece of work (the command line around a training
    run's start) tells the input refused from a ValueError of a bug in the work, which it
    must not blame on the user. A caller that catches ValueError catches it too."""


class Rule:
    """A setting's type and range; `why(value)` is None for a good value, else what is wrong,
    the value written as `spell(value)` says (repr, Python's spelling, by default; a setting
    read from a file is told in the file's: file_spelling)."""

    def why(self, value: Any, spell: Callable[[Any], str] = repr) -> str | None:
        """None if `value` keeps the rule, else what is wrong with it ("must be a whole number
        >= 1, got 0"), the value written by `spell`: written by each rule."""
        raise NotImplementedError


def file_spelling(value: Any) -> str:
    """`value` as a TOML or JSON file writes it, for a message about a setting read from one:
    `true`, not Python's `True`, which the file does not hold (a list's items too). Any other
    value as repr writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(map(file_spelling, value)) + "]"
    return repr(value)


class Whole(Rule):
    """A whole number in [low, high] (booleans are not numbers here, though Python says so)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def why(self, value: Any, spell: Callable[[Any], str] = repr) -> str | None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return f"must be a whole number >= {self.low}, got {spell(value)}"
        if value < self.low:
            return f"must be a whole number >= {self.low}, got {spell(value)}"
        if value > self.high:
            return f"must be at most {self.high:,}, got {value:,}"
        return None


class Number(Rule):
    """A finite number in [low, high], or in (above, high] when `above` is given; `below`
    makes the top open, [low, below)."""

    def __init__(self, low: float | None = None, high: float = math.inf,
                 above: float | None = None, below: float | None = None) -> None:
        self.low, self.high, self.above, self.below = low, high, above, below

    def describe(self) -> str:
        """The range in words, for a message: "in [0, 1]", "in (0, 1]", ">= 0"."""
        bottom = f"> {self.above}" if self.above is not None else f">= {self.low}"
        if self.below is not None:
            return f"in [{self.low}, {self.below})" if self.above is None else \
                f"in ({self.above}, {self.below})"
        if math.isfinite(self.high):
            return f"in [{self.low}, {self.high}]" if self.above is None else \
                f"in ({self.above}, {self.high}]"
        return bottom

    def why(self, value: Any, spell: Callable[[Any], str] = repr) -> str | None:
        ok = (is_finite_number(value)
              and (self.above is None or value > self.above)
              and (self.low is None or value >= self.low)
              and (self.below is None or value < self.below)
              and value <= self.high)
        return None if ok else f"must be a finite number {self.describe()}, got {spell(value)}"


def is_number(value: Any) -> bool:
    """Whether `value` is a real number, NaN and the infinities included, and not a bool."""
    # A plain float or int (what json gives, a metrics file's every value) skips the check
    # against the abstract numbers.Real, slow enough to count over a long run's records.
    if type(value) is float or type(value) is int:
        return True
    return value is not None and isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """Whether `value` is a number (`is_number`) that a float holds finitely: not NaN or an
    infinity, nor an integer too large for a float (a file's 10**400), which math.isfinite
    refuses with an OverflowError."""
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


class OneOf(Rule):
    """One of `options`, of the first option's type ("gpt", not 1), with a near one
    suggested for a slip ("gtp")."""

    def __init__(self, *options: Any) -> None:
        self.options = options

    def why(self, value: Any, spell: Callable[[Any], str] = repr) -> str | None:
        if value in self.options and type(value) is type(self.options[0]):
            return None
        shown = ", ".join(str(option) for option in self.options)
        return f"must be one of {shown}, got {spell(value)}{self.near(value)}"

    def near(self, value: Any) -> str:
        """"; did you mean 'gpt'?" for a text close to one of the options (a slip of a key,
        'gtp', or of the case, 'GPT'), else nothing."""
        if not isinstance(value, str):
            return ""
        close = nearest(value, [option for option in self.options if isinstance(option, str)])
        return f"; did you mean {close[0]!r}?" if close else ""


def nearest(word: str, known: Sequence[str], most: int = 1, parts: bool = False) -> list[str]:
    """The known words a typed `word` most likely meant, best first, at most `most` of them;
    none if no word is near. The one search behind every "did you mean": a word that differs
    only in case ("GPT" for "gpt", "LR" for "lr") comes first, then, with `parts`, the words
    that hold it ("dot" in "dot_and_matmul", for names a learner may half remember), then the
    words nearest in spelling ("gtp" for "gpt"), case aside."""
    lower = {option.lower(): option for option in reversed(known)}    # the first, on a tie
    wanted = word.lower()
    if wanted in lower:
        return [lower[wanted]]
    holding = [option for option in known if parts and wanted and wanted in option.lower()]
    if holding:
        return holding[:most]
    return [lower[close] for close in difflib.get_close_matches(wanted, list(lower), n=most)]


class Flag(Rule):
    """true or false (a boolean: not 0 or 1, not the text "true")."""

    def why(self, value: Any, spell: Callable[[Any], str] = repr) -> str | None:
        return None if isinstance(value, bool) else f"must be true or false, got {spell(value)}"


class Text(Rule):
    """A non-empty string (a path, a name); `what` says what it may be, in the message (a
    setting that is a name or else a file's path: "char, bpe or a tokenizer file's path")."""

    def __init__(self, what: str = "a non-empty text") -> None:
        self.what = what

    def why(self, value: Any, spell: Callable[[Any], str] = repr) -> str | None:
        if isinstance(value, str) and value.strip() and "\0" not in value:
            return None
        return f"must be {self.what}, got {spell(value)}"


class Optional(Rule):
    """The rule, or None (meaning "the default"). `unset`, if given, says what None does, for
    the value that users of other libraries give to mean it (transformers' top_k=0)."""

    def __init__(self, rule: Rule, unset: str | None = None) -> None:
        self.rule, self.unset = rule, unset

    def why(self, value: Any, spell: Callable[[Any], str] = repr) -> str | None:
        problem = None if value is None else self.rule.why(value, spell)
        return f"{problem} ({self.unset})" if problem and self.unset else problem


def counted(n: int, noun: str) -> str:
    """n and the noun, in the singular for one: '1 layer', '4 layers', '1,024 tokens'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


# A random seed, wherever one is given: numpy's generators take any whole number >= 0.
SEED = Whole(0, 2 ** 63 - 1)


def check_settings(values: dict[str, Any], rules: dict[str, Rule], where: str | None = None,
                   name: Callable[[str], str] | None = None) -> None:
    """ValueError, in one line, for the first value of `values` (a dict) that breaks its rule.

    `name(key)` says how the setting is called where it came from (by default as an option,
    --min-lr); `where`, if given, names the file ("lr in run.toml"), and a value quoted there
    that unquoted would do is said to be (unquoted). Keys without a rule are left to the
    caller, which knows what else they may be. A value from a file is written as the file
    writes it (`true`, not Python's `True`)."""
    spell = repr if where is None else file_spelling
    for key, value in values.items():
        rule = rules.get(key)
        problem = rule.why(value, spell) if rule is not None else None
        if problem:
            if where is None:
                raise BadInput(f"{(name or option_name)(key)} {problem}")
            raise BadInput(f"{key} in {where} {problem}{unquoted(value, rule)}")


def unquoted(value: Any, rule: Rule) -> str:
    """Advice for a number or a flag written in quotes in a file (lr = "3e-4" in TOML, bias =
    "false"), which makes it a text, where the rule wants the value: "" for any other value."""
    try:
        meant = json.loads(value) if isinstance(value, str) else None
    except (ValueError, RecursionError):          # not a number, or "[[[..." thousands deep
        return ""
    if meant is None or isinstance(meant, str) or rule.why(meant):
        return ""
    return f", a text: write {value.strip()} without the quotes"


def check_whole(where: str, low: int, **values: Any) -> None:
    """ValueError, in one line, unless each value is a whole number >= low: a true integer
    (numpy's too), not 2.0, not True, not "3". For the counts and sizes a function is given,
    named as its caller wrote them:

        check_whole("beam_search", 1, max_len=0)
        # ValueError: beam_search: max_len must be a whole number >= 1, got 0
    """
    rule = Whole(low, 2 ** 62)
    check_settings(values, dict.fromkeys(values, rule), name=lambda key: f"{where}: {key}")


def option_name(key: str) -> str:
    """How the command line spells setting `key`: "--min-len" for min_len."""
    return "--" + key.replace("_", "-")
