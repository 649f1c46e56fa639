"""Typed reads of the values of one config section, each refused in one line naming the key, the value and what is
allowed, e.g. `sandbox.timeout_s=-5: must be a number > 0, or null (...)`.

The settings classes read their section through a `Section` (`Section(raw, "sandbox").number("timeout_s", ...)`)
and raise ValueError; engine.config.build turns it into the EngineError the launch prints. YAML and the command line
give ints, floats, bools, strings, lists and mappings: a string is never a number ("abc" for a number is refused, not
converted), a bool is never a number, and NaN is never a value.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

MISSING = object()


def show(value: Any) -> str:
    """A value as the command line would spell it (null, true, 'text', [1, 2]), cut to 60 characters."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


class Section:
    """The values of config section `name` (a dotted path: `literature.arxiv`), read and checked one key at a time."""

    def __init__(self, raw: Any, name: str):
        if not isinstance(raw, Mapping):
            raise ValueError(f"{name}={show(raw)}: must be a mapping of keys to values")
        self.raw, self.name = raw, name

    def key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def get(self, key: str, default: Any = MISSING) -> Any:
        if key in self.raw:
            return self.raw[key]
        if default is MISSING:
            raise ValueError(f"{self.key(key)}: missing (the shipped conf/ has it: was it taken out?)")
        return default

    def refuse(self, key: str, value: Any, allowed: str) -> ValueError:
        return ValueError(f"{self.key(key)}={show(value)}: must be {allowed}")

    def section(self, key: str) -> Section:
        return Section(self.get(key), self.key(key))

    def integer(self, key: str, at_least: int | None = None, at_most: int | None = None, null: str | None = None,
                default: Any = MISSING) -> Any:
        """An int in [at_least, at_most]; None where `null` says what null means (e.g. "no limit")."""
        value = self.get(key, default)
        if value is None and null is not None:
            return None
        if not is_int(value) or (at_least is not None and value < at_least) \
                or (at_most is not None and value > at_most):
            raise self.refuse(key, value, _allowed("an integer", at_least, None, at_most, null))
        return value

    def number(self, key: str, at_least: float | None = None, above: float | None = None,
               at_most: float | None = None, null: str | None = None, inf: str | None = None,
               default: Any = MISSING) -> Any:
        """A finite float in range (`above`: strictly); None where `null` is given, math.inf where `inf` is."""
        value = self.get(key, default)
        if value is None and null is not None:
            return None
        if inf is not None and is_number(value) and value == math.inf:
            return math.inf
        if not is_number(value) or math.isinf(value) or (at_least is not None and value < at_least) \
                or (above is not None and value <= above) or (at_most is not None and value > at_most):
            raise self.refuse(key, value, _allowed("a number", at_least, above, at_most, null, inf))
        return float(value)

    def flag(self, key: str, default: Any = MISSING) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.refuse(key, value, "true or false")
        return value

    def choice(self, key: str, options: Iterable[str], null: str | None = None, default: Any = MISSING) -> Any:
        value = self.get(key, default)
        options = tuple(options)
        if value is None and null is not None:
            return None
        if not isinstance(value, str) or value not in options:
            raise self.refuse(key, value, _one_of(options) + (f", or null ({null})" if null else ""))
        return value

    def text(self, key: str, null: str | None = None, default: Any = MISSING) -> Any:
        """A non-empty string (an integer is taken as its digits: tracking.group=2024); None where `null` is given."""
        value = self.get(key, default)
        if value is None and null is not None:
            return None
        if is_int(value):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise self.refuse(key, value, "a non-empty string" + (f", or null ({null})" if null else ""))
        return value

    def names(self, key: str, options: Iterable[str], empty_ok: bool = False) -> tuple[str, ...]:
        """A list of names from `options` (a single name is a list of one), without repeats."""
        value = self.get(key)
        options = tuple(options)
        names = [value] if isinstance(value, str) else value
        what = f"a list of {', '.join(options)}" + ("" if empty_ok else " (at least one)") + ", without repeats"
        if not isinstance(names, (list, tuple)) or (not names and not empty_ok):
            raise self.refuse(key, value, what)
        for i, name in enumerate(names):
            if not isinstance(name, str) or name not in options or name in names[:i]:
                why = "repeated" if name in names[:i] else "unknown"
                raise ValueError(f"{self.key(key)}={show(value)}: {why} {show(name)}; allowed: {what}")
        return tuple(names)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose refusal is one line (the option, the value, what is wrong), not the usage first."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `low` (argparse names the option, prints one line and exits with 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}")
        return value
    return parse


def number_in(low: float, high: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high]."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            allowed = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"{text} is not a finite number {allowed}")
        return value
    return parse


def _allowed(kind: str, at_least: float | None, above: float | None, at_most: float | None,
             null: str | None, inf: str | None = None) -> str:
    bounds = [f">= {at_least}" if at_least is not None else "", f"> {above}" if above is not None else "",
              f"<= {at_most}" if at_most is not None else ""]
    options = [" ".join([kind, " and ".join(b for b in bounds if b)]).strip()]
    options += [f"inf ({inf})"] if inf else []
    options += [f"null ({null})"] if null else []
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + f", or {options[-1]}"


def _one_of(options: tuple[str, ...]) -> str:
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + f" or {options[-1]}"
