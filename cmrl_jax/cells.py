"""Memory cells the agent topologies are built from: LSTM and GRU (``CELLS``).

A topology (``cmrl_jax.networks``) asks a ``Cell`` for four things, so a new
cell (S5, LRU, linear attention) is one entry here and no topology changes:

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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cmrl_jax.inputs import InputCompaction


def _fold(kernel, bias, keep, const, values):
    """``W x + b`` for the compact input: (W[keep], b + W[const] c)."""
    return kernel[keep], bias + jnp.asarray(values) @ kernel[const]


def compact_lstm(cell: dict, compaction: InputCompaction, blocks: int = 1, tail: int = 0):
    """An ``nn.OptimizedLSTMCell``'s params for the compact input: its input kernels
    ``i{i,f,g,o}`` have no bias, so the constant share joins the hidden ones' ``h*``."""
    keep, const, values = compaction.rows(blocks, tail)
    cell = dict(cell)
    for gate in "ifgo":
        kernel, bias = _fold(cell[f"i{gate}"]["kernel"], cell[f"h{gate}"]["bias"], keep, const,
                             values)
        cell[f"i{gate}"] = {**cell[f"i{gate}"], "kernel": kernel}
        cell[f"h{gate}"] = {**cell[f"h{gate}"], "bias": bias}
    return cell


def compact_gru(cell: dict, compaction: InputCompaction, blocks: int = 1, tail: int = 0):
    """An ``nn.GRUCell``'s params for the compact input: each input product ``i{r,z,n}`` has
    its own bias (the candidate's ``in`` sits outside the reset gate's product, so its
    constant share must stay there, not in ``hn``)."""
    keep, const, values = compaction.rows(blocks, tail)
    cell = dict(cell)
    for gate in "rzn":
        dense = cell[f"i{gate}"]
        kernel, bias = _fold(dense["kernel"], dense["bias"], keep, const, values)
        cell[f"i{gate}"] = {"kernel": kernel, "bias": bias}
    return cell


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
    "gru": Cell(nn.GRUCell, ("h",), lambda parts: parts[0], lambda carry: carry, compact_gru),
}
"""Every memory cell by name (``TrainConfig.cell``, ``--cell``)."""
