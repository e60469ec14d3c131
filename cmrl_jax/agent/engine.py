"""Meta-episodes over any gymnax environment: sequential (RL2 / ERL2) and concurrent (CMRL).

One reset key per meta-episode is reused for every sub-episode and every
concurrent rollout, so all of them face the same task from the same initial
state; step keys are fresh. gymnax's auto-reset is never used: the engine
calls ``step_env`` and handles episode ends itself. Goals are absorbing: once
a sub-episode ends (terminated, truncated by the env, or after H decisions)
its remaining steps are masked: no reward, no loss, recurrent state and agent
input carried unchanged.

Agent input at each decision: [flattened observation, one-hot previous
action, previous reward * reward_input_scale, previous done flag]. The
previous-* fields carry across explore sub-episode boundaries (that is how
RL2 remembers); the exploit sub-episode starts with them zeroed. Observation
features the env declares constant (``constant_observation``, e.g.
Color-Choice's view rows beyond the grid) are left out of the input the engine
builds and stores; the networks add their share once per call
(``cmrl_jax.agent.inputs``): the same numbers up to float reassociation.

Terminal results are *absorbed* exactly once. A sub-episode's terminal result
(its last action, reward and done = 1) is the input of the step after its end:
- a sequential sub-episode passes it on as the first input of the next one;
- a concurrent rollout that ends while others still explore takes one more
  memory step on it, the absorb step (no action, no loss), so its result reaches
  the shared memory (Central-LSTM state, or the Meta-LSTM through the
  rollout's own LSTM) while the other rollouts are still exploring; then it
  freezes;
- results still pending when the explore phase ends (the last sequential
  sub-episode, rollouts that ended at its last step) are absorbed by the
  hand-off step, whose memory then starts the exploit policy.
So the memory handed to the exploit policy has seen every explore rollout's
final reward, and during the explore phase every rollout's result reaches the
others as soon as it is known.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment

from cmrl_jax.agent.inputs import (
    constant_first_observation,
    constant_inputs,
    encode_input,
)
from cmrl_jax.agent.networks import Agent, keep_where
from cmrl_jax.agent.policy import Policy, make_policy
from cmrl_jax.agent.replay import Replay, WindowStarts, segment_length  # noqa: F401 (re-exported)
from cmrl_jax.config import REMAT, START_PROTOCOLS


class Transition(NamedTuple):
    """One decision of R rollouts. Leaves gain leading [T] axes when stacked by scan."""

    x: jax.Array  # float32 [R, D]   agent input (its varying features: ``runner.x_dim``)
    logits: jax.Array  # float32 [R, P]   policy head (logits, or Gaussian mean and log std)
    value: jax.Array  # float32 [R]
    action: jax.Array  # int32 [R] (discrete) or float32 [R, d] (pre-squash u, continuous)
    reward: jax.Array  # float32 [R]   raw env reward, 0 on masked steps
    live: jax.Array  # bool [R]      the step is a real decision
    goal: jax.Array  # int32 [R]     info["goal"], -1 if none or masked


class MetaEpisode(NamedTuple):
    """A whole meta-episode.

    explore leaves are [T_e, R, ...]: sequential T_e = K_explore * H, R = 1;
    concurrent T_e = H, R = K_explore. exploit leaves are [H, 1, ...].
    """

    explore: Transition
    exploit: Transition
    success: jax.Array | None = None  # bool: the env's success of this meta-episode (engine)
    # The hand-off step's input [R, D] and which rollouts it steps [R] (their result was
    # still pending): with the stored inputs, what ``replay`` needs to rebuild the memory.
    handoff_x: jax.Array | None = None
    handoff_steps: jax.Array | None = None


class SubEpisode(NamedTuple):
    """H decisions of R rollouts: the state after them and the decisions themselves."""

    final: "RolloutState"
    steps: Transition  # leaves [H, R, ...]


@struct.dataclass
class RolloutState:
    """Scan carry of R rollouts stepping together."""

    env_state: Any  # env state pytree, leaves [R, ...]
    obs: jax.Array  # float32 [R, O]   flattened observation (its varying features)
    prev_action: jax.Array  # int32 [R] or float32 [R, d]
    prev_reward: jax.Array  # float32 [R]
    prev_done: jax.Array  # float32 [R]
    live: jax.Array  # bool [R]   sub-episode not yet ended
    pending: jax.Array  # bool [R]   ended, terminal result not yet absorbed by the memory
    memory: Any  # agent recurrent state


def goal_success(exploit: "Transition", task, env_params) -> jax.Array:
    """Default success of an env that reports ``info["goal"]``: the exploit sub-episode
    entered a goal with positive reward (bool scalar)."""
    return jnp.any((exploit.goal >= 0) & (exploit.reward > 0))


def _broadcast(tree, r: int):
    """Add a leading rollout axis of size r to every leaf."""
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (r,) + jnp.shape(a)), tree)


class MetaEpisodeRunner(Replay):
    """Runs meta-episodes of one agent on one environment (static configuration): collection
    here, replays of stored meta-episodes in ``Replay`` (``cmrl_jax.agent.replay``)."""

    def __init__(
        self,
        env: environment.Environment,
        env_params: Any,
        agent: Agent,
        *,
        concurrent: bool,
        k_explore: int,
        horizon: int,
        reward_scale: float = 1.0,
        success=None,
        use_constant_inputs: bool = True,
        remat: str = "none",
        subepisode_start: str = "same",
    ):
        """``concurrent``: K rollouts in parallel (CMRL) or K sub-episodes in sequence.

        ``use_constant_inputs``: leave the features the env declares constant out
        of the agent input (``constant_inputs``); False: the full input (the
        reference path of tests/test_fast_paths.py).

        ``remat``: ``"none"``, or ``"step"``: every step of the scans the loss
        differentiates (decisions, replays, divergence re-runs) is rematerialised
        (``jax.checkpoint``): its activations are recomputed in the backward pass instead
        of stored, so memory no longer holds every step's intermediates; ``"segments"``:
        each scan of T steps runs as segments of about sqrt(T) steps (the divisor of T
        nearest sqrt(T)), each segment under ``jax.checkpoint``: the backward pass keeps
        the carries at segment boundaries and recomputes one segment at a time, so the
        activations held grow like sqrt(T) (the stored inputs and heads stay linear).

        ``subepisode_start``: ``"same"``, every sub-episode and rollout starts from the
        state the meta-episode's reset drew (the paper's protocol), or ``"fresh"``: each
        starts from its own draw of the env's ``reset_state(key, state, env_params) ->
        (obs, state)``, a fresh start in the task of ``state`` (the protocol of classic
        RL2 and of xland-minigrid's; ``START_PROTOCOLS``).

        ``success(exploit Transition [H, 1], task, env_params) -> bool`` defines a
        meta-episode's success (default ``goal_success``; ``cmrl_jax.registry`` resolves
        an env's own, docs/extending.md).
        """
        self.env = env
        self.env_params = env_params
        self.agent = agent
        self.concurrent = concurrent
        self.k_explore = k_explore
        self.horizon = horizon
        self.reward_scale = reward_scale
        self.success_fn = success or goal_success
        if remat not in REMAT:
            raise ValueError(f"remat must be one of {REMAT}, got {remat!r}")
        self.remat = remat
        if subepisode_start not in START_PROTOCOLS:
            raise ValueError(f"subepisode_start must be one of {START_PROTOCOLS}, "
                             f"got {subepisode_start!r}")
        if subepisode_start == "fresh" and not hasattr(env, "reset_state"):
            raise ValueError(f"subepisode_start='fresh' needs an env with reset_state; "
                             f"{type(env).__name__} has none")
        self.fresh = subepisode_start == "fresh"
        self.policy: Policy = make_policy(env.action_space(env_params))
        self.num_params = self.policy.num_params  # policy-head outputs per rollout
        obs, _ = jax.eval_shape(lambda: env.reset_env(jax.random.PRNGKey(0), env_params))
        self.obs_dim = int(np.prod(obs.shape))
        self.input_dim = self.obs_dim + self.policy.feature_dim + 2  # the parameters' input
        # An observation encoder reads the whole observation: no compaction under it.
        encoded = getattr(agent.module, "encoder", None) is not None
        self.compaction = (
            constant_inputs(env, env_params, self.input_dim, self.obs_dim)
            if use_constant_inputs and not encoded else None
        )
        # Observation features the agent input holds (None: all of them).
        self.obs_keep = None
        self.x_dim = self.input_dim  # width of the agent input the engine builds
        if self.compaction is not None:
            self.obs_keep = np.asarray(
                [i for i in self.compaction.keep if i < self.obs_dim], np.int32
            )
            self.x_dim = len(self.compaction.keep)
        self.num_rollouts = k_explore if concurrent else 1
        # A fresh start's observation varies with its key even where the reset's does not.
        self.constant_start = not self.fresh and constant_first_observation(env, env_params)
        if agent.num_rollouts != self.num_rollouts:
            raise ValueError(
                f"agent steps {agent.num_rollouts} rollouts, engine needs {self.num_rollouts}"
            )

    # ------------------------------------------------------------------ steps
    def step_params(self, params):
        """The parameters the step functions use: ``params`` with the constant input
        features folded in (``inputs.InputCompaction``), or ``params`` itself."""
        if self.compaction is None:
            return params
        return self.agent.compact_params(params, self.compaction)

    def _obs(self, obs: jax.Array, r: int) -> jax.Array:
        """Observations [R, ...] -> the agent input's observation features float32 [R, O']."""
        obs = jnp.reshape(obs, (r, -1))
        if self.obs_keep is not None:
            obs = obs[:, self.obs_keep]
        return obs.astype(jnp.float32)

    def _start(self, state0, obs0, r: int, memory) -> RolloutState:
        """R rollouts at the task's initial state with zeroed previous-* inputs."""
        obs = self._obs(jnp.reshape(obs0, (1, -1)), 1)
        return RolloutState(
            env_state=_broadcast(state0, r),
            obs=jnp.broadcast_to(obs, (r, obs.shape[1])),
            prev_action=self.policy.no_action(r),
            prev_reward=jnp.zeros((r,), jnp.float32),
            prev_done=jnp.zeros((r,), jnp.float32),
            live=jnp.ones((r,), bool),
            pending=jnp.zeros((r,), bool),
            memory=memory,
        )

    def _begin(self, task, key: jax.Array, r: int, memory):
        """R rollouts' start of a sub-episode -> (RolloutState, key left for its steps).

        ``"same"``: the task's own state (``key`` untouched); ``"fresh"``: R draws of the
        env's ``reset_state`` in the task (the first half of ``key``)."""
        obs0, state0 = task
        if not self.fresh:
            return self._start(state0, obs0, r, memory), key
        k_start, key = jax.random.split(key)
        reset = jax.vmap(self.env.reset_state, in_axes=(0, None, None))
        obs, states = reset(jax.random.split(k_start, r), state0, self.env_params)
        s = self._start(state0, obs0, r, memory)
        return s.replace(env_state=states, obs=self._obs(obs, r)), key

    def agent_input(self, s: RolloutState) -> jax.Array:
        """Agent input of the current state."""
        return encode_input(
            s.obs, self.policy.features(s.prev_action), s.prev_reward, s.prev_done,
            self.reward_scale,
        )

    def _step(
        self,
        net_step,
        params,
        s: RolloutState,
        key: jax.Array,
        t: jax.Array,
        greedy: bool,
        absorb: bool,
    ):
        """One decision of R rollouts; masked rollouts keep everything unchanged.

        ``absorb`` (static): a rollout whose result is pending takes one memory
        step on it (concurrent explore phase); otherwise it stays pending.
        """
        r = s.live.shape[0]
        x = self.agent_input(s)
        steps = s.live | s.pending if absorb else s.live
        memory, logits, value = net_step(params, s.memory, x, steps)
        k_act, k_env = jax.random.split(key)
        action = self.policy.sample(k_act, jax.lax.stop_gradient(logits), greedy)
        step = jax.vmap(self.env.step_env, in_axes=(0, 0, 0, None))
        obs, env_state, reward, terminated, info = step(
            jax.random.split(k_env, r), s.env_state, self.policy.env_action(action),
            self.env_params,
        )
        truncated = jax.vmap(self.env.is_truncated, in_axes=(0, None))(env_state, self.env_params)
        done = terminated | truncated | (t + 1 >= self.horizon)
        live = s.live
        reward = jnp.where(live, reward.astype(jnp.float32), 0.0)
        goal = jnp.where(live, info.get("goal", jnp.full((r,), -1, jnp.int32)), -1)
        s = RolloutState(
            env_state=keep_where(live, env_state, s.env_state),
            obs=keep_where(live, self._obs(obs, r), s.obs),
            prev_action=keep_where(live, action, s.prev_action),
            prev_reward=jnp.where(live, reward, s.prev_reward),
            prev_done=jnp.where(live, done.astype(jnp.float32), s.prev_done),
            live=live & ~done,
            pending=jnp.where(live, done, s.pending & (not absorb)),
            memory=memory,
        )
        return s, Transition(x, logits, value, action, reward, live, goal.astype(jnp.int32))

    def _sub_episode(
        self, net_step, params, s: RolloutState, key: jax.Array, greedy: bool, absorb: bool = False
    ) -> "SubEpisode":
        """H decisions of R rollouts -> ``SubEpisode(final state, Transition [H, R, ...])``."""

        def body(carry, kt):
            k, t = kt
            return self._step(net_step, params, carry, k, t, greedy, absorb)

        keys = jax.random.split(key, self.horizon)
        steps = (keys, jnp.arange(self.horizon))
        if not self.constant_start:
            return SubEpisode(*self._scan(body, s, steps, self.horizon <= 4))
        # The first decision outside the loop (see ``inputs.constant_first_observation``):
        # the same keys and arithmetic, computed once where its inputs are unbatched.
        first_body = jax.checkpoint(body) if self.remat != "none" else body
        s, first = first_body(s, jax.tree.map(lambda a: a[0], steps))
        first = jax.tree.map(lambda a: a[None], first)
        if self.horizon == 1:
            return SubEpisode(s, first)
        rest = jax.tree.map(lambda a: a[1:], steps)
        s, later = self._scan(body, s, rest, self.horizon <= 4)
        return SubEpisode(s, jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, later))

    # ------------------------------------------------------------ meta-episode
    def task(self, key: jax.Array):
        """The task and initial state of a meta-episode: (obs0, state0) from its reset key."""
        return self.env.reset_env(key, self.env_params)

    # Each phase takes *step parameters* (``step_params(params)``: the constant input
    # features folded in), computed once per meta-episode by ``run_with_task``.
    def explore(self, step_params, task, key: jax.Array, greedy: bool = False):
        """The explore phase -> (Transition [T_e, R, ...], final RolloutState)."""
        params = step_params
        obs0, state0 = task
        agent = self.agent
        memory = agent.explore_carry(params)
        if self.concurrent:
            s, key = self._begin(task, key, self.k_explore, memory)
            out = self._sub_episode(agent.explore_step, params, s, key, greedy, absorb=True)
            return out.steps, out.final

        def sub_episode(carry: RolloutState, k):
            fresh, k = self._begin(task, k, 1, carry.memory)
            # previous-* inputs carry over the boundary (prev_done is 1 there).
            fresh = fresh.replace(
                prev_action=carry.prev_action,
                prev_reward=carry.prev_reward,
                prev_done=carry.prev_done,
            )
            out = self._sub_episode(agent.explore_step, params, fresh, k, greedy)
            return out.final, out.steps

        s = self._start(state0, obs0, 1, memory)
        keys = jax.random.split(key, self.k_explore)
        s, explore = jax.lax.scan(sub_episode, s, keys)  # leaves [K, H, 1, ...]
        explore = jax.tree.map(
            lambda a: jnp.reshape(a, (self.k_explore * self.horizon,) + a.shape[2:]), explore
        )
        return explore, s

    def handoff(self, step_params, final: RolloutState, handoff_input: jax.Array):
        """Hand-off step: the explore memory absorbs the results still pending -> exploit memory.

        ``handoff_input``: the agent input of ``final`` (``agent_input(final)``). Every explore
        rollout has ended here (done = 1 in its input); the ones whose result the memory
        already absorbed stay frozen.
        """
        agent = self.agent
        memory, _, _ = agent.explore_step(step_params, final.memory, handoff_input, final.pending)
        return agent.exploit_carry(step_params, memory)

    def exploit(self, step_params, task, memory, key: jax.Array,
                greedy: bool = False) -> Transition:
        """The exploit sub-episode from the task's initial state -> Transition [H, 1, ...]."""
        s, key = self._begin(task, key, 1, memory)
        return self._sub_episode(self.agent.exploit_step, step_params, s, key, greedy).steps

    def run(self, params, key: jax.Array, greedy: bool = False) -> MetaEpisode:
        """One meta-episode from ``key``: one reset key gives the task and initial state
        shared by every sub-episode and rollout; explore, hand-off, exploit."""
        return self.run_with_task(params, key, greedy)[0]

    def run_with_task(self, params, key: jax.Array, greedy: bool = False):
        """``run``, also returning the task it drew: (MetaEpisode, (obs0, state0)).

        For analyses that need the hidden task (goal positions, the positive goal).
        """
        k_reset, k_explore, k_exploit = jax.random.split(key, 3)
        task = self.task(k_reset)
        step_params = self.step_params(params)  # once per meta-episode
        explore, final = self.explore(step_params, task, k_explore, greedy)
        handoff_x = self.agent_input(final)
        memory = self.handoff(step_params, final, handoff_x)
        exploit = self.exploit(step_params, task, memory, k_exploit, greedy)
        success = self.success_fn(exploit, task, self.env_params)
        episode = MetaEpisode(explore=explore, exploit=exploit, success=success,
                              handoff_x=handoff_x, handoff_steps=final.pending)
        return episode, task
