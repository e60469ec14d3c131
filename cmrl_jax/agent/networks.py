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
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cmrl_jax.agent.cells import Cell, get_cell, param_name
from cmrl_jax.agent.inputs import InputCompaction


def keep_where(live: jax.Array, new, old):
    """Per-leaf ``where(live, new, old)``, broadcasting ``live`` over trailing axes."""

    def pick(n, o):
        m = jnp.reshape(live, live.shape + (1,) * (n.ndim - live.ndim))
        return jnp.where(m, n, o)

    return jax.tree.map(pick, new, old)


def _encoded(module: nn.Module, x: jax.Array, encoded: bool = False) -> jax.Array:
    """The agent input as the cells read it: through the agent's observation encoder
    (``cmrl_jax.agent.encoders``; shared by both phases), or as it is (no encoder, or ``x``
    already encoded: ``Agent.encode``)."""
    return x if encoded or module.encoder is None else module.encoder(x)


def _initial_state(module: nn.Module, cell: Cell, prefix: str, shape: tuple, init) -> Any:
    """The learned initial carry of ``cell``: one parameter ``<prefix>_<part>0`` per part of
    its carry (LSTM: c, h), created in that order."""
    return cell.pack(tuple(module.param(f"{prefix}_{part}0", init, shape)
                           for part in cell.states))


class _ExploitPolicy(nn.Module):
    """Exploit memory cell and heads (own weights), one rollout."""

    hidden: int
    num_actions: int
    cell: str = "lstm"

    def setup(self):
        self.kind = get_cell(self.cell)
        self.memory = self.kind.module(self.hidden, name=f"exploit_{param_name(self.cell)}")
        self.pi = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01))
        self.v = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))

    def __call__(self, carry, x: jax.Array, live: jax.Array):
        """[1, D] -> carry, logits [1, A], value [1]; carry is unbatched (LSTM: c, h [H])."""
        new, _ = self.memory(carry, x[0])
        carry = keep_where(jnp.any(live), new, carry)
        h = self.kind.output(carry)
        return carry, self.pi(h)[None], self.v(h)[None, 0]


class _SingleMemoryAgent(nn.Module):
    """Shared parts of agents whose explore memory is one cell's state ([H] parts).

    Subclasses define ``setup`` (``kind``, ``memory``, ``pi``, ``v``, ``initial``,
    ``exploit``) and ``explore_step``.
    """

    hidden: int
    num_actions: int
    num_rollouts: int = 1
    cell: str = "lstm"
    encoder: nn.Module | None = None  # observation encoder (cmrl_jax.agent.encoders); None: flat

    def explore_carry(self):
        """Learned initial memory."""
        return self.initial

    def input_cells(self):
        """The cells that read the agent input: (param path, blocks, tail) each
        (their input: ``blocks`` agent inputs, then ``tail`` other features)."""
        tag = param_name(self.cell)
        return (((f"explore_{tag}",), 1, 0), (("exploit", f"exploit_{tag}"), 1, 0))

    def exploit_carry(self, carry):
        """The explore memory starts the exploit cell."""
        return carry

    def encode(self, x: jax.Array) -> jax.Array:
        """Agent inputs [N, D] -> what the cells read [N, D'] (``Agent.encode``)."""
        return _encoded(self, x)

    def exploit_step(self, carry, x: jax.Array, live: jax.Array, encoded: bool = False):
        """[1, D] -> carry, logits [1, A], value [1]."""
        return self.exploit(carry, _encoded(self, x, encoded), live)

    def __call__(self, x: jax.Array, live: jax.Array):
        """Touch every parameter (used by ``init``)."""
        carry, _, _ = self.explore_step(self.explore_carry(), x, live)
        return self.exploit_step(self.exploit_carry(carry), x[:1], live[:1])


class SequentialAgent(_SingleMemoryAgent):
    """RL2 / ERL2: one memory cell over the explore sub-episodes in sequence (R = 1)."""

    def setup(self):
        self.kind = get_cell(self.cell)
        self.memory = self.kind.module(self.hidden, name=f"explore_{param_name(self.cell)}")
        self.pi = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01))
        self.v = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))
        self.initial = _initial_state(self, self.kind, "explore", (self.hidden,),
                                      nn.initializers.zeros)
        self.exploit = _ExploitPolicy(self.hidden, self.num_actions, self.cell)

    def explore_step(self, carry, x: jax.Array, live: jax.Array, encoded: bool = False):
        """[1, D] -> carry, logits [1, A], value [1]."""
        new, _ = self.memory(carry, _encoded(self, x, encoded)[0])
        carry = keep_where(jnp.any(live), new, carry)
        h = self.kind.output(carry)
        return carry, self.pi(h)[None], self.v(h)[None, 0]


class CentralLSTMAgent(_SingleMemoryAgent):
    """CMRL Central-LSTM: one memory cell over all K rollouts' inputs, one head per rollout
    (with ``cell="gru"`` a central GRU)."""

    def setup(self):
        k, a = self.num_rollouts, self.num_actions
        self.kind = get_cell(self.cell)
        self.memory = self.kind.module(self.hidden, name=f"explore_{param_name(self.cell)}")
        # Factored output: independent policy and value heads per rollout. Their
        # different random initial weights break the symmetry between rollouts
        # at t = 0, where every rollout sees the same input.
        self.pi = nn.Dense(k * a, kernel_init=nn.initializers.orthogonal(1.0))
        self.v = nn.Dense(k, kernel_init=nn.initializers.orthogonal(1.0))
        self.initial = _initial_state(self, self.kind, "explore", (self.hidden,),
                                      nn.initializers.zeros)
        self.exploit = _ExploitPolicy(self.hidden, self.num_actions, self.cell)

    def input_cells(self):
        """The explore cell reads the K rollouts' inputs side by side."""
        return (((f"explore_{param_name(self.cell)}",), self.num_rollouts, 0),
                (("exploit", f"exploit_{param_name(self.cell)}"), 1, 0))

    def explore_step(self, carry, x: jax.Array, live: jax.Array, encoded: bool = False):
        """[K, D] -> carry, logits [K, A], value [K]; the cell steps while any rollout lives."""
        new, _ = self.memory(carry, jnp.reshape(_encoded(self, x, encoded), (-1,)))
        carry = keep_where(jnp.any(live), new, carry)
        h = self.kind.output(carry)
        logits = jnp.reshape(self.pi(h), (self.num_rollouts, self.num_actions))
        return carry, logits, self.v(h)


class MetaLSTMAgent(nn.Module):
    """CMRL Meta-LSTM (paper 4.1; with ``cell="gru"`` the same topology of GRUs).

    h^r_{k,t} = cell_rollout([x_{k,t}; h^meta_{t-1}], h^r_{k,t-1})   (weights shared over k)
    h^meta_t  = cell_meta([h^r_{0,t}; ...; h^r_{K-1,t}], h^meta_{t-1})
    The initial states {h^r_{k,0}} (one per rollout) and h^meta_0 are learned.
    Policy and value heads are shared and read h^r_{k,t}.
    """

    hidden: int
    num_actions: int
    num_rollouts: int
    cell: str = "lstm"
    init_state_scale: float = 0.5
    encoder: nn.Module | None = None  # observation encoder (cmrl_jax.agent.encoders); None: flat

    def setup(self):
        k, h = self.num_rollouts, self.hidden
        init = nn.initializers.normal(self.init_state_scale)
        self.kind = get_cell(self.cell)
        self.rollout_memory = self.kind.module(h, name=f"rollout_{param_name(self.cell)}")
        self.meta_memory = self.kind.module(h, name=f"meta_{param_name(self.cell)}")
        # Unit-scale head: rollouts with different initial states start with
        # visibly different policies, so L_D has a gradient from the first update.
        self.pi = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(1.0))
        self.v = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))
        # Distinct learned per-rollout initial states break the symmetry at t = 0.
        self.rollout_initial = _initial_state(self, self.kind, "rollout", (k, h), init)
        self.meta_initial = _initial_state(self, self.kind, "meta", (h,), nn.initializers.zeros)
        self.exploit = _ExploitPolicy(h, self.num_actions, self.cell)

    def explore_carry(self):
        """(rollout carry, parts [K, H]; meta carry, parts [H])."""
        return (self.rollout_initial, self.meta_initial)

    def input_cells(self):
        """The rollout cell reads [x; h_meta], the exploit cell x."""
        return (((f"rollout_{param_name(self.cell)}",), 1, self.hidden),
                (("exploit", f"exploit_{param_name(self.cell)}"), 1, 0))

    def encode(self, x: jax.Array) -> jax.Array:
        """Agent inputs [N, D] -> what the cells read [N, D'] (``Agent.encode``)."""
        return _encoded(self, x)

    def explore_step(self, carry, x: jax.Array, live: jax.Array, encoded: bool = False):
        """[K, D] -> carry, logits [K, A], value [K]."""
        rollout, meta = carry
        k = self.num_rollouts
        h_meta = jnp.broadcast_to(self.kind.output(meta), (k, self.hidden))
        x = _encoded(self, x, encoded)
        new_rollout, _ = self.rollout_memory(rollout, jnp.concatenate([x, h_meta], axis=-1))
        rollout = keep_where(live, new_rollout, rollout)
        h = self.kind.output(rollout)
        new_meta, _ = self.meta_memory(meta, jnp.reshape(h, (-1,)))
        meta = keep_where(jnp.any(live), new_meta, meta)
        return (rollout, meta), self.pi(h), self.v(h)[:, 0]

    def exploit_carry(self, carry):
        """The meta memory starts the exploit cell."""
        return carry[1]

    def exploit_step(self, carry, x: jax.Array, live: jax.Array, encoded: bool = False):
        """[1, D] -> carry, logits [1, A], value [1]."""
        return self.exploit(carry, _encoded(self, x, encoded), live)

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
        """``params`` for the compact agent input (``InputCompaction``, the cell's own rule);
        differentiable."""
        compact = get_cell(self.module.cell).compact
        tree = dict(params["params"])
        for path, blocks, tail in self.module.input_cells():
            node = tree
            for name in path[:-1]:
                node[name] = dict(node[name])
                node = node[name]
            node[path[-1]] = compact(node[path[-1]], compaction, blocks, tail)
        return {**params, "params": tree}

    def explore_carry(self, params):
        """Initial explore memory."""
        return self.module.apply(params, method="explore_carry")

    @property
    def has_encoder(self) -> bool:
        """Whether the cells read an observation encoder's features (not the input)."""
        return getattr(self.module, "encoder", None) is not None

    def encode(self, params, x: jax.Array) -> jax.Array:
        """Stored agent inputs [..., D] -> what the cells read [..., D'], every leading
        axis at once: a replay encodes a whole phase in one batched pass before its step
        scan (the steps then take ``encoded=True``), instead of one small encoder call
        (and its backward) per step. The identity without an encoder."""
        if not self.has_encoder:
            return x
        out = self.module.apply(params, jnp.reshape(x, (-1, x.shape[-1])), method="encode")
        return jnp.reshape(out, x.shape[:-1] + out.shape[-1:])

    def explore_step(self, params, carry, x, live, encoded: bool = False):
        """One explore decision for R rollouts (``encoded``: x is ``encode``'s output)."""
        return self.module.apply(params, carry, x, live, encoded, method="explore_step")

    def exploit_carry(self, params, carry):
        """Hand-off: explore memory -> exploit memory."""
        return self.module.apply(params, carry, method="exploit_carry")

    def exploit_step(self, params, carry, x, live, encoded: bool = False):
        """One exploit decision (``encoded``: x is ``encode``'s output)."""
        return self.module.apply(params, carry, x, live, encoded, method="exploit_step")


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


def make_agent(architecture: str, hidden: int, num_actions: int, k_explore: int,
               cell: str = "lstm", encoder: nn.Module | None = None) -> Agent:
    """Build the agent for ``architecture`` (see ``ARCHITECTURES``) from ``cell`` (a name
    ``cells.get_cell`` resolves) and an observation ``encoder`` (``cmrl_jax.agent.encoders``;
    None: the flat input). ConfigError (a ValueError) for an unknown cell."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")
    get_cell(cell)
    arch = ARCHITECTURES[architecture]
    if not arch.concurrent:
        return Agent(arch.module(hidden, num_actions, cell=cell, encoder=encoder), 1)
    return Agent(arch.module(hidden, num_actions, k_explore, cell=cell, encoder=encoder),
                 k_explore)
