"""Recurrent explore / exploit agents: sequential (RL2, ERL2), Central-LSTM, Meta-LSTM.

Every agent has separate recurrent weights and heads for the explore and the
exploit phase (paper 2.2). One interface for all, used by the engine:

    explore_carry(params)                      -> carry
    explore_step(params, carry, x [R, D], live [R]) -> carry, logits [R, A], value [R]
    exploit_carry(params, explore carry)       -> carry      (the hand-off)
    exploit_step(params, carry, x [1, D], live [1]) -> carry, logits [1, A], value [1]

R is the number of explore rollouts stepping together: 1 for the sequential
agents, K for CMRL. On a masked step (``live`` False) the recurrent state is
returned unchanged.
"""

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from cmrl_jax.inputs import InputCompaction, compact_cell

Carry = tuple[jax.Array, jax.Array]  # (c, h) of an LSTM


def keep_where(live: jax.Array, new, old):
    """Per-leaf ``where(live, new, old)``, broadcasting ``live`` over trailing axes."""

    def pick(n, o):
        m = jnp.reshape(live, live.shape + (1,) * (n.ndim - live.ndim))
        return jnp.where(m, n, o)

    return jax.tree.map(pick, new, old)


class _ExploitPolicy(nn.Module):
    """Exploit LSTM and heads (own weights), one rollout."""

    hidden: int
    num_actions: int

    def setup(self):
        self.cell = nn.OptimizedLSTMCell(self.hidden, name="exploit_lstm")
        self.pi = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01))
        self.v = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))

    def __call__(self, carry: Carry, x: jax.Array, live: jax.Array):
        """[1, D] -> carry, logits [1, A], value [1]; carry is unbatched (c [H], h [H])."""
        new, h = self.cell(carry, x[0])
        carry = keep_where(jnp.any(live), new, carry)
        h = carry[1]
        return carry, self.pi(h)[None], self.v(h)[None, 0]


class _SingleMemoryAgent(nn.Module):
    """Shared parts of agents whose explore memory is one LSTM state (c [H], h [H]).

    Subclasses define ``setup`` (``cell``, ``pi``, ``v``, ``c0``, ``h0``, ``exploit``)
    and ``explore_step``.
    """

    hidden: int
    num_actions: int
    num_rollouts: int = 1

    def explore_carry(self) -> Carry:
        """Learned initial memory."""
        return (self.c0, self.h0)

    def input_cells(self):
        """The LSTM cells that read the agent input: (param path, blocks, tail) each
        (their input: ``blocks`` agent inputs, then ``tail`` other features)."""
        return ((("explore_lstm",), 1, 0), (("exploit", "exploit_lstm"), 1, 0))

    def exploit_carry(self, carry: Carry) -> Carry:
        """The explore memory starts the exploit LSTM."""
        return carry

    def exploit_step(self, carry: Carry, x: jax.Array, live: jax.Array):
        """[1, D] -> carry, logits [1, A], value [1]."""
        return self.exploit(carry, x, live)

    def __call__(self, x: jax.Array, live: jax.Array):
        """Touch every parameter (used by ``init``)."""
        carry, _, _ = self.explore_step(self.explore_carry(), x, live)
        return self.exploit_step(self.exploit_carry(carry), x[:1], live[:1])


class SequentialAgent(_SingleMemoryAgent):
    """RL2 / ERL2: one LSTM over the explore sub-episodes in sequence (R = 1)."""

    def setup(self):
        self.cell = nn.OptimizedLSTMCell(self.hidden, name="explore_lstm")
        self.pi = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01))
        self.v = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))
        self.c0 = self.param("explore_c0", nn.initializers.zeros, (self.hidden,))
        self.h0 = self.param("explore_h0", nn.initializers.zeros, (self.hidden,))
        self.exploit = _ExploitPolicy(self.hidden, self.num_actions)

    def explore_step(self, carry: Carry, x: jax.Array, live: jax.Array):
        """[1, D] -> carry, logits [1, A], value [1]."""
        new, _ = self.cell(carry, x[0])
        carry = keep_where(jnp.any(live), new, carry)
        h = carry[1]
        return carry, self.pi(h)[None], self.v(h)[None, 0]


class CentralLSTMAgent(_SingleMemoryAgent):
    """CMRL Central-LSTM: one LSTM over all K rollouts' inputs, one head per rollout."""

    def setup(self):
        k, a = self.num_rollouts, self.num_actions
        self.cell = nn.OptimizedLSTMCell(self.hidden, name="explore_lstm")
        # Factored output: independent policy and value heads per rollout. Their
        # different random initial weights break the symmetry between rollouts
        # at t = 0, where every rollout sees the same input.
        self.pi = nn.Dense(k * a, kernel_init=nn.initializers.orthogonal(1.0))
        self.v = nn.Dense(k, kernel_init=nn.initializers.orthogonal(1.0))
        self.c0 = self.param("explore_c0", nn.initializers.zeros, (self.hidden,))
        self.h0 = self.param("explore_h0", nn.initializers.zeros, (self.hidden,))
        self.exploit = _ExploitPolicy(self.hidden, self.num_actions)

    def input_cells(self):
        """The explore LSTM reads the K rollouts' inputs side by side."""
        return ((("explore_lstm",), self.num_rollouts, 0), (("exploit", "exploit_lstm"), 1, 0))

    def explore_step(self, carry: Carry, x: jax.Array, live: jax.Array):
        """[K, D] -> carry, logits [K, A], value [K]; the LSTM steps while any rollout lives."""
        new, _ = self.cell(carry, jnp.reshape(x, (-1,)))
        carry = keep_where(jnp.any(live), new, carry)
        h = carry[1]
        logits = jnp.reshape(self.pi(h), (self.num_rollouts, self.num_actions))
        return carry, logits, self.v(h)


class MetaLSTMAgent(nn.Module):
    """CMRL Meta-LSTM (paper 4.1).

    h^r_{k,t} = LSTM_rollout([x_{k,t}; h^meta_{t-1}], h^r_{k,t-1})   (weights shared over k)
    h^meta_t  = LSTM_meta([h^r_{0,t}; ...; h^r_{K-1,t}], h^meta_{t-1})
    The initial states {h^r_{k,0}} (one per rollout) and h^meta_0 are learned.
    Policy and value heads are shared and read h^r_{k,t}.
    """

    hidden: int
    num_actions: int
    num_rollouts: int
    init_state_scale: float = 0.5

    def setup(self):
        k, h = self.num_rollouts, self.hidden
        init = nn.initializers.normal(self.init_state_scale)
        self.rollout_cell = nn.OptimizedLSTMCell(h, name="rollout_lstm")
        self.meta_cell = nn.OptimizedLSTMCell(h, name="meta_lstm")
        # Unit-scale head: rollouts with different initial states start with
        # visibly different policies, so L_D has a gradient from the first update.
        self.pi = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(1.0))
        self.v = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))
        # Distinct learned per-rollout initial states break the symmetry at t = 0.
        self.rollout_c0 = self.param("rollout_c0", init, (k, h))
        self.rollout_h0 = self.param("rollout_h0", init, (k, h))
        self.meta_c0 = self.param("meta_c0", nn.initializers.zeros, (h,))
        self.meta_h0 = self.param("meta_h0", nn.initializers.zeros, (h,))
        self.exploit = _ExploitPolicy(h, self.num_actions)

    def explore_carry(self):
        """((rollout c [K, H], rollout h [K, H]), (meta c [H], meta h [H]))."""
        return ((self.rollout_c0, self.rollout_h0), (self.meta_c0, self.meta_h0))

    def input_cells(self):
        """The rollout LSTM reads [x; h_meta], the exploit LSTM x."""
        return ((("rollout_lstm",), 1, self.hidden), (("exploit", "exploit_lstm"), 1, 0))

    def explore_step(self, carry, x: jax.Array, live: jax.Array):
        """[K, D] -> carry, logits [K, A], value [K]."""
        rollout, meta = carry
        k = self.num_rollouts
        h_meta = jnp.broadcast_to(meta[1], (k, self.hidden))
        new_rollout, _ = self.rollout_cell(rollout, jnp.concatenate([x, h_meta], axis=-1))
        rollout = keep_where(live, new_rollout, rollout)
        new_meta, _ = self.meta_cell(meta, jnp.reshape(rollout[1], (-1,)))
        meta = keep_where(jnp.any(live), new_meta, meta)
        h = rollout[1]
        return (rollout, meta), self.pi(h), self.v(h)[:, 0]

    def exploit_carry(self, carry) -> Carry:
        """The Meta-LSTM memory starts the exploit LSTM."""
        return carry[1]

    def exploit_step(self, carry: Carry, x: jax.Array, live: jax.Array):
        """[1, D] -> carry, logits [1, A], value [1]."""
        return self.exploit(carry, x, live)

    def __call__(self, x: jax.Array, live: jax.Array):
        """Touch every parameter (used by ``init``)."""
        carry, _, _ = self.explore_step(self.explore_carry(), x, live)
        return self.exploit_step(self.exploit_carry(carry), x[:1], live[:1])


@dataclass(frozen=True)
class Agent:
    """A bound agent: the module plus pure functions of ``params`` for the engine."""

    module: nn.Module
    num_rollouts: int  # R: explore rollouts stepping together

    def init(self, key: jax.Array, input_dim: int):
        """Initial parameters."""
        r = self.num_rollouts
        return self.module.init(key, jnp.zeros((r, input_dim)), jnp.ones((r,), bool))

    def compact_params(self, params, compaction: InputCompaction):
        """``params`` for the compact agent input (``InputCompaction``); differentiable."""
        tree = dict(params["params"])
        for path, blocks, tail in self.module.input_cells():
            node = tree
            for name in path[:-1]:
                node[name] = dict(node[name])
                node = node[name]
            node[path[-1]] = compact_cell(node[path[-1]], compaction, blocks, tail)
        return {**params, "params": tree}

    def explore_carry(self, params):
        """Initial explore memory."""
        return self.module.apply(params, method="explore_carry")

    def explore_step(self, params, carry, x, live):
        """One explore decision for R rollouts."""
        return self.module.apply(params, carry, x, live, method="explore_step")

    def exploit_carry(self, params, carry):
        """Hand-off: explore memory -> exploit memory."""
        return self.module.apply(params, carry, method="exploit_carry")

    def exploit_step(self, params, carry, x, live):
        """One exploit decision."""
        return self.module.apply(params, carry, x, live, method="exploit_step")


@dataclass(frozen=True)
class Architecture:
    """A memory topology: its module, and whether its explore rollouts run concurrently
    (CMRL: K rollouts at once) or one sub-episode after another (RL2 / ERL2)."""

    module: type  # (hidden, num_actions, k_explore) -> nn.Module; sequential ignores k
    concurrent: bool


ARCHITECTURES: dict[str, Architecture] = {
    "sequential": Architecture(SequentialAgent, concurrent=False),
    "central_lstm": Architecture(CentralLSTMAgent, concurrent=True),
    "meta_lstm": Architecture(MetaLSTMAgent, concurrent=True),
}
"""Every topology by name; a new one says explicitly whether it is concurrent."""


def make_agent(architecture: str, hidden: int, num_actions: int, k_explore: int) -> Agent:
    """Build the agent for ``architecture`` (see ``ARCHITECTURES``)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")
    arch = ARCHITECTURES[architecture]
    if not arch.concurrent:
        return Agent(arch.module(hidden, num_actions), 1)
    return Agent(arch.module(hidden, num_actions, k_explore), k_explore)
