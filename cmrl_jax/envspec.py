"""The environment contract: what an env may provide beyond the gymnax API (docs/extending.md).

An environment is any gymnax ``Environment`` whose ``reset_env`` draws the task
(the engine reuses one reset key for the whole meta-episode). Everything else is
optional; ``EnvSpec`` holds an env's hooks and defaults, each with a generic
default:

- goals, ``info["goal"]`` from ``step_env``: none, visited goals are then
  omitted from tables and figures;
- ``success(exploit, task, env_params)``: a positive goal entered in the exploit
  sub-episode if the env reports goals, else the exploit sub-episode's raw
  return > ``success_threshold`` (0);
- ``chance`` / ``oracle`` rates: not printed (the generic command always prints
  the neutral policy's rate);
- ``k_explore``, ``horizon``, ``architecture``: 3, ``min(max_steps_in_episode,
  10)``, ``meta_lstm``;
- ``config`` (``TrainConfig`` fields), ``learning_rate``, ``lambda_div``:
  ``TrainConfig``'s, 1e-3, 0.01;
- ``num_goals``: None (no fixed axis for the visited-goals panel);
- ``renderer``: None (no figures of trained runs); a
  ``cmrl_jax.reporting.figures.hooks.Renderer`` with a ``heatmap`` (Figure 6) and / or a
  ``strip`` (the meta-episode strip).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import jax
import jax.numpy as jnp
from gymnax.environments import environment, spaces

if TYPE_CHECKING:
    from cmrl_jax.reporting.figures.hooks import Renderer

EnvFactory = Callable[..., tuple[environment.Environment, Any]]


class SuccessFn(Protocol):
    """Success of one meta-episode from its exploit sub-episode (jittable)."""

    def __call__(self, exploit, task, env_params) -> jax.Array:
        """``exploit``: ``engine.Transition`` with leaves [H, 1, ...] (reward, live, goal,
        action); ``task``: (obs0, state0) drawn at reset -> bool scalar."""


class RateFn(Protocol):
    """A reference success rate of an env (a fraction), printed under its tables."""

    def __call__(self, env: environment.Environment, env_params, k_explore: int,
                 horizon: int) -> float:
        """Chance or oracle success for this env, K and H."""


@dataclass(frozen=True)
class EnvSpec:
    """A registered environment: its factory, optional hooks and defaults."""

    factory: EnvFactory  # (**options) -> (env, env_params)
    success: SuccessFn | None = None
    success_threshold: float = 0.0  # default success: exploit return above this
    chance: RateFn | None = None
    chance_text: str = "chance"  # how the chance line names its rate
    oracle: RateFn | None = None
    oracle_text: str = "oracle"
    k_explore: int = 3
    horizon: int | None = None  # None: min(env_params.max_steps_in_episode, 10)
    architecture: str = "meta_lstm"
    config: tuple[tuple[str, Any], ...] = ()  # TrainConfig field defaults for this env
    learning_rate: float = 1e-3
    lambda_div: float = 0.01
    num_goals: Any = None  # int, or (env) -> int: the visited-goals axis of figures
    renderer: "Renderer | None" = None  # figures: docs/extending.md, "Figures"
    description: str = ""
    # (env options) -> the options of the same env on its held-out tasks, or None: runs are
    # then also evaluated there and tables report both (e.g. XLand's held-out rulesets).
    heldout: Callable[[dict], dict | None] | None = None

    def goals_axis(self, env) -> int | None:
        """``num_goals`` for this env instance (None: no fixed axis)."""
        return self.num_goals(env) if callable(self.num_goals) else self.num_goals

    def default_horizon(self, env_params) -> int:
        """The env's H, else min(max_steps_in_episode, 10)."""
        if self.horizon is not None:
            return self.horizon
        steps = getattr(env_params, "max_steps_in_episode", 10)
        return max(1, min(int(steps), 10))


def dummy_action(space):
    """An action of the right shape and dtype for tracing ``step_env``."""
    if isinstance(space, spaces.Discrete):
        return jnp.zeros((), jnp.int32)
    return jnp.zeros(space.shape, jnp.float32)


def reports_goals(env: environment.Environment, env_params) -> bool:
    """Whether ``step_env``'s info has a ``"goal"`` entry (read from its trace, no run)."""
    key = jax.random.PRNGKey(0)

    def one_step():
        _, state = env.reset_env(key, env_params)
        return env.step_env(key, state, dummy_action(env.action_space(env_params)), env_params)

    _obs, _state, _reward, _done, info = jax.eval_shape(one_step)
    return isinstance(info, dict) and "goal" in info


def return_above(threshold: float) -> SuccessFn:
    """Success = the exploit sub-episode's raw return > ``threshold``."""

    def success(exploit, task, env_params) -> jax.Array:
        return jnp.sum(exploit.reward) > threshold

    return success


def resolve_success(spec: EnvSpec, env, env_params) -> SuccessFn:
    """The env's success hook, else the generic default (see the module table)."""
    from cmrl_jax.agent.engine import goal_success

    if spec.success is not None:
        return spec.success
    if reports_goals(env, env_params):
        return goal_success
    return return_above(spec.success_threshold)


def describe_success(spec: EnvSpec, env, env_params) -> str:
    """One sentence saying what success means for this env (printed under tables)."""
    if spec.success is not None:
        doc = (spec.success.__doc__ or "").strip().splitlines()
        return f"Success: {doc[0] if doc else 'the env' + chr(39) + 's own definition'}"
    if reports_goals(env, env_params):
        return "Success: the exploit sub-episode entered a goal with positive reward."
    return (f"Success: the exploit sub-episode's return is above {spec.success_threshold:g} "
            "(the env reports no goals; visited goals are not measured).")


def neutral_rate(runner, num: int = 4096, seed: int = 0) -> float:
    """Success rate of the neutral policy (zero head outputs: uniform random actions for a
    discrete env, u ~ N(0, 1) squashed for a continuous one) in the exploit sub-episode,
    with the runner's success definition: what an agent scores by acting blindly."""
    policy = runner.policy

    def neutral_step(params, memory, x, live):
        r = x.shape[0]
        return memory, policy.neutral_params(r), jnp.zeros((r,), jnp.float32)

    def one(key):
        k_reset, k_run = jax.random.split(key)
        task = runner.task(k_reset)
        s, k_run = runner._begin(task, k_run, 1, ())
        _, exploit = runner._sub_episode(neutral_step, None, s, k_run, False)
        return runner.success_fn(exploit, task, runner.env_params)

    keys = jax.random.split(jax.random.PRNGKey(seed), num)
    return float(jnp.mean(jax.jit(jax.vmap(one))(keys).astype(jnp.float32)))


def percent(rate: float | None) -> str:
    """A rate as ``12.3 %``, or ``-`` when unknown."""
    return "-" if rate is None or not math.isfinite(rate) else f"{100 * rate:.1f} %"
