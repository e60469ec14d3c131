"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): the third memory cell, ``--cell
mingru``.

Its gate and candidate read the input only, never the memory:

    z_t = sigmoid(W_z x_t + b_z),   h~_t = W_h x_t + b_h,   h_t = (1 - z_t) h_{t-1} + z_t h~_t

so the memory is a linear recurrence in h (parallel-scannable over time; the engine steps
one decision at a time, so this is the plain sequential form, without the paper's log-space
variant and its g() activation). Each h_t is a convex mix of h_{t-1} and h~_t: bounded by
the inputs' candidates. Nothing mixes the memory's units with each other nonlinearly across
steps: that is the model.

It is not in ``cells.CELLS``: it ships as a plug-in, through the ``cmrl_jax.cells`` entry
point ``mingru = "cmrl_jax.agent.mingru:MINGRU"`` (pyproject.toml), the route any package's
cell takes (``cmrl_jax.plugins``).
"""

import flax.linen as nn

from cmrl_jax.agent.cells import Cell, fold_input
from cmrl_jax.agent.inputs import InputCompaction


class MinGRUCell(nn.Module):
    """One minGRU step. Parameters: ``input`` (an ``nn.Dense`` of 2H features, lecun-normal
    kernel [D, 2H], zero bias [2H]): columns [:H] the gate z, [H:] the candidate h~, one
    matrix product per step."""

    features: int

    @nn.compact
    def __call__(self, carry, inputs):
        """(h [..., H], x [..., D]) -> (h', h')."""
        f = self.features
        gates = nn.Dense(2 * f, name="input")(inputs)
        z, candidate = nn.sigmoid(gates[..., :f]), gates[..., f:]
        new = (1.0 - z) * carry + z * candidate
        return new, new


def compact_mingru(cell: dict, compaction: InputCompaction, blocks: int = 1, tail: int = 0):
    """A ``MinGRUCell``'s params for the compact input: its one input product has its own
    bias, which takes the constant rows' share of both the gate and the candidate."""
    keep, const, values = compaction.rows(blocks, tail)
    dense = cell["input"]
    kernel, bias = fold_input(dense["kernel"], dense["bias"], keep, const, values)
    return {**cell, "input": {"kernel": kernel, "bias": bias}}


MINGRU = Cell(MinGRUCell, ("h",), lambda parts: parts[0], lambda carry: carry, compact_mingru)
"""The minGRU as a ``Cell``: one carry part, h [..., H]."""
