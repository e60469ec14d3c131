"""N-Reacher with continuous torques: Reacher-v2's action space, two torques in [-1, 1].

Everything but the action is ``reacher.NReacher`` (same arm, physics,
targets, threshold, observation, H): the action is the pair of joint torques
itself, clipped to [-1, 1] as MuJoCo's ``ctrlrange`` would. Registered as
``reacher_continuous`` beside the discrete ``reacher``; the policy is the
tanh-squashed diagonal Gaussian (``cmrl_jax.agent.policy.TanhGaussian``).
"""

import jax
import jax.numpy as jnp
from gymnax.environments import spaces

from cmrl_jax.envspec import EnvSpec

from . import reacher_draw
from .reacher import EnvParams, NReacher, given_options
from .recipes import CONTINUOUS_RECIPE


class ContinuousNReacher(NReacher):
    """NReacher whose action is the torque pair, Box([-1, 1]^2)."""

    def torques(self, action: jax.Array) -> jax.Array:
        """float [2] -> clipped to [-1, 1]."""
        return jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)

    @property
    def name(self) -> str:
        """Environment name, e.g. ``ContinuousReacher-3``."""
        return f"ContinuousReacher-{self.num_goals}"

    @property
    def num_actions(self) -> int:
        """Two torques."""
        return 2

    def action_space(self, params: EnvParams | None = None) -> spaces.Box:
        """Box([-1, 1]^2), as Reacher-v2."""
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32)


def uniform_torque_rate(env: ContinuousNReacher, params: EnvParams, k_explore: int,
                        horizon: int, num_tasks: int = 2048, seed: int = 0) -> float:
    """Uniform random torques in [-1, 1]^2 for H decisions: fraction of sampled tasks in
    which the positive target is the first one touched (the random-action rate)."""
    from .reacher_oracle import first_goals, sample_tasks

    params = params.replace(max_steps_in_episode=horizon)
    states = sample_tasks(env, params, num_tasks, seed)
    actions = jax.random.uniform(jax.random.PRNGKey(seed + 1), (horizon, num_tasks, 2),
                                 minval=-1.0, maxval=1.0)
    return float(jnp.mean(first_goals(env, params, states, actions) == states.positive))


def _factory(num_goals: int = 3, horizon: int = 15, integrator: str | None = None,
             distance_threshold: float | None = None, impl: str | None = None):
    """N-Reacher with two continuous torques in [-1, 1]: options as the discrete one's."""
    env = ContinuousNReacher(num_goals, **given_options(
        integrator=integrator, distance_threshold=distance_threshold, impl=impl))
    return env, env.default_params.replace(max_steps_in_episode=horizon)


def _uniform_torques(env, params, k_explore: int, horizon: int) -> float:
    """Uniform random torques."""
    return uniform_torque_rate(env, params, k_explore, horizon)


SPEC = EnvSpec(
    factory=_factory, k_explore=3, horizon=15, architecture="meta_lstm",
    config=(*CONTINUOUS_RECIPE, ("divergence", "js")),
    learning_rate=2.5e-3, lambda_div=1e-3 / 60, num_goals=lambda env: env.num_goals,
    chance=_uniform_torques, chance_text="uniform random torques",
    renderer=reacher_draw.renderer(),
)
