"""The exception every user-facing refusal raises, and the number check most of them use
(imports nothing of the library, so every module may)."""

import math


class ConfigError(ValueError):
    """A user-facing configuration problem (reported in one line, exit status 2)."""


def check_number(name: str, value: float, minimum: float = 0.0, maximum: float = math.inf,
                 strict: bool = False) -> None:
    """Raise ConfigError unless ``value`` is finite and in [minimum, maximum] (> minimum if strict).

    NaN and +-inf are refused for every float option: they train to NaN.
    """
    low = f"> {minimum:g}" if strict else f">= {minimum:g}"
    high = "" if maximum == math.inf else f" and <= {maximum:g}"
    ok = isinstance(value, int | float) and math.isfinite(value) and value <= maximum
    ok = ok and (value > minimum if strict else value >= minimum)
    if not ok:
        raise ConfigError(f"{name} must be a finite number {low}{high}, got {value}")
