"""Every command in the docs runs (issue 33, friction 5: a walkthrough command exited 2).

The commands are every line of a ```bash / ```sh / ```shell block, the ``$ `` lines of a
```console block, and the lines of any other fenced block that start with ``python -m``,
``make `` or ``cmrl-`` in README.md and docs/*.md. Each is dry-checked without training:

- ``python -m M ARGS`` runs ``M`` as ``python -m`` does, stopped where its own parser
  (argparse or tyro) returns; a table and the generic command go on to their plan
  (``make_plan``: every program's config validated, the env built), which is all they do
  before compiling or writing. ``OWN_PARSERS``: modules that read ``sys.argv`` themselves.
- ``cmrl-X ARGS``: the console script's function, stopped the same way.
- ``make T VAR=...``: ``make -n`` (the target and its variables), then each ``python -m``
  line it would run, checked as above.

A command with a placeholder (``<clone>``, ``...``) is illustrative: skipped, saying so;
so is each command of ``SKIPPED``, and of ``NEEDS`` where its optional extra is absent,
each with its reason. Nothing compiles: the whole file takes seconds.
"""

import argparse
import importlib
import importlib.util
import re
import runpy
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
SHELL_BLOCKS = ("bash", "sh", "shell")
COMMAND = re.compile(r"(python -m |make |cmrl-)")
PLACEHOLDER = re.compile(r"<[^>]*>|(^|\s)\.\.\.(\s|$)")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Commands not checked, each with why (matched by a piece of the command's text).
SKIPPED = {
    # T stands for each distance threshold probed (the text above the block lists them).
    '["distance_threshold", T]': "illustrative: T is each threshold probed",
}
# Commands checked only where the optional extra they need is installed (`make install`
# installs all but `peer`), matched by a piece of their text: (a module of it, why).
NEEDS = {
    # The PyTorch peer benchmark imports torch at its top.
    "benchmarks.torch_peer": ("torch", "needs the `peer` extra (torch)"),
    # XLand envs are built to plan, and the XLand benchmark imports xminigrid.
    "xland": ("xminigrid", "needs the `xland` extra (xminigrid)"),
    # --log checks that the sink's extra is installed.
    "tensorboard": ("tensorboardX", "needs the `tensorboard` extra"),
    "wandb": ("wandb", "needs the `wandb` extra"),
}


def doc_commands() -> list[tuple[str, str]]:
    """(file:line, command) of every command in the docs, continuation lines joined."""
    found = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        fence = None  # the open block's language; None outside a block
        i = 0
        while i < len(lines):
            line, start = lines[i].strip(), i + 1
            i += 1
            if line.startswith("```"):
                fence = line[3:].strip() if fence is None else None
                continue
            if fence == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            if fence is None or not line or line.startswith("#") or (
                    fence not in SHELL_BLOCKS + ("console",) and not COMMAND.match(line)):
                continue
            while not _whole(line) and i < len(lines):  # a `\` or an open quote goes on
                line = line.removesuffix("\\") + " " + lines[i].strip()
                i += 1
            found.append((f"{path.relative_to(ROOT)}:{start}", line))
    return found


def _whole(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # an open quote
        return False
    return not command.rstrip().endswith("\\")


class Parsed(Exception):
    """Where a command would start its work: its arguments parsed (a table's, planned)."""


@pytest.fixture
def stop_after_parsing(monkeypatch):
    """argparse and tyro raise ``Parsed`` once they parsed; the tables' and the generic
    command's arguments go on to ``make_plan``, which raises it with the plan."""
    import tyro

    from cmrl_jax.commands import experiment
    from cmrl_jax.commands.tables import TableArgs

    cli, make_plan = tyro.cli, experiment.make_plan
    parse_args = argparse.ArgumentParser.parse_args

    def tyro_cli(*args, **kwargs):
        parsed = cli(*args, **kwargs)
        if isinstance(parsed, TableArgs):
            return parsed
        raise Parsed(parsed)

    def argparse_parse(self, *args, **kwargs):
        raise Parsed(parse_args(self, *args, **kwargs))

    def plan(spec, args):
        raise Parsed(make_plan(spec, args))

    monkeypatch.setattr(tyro, "cli", tyro_cli)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", argparse_parse)
    monkeypatch.setattr(experiment, "make_plan", plan)


def _recipe_probe(module, argv):
    assert len(argv) == 1, "one JSON argument"
    module.parse(argv[0])  # TrainConfig from the JSON, validated


def _no_arguments(module, argv):
    assert not argv, f"takes no arguments, got {argv}"


def _existing_tests(module, argv):
    paths = [a.split("::")[0] for a in argv if a.startswith("tests/")]
    assert all((ROOT / p).exists() for p in paths), paths


# Modules that parse sys.argv by hand (run as __main__ they would do their work): their
# own parsing only. pytest: the test files it names exist.
OWN_PARSERS = {
    "benchmarks.recipe_probe": _recipe_probe,
    "benchmarks.color_choice_layout": _no_arguments,
    "pytest": _existing_tests,
}


def _run_stopped(call, argv0: str, argv: list[str], monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", [argv0, *argv])
    try:
        call()
    except Parsed:
        return
    except SystemExit as e:
        if not e.code and {"-h", "--help"} & set(argv):
            return
        pytest.fail(f"exit status {e.code}: {capsys.readouterr().err.strip()}")
    pytest.fail("returned without parsing arguments: no dry check for this command")


def check_module(module: str, argv: list[str], monkeypatch, capsys) -> None:
    """``python -m module argv``, stopped once parsed (and planned)."""
    if module in OWN_PARSERS:
        OWN_PARSERS[module](importlib.import_module(module), argv)
        return
    monkeypatch.delitem(sys.modules, module, raising=False)  # run afresh, as python -m does
    _run_stopped(lambda: runpy.run_module(module, run_name="__main__"), module, argv,
                 monkeypatch, capsys)


def check_script(script: str, argv: list[str], monkeypatch, capsys) -> None:
    """``cmrl-X argv``: its [project.scripts] function, found in the checkout (an installed
    package's name through [tool.setuptools.package-dir]), stopped once parsed."""
    target = PYPROJECT["project"]["scripts"].get(script)
    assert target, f"{script} is not in [project.scripts]"
    module, attr = target.split(":")
    top, _, rest = module.partition(".")
    folder = PYPROJECT["tool"]["setuptools"]["package-dir"].get(top, top)
    call = getattr(importlib.import_module(".".join(filter(None, (folder, rest)))), attr)
    _run_stopped(call, script, argv, monkeypatch, capsys)


def check_make(argv: list[str], monkeypatch, capsys) -> None:
    """``make argv``: ``make -n`` accepts the target and variables; every ``python -m``
    it would run but the install's (pip, venv) is checked."""
    dry = subprocess.run(["make", "-n", *argv], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert dry.returncode == 0, dry.stderr.strip()
    for line in dry.stdout.splitlines():
        found = re.search(r"python3? -m (.*)", line)
        if found and shlex.split(found[1])[0] not in ("pip", "venv"):
            module, *args = shlex.split(found[1])
            check_module(module, args, monkeypatch, capsys)


COMMANDS = doc_commands()


def test_the_docs_have_commands():
    """The extraction finds the commands it must (a broken fence would hide them)."""
    where = {w.split(":")[0] for w, _ in COMMANDS}
    assert {"README.md", "docs/usage.md", "docs/extending.md"} <= where
    assert len(COMMANDS) > 50


@pytest.mark.usefixtures("stop_after_parsing")
@pytest.mark.parametrize("where, command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_doc_command_parses(where, command, monkeypatch, capsys):
    program, *argv = words = shlex.split(command, comments=True)
    text = " ".join(words)  # without its comment
    skip = [why for piece, why in SKIPPED.items() if piece in text] + [
        why for piece, (module, why) in NEEDS.items()
        if piece in text and importlib.util.find_spec(module) is None]
    if skip:
        pytest.skip(skip[0])
    if PLACEHOLDER.search(text):
        pytest.skip("illustrative: a placeholder (<...> or ...) stands for a value")
    if program == "python":
        assert argv[:1] == ["-m"], command
        check_module(argv[1], argv[2:], monkeypatch, capsys)
    elif program == "make":
        check_make(argv, monkeypatch, capsys)
    else:
        check_script(program, argv, monkeypatch, capsys)
