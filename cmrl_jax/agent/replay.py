"""Replays of stored meta-episodes: what a collect-then-learn learner differentiates.

``Replay`` is the half of ``engine.MetaEpisodeRunner`` that re-runs the agent over a
collected meta-episode's stored inputs (``Transition.x``) instead of stepping the env:
the whole meta-episode from its initial memory (``replay``; PPO), the explore network on
permuted rollouts (``rerun_explore``; the divergence term), and windows from their
carried memories (``window_starts``, ``replay_window``; truncated backpropagation). The
memory steps exactly where the run stepped it (``memory_steps``), so a replay with the
collecting parameters reproduces the run's heads. The differentiated scans of both halves
(``_scan``) are rematerialised as the runner's ``remat`` says.

The host class provides ``agent``, ``concurrent``, ``remat`` and ``step_params``.
"""

from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    from cmrl_jax.agent.engine import MetaEpisode


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


def segment_length(t: int) -> int:
    """The divisor of ``t`` nearest sqrt(t) (ties: the smaller): steps per rematerialised
    segment. A prime ``t`` gets 1 (per-step checkpoints)."""
    divisors = [d for d in range(1, t + 1) if t % d == 0]
    return min(divisors, key=lambda d: (abs(d - t ** 0.5), d))


class Replay:
    """Re-running the agent over stored inputs (mixed into ``engine.MetaEpisodeRunner``)."""

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

    def replay(self, params, ep: "MetaEpisode"):
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
        explore, exploit = ep.explore, ep.exploit
        memory, (explore_logits, explore_value) = self._replay_steps(
            agent.explore_step, params, agent.explore_carry(params), explore.x,
            self.memory_steps(explore.live))
        memory, _, _ = agent.explore_step(params, memory, ep.handoff_x, ep.handoff_steps)
        _, (exploit_logits, exploit_value) = self._replay_steps(
            agent.exploit_step, params, agent.exploit_carry(params, memory), exploit.x,
            exploit.live)
        return explore_logits, explore_value, exploit_logits, exploit_value

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
    def window_starts(self, params, ep: "MetaEpisode", window: int,
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

        explore, exploit = ep.explore, ep.exploit
        explore_steps = self.memory_steps(explore.live)
        memory, explore_starts = starts(agent.explore_step, agent.explore_carry(params),
                                        explore.x, explore_steps)
        memory, _, _ = agent.explore_step(params, memory, ep.handoff_x, ep.handoff_steps)
        _, exploit_starts = starts(agent.exploit_step, agent.exploit_carry(params, memory),
                                   exploit.x, exploit.live)
        cross = None
        if self.concurrent and perms is not None:
            runs = [starts(agent.explore_step, agent.explore_carry(params),
                           explore.x[:, perm], explore_steps[:, perm])[1] for perm in perms]
            cross = jax.tree.map(lambda *a: jnp.stack(a), *runs)
        return WindowStarts(explore_starts, exploit_starts, cross)

    def replay_window(self, params, explore: bool, memory, x: jax.Array, steps: jax.Array,
                      first: jax.Array | bool = False):
        """Re-run one window of stored inputs x [W, R, D] (memory steps [W, R]) with the
        explore or the exploit network -> (logits [W, R, P], values [W, R]).

        The window starts from its carried ``memory``, a constant (the gradient stops
        there: truncation), except the explore phase's first window (``first``, bool
        scalar, may be traced): it starts from the learned initial memory under ``params``,
        as the whole-meta-episode replay does, so its gradient trains the initial states
        (and a later minibatch step starts it from the current parameters, not the
        collecting ones). The exploit phase's first window starts from the hand-off's
        carried memory: no exploit loss reaches back into the explore phase."""
        params = self.step_params(params)
        step = self.agent.explore_step if explore else self.agent.exploit_step
        memory = jax.lax.stop_gradient(memory)
        if explore:
            memory = jax.tree.map(lambda init, carried: jnp.where(first, init, carried),
                                  self.agent.explore_carry(params), memory)
        _, heads = self._replay_steps(step, params, memory, x, steps)
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
