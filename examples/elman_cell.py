"""A memory cell from outside the library: the Elman RNN (docs/extending.md, "Memory cells").

    h' = tanh(W x + b + U h)

    python -m experiments.train --env examples.hidden_chest:hidden_chest \
        --cell examples.elman_cell:ELMAN
"""

import flax.linen as nn
import jax.numpy as jnp

from cmrl_jax.agent.cells import Cell, fold_input
from cmrl_jax.agent.inputs import InputCompaction


class ElmanCell(nn.Module):
    """One step. Parameters: ``input`` (kernel [D, H], bias [H]) and ``hidden`` (kernel
    [H, H], no bias)."""

    features: int

    @nn.compact
    def __call__(self, carry, inputs):
        """(h [..., H], x [..., D]) -> (h', h')."""
        new = jnp.tanh(nn.Dense(self.features, name="input")(inputs)
                       + nn.Dense(self.features, use_bias=False, name="hidden")(carry))
        return new, new


def compact_elman(cell: dict, compaction: InputCompaction, blocks: int = 1, tail: int = 0):
    """The params for an input without its constant features: the input product keeps its
    varying rows, the constant rows' share joins its bias."""
    keep, const, values = compaction.rows(blocks, tail)
    kernel, bias = fold_input(cell["input"]["kernel"], cell["input"]["bias"], keep, const,
                              values)
    return {**cell, "input": {"kernel": kernel, "bias": bias}}


ELMAN = Cell(module=ElmanCell, states=("h",), pack=lambda parts: parts[0],
             output=lambda carry: carry, compact=compact_elman)
