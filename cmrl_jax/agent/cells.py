"""Memory cells the agent topologies are built from: LSTM and GRU (``CELLS``), and any
other by name (``get_cell``: an installed package's ``cmrl_jax.cells`` entry point, as our
minGRU, ``cmrl_jax.agent.mingru``; or ``module:name``; ``cmrl_jax.plugins``).

A topology (``cmrl_jax.agent.networks``) asks a ``Cell`` for four things, so a new
cell (S5, LRU, linear attention) is one ``Cell`` object and no topology changes:

- ``module(hidden, name)``: the flax cell, ``(carry, x [.., D]) -> (carry, out)``;
- ``states``: the names of its carry's parts, each learned as an initial-state
  parameter ``<prefix>_<state>0`` of shape [..., hidden] (LSTM: c and h; GRU: h);
  ``pack`` turns those parts into the cell's carry;
- ``output(carry) -> h [.., hidden]``: what the heads, the Meta-LSTM and the
  Central rollouts read;
- ``compact(params, compaction, blocks, tail)``: its parameters for an input
  whose constant features were left out (``inputs.InputCompaction``): each
  input product ``W x + b = W[keep] x[keep] + (b + W[const] c)`` keeps the
  varying rows of its kernel and folds the constant rows' share into a bias.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cmrl_jax.agent.inputs import InputCompaction
from cmrl_jax.plugins import Plugins


def fold_input(kernel, bias, keep, const, values):
    """``W x + b`` for the compact input: (W[keep], b + W[const] c), kernel [D, F] and bias
    [F] -> kernel [|keep|, F], bias [F] (a cell's ``compact`` rule, per input product)."""
    return kernel[keep], bias + jnp.asarray(values) @ kernel[const]


def compact_lstm(cell: dict, compaction: InputCompaction, blocks: int = 1, tail: int = 0):
    """An ``nn.OptimizedLSTMCell``'s params for the compact input: its input kernels
    ``i{i,f,g,o}`` have no bias, so the constant share joins the hidden ones' ``h*``."""
    keep, const, values = compaction.rows(blocks, tail)
    cell = dict(cell)
    for gate in "ifgo":
        kernel, bias = fold_input(cell[f"i{gate}"]["kernel"], cell[f"h{gate}"]["bias"], keep,
                                  const, values)
        cell[f"i{gate}"] = {**cell[f"i{gate}"], "kernel": kernel}
        cell[f"h{gate}"] = {**cell[f"h{gate}"], "bias": bias}
    return cell


def compact_gru(cell: dict, compaction: InputCompaction, blocks: int = 1, tail: int = 0):
    """A GRU cell's params (``FusedGRUCell``: ``nn.GRUCell``'s layout) for the compact
    input: each input product ``i{r,z,n}`` has its own bias (the candidate's ``in`` sits
    outside the reset gate's product, so its constant share must stay there, not in
    ``hn``)."""
    keep, const, values = compaction.rows(blocks, tail)
    cell = dict(cell)
    for gate in "rzn":
        dense = cell[f"i{gate}"]
        kernel, bias = fold_input(dense["kernel"], dense["bias"], keep, const, values)
        cell[f"i{gate}"] = {"kernel": kernel, "bias": bias}
    return cell


class _DenseParams(nn.Module):
    """The parameters of one ``nn.Dense`` (same names, shapes, initialisers), without its
    product: ``(in_features) -> (kernel [in, features], bias [features] or None)``."""

    features: int
    use_bias: bool
    kernel_init: Callable

    @nn.compact
    def __call__(self, in_features: int):
        kernel = self.param("kernel", self.kernel_init, (in_features, self.features))
        bias = (self.param("bias", nn.initializers.zeros_init(), (self.features,))
                if self.use_bias else None)
        return kernel, bias


class FusedGRUCell(nn.Module):
    """``nn.GRUCell``'s maths and parameters (``ir, iz, in`` with biases, lecun-normal;
    ``hr, hz`` without, ``hn`` with, orthogonal) in two matrix products per step instead
    of six: the input's three gates side by side, the memory's three side by side. A replay
    step of a small batch is bound by the number of XLA ops it runs, not by its FLOPs.

        r = sigmoid(W_ir x + b_ir + W_hr h),   z = sigmoid(W_iz x + b_iz + W_hz h)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),   h' = (1 - z) n + z h
    """

    features: int

    @nn.compact
    def __call__(self, carry, inputs):
        """(h [..., H], x [..., D]) -> (h', h')."""
        h, f = carry, self.features
        lecun, orth = nn.initializers.lecun_normal(), nn.initializers.orthogonal()
        ins = [_DenseParams(f, True, lecun, name=g)(inputs.shape[-1]) for g in ("ir", "iz", "in")]
        hid = [_DenseParams(f, g == "hn", orth, name=g)(f) for g in ("hr", "hz", "hn")]
        gi = (inputs @ jnp.concatenate([k for k, _ in ins], axis=-1)
              + jnp.concatenate([b for _, b in ins]))
        gh = h @ jnp.concatenate([k for k, _ in hid], axis=-1)
        r = nn.sigmoid(gi[..., :f] + gh[..., :f])
        z = nn.sigmoid(gi[..., f:2 * f] + gh[..., f:2 * f])
        n = jnp.tanh(gi[..., 2 * f:] + r * (gh[..., 2 * f:] + hid[2][1]))
        new = (1.0 - z) * n + z * h
        return new, new


@dataclass(frozen=True)
class Cell:
    """A recurrent cell, as the topologies use it (see the module docstring)."""

    module: Callable[..., nn.Module]  # (hidden, name=...) -> flax RNN cell
    states: tuple[str, ...]  # the carry's parts, in ``pack`` order
    pack: Callable[[tuple], Any]  # learned initial parts -> carry
    output: Callable[[Any], Any]  # carry -> h
    compact: Callable[..., dict]  # (cell params, compaction, blocks, tail) -> cell params


CELLS: dict[str, Cell] = {
    "lstm": Cell(nn.OptimizedLSTMCell, ("c", "h"), tuple, lambda carry: carry[1], compact_lstm),
    "gru": Cell(FusedGRUCell, ("h",), lambda parts: parts[0], lambda carry: carry, compact_gru),
}
"""The built-in memory cells by name; ``get_cell`` resolves every other (``TrainConfig.cell``,
``--cell``)."""

CELL_PLUGINS: Plugins[Cell] = Plugins(
    "cell", "cmrl_jax.cells", CELLS, lambda obj: obj if isinstance(obj, Cell) else None,
    "a cmrl_jax.agent.cells.Cell")
"""Every cell by name: ``CELLS``, then the ``cmrl_jax.cells`` entry points, then
``module:name`` (``cmrl_jax.plugins``)."""


def get_cell(name: str) -> Cell:
    """The cell called ``name`` (``CELL_PLUGINS``); ConfigError (one line) if none is."""
    return CELL_PLUGINS.resolve(name)


def param_name(cell: str) -> str:
    """The cell's part of its modules' parameter names (``explore_<it>``, ``exploit_<it>``):
    a plain name as it is (``lstm``: LSTM folders keep their layout), in a ``module:name``
    every character but ASCII letters, digits and ``_`` as ``_`` (no ``.`` or ``:`` in a
    checkpoint's keys)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", cell)
