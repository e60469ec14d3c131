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


class WindowStarts(NamedTuple):
    """The carried memories of truncated backpropagation (``MetaEpisodeRunner.window_starts``):
    the memory at the start of each window of a collected meta-episode's phases.

    Leaves: explore [T_e / W, ...], exploit [H / W, ...] (the exploit carry: the first one
    is the hand-off's memory); cross [num_derangements, T_e / W, ...] (concurrent: the
    explore network's memory on each derangement's permuted inputs), else None.
    """

    explore: Any
    exploit: Any
    cross: Any = None


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


REMAT = ("none", "step", "segments")
"""Rematerialisation of the differentiated step scans (``MetaEpisodeRunner``'s ``remat``)."""

START_PROTOCOLS = ("same", "fresh")
"""Where sub-episodes start (``MetaEpisodeRunner``'s ``subepisode_start``; config mirrors it)."""


def segment_length(t: int) -> int:
    """The divisor of ``t`` nearest sqrt(t) (ties: the smaller): steps per rematerialised
    segment. A prime ``t`` gets 1 (per-step checkpoints)."""
    divisors = [d for d in range(1, t + 1) if t % d == 0]
    return min(divisors, key=lambda d: (abs(d - t ** 0.5), d))


def goal_success(exploit: "Transition", task, env_params) -> jax.Array:
    """Default success of an env that reports ``info["goal"]``: the exploit sub-episode
    entered a goal with positive reward (bool scalar)."""
    return jnp.any((exploit.goal >= 0) & (exploit.reward > 0))


def _broadcast(tree, r: int):
    """Add a leading rollout axis of size r to every leaf."""
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (r,) + jnp.shape(a)), tree)


class MetaEpisodeRunner:
    """Runs meta-episodes of one agent on one environment (static configuration)."""

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
    def _scan(self, body, carry, xs, unroll: bool):
        """``lax.scan(body, carry, xs)`` of a differentiated step scan, rematerialised as
        ``remat`` says (per step, or in segments of about sqrt(T) steps)."""
        if self.remat == "step":
            return jax.lax.scan(jax.checkpoint(body), carry, xs, unroll=unroll)
        if self.remat == "none":
            return jax.lax.scan(body, carry, xs, unroll=unroll)
        t = jax.tree.leaves(xs)[0].shape[0]
        seg = segment_length(t)
        split = jax.tree.map(lambda a: jnp.reshape(a, (t // seg, seg) + a.shape[1:]), xs)

        @jax.checkpoint
        def segment(c, part):
            return jax.lax.scan(body, c, part)

        carry, ys = jax.lax.scan(segment, carry, split)
        return carry, jax.tree.map(lambda a: jnp.reshape(a, (t,) + a.shape[2:]), ys)

    def _encode(self, params, x: jax.Array, differentiated: bool = True):
        """Stored inputs [T, R, D] -> (what the step scan reads, whether it is encoded).

        With an encoder and no ``remat``: the cells' features of all T x R inputs in one
        batched pass (``Agent.encode``); an encoding depends on its input only. Under
        ``remat`` (differentiated) the steps encode their own input inside the
        rematerialised scan instead: a batched pass keeps, or recomputes at once, the
        encoder's activations for every step, which would grow with T past the scan's
        bound (docs/design.md, "Where a replay spends its time")."""
        if not self.agent.has_encoder or (differentiated and self.remat != "none"):
            return x, False
        return self.agent.encode(params, x), True

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

    def _input(self, s: RolloutState) -> jax.Array:
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
        x = self._input(s)
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

    def explore(self, params, task, key: jax.Array, greedy: bool = False):
        """The explore phase -> (Transition [T_e, R, ...], final RolloutState)."""
        return self._explore(self.step_params(params), task, key, greedy)

    def _explore(self, params, task, key: jax.Array, greedy: bool):
        """``explore`` with step parameters (``step_params``)."""
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

    def handoff(self, params, final: RolloutState):
        """Hand-off step: the explore memory absorbs the results still pending -> exploit memory.

        Every explore rollout has ended here (done = 1 in its input); the ones
        whose result the memory already absorbed stay frozen.
        """
        return self._handoff(self.step_params(params), final, self._input(final))

    def _handoff(self, params, final: RolloutState, x: jax.Array):
        """``handoff`` with step parameters and its input ``x`` (``_input(final)``)."""
        memory, _, _ = self.agent.explore_step(params, final.memory, x, final.pending)
        return self.agent.exploit_carry(params, memory)

    def exploit(self, params, task, memory, key: jax.Array, greedy: bool = False) -> Transition:
        """The exploit sub-episode from the task's initial state -> Transition [H, 1, ...]."""
        return self._exploit(self.step_params(params), task, memory, key, greedy)

    def _exploit(self, params, task, memory, key: jax.Array, greedy: bool) -> Transition:
        """``exploit`` with step parameters."""
        s, key = self._begin(task, key, 1, memory)
        return self._sub_episode(self.agent.exploit_step, params, s, key, greedy).steps

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
        explore, final = self._explore(step_params, task, k_explore, greedy)
        handoff_x = self._input(final)
        memory = self._handoff(step_params, final, handoff_x)
        exploit = self._exploit(step_params, task, memory, k_exploit, greedy)
        success = self.success_fn(exploit, task, self.env_params)
        episode = MetaEpisode(explore=explore, exploit=exploit, success=success,
                              handoff_x=handoff_x, handoff_steps=final.pending)
        return episode, task

    def memory_steps(self, live: jax.Array) -> jax.Array:
        """Which explore slots step the memory, from which are live: bool [T, R] -> [T, R].

        Live decisions, and (concurrent) the absorb step right after a rollout's
        end: a rollout is live on a prefix of the phase, so that is the first
        slot where it is dead after a live one.
        """
        if not self.concurrent:
            return live
        before = jnp.concatenate([jnp.zeros_like(live[:1]), live[:-1]], axis=0)
        return live | before

    def replay(self, params, ep: MetaEpisode):
        """Re-run the agent over a meta-episode's stored inputs, from its initial memory:
        what a collect-then-learn learner differentiates (full backpropagation through the
        meta-episode).

        ``ep`` as ``run`` returns it (stored inputs ``Transition.x``, live masks, the
        hand-off input). The memory steps exactly where it stepped in the run (explore:
        ``memory_steps``; the hand-off; exploit: live decisions), so replaying with the
        collecting parameters reproduces the run's heads.

        Returns:
            (explore logits [T_e, R, P], explore values [T_e, R],
             exploit logits [H, 1, P], exploit values [H, 1]).
        """
        params = self.step_params(params)
        agent = self.agent
        e, x = ep.explore, ep.exploit
        memory, (e_logits, e_value) = self._replay_steps(
            agent.explore_step, params, agent.explore_carry(params), e.x,
            self.memory_steps(e.live))
        memory, _, _ = agent.explore_step(params, memory, ep.handoff_x, ep.handoff_steps)
        _, (x_logits, x_value) = self._replay_steps(
            agent.exploit_step, params, agent.exploit_carry(params, memory), x.x, x.live)
        return e_logits, e_value, x_logits, x_value

    def _replay_steps(self, step, params, memory, x: jax.Array, steps: jax.Array,
                      differentiated: bool = True):
        """Scan ``step`` (with step parameters) over stored inputs x [T, R, D] and memory
        steps [T, R] from ``memory`` -> (memory after, (logits [T, R, P], values [T, R]));
        rematerialised as ``remat`` says where ``differentiated``; the inputs encoded as
        ``_encode`` says."""
        x, encoded = self._encode(params, x, differentiated)

        def body(memory, xs):
            memory, logits, value = step(params, memory, *xs, encoded=encoded)
            return memory, (logits, value)

        unroll = x.shape[0] <= 4
        if differentiated:
            return self._scan(body, memory, (x, steps), unroll)
        return jax.lax.scan(body, memory, (x, steps), unroll=unroll)

    # ------------------------------------------------- truncated backpropagation
    def window_starts(self, params, ep: MetaEpisode, window: int,
                      perms: jax.Array | None = None) -> WindowStarts:
        """The memory at the start of every window of ``window`` decision slots of a stored
        meta-episode, as the run that made it carried it (no gradient): what truncated
        backpropagation restarts each window from.

        A forward pass over the stored inputs, stepping the memory exactly where the run
        did (``replay``); the hand-off is a window boundary (the exploit phase's first
        window starts from its memory). ``perms`` [num_derangements, K] (concurrent):
        also the explore network's memories on each derangement's permuted inputs, the
        starts of the divergence term's windows. ``window`` divides H (so T_e too).
        """
        params = self.step_params(jax.lax.stop_gradient(params))
        agent = self.agent

        def starts(step, memory, x, steps):
            n = x.shape[0] // window
            split = lambda a: jnp.reshape(a, (n, window) + a.shape[1:])  # noqa: E731

            def body(memory, xs):
                after, _ = self._replay_steps(step, params, memory, *xs, differentiated=False)
                return after, memory

            return jax.lax.scan(body, memory, (split(x), split(steps)))

        e, x = ep.explore, ep.exploit
        e_steps = self.memory_steps(e.live)
        memory, e_starts = starts(agent.explore_step, agent.explore_carry(params), e.x, e_steps)
        memory, _, _ = agent.explore_step(params, memory, ep.handoff_x, ep.handoff_steps)
        _, x_starts = starts(agent.exploit_step, agent.exploit_carry(params, memory), x.x,
                             x.live)
        cross = None
        if self.concurrent and perms is not None:
            runs = [starts(agent.explore_step, agent.explore_carry(params), e.x[:, perm],
                           e_steps[:, perm])[1] for perm in perms]
            cross = jax.tree.map(lambda *a: jnp.stack(a), *runs)
        return WindowStarts(e_starts, x_starts, cross)

    def replay_window(self, params, explore: bool, memory, x: jax.Array, steps: jax.Array):
        """Re-run one window of stored inputs x [W, R, D] (memory steps [W, R]) from its
        carried start ``memory`` (a constant: the gradient stops there) with the explore
        or the exploit network -> (logits [W, R, P], values [W, R])."""
        params = self.step_params(params)
        step = self.agent.explore_step if explore else self.agent.exploit_step
        _, heads = self._replay_steps(step, params, jax.lax.stop_gradient(memory), x, steps)
        return heads

    def rerun_explore(self, params, x: jax.Array, live: jax.Array):
        """Re-run the explore network on given inputs: [T, R, D], [T, R] -> logits [T, R, A].

        ``x``: agent inputs as the engine stores them (``Transition.x``, width ``x_dim``).

        ``live`` marks the live decisions of each input row; the memory steps
        as in the run that made them (``memory_steps``), so re-running a
        meta-episode's own inputs reproduces its logits.
        """

        params = self.step_params(params)
        x, encoded = self._encode(params, x)

        def body(memory, xs):
            memory, logits, _ = self.agent.explore_step(params, memory, *xs, encoded=encoded)
            return memory, logits

        _, logits = self._scan(body, self.agent.explore_carry(params),
                               (x, self.memory_steps(live)), x.shape[0] <= 4)
        return logits
