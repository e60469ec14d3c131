"""Observation encoders: the grid encoder reads ids as categories; refusals; agents use it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmrl_jax.agent.encoders import ENCODERS, GridEncoder
from cmrl_jax.agent.networks import make_agent
from cmrl_jax.config import ConfigError, RunSpec, TrainConfig

SHAPE = (3, 3, 2)
VOCAB = (4, 3)


def _input(ids: np.ndarray, tail=(1.0, 0.0, 0.5)) -> jnp.ndarray:
    """One agent input: the grid's ids flattened, then previous-* features."""
    return jnp.asarray(np.concatenate([ids.ravel(), tail])[None], jnp.float32)


def test_grid_encoder_shapes_and_passes_the_tail_through():
    enc = GridEncoder(SHAPE, VOCAB, embed=4, channels=(5,), features=7)
    x = _input(np.zeros(SHAPE))
    params = enc.init(jax.random.PRNGKey(0), x)
    assert params["params"]["embed_0"]["embedding"].shape == (4, 4)
    assert params["params"]["embed_1"]["embedding"].shape == (3, 4)
    out = enc.apply(params, jnp.concatenate([x, x + 0.0]))
    assert out.shape == (2, 7 + 3)
    np.testing.assert_array_equal(out[:, 7:], [[1.0, 0.0, 0.5]] * 2)


def test_ids_are_categories_not_magnitudes():
    """Changing one cell's tile id changes the features through that id's own embedding row:
    the gradient reaches exactly the rows of the ids present."""
    enc = GridEncoder(SHAPE, VOCAB, embed=4, channels=(5,), features=7)
    ids = np.zeros(SHAPE)
    ids[1, 1, 0] = 3
    x = _input(ids)
    params = enc.init(jax.random.PRNGKey(0), x)
    grads = jax.grad(lambda p: jnp.sum(enc.apply(p, x) ** 2))(params)["params"]
    rows = np.abs(np.asarray(grads["embed_0"]["embedding"])).sum(axis=1)
    assert rows[0] > 0 and rows[3] > 0 and rows[1] == 0 and rows[2] == 0
    other = ids.copy()
    other[1, 1, 0] = 2
    assert not np.allclose(enc.apply(params, x), enc.apply(params, _input(other)))


def test_grid_vocab_from_the_space_and_refusals():
    high = np.broadcast_to(np.asarray([12.0, 11.0]), (5, 5, 2))
    module = ENCODERS["grid"].build((5, 5, 2), high)
    assert module.vocab == (13, 12)
    check = ENCODERS["grid"].check
    assert check((5, 5, 2), high) is None
    assert "[V, W, C]" in check((50,), 1.0)
    assert "3 x 3" in check((2, 2, 1), 1.0)
    assert "finite high" in check((5, 5, 2), np.inf)
    assert ENCODERS["flat"].build((50,), 1.0) is None


@pytest.mark.parametrize("arch", ["sequential", "central_lstm", "meta_lstm"])
def test_every_topology_reads_through_the_encoder(arch):
    """Explore and exploit steps of an agent with a grid encoder: shapes, one shared encoder."""
    enc = ENCODERS["grid"].build(SHAPE, np.broadcast_to(np.asarray([3.0, 2.0]), SHAPE))
    k = 1 if arch == "sequential" else 2
    agent = make_agent(arch, 8, 3, 2, encoder=enc)
    d = int(np.prod(SHAPE)) + 3 + 2
    params = agent.init(jax.random.PRNGKey(0), d)
    assert "encoder" in params["params"]
    carry = agent.explore_carry(params)
    x = jnp.ones((k, d))
    carry, logits, value = agent.explore_step(params, carry, x, jnp.ones((k,), bool))
    assert logits.shape == (k, 3) and value.shape == (k,)
    memory = agent.exploit_carry(params, carry)
    _, logits, _ = agent.exploit_step(params, memory, x[:1], jnp.ones((1,), bool))
    assert logits.shape == (1, 3)


def test_config_refuses_an_unknown_encoder_and_one_that_cannot_read_the_env():
    with pytest.raises(ConfigError, match="unknown encoder 'cnn'; known: flat, grid"):
        TrainConfig(encoder="cnn")
    cfg = TrainConfig(encoder="grid", runs=(RunSpec("Max-Until-Exploit", 0, 1e-3),))
    with pytest.raises(ConfigError, match="encoder grid cannot read env monty_hall"):
        cfg.validate()


def test_conv2x2_is_a_2x2_valid_convolution():
    """The im2col convolution has nn.Conv's parameters (tree, shapes, initial values) and
    output: [N, V, W, C] -> [N, V - 1, W - 1, F]."""
    import flax.linen as nn

    from cmrl_jax.agent.encoders import Conv2x2

    x = jax.random.normal(jax.random.PRNGKey(3), (4, 5, 6, 3))
    ours, ref = Conv2x2(7), nn.Conv(7, (2, 2), padding="VALID")
    p, q = ours.init(jax.random.PRNGKey(0), x), ref.init(jax.random.PRNGKey(0), x)
    assert jax.tree.structure(p) == jax.tree.structure(q)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q), strict=True):
        np.testing.assert_array_equal(a, b)
    q = jax.tree.map(lambda a: a + jax.random.normal(jax.random.PRNGKey(1), a.shape), q)
    got, want = ours.apply(q, x), ref.apply(q, x)
    assert got.shape == (4, 4, 5, 7)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["sequential", "meta_lstm"])
def test_inputs_encoded_at_once_give_the_steps_own_heads(arch):
    """A replay encodes a whole phase's stored inputs in one pass (``Agent.encode``) and steps
    on the features (``encoded=True``): the same heads as steps that encode their own input."""
    enc = ENCODERS["grid"].build(SHAPE, np.broadcast_to(np.asarray([3.0, 2.0]), SHAPE))
    k = 1 if arch == "sequential" else 2
    agent = make_agent(arch, 8, 3, 2, cell="gru", encoder=enc)
    d = int(np.prod(SHAPE)) + 3 + 2
    params = agent.init(jax.random.PRNGKey(0), d)
    ids = jax.random.randint(jax.random.PRNGKey(1), (6, k, d), 0, 3).astype(jnp.float32)
    live = jnp.ones((k,), bool)

    def heads(xs, encoded):
        def body(c, x):
            c, logits, value = agent.explore_step(params, c, x, live, encoded=encoded)
            return c, (logits, value)
        return jax.lax.scan(body, agent.explore_carry(params), xs)[1]

    features = agent.encode(params, ids)
    assert features.shape == (6, k, 64 + 3 + 2)
    for got, want in zip(heads(features, True), heads(ids, False), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert agent.has_encoder and not make_agent(arch, 8, 3, 2).has_encoder
    flat = make_agent(arch, 8, 3, 2)
    np.testing.assert_array_equal(flat.encode(flat.init(jax.random.PRNGKey(0), d), ids), ids)
