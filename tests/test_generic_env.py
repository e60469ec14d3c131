"""Any gymnax environment whose reset draws a task trains with no change."""

import jax
import numpy as np
from gymnax.environments.misc.bernoulli_bandit import BernoulliBandit

from cmrl_jax.config import RunSpec, TrainConfig
from cmrl_jax.registry import register_env, registered_envs
from cmrl_jax.train import make_trainer

if "gymnax_bernoulli_bandit" not in registered_envs():
    register_env(
        "gymnax_bernoulli_bandit",
        lambda: (BernoulliBandit(), BernoulliBandit().default_params),
    )


def test_gymnax_bandit_trains_unchanged():
    """gymnax's own Bernoulli bandit (task = arm probabilities drawn at reset), ERL2 and CMRL."""
    for arch, method in (("sequential", "ERL2"), ("meta_lstm", "Max-Until-Exploit")):
        cfg = TrainConfig(
            env="gymnax_bernoulli_bandit", env_kwargs=(), architecture=arch, hidden=8,
            k_explore=2, horizon=3, batch_size=4, num_updates=2, chunk_updates=2,
            eval_batches=1, eval_batch_size=8, runs=(RunSpec(method, 0, 1e-3, 0.1),),
        )
        trainer = make_trainer(cfg)
        state, hp = trainer.init()
        state, metrics = trainer.train_chunk(state, hp)
        assert np.all(np.isfinite(np.asarray(metrics.loss)))
        assert int(state.update[0]) == 2
        stats = trainer.evaluate(state, hp)
        # no info["goal"]: nothing counted as a goal; success is the generic default
        # (exploit return > 0: one of the H = 3 exploit pulls paid), never a fake 0
        assert float(stats.visited_goals[0]) == 0.0
        assert 0.0 < float(stats.success[0]) <= 1.0
        ep = trainer.runner.run(jax.tree.map(lambda a: a[0], state.params), jax.random.PRNGKey(0))
        # sequential: K*H explore slots in a row; concurrent: H slots of K rollouts
        assert ep.explore.x.shape[0] == (6 if arch == "sequential" else 3)
