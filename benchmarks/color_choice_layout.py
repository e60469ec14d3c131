"""Which reading of the paper's 7 x 7 Color-Choice grid fits its numbers (docs/design.md).

For each layout (``cmrl_jax_envs.color_choice.LAYOUTS``) it measures, on sampled tasks:
- uniform-random success: a sub-episode of uniformly random actions from the
  task's start enters the positive goal (what an untrained, near-uniform
  policy scores at update 0 of the paper's Table 2);
- the goals that 3 uniformly random explore rollouts enter (distinct goals);
- the update-0 evaluation of Table 2's four methods (3 seeds each, their
  real initial parameters and the table's evaluation batch);
- the oracle rates (cmrl_jax_envs.color_choice_oracle).

    python -m benchmarks.color_choice_layout            # ~1-2 min on the 2-core CPU
"""

import dataclasses
import sys

import jax
import jax.numpy as jnp
import numpy as np

from cmrl_jax_envs.color_choice import LAYOUTS, ColorChoice, grid_params
from cmrl_jax_envs.color_choice_oracle import oracle_success_rate

TASKS = 100_000
ORACLE_TASKS = 2000


def random_rates(
    env: ColorChoice, params, tasks: int, k: int, seed: int = 0
) -> tuple[float, float]:
    """(P(a random sub-episode enters the positive goal), mean distinct goals of k random ones)."""
    horizon = params.max_steps_in_episode

    def sub_episode(state, key):
        def step(carry, key):
            s, live, goal = carry
            k_a, k_s = jax.random.split(key)
            action = jax.random.randint(k_a, (), 0, env.num_actions)
            _, s2, _, done, info = env.step_env(k_s, s, action, params)
            s = jax.tree.map(lambda a, b: jnp.where(live, a, b), s2, s)
            goal = jnp.where(live & (info["goal"] >= 0), info["goal"], goal)
            return (s, live & ~done, goal), None

        (_, _, goal), _ = jax.lax.scan(step, (state, True, -1), jax.random.split(key, horizon))
        return goal

    def task(key):
        k_reset, k_run = jax.random.split(key)
        _, state = env.reset_env(k_reset, params)
        goals = jax.vmap(sub_episode, in_axes=(None, 0))(state, jax.random.split(k_run, k + 1))
        hit = goals[-1] == state.positive
        entered = jnp.zeros(env.num_goals, bool).at[goals[:k]].set(goals[:k] >= 0, mode="drop")
        return hit, jnp.sum(entered)

    hit, visited = jax.jit(jax.vmap(task))(jax.random.split(jax.random.PRNGKey(seed), tasks))
    return float(np.mean(hit)), float(np.mean(visited))


def update0_success(layout: str) -> dict[str, list[float]]:
    """Update-0 evaluation success of Table 2's methods (3 seeds each) on ``layout``."""
    from cmrl_jax.commands.tables import TableArgs, make_plan
    from cmrl_jax.train import make_trainer
    from experiments.table2 import SPEC

    kwargs = tuple((k, v) for k, v in SPEC.base.env_kwargs if k != "layout") + (("layout", layout),)
    spec = dataclasses.replace(SPEC, base=dataclasses.replace(SPEC.base, env_kwargs=kwargs))
    out: dict[str, list[float]] = {}
    for _, cfg in make_plan(spec, TableArgs(out="/nonexistent", updates=250)).programs:
        trainer = make_trainer(cfg)
        state, hp = trainer.init()
        success = np.asarray(trainer.evaluate(state, hp).success)
        for run, s in zip(cfg.runs, success, strict=True):
            out.setdefault(run.method, []).append(float(s))
    return out


def main(argv: list[str]) -> None:
    """Print the measurements for every layout as a markdown table."""
    del argv
    print("| layout | free cells | random success | random explorers' goals (K=3) "
          "| update-0 success by method (3 seeds) | oracle |")
    print("|---|---|---|---|---|---|")
    for layout in LAYOUTS:
        env, params = ColorChoice(3), grid_params(7, 7, layout)
        succ, vis = random_rates(env, params, TASKS, k=3)
        init = update0_success(layout)
        oracle = oracle_success_rate(env, params, ORACLE_TASKS, k_explore=3, seed=0)
        methods = "; ".join(
            f"{m} {', '.join(f'{100 * s:.1f}' for s in v)}" for m, v in init.items()
        )
        print(
            f"| {layout} | {params.height}x{params.width} | {100 * succ:.1f} % | {vis:.2f} "
            f"| {methods} | {100 * oracle.meta_learner:.1f} % |",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
