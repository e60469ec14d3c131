"""The package's floor plan, checked from the source: which room may import which.

- The library (``cmrl_jax``) imports nothing from the folders above it (``envs`` is found
  by name through entry points, ``experiments`` / ``benchmarks`` are scripts).
- The commands layer (``cmrl_jax/commands``) imports neither gymnax nor the compiled core
  (the agent, the learners, the trainer and loop) at the top of a module: importing gymnax
  starts JAX's backend, and ``--distributed`` must join its cluster before that, so a
  command imports them inside the function that runs after it joined.
- Kinds depend downwards: the agent imports no learner, trainer, harness or command; the
  learners no harness or command; reporting and the results harness no compiled code.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cmrl_jax"

COMPILED_CORE = ("gymnax", "cmrl_jax.agent", "cmrl_jax.learners", "cmrl_jax.train",
                 "cmrl_jax.loop", "cmrl_jax.saved", "cmrl_jax.registry", "cmrl_jax.envspec")


def _modules(folder: Path):
    return sorted(p for p in folder.rglob("*.py"))


def _imports(path: Path, top_only: bool) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``; ``top_only``: only those that run when
    the module is imported (not inside a function body or under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                if not top_only:
                    visit(child, True)
                continue
            if (isinstance(child, ast.If) and isinstance(child.test, ast.Name)
                    and child.test.id == "TYPE_CHECKING"):
                continue
            if isinstance(child, ast.Import):
                found.extend((child.lineno, a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                found.append((child.lineno, child.module or ""))
                # ``from cmrl_jax import x`` imports the module cmrl_jax.x
                if child.module == "cmrl_jax":
                    found.extend((child.lineno, f"cmrl_jax.{a.name}") for a in child.names)
            visit(child, in_function)

    visit(tree, False)
    return found


def _under(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_library_imports_nothing_from_the_folders_above_it():
    bad = [f"{p.relative_to(PACKAGE.parent)}:{line} imports {m}"
           for p in _modules(PACKAGE) for line, m in _imports(p, top_only=False)
           if _under(m, ("envs", "cmrl_jax_envs", "experiments", "cmrl_jax_experiments",
                         "benchmarks", "examples", "tests"))]
    assert not bad, "\n".join(bad)


def test_no_command_module_imports_gymnax_or_the_compiled_core_at_its_top():
    commands = _modules(PACKAGE / "commands")
    assert len(commands) >= 6  # the layer exists where the layout says
    bad = [f"{p.relative_to(PACKAGE.parent)}:{line} imports {m} at its top"
           for p in commands for line, m in _imports(p, top_only=True)
           if _under(m, COMPILED_CORE)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("room, forbidden", [
    ("agent", ("cmrl_jax.learners", "cmrl_jax.train", "cmrl_jax.loop", "cmrl_jax.results",
               "cmrl_jax.commands", "cmrl_jax.reporting", "cmrl_jax.saved")),
    ("learners", ("cmrl_jax.train", "cmrl_jax.loop", "cmrl_jax.results",
                  "cmrl_jax.commands", "cmrl_jax.reporting", "cmrl_jax.saved")),
    ("results", ("cmrl_jax.agent", "cmrl_jax.learners", "cmrl_jax.train", "cmrl_jax.commands",
                 "cmrl_jax.reporting")),
    ("reporting", ("cmrl_jax.learners", "cmrl_jax.train", "cmrl_jax.loop",
                   "cmrl_jax.commands")),
])
def test_kinds_depend_downwards(room, forbidden):
    bad = [f"{p.relative_to(PACKAGE.parent)}:{line} imports {m}"
           for p in _modules(PACKAGE / room) for line, m in _imports(p, top_only=False)
           if _under(m, forbidden)]
    assert not bad, "\n".join(bad)
