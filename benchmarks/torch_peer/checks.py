"""Correctness checks of the PyTorch peer against our JAX implementation: the env step,
random-policy success, returns, the network and one whole update (``run_checks``)."""

import dataclasses

import numpy as np

from benchmarks.torch_peer.model import (
    METHODS,
    PeerConfig,
    env_step,
    heads,
    init_params,
    lstm_step,
    param_count,
    params_from_flax,
    reference_returns,
    returns,
    table1_program,
    update_loss,
)

try:  # optional: check_returns' ours and reference arrays need no torch
    import torch
except ImportError:  # pragma: no cover - CI has no torch
    torch = None


def check_env(pc: PeerConfig) -> None:
    """The torch env step equals ``envs.monty_hall.MontyHall.step_env`` on every
    (gold door, action) pair: reward, done and goal."""
    import jax
    import jax.numpy as jnp

    from cmrl_jax.registry import make_env

    env, params = make_env("monty_hall", num_doors=pc.num_doors)
    golds, actions = np.meshgrid(np.arange(pc.num_doors), np.arange(pc.num_actions),
                                 indexing="ij")
    golds, actions = golds.ravel(), actions.ravel()

    def ours(gold, action):
        _, state = env.reset_env(jax.random.PRNGKey(0), params)
        state = state.replace(gold=gold)
        _, _, reward, done, info = env.step_env(jax.random.PRNGKey(0), state, action, params)
        return reward, done, info["goal"]

    r_j, d_j, g_j = jax.vmap(ours)(jnp.asarray(golds, jnp.int32), jnp.asarray(actions, jnp.int32))
    r_t, d_t, g_t = env_step(pc, torch.tensor(golds), torch.tensor(actions))
    np.testing.assert_allclose(r_t.numpy(), np.asarray(r_j), rtol=0, atol=0)
    np.testing.assert_array_equal(d_t.numpy(), np.asarray(d_j))
    np.testing.assert_array_equal(g_t.numpy(), np.asarray(g_j))


def random_policy_success(pc: PeerConfig, episodes: int = 20000, seed: int = 0) -> float:
    """Exploit success of uniform random actions in the torch env (expected 1 / (N + 1))."""
    g = torch.Generator().manual_seed(seed)
    gold = torch.randint(0, pc.num_doors, (episodes,), generator=g)
    action = torch.randint(0, pc.num_actions, (episodes,), generator=g)
    reward, _, goal = env_step(pc, gold, action)
    return float(((goal >= 0) & (reward > 0)).float().mean())


def ours_random_policy_success(pc: PeerConfig, episodes: int = 20000, seed: int = 0) -> float:
    """The same with our engine: neutral (zero-logit) policy, exploit success per meta-episode."""
    import jax
    import jax.numpy as jnp

    from cmrl_jax.registry import make_env

    env, params = make_env("monty_hall", num_doors=pc.num_doors)
    k_reset, k_act = jax.random.split(jax.random.PRNGKey(seed))

    def one(kr, ka):
        _, state = env.reset_env(kr, params)
        action = jax.random.categorical(ka, jnp.zeros(pc.num_actions))
        _, _, reward, _, info = env.step_env(ka, state, action, params)
        return (info["goal"] >= 0) & (reward > 0)

    ok = jax.vmap(one)(jax.random.split(k_reset, episodes), jax.random.split(k_act, episodes))
    return float(jnp.mean(ok))


def check_returns(pc: PeerConfig) -> dict:
    """Returns of a hand-made meta-episode (H = 2, masked slots, both methods): ours
    (``common.training_rewards`` + ``a2c.meta_episode_returns``), the numpy reference
    and (if torch is installed) the torch peer's. -> the arrays per method."""
    import jax.numpy as jnp

    from cmrl_jax.agent.engine import MetaEpisode, Transition
    from cmrl_jax.learners.a2c import meta_episode_returns
    from cmrl_jax.learners.common import training_rewards
    from cmrl_jax.rewards import scheme_id

    k, hz = 3, 2
    rew_e = np.array([-1.0, 0.0, 0.1, 0.0, -1.0, 0.1], np.float32)  # masked slots hold 0
    live_e = np.array([1, 0, 1, 1, 1, 1], bool)
    rew_x = np.array([0.0, 0.1], np.float32)
    live_x = np.array([1, 1], bool)  # NOOP then gold would be H = 2 in a generic env

    def tr(rw, lv):
        z = jnp.zeros((len(rw), 1))
        return Transition(z, z, z[:, 0], z[:, 0].astype(jnp.int32),
                          jnp.asarray(rw)[:, None], jnp.asarray(lv)[:, None],
                          jnp.full((len(rw), 1), -1))

    ep = MetaEpisode(tr(rew_e, live_e), tr(rew_x, live_x))
    out = {}
    small = dataclasses.replace(pc, k_explore=k, horizon=hz)
    for method, scheme, keep in (("RL2", "separate", 1.0), ("ERL2", "zero", 0.0)):
        train = training_rewards(ep, scheme_id(scheme), k, concurrent=False)
        g_e, g_x = meta_episode_returns(ep, train, pc.gamma)
        ours = np.concatenate([np.asarray(g_e)[:, 0], np.asarray(g_x)[:, 0]])
        ref = reference_returns(np.concatenate([rew_e, rew_x]),
                                np.concatenate([live_e, live_x]), keep == 1.0, k * hz, pc.gamma)
        out[method] = {"ours": ours, "reference": ref}
        if torch is None:
            continue
        rw = torch.tensor(np.concatenate([rew_e, rew_x]))[:, None]
        lv = torch.tensor(np.concatenate([live_e, live_x]), dtype=torch.float32)[:, None]
        keep_t = torch.ones_like(rw)
        keep_t[: k * hz] = keep
        peer = returns(small, rw * lv * keep_t, lv)[:, 0].numpy()
        out[method]["torch"] = peer
    return out


def check_network(pc: PeerConfig, steps: int = 6, seed: int = 0) -> float:
    """Our SequentialAgent's parameters loaded into the peer: explore logits and values
    over ``steps`` random inputs, the hand-off, then an exploit step. -> max |difference|."""
    import jax
    import jax.numpy as jnp

    from cmrl_jax.agent.networks import make_agent

    agent = make_agent("sequential", pc.hidden, pc.num_actions, 1)
    fp = agent.init(jax.random.PRNGKey(seed), pc.input_dim)
    fp = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(1), a.shape), fp)
    xs = np.random.default_rng(seed).normal(size=(steps + 1, 1, pc.input_dim)).astype(np.float32)
    carry, ours = agent.explore_carry(fp), []
    for t in range(steps):
        carry, logits, value = agent.explore_step(fp, carry, jnp.asarray(xs[t]), jnp.ones(1, bool))
        ours.append(np.concatenate([np.asarray(logits)[0], np.asarray(value)]))
    carry = agent.exploit_carry(fp, carry)
    _, logits, value = agent.exploit_step(fp, carry, jnp.asarray(xs[steps]), jnp.ones(1, bool))
    ours.append(np.concatenate([np.asarray(logits)[0], np.asarray(value)]))

    p = params_from_flax([fp])
    peer = []
    with torch.no_grad():
        c, h = p["c0"], p["h0"]
        for t in range(steps):
            c, h = lstm_step(p, "e", c, h, torch.tensor(xs[t])[None])
            lg, v = heads(p, "e", h, pc.num_actions)
            peer.append(np.concatenate([lg[0, 0].numpy(), v[0].numpy()]))
        c, h = lstm_step(p, "x", c, h, torch.tensor(xs[steps])[None])
        lg, v = heads(p, "x", h, pc.num_actions)
        peer.append(np.concatenate([lg[0, 0].numpy(), v[0].numpy()]))
    return float(np.max(np.abs(np.stack(ours) - np.stack(peer))))


def check_update(pc: PeerConfig, batch: int = 4, seed: int = 0) -> dict:
    """One RL2 and one ERL2 run, both ways on the same meta-episodes: our
    ``a2c.meta_episode_loss`` (batch mean) and its ``jax.grad``, against the peer's
    ``update_loss`` with our parameters, our tasks (gold doors) and our sampled actions
    forced. -> max |difference| of the losses and of the gradients (every parameter)."""
    import jax
    import jax.numpy as jnp

    from cmrl_jax.rewards import scheme_id
    from cmrl_jax.train import make_runner

    cfg = table1_program(batch_size=batch)
    runner = make_runner(cfg)
    ent_e, ent_x = 0.7, 0.3
    keys = jax.random.split(jax.random.PRNGKey(seed), batch)
    perms = jnp.zeros((cfg.num_derangements, cfg.k_explore), jnp.int32)
    from cmrl_jax.learners.a2c import meta_episode_loss
    from cmrl_jax.learners.common import LossInputs

    def batch_loss(params, scheme):
        inputs = LossInputs(perms, scheme, 0.0, ent_e, ent_x)
        loss, _ = jax.vmap(lambda key: meta_episode_loss(runner, cfg, params, key, inputs))(keys)
        return jnp.mean(loss)

    loss_and_grad = jax.jit(jax.value_and_grad(batch_loss))
    episodes = jax.jit(lambda params: jax.vmap(lambda k: runner.run_with_task(params, k))(keys))
    losses, grads, golds, actions, flax_params = [], [], [], [], []
    for i, method in enumerate(METHODS):
        fp = runner.agent.init(jax.random.PRNGKey(seed + i), runner.input_dim)
        leaves, tree = jax.tree.flatten(fp)
        noise = jax.random.split(jax.random.PRNGKey(100 + i), len(leaves))
        fp = jax.tree.unflatten(tree, [a + 0.3 * jax.random.normal(k, a.shape)
                                       for a, k in zip(leaves, noise, strict=True)])
        scheme = jnp.int32(scheme_id("separate" if method == "RL2" else "zero"))
        loss, grad = loss_and_grad(fp, scheme)
        ep, (_, state0) = episodes(fp)
        losses.append(float(loss))
        grads.append(grad)
        golds.append(np.asarray(state0.gold))
        acts = np.concatenate([np.asarray(ep.explore.action), np.asarray(ep.exploit.action)], 1)
        actions.append(acts[..., 0].T)  # [T, B]
        flax_params.append(fp)
    p = params_from_flax(flax_params)
    keep = torch.tensor([1.0 if m == "RL2" else 0.0 for m in METHODS])
    forced = {"gold": torch.tensor(np.stack(golds), dtype=torch.long),
              "actions": torch.tensor(np.stack(actions, 1), dtype=torch.long)}
    total, info = update_loss(p, keep, torch.tensor(ent_e), torch.tensor(ent_x), pc, forced)
    total.backward()
    ours_g = params_from_flax(grads)
    grad_diff = max(float((p[k].grad - ours_g[k].detach()).abs().max()) for k in p)
    grad_scale = max(float(ours_g[k].detach().abs().max()) for k in p)
    loss_diff = float(np.max(np.abs(info["loss"].numpy() - np.asarray(losses))))
    return {"loss_max_abs_diff": loss_diff, "grad_max_abs_diff": grad_diff,
            "grad_max_abs": grad_scale, "losses": losses}


def run_checks(pc: PeerConfig) -> dict:
    """Every correctness check; raises AssertionError on a mismatch. -> a summary."""
    import jax

    from cmrl_jax.train import make_runner

    cfg = table1_program(batch_size=pc.batch_size)
    runner = make_runner(cfg)
    ours_count = sum(a.size for a in jax.tree.leaves(
        runner.agent.init(jax.random.PRNGKey(0), runner.input_dim)))
    peer = init_params(pc)
    peer_count = sum(v[0].numel() for v in peer.values())
    assert runner.input_dim == pc.input_dim, (runner.input_dim, pc.input_dim)
    assert ours_count == peer_count == param_count(pc), (ours_count, peer_count)
    check_env(pc)
    s_peer, s_ours = random_policy_success(pc), ours_random_policy_success(pc)
    expected = 1.0 / pc.num_actions
    for s in (s_peer, s_ours):  # 20000 draws: std 0.002; 5 sigma
        assert abs(s - expected) < 0.011, (s, expected)
    worst = 0.0
    for arrays in check_returns(pc).values():
        np.testing.assert_allclose(arrays["torch"], arrays["ours"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(arrays["reference"], arrays["ours"], rtol=1e-6, atol=1e-6)
        worst = max(worst, float(np.max(np.abs(arrays["torch"] - arrays["ours"]))))
    net = check_network(pc)
    assert net < 1e-4, net
    upd = check_update(pc)
    assert upd["loss_max_abs_diff"] < 1e-4 and upd["grad_max_abs_diff"] < 1e-4, upd
    return {"update_loss_max_abs_diff": upd["loss_max_abs_diff"],
            "update_grad_max_abs_diff": upd["grad_max_abs_diff"],
            "params_per_run": peer_count, "random_success_torch": round(s_peer, 4),
            "random_success_ours": round(s_ours, 4), "expected": round(expected, 4),
            "returns_max_abs_diff": worst, "network_max_abs_diff": net}
