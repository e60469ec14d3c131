"""What every command shares: exit statuses, one-line usage errors, KEY=VALUE options.

Exit statuses (docs/design.md, "Faults"):

- 0: done;
- ``EXIT_USAGE`` = 2: bad input, or a results folder this command may not write
  (another config's, another writer's): one line, nothing changed;
- ``EXIT_NONFINITE`` = 3: a run stopped being finite; the folder keeps its last
  finite update;
- ``EXIT_DISK_FULL`` = 4: the disk (or quota) of the results folder is full;
  whatever was saved is whole, and the same command resumes once there is space;
- ``EXIT_INTERRUPTED`` = 130: SIGINT; the folder keeps its last finished chunk,
  rerun to resume.
"""

import ast
import contextlib
import io
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

from cmrl_jax.errors import ConfigError

EXIT_USAGE = 2
EXIT_NONFINITE = 3
EXIT_DISK_FULL = 4
EXIT_INTERRUPTED = 130


DISK_FULL_MESSAGE = ("error: the disk of {folder} is full; what was saved is whole: free space "
                     "and run the same command again to resume")
FIGURE_DISK_FULL = ("error: the disk of {folder} is full; the figure was not written (a file "
                    "of the same name is as it was): free space and run the same command again")


@contextlib.contextmanager
def exit_if_disk_full(message: str) -> Iterator[None]:
    """Inside, an error that says the disk is full (``disk_full``) prints ``message`` as
    one line and exits with ``EXIT_DISK_FULL``; any other error passes through."""
    try:
        yield
    except Exception as e:
        if not disk_full(e):
            raise
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(EXIT_DISK_FULL) from None


def disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) says the disk or quota is full:
    ``OSError`` ENOSPC / EDQUOT, or a library's wrapped message (orbax's
    ``RESOURCE_EXHAUSTED``, tensorstore's "No space left on device");
    ``results.checkpoint.says_disk_full``, imported here only once an error happened."""
    from cmrl_jax.results.checkpoint import says_disk_full

    return says_disk_full(error)


def fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` (one line) and exit with ``status``."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(status) from None


def parse_cli(cls: type, argv: list[str] | None, description: str) -> Any:
    """``tyro.cli``, with its usage errors (unknown flag, bad value) as one line and exit 2."""
    import tyro

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=argv, description=description)
    except SystemExit as e:
        if not e.code:  # --help
            sys.stderr.write(captured.getvalue())
            raise
        # tyro draws a box (unicode or ASCII): keep its message, the first paragraph under
        # its title, wrapped lines joined; else the line with ": "
        lines = [line.strip(" │╭╮╰╯─┃━┏┓┗┛|+-") for line in captured.getvalue().splitlines()]
        paragraph = _first_paragraph(lines)
        lines = [line for line in lines if line and "--help" not in line]
        message = paragraph or next((line for line in lines if ": " in line),
                                    lines[0] if lines else "bad command line")
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _first_paragraph(lines: list[str]) -> str:
    """The first run of non-empty lines after the first non-empty one (a box's title; empty
    lines are rules or blanks), joined; empty if that is not a message (none, or help)."""
    start = next((i for i, line in enumerate(lines) if line), len(lines)) + 1
    paragraph = []
    for line in lines[start:]:
        if line:
            paragraph.append(line)
        elif paragraph:
            break
    text = " ".join(paragraph)
    return "" if "--help" in text else text


def typed_value(flag: str, key: str, text: str, default: Any) -> Any:
    """``text`` typed like ``default`` (bool, int, float, str); without a usable default, a
    Python literal, else a float (``inf``, ``nan``), else the string itself."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(default, int | float | str):
            return type(default)(text)
    except ValueError:
        raise ConfigError(f"{flag} {key} expects {type(default).__name__}, got {text!r}"
                          ) from None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            return float(text)
        except ValueError:
            return text


def parse_assignments(flag: str, items: tuple[str, ...], known: Mapping[str, Any],
                      unknown: Callable[[str], str]) -> tuple[tuple[str, Any], ...]:
    """``KEY=VALUE`` strings -> (key, value) pairs, each typed by ``known[key]`` (its default).

    ``unknown(key)``: the message for a key not in ``known``. ConfigError (one line) for
    an item without ``=``, an unknown key, a value of the wrong type, or a key given twice.
    """
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
        key, text = item.split("=", 1)
        if key not in known:
            raise ConfigError(unknown(key))
        out.append((key, typed_value(flag, key, text, known[key])))
    if len({k for k, _ in out}) != len(out):
        raise ConfigError(f"{flag} gives an option twice")
    return tuple(out)
