"""The PyTorch peer benchmark (benchmarks/torch_peer/): its configuration, parameter count
and reference returns always; the torch parts only where torch is installed (CI has none)."""

import jax
import numpy as np
import pytest

from benchmarks import torch_peer as tp
from cmrl_jax.train import make_runner


@pytest.fixture(scope="module")
def pc():
    """The peer's configuration, read from our Table 1 program."""
    return tp.table1_config()


def test_config_and_parameter_count_are_ours(pc):
    assert (pc.num_doors, pc.k_explore, pc.horizon, pc.hidden, pc.batch_size) == (
        10, 10, 1, 32, 128)
    assert pc.methods == ("RL2",) * 3 + ("ERL2",) * 3
    runner = make_runner(tp.table1_program())
    params = runner.agent.init(jax.random.PRNGKey(0), runner.input_dim)
    assert runner.input_dim == pc.input_dim
    assert tp.param_count(pc) == sum(a.size for a in jax.tree.leaves(params)) == 12888


def test_reference_returns_are_ours(pc):
    arrays = tp.check_returns(pc)
    for method in ("RL2", "ERL2"):
        np.testing.assert_allclose(arrays[method]["reference"], arrays[method]["ours"],
                                   rtol=1e-6, atol=1e-6)
    # ERL2: every explore return is the exploit return discounted back to it.
    erl2 = arrays["ERL2"]["ours"]
    assert erl2[-2] == pytest.approx(0.99 * 0.1)
    assert erl2[1] == erl2[2]  # a masked slot passes its successor's return through


def test_torch_env_matches_ours_and_random_policy_succeeds_one_in_eleven(pc):
    pytest.importorskip("torch")
    tp.check_env(pc)
    torch_rate, ours_rate = tp.random_policy_success(pc), tp.ours_random_policy_success(pc)
    assert abs(torch_rate - 1 / 11) < 0.011 and abs(ours_rate - 1 / 11) < 0.011


def test_torch_returns_and_network_match_ours(pc):
    pytest.importorskip("torch")
    for arrays in tp.check_returns(pc).values():
        np.testing.assert_allclose(arrays["torch"], arrays["ours"], rtol=1e-6, atol=1e-6)
    assert tp.check_network(pc) < 1e-4


def test_torch_update_matches_ours_on_the_same_meta_episodes(pc):
    pytest.importorskip("torch")
    result = tp.check_update(pc)
    assert result["loss_max_abs_diff"] < 1e-4
    assert result["grad_max_abs_diff"] < 1e-4 < result["grad_max_abs"]


def test_torch_peer_update_trains_every_run(pc):
    torch = pytest.importorskip("torch")
    import dataclasses

    peer = tp.TorchPeer(dataclasses.replace(pc, batch_size=8))
    before = {k: v.detach().clone() for k, v in peer.params.items()}
    info = peer.update()
    assert bool(info["finite"].all()) and info["loss"].shape == (6,)
    assert bool((info["grad_norm"] > 0).all())
    moved = torch.stack([(peer.params[k].detach() - before[k]).flatten(1).abs().amax(1)
                         for k in before]).amax(0)
    assert bool((moved > 0).all())  # each run's slice of the stacked weights took a step
