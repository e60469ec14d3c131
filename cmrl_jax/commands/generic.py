"""The generic command (``cmrl-train``): RL2 / ERL2 / CMRL on any environment by name.

    cmrl-train --env gymnax:BernoulliBandit-misc --updates 500 --seeds 2
    cmrl-train --env gymnax:MetaMaze-misc --env-option maze_size=5
    cmrl-train --env gymnax:PointRobot-misc --methods ERL2 Max-Until-Exploit
    cmrl-train --env reacher_continuous --k-explore 3 --horizon 15
    python -m experiments.train --env examples.hidden_chest:hidden_chest  # from a checkout:
    # a module:name env is imported first, so its module must be importable

Same outputs, resume and bad-input rules as the paper tables (``cmrl_jax.commands.experiment``):
``--out`` gets ``table.md`` / ``table.json`` / a figure and one subfolder per
program; the table has no paper rows, and under it the env's success definition,
its chance / oracle rates when it has them, and the neutral policy's rate.
Defaults (K, H, architecture, learning rate, lambda_div, TrainConfig fields)
come from the env's spec (``cmrl_jax.envspec.EnvSpec``), the LSTM size from the
method (32 sequential, 16 CMRL) unless ``--hidden``.
"""

import dataclasses
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any

from cmrl_jax.commands.cli import parse_assignments, parse_cli
from cmrl_jax.commands.experiment import run_built
from cmrl_jax.commands.tables import (
    PAPER_METHODS,
    TRAIN_DEFAULT,
    Row,
    TableArgs,
    TableSpec,
    resolve_options,
    typed_flag,
)
from cmrl_jax.config import ARCHITECTURES, METHODS, ConfigError, TrainConfig

DEFAULT_UPDATES = 2000
THRESHOLDS = (0.25, 0.5, 0.75, 0.95)
SWEEP_GRID = (3e-3, 1e-3, 3e-4)


@dataclass(frozen=True, kw_only=True)
class TrainArgs(TableArgs):
    """Command-line options of the generic experiment (plus every table option)."""

    env: str
    """a registered env, gymnax:<id> (e.g. gymnax:MetaMaze-misc), or module:name (registers
    on import)"""
    env_option: tuple[str, ...] = field(default_factory=tuple)
    """env options as KEY=VALUE, checked against the env's factory (e.g. maze_size=5)"""
    architecture: str | None = None
    """CMRL communication architecture: central_lstm or meta_lstm (default: the env's)"""
    k_explore: int | None = None
    """K: explore rollouts (CMRL) / sub-episodes (RL2, ERL2) (default: the env's)"""
    horizon: int | None = None
    """H: decisions per sub-episode (default: the env's)"""
    hidden: int | None = None
    """LSTM size of every method (default: the method's, 32 sequential / 16 CMRL)"""
    sweep_grid: tuple[float, ...] = SWEEP_GRID
    """learning rates tried by --sweep"""


def parse_env_options(name: str, items: tuple[str, ...],
                      spec=None) -> tuple[tuple[str, Any], ...]:
    """``--env-option`` KEY=VALUE strings -> (key, value) pairs typed by the option's default
    (``spec``: the env's, already resolved)."""
    from cmrl_jax.registry import env_options

    known = env_options(name, spec)
    listed = ", ".join(sorted(known)) or "none"
    return parse_assignments("--env-option", items, known,
                             lambda key: f"env {name} has no option {key!r}; its options: {listed}")


_STARTS = ("entropy_explore_start", "entropy_exploit_start")
ENV_SPEC = "env spec"
CONTINUOUS_DEFAULT = "the continuous-action default"
_SAID = {ENV_SPEC: "the env's spec", TRAIN_DEFAULT: "the discrete-action default"}


def base_sources(spec, space) -> dict[str, str]:
    """Where the env spec's TrainConfig defaults came from (``TableSpec.sources``): the
    entropy starts of a continuous action (``entropy_defaults``), the spec's ``config``."""
    return ({k: CONTINUOUS_DEFAULT for k in entropy_defaults(space)}
            | {k: ENV_SPEC for k, _ in spec.config})


def _entropy_line(spec, env, params, base: TrainConfig, extra: tuple[str, ...] = (),
                  args: TableArgs | None = None) -> str:
    """Which entropy-bonus starts this table used, and where they came from
    (``resolve_options``; ``args``: the command's, whose --train.* and --extra win; without
    it, ``extra``: --extra overrides)."""
    args = args if args is not None else TableArgs(extra=tuple(extra))
    table = TableSpec(name="", title="", cmrl_architecture="central_lstm", base=base, rows=(),
                      learning_rates={}, lambda_div=0.0, sweep_grid=(), thresholds=(),
                      paper={}, num_goals=None, origin=ENV_SPEC,
                      sources=base_sources(spec, env.action_space(params)))
    cfg, sources = resolve_options(table, args)
    said = [sources[k] for k in _STARTS]
    said = [s for s in said if s.startswith("--")] or said  # the command line's, if any
    source = " and ".join(dict.fromkeys(_SAID.get(s, s) for s in said))
    return (f"Entropy bonus starts: explore {cfg.entropy_explore_start:g}, exploit "
            f"{cfg.entropy_exploit_start:g} ({source}; {typed_flag('train', _STARTS[0])} / "
            f"{typed_flag('train', _STARTS[1])} set them).")


def _reference_lines(bound, k: int, h: int, base: TrainConfig, args: TableArgs):
    """(bound env) -> the lines under the table after success and the neutral policy (which
    every table prints): the entropy bonus used, chance and oracle where the env has them.
    ``bound``: the env this command bound (used when the table passes none)."""

    def lines(env=None) -> str:
        from cmrl_jax.envspec import percent

        used = env if env is not None else bound
        spec, env, params = used.spec, used.env, used.params
        out = [_entropy_line(spec, env, params, base, args=args)]
        if spec.chance is not None:
            out.append(f"Chance ({spec.chance_text}): {percent(spec.chance(env, params, k, h))}.")
        if spec.oracle is not None:
            out.append(f"Oracle ({spec.oracle_text}): {percent(spec.oracle(env, params, k, h))}.")
        return "\n".join(out)

    return lines


def _one_line(error: BaseException) -> str:
    """An exception as one line: its type, and its message's first line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _options_text(env_kwargs) -> str:
    """``, maze_size=5`` style text of the env options given (empty: the defaults)."""
    return f" [{', '.join(f'{k}={v}' for k, v in env_kwargs)}]" if env_kwargs else ""


def entropy_defaults(space) -> dict[str, float]:
    """The entropy-bonus starts an env gets unless its spec sets them: a continuous
    (``Box``) action's Gaussian has no entropy ceiling, so a small bonus for both phases
    (0.05, as gymnax's PointRobot and our continuous Reacher); discrete actions keep
    ``TrainConfig``'s (1.0 and 1.0)."""
    from gymnax.environments import spaces

    if isinstance(space, spaces.Box):
        return {"entropy_explore_start": 0.05, "entropy_exploit_start": 0.05}
    return {}


def check_env_methods(name: str, env) -> None:
    """ConfigError for a gymnax subclass that defines the older ``is_terminal`` and not
    ``is_terminated`` (gymnax 1.0 calls only the latter; it would fail deep in a trace)."""
    from gymnax.environments import environment

    cls = type(env)
    base = environment.Environment
    if cls.is_terminal is not base.is_terminal and cls.is_terminated is base.is_terminated:
        raise ConfigError(f"env {name}: {cls.__name__} defines is_terminal; gymnax 1.0 calls "
                          "is_terminated(state, params): rename it (docs/extending.md)")


def probe_env(name: str, env, params) -> None:
    """Trace one reset and one step (no computation): ConfigError, one line, for an env
    its options broke (e.g. zero chests), whatever it raises, before anything is written."""
    import jax

    from cmrl_jax.envspec import dummy_action

    key = jax.random.PRNGKey(0)

    def one_step():
        obs, state = env.reset_env(key, params)
        return env.step_env(key, state, dummy_action(env.action_space(params)), params)

    try:
        jax.eval_shape(one_step)
    except Exception as e:  # noqa: BLE001 - the env's own failure, reported in one line
        raise ConfigError(f"env {name} fails on its first reset and step with these "
                          f"options: {_one_line(e)}") from None


def make_spec(args: TrainArgs) -> tuple[TableSpec, TrainArgs]:
    """The ``TableSpec`` of this invocation (no paper rows) and the args to plan it with."""
    from cmrl_jax.agent.policy import make_policy
    from cmrl_jax.registry import bind_env, env_spec

    name = args.env  # module:name is kept: a later process re-imports the module
    spec = env_spec(name)  # the name, resolved once for every program of this command
    env_kwargs = parse_env_options(name, args.env_option, spec)
    try:
        bound = bind_env(name, env_kwargs, spec)  # built once: the plan and programs reuse it
    except ConfigError:
        raise
    except Exception as e:  # the env's own refusal of an option value, whatever it raises
        raise ConfigError(f"env {name} refused its options: {_one_line(e)}") from None
    env, params = bound.env, bound.params
    check_env_methods(name, env)
    try:
        space = env.action_space(params)
    except Exception as e:  # noqa: BLE001 - e.g. gymnax's Discrete asserting on its size
        raise ConfigError(f"env {name} refused its options: {_one_line(e)}") from None
    try:
        make_policy(space)
    except ValueError as e:
        raise ConfigError(f"env {name}: {e}; no method handles it") from None
    probe_env(name, env, params)
    arch = args.architecture or spec.architecture
    if arch not in ARCHITECTURES or not ARCHITECTURES[arch].concurrent:
        raise ConfigError(f"--architecture must be central_lstm or meta_lstm, got {arch!r}")
    k = spec.k_explore if args.k_explore is None else args.k_explore
    h = spec.default_horizon(params) if args.horizon is None else args.horizon
    if args.hidden is not None and args.hidden < 1:
        raise ConfigError(f"--hidden must be >= 1, got {args.hidden}")
    if args.hidden is not None and (args.train.hidden is not None
                                    or any(e.split("=", 1)[0] == "hidden" for e in args.extra)):
        raise ConfigError("--hidden and --train.hidden (or --extra hidden=...) both set hidden: "
                          "give one")
    config = {**entropy_defaults(space), **dict(spec.config)}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(config) - fields
    if unknown:
        raise ConfigError(f"env {name}: unknown TrainConfig defaults {sorted(unknown)}")
    sources = base_sources(spec, space) | {"env": "--env", "num_updates": "the command's default",
                                           "learning_rate": ENV_SPEC}
    given = {"env_kwargs": args.env_option, "k_explore": args.k_explore,
             "horizon": args.horizon, "hidden": args.hidden}
    sources |= {k: "--" + ("env_option" if k == "env_kwargs" else k).replace("_", "-")
                for k, v in given.items() if v not in (None, ())}
    base = TrainConfig(env=name, env_kwargs=env_kwargs, k_explore=k, horizon=h,
                       num_updates=DEFAULT_UPDATES, **config)
    from cmrl_jax.envspec import reports_goals

    goals = reports_goals(env, params)
    methods = tuple(METHODS)
    table = TableSpec(
        name=f"train-{name.replace(':', '-').replace('.', '-')}",
        title=f"{name}{_options_text(env_kwargs)} (K = {k}, H = {h})",
        cmrl_architecture=arch,
        base=base,
        rows=tuple(Row(m, m) for m in methods),
        learning_rates={m: spec.learning_rate for m in methods},
        lambda_div=spec.lambda_div,
        sweep_grid=tuple(args.sweep_grid),
        thresholds=THRESHOLDS,
        paper={},
        num_goals=spec.goals_axis(env) if goals else None,
        oracle=_reference_lines(bound, k, h, base, args),
        hidden=args.hidden,
        visited_goals=goals,
        env=bound,
        sources=sources,
        origin=ENV_SPEC,
    )
    if args.methods is None:
        args = dataclasses.replace(args, methods=PAPER_METHODS)
    return table, args


def main(argv: list[str] | None = None) -> dict:
    """Run the generic experiment from the command line."""
    args = parse_cli(TrainArgs, argv, inspect.getdoc(sys.modules[__name__]).splitlines()[0])

    def build():
        if args.distributed:  # before building the env touches a device
            from cmrl_jax.results.runtime import init_distributed

            init_distributed()
        return make_spec(args)

    return run_built(build)


if __name__ == "__main__":
    main()
