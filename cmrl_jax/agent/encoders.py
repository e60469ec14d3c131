"""Observation encoders: what the memory cells read of an observation (``ENCODERS``).

The agent input is [flattened observation (O features), previous-action features,
previous reward, previous done] (``cmrl_jax.agent.inputs``). An encoder turns it into
[features of the observation, the same previous-* features] before any cell reads
it; the encoder's weights are shared by the explore and exploit phases.

- ``flat`` (default): the input as it is; no parameters (every paper table).
- ``grid``: symbolic grid observations [V, V, C] of small integer ids per channel
  (XLand-MiniGrid's tile and colour ids; Crafter- or NetHack-like views): one learned
  embedding table per channel (vocabulary: the observation space's ``high`` + 1 of that
  channel), the channels' embeddings side by side, two 2 x 2 convolutions and a dense
  layer. An id is a category, not a magnitude: a ``flat`` MLP/LSTM would read tile 12
  as "twelve times tile 1".

A new encoder is one entry: ``Encoder(build, check)``, where ``build(obs_shape, vocab,
options)`` returns a flax module ``x [R, D] -> [R, F + D - O]`` and ``check`` refuses
an observation space it cannot read (one line, before anything compiles).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class Conv2x2(nn.Module):
    """A 2 x 2 VALID convolution written as one matrix product of the four shifted views
    (im2col): [N, V, W, C] -> [N, V - 1, W - 1, features]. ``nn.Conv``'s parameters (kernel
    [2, 2, C, features], lecun-normal; bias, zeros) and maths; XLA's CPU convolution runs
    the backward pass of a tiny kernel over a large batch (a replay encodes a whole phase at
    once) several times slower than this product."""

    features: int

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (2, 2, c, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        patches = jnp.concatenate([x[:, :-1, :-1], x[:, :-1, 1:], x[:, 1:, :-1], x[:, 1:, 1:]],
                                  axis=-1)  # [N, V-1, W-1, 4C] in the kernel's (dy, dx) order
        return patches @ jnp.reshape(kernel, (4 * c, self.features)) + bias


class GridEncoder(nn.Module):
    """Embeddings of a symbolic grid's ids, two convolutions, a dense layer.

    x [R, D] whose first O = V * W * C features are the grid's ids (floats holding
    integers) -> [R, features + D - O]: the grid's features, then x's other features.
    """

    obs_shape: tuple[int, ...]  # (V, W, C)
    vocab: tuple[int, ...]  # C: ids per channel
    embed: int = 16
    channels: tuple[int, ...] = (16, 32)
    features: int = 64

    @nn.compact
    def __call__(self, x):
        obs_dim = int(np.prod(self.obs_shape))
        r = x.shape[0]
        ids = jnp.reshape(jnp.round(x[:, :obs_dim]).astype(jnp.int32), (r,) + self.obs_shape)
        parts = [nn.Embed(n, self.embed, name=f"embed_{c}")(jnp.clip(ids[..., c], 0, n - 1))
                 for c, n in enumerate(self.vocab)]
        h = jnp.concatenate(parts, axis=-1)  # [R, V, W, C * embed]
        for i, width in enumerate(self.channels):
            h = nn.relu(Conv2x2(width, name=f"conv_{i}")(h))
        h = nn.relu(nn.Dense(self.features, name="dense")(jnp.reshape(h, (r, -1))))
        return jnp.concatenate([h, x[:, obs_dim:]], axis=-1)


def _grid_check(obs_shape: tuple[int, ...], high: Any) -> str | None:
    """Why ``grid`` cannot read this observation space, or None."""
    if len(obs_shape) != 3:
        return f"the grid encoder reads observations [V, W, C], not {list(obs_shape)}"
    if min(obs_shape[:2]) < 3:
        return f"the grid encoder needs a view of at least 3 x 3, got {list(obs_shape[:2])}"
    highs = np.broadcast_to(np.asarray(high), obs_shape)
    if not np.all(np.isfinite(highs)) or np.any(highs < 0) or np.any(highs > 65535):
        return "the grid encoder needs integer ids with a finite high of at most 65535"
    return None


def _grid_vocab(obs_shape: tuple[int, ...], high: Any) -> tuple[int, ...]:
    """Ids per channel: the largest ``high`` of the channel + 1."""
    highs = np.broadcast_to(np.asarray(high), obs_shape)
    return tuple(int(highs[..., c].max()) + 1 for c in range(obs_shape[-1]))


@dataclass(frozen=True)
class Encoder:
    """An observation encoder by name (``ENCODERS``)."""

    # (obs shape, observation space high) -> a flax module over the agent input, or None
    # (the input as it is)
    build: Callable[[tuple[int, ...], Any], nn.Module | None]
    # (obs shape, high) -> why this encoder cannot read the space (one line), or None
    check: Callable[[tuple[int, ...], Any], str | None] = lambda shape, high: None


ENCODERS: dict[str, Encoder] = {
    "flat": Encoder(build=lambda shape, high: None),
    "grid": Encoder(
        build=lambda shape, high: GridEncoder(tuple(shape), _grid_vocab(shape, high)),
        check=_grid_check),
}
"""Every observation encoder by name (``TrainConfig.encoder``, ``--extra encoder=grid``)."""
