"""PyTorch peer of Table 1's sequential program (RL2 + ERL2, 3 seeds each: 6 runs), timed
against ours in one process (an optional extra: ``pip install -e '.[peer]'``).

    python -m benchmarks.torch_peer                          # make bench-peer
    python -m benchmarks.torch_peer --updates 20 --repeats 3 --threads 1
    python -m benchmarks.torch_peer --no-compile --loop-runs --skip-checks   # quick, no compile

Scope: ONE A2C update of the program ``experiments.table1`` trains for its RL2
and ERL2 rows, at its configuration (10-Monty-Hall, K_explore = 10 sub-episodes
of H = 1, LSTM 32, batch 128 meta-episodes per run, 6 runs). The torch update
does the same work as ours: per run and meta-episode K * H explore decisions,
the hand-off step of the explore LSTM, H exploit decisions (each an LSTM step,
policy / value heads, a categorical sample by Gumbel-max, a batched Monty-Hall
step as tensor ops, masking of ended sub-episodes), the method's training
rewards (RL2: Separate, ERL2: Zero-Until-Exploit), Monte-Carlo returns with
masked slots passed through, the A2C loss (policy, value, both entropy bonuses,
mean per decision slot and over the batch), the backward pass, per-run global-
norm clipping, Adam, and the update's diagnostics (success, visited goals,
gradient norm, finite guard). It does not reproduce our random stream.

Runs: stacked weights, a leading run axis R on every parameter, batched matmuls
(``torch.baddbmm``) over [R, batch, features]: one kernel per layer and step for
all runs, as ``jax.vmap`` gives ours. Adam is torch's fused CPU Adam (the runs
share Table 1's learning rate; per-run rates are refused). Eager and
``torch.compile`` (the loss function, its backward through AOTAutograd, and the
clip + Adam step) run the same Python code.

Threads: before the first JAX computation or torch op the whole process (every
existing thread) is pinned to ``--threads`` cores with ``sched_setaffinity``; XLA's
CPU thread pool is sized from that affinity, torch gets ``set_num_threads`` and
``set_num_interop_threads``. Timing is interleaved: each repeat times ``--updates``
updates of ours (one compiled chunk), then torch eager, then torch.compile; the
table reports the best repeat of each, wall and process-CPU time.
"""

import argparse
import dataclasses
import json
import os
import time
from dataclasses import dataclass

import numpy as np

try:  # optional: the pure parts (config, parameter count, reference returns) need no torch
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - CI has no torch
    torch = None
    F = None

METHODS = ("RL2", "ERL2")


@dataclass(frozen=True)
class PeerConfig:
    """The static shape of the sequential program, always read from ours (``table1_config``):
    no defaults of its own to drift from our config."""

    num_doors: int
    k_explore: int
    horizon: int
    hidden: int
    batch_size: int
    gamma: float
    value_coef: float
    reward_scale: float
    max_grad_norm: float
    entropy_explore: tuple[float, float]  # (start, end)
    entropy_exploit: tuple[float, float]
    anneal_updates: float
    gold_reward: float
    bomb_reward: float
    methods: tuple[str, ...]  # one per run
    learning_rates: tuple[float, ...]

    @property
    def num_actions(self) -> int:
        """NOOP + one action per door."""
        return self.num_doors + 1

    @property
    def input_dim(self) -> int:
        """[obs (1), one-hot previous action, previous reward, previous done]."""
        return 1 + self.num_actions + 2

    @property
    def runs(self) -> int:
        """Runs stacked in one program."""
        return len(self.methods)

    @property
    def slots(self) -> int:
        """Decision slots of a meta-episode (the A2C mean's divisor)."""
        return self.k_explore * self.horizon + self.horizon


def table1_program(seeds: int = 3, batch_size: int = 128):
    """Our ``TrainConfig`` of Table 1's sequential program (RL2 + ERL2 rows)."""
    from experiments.common import TableArgs, make_plan
    from experiments.table1 import SPEC

    plan = make_plan(SPEC, TableArgs(seeds=seeds, batch_size=batch_size, methods=METHODS))
    (name, cfg), = plan.programs
    assert name == "sequential", name
    return cfg


def table1_config(seeds: int = 3, batch_size: int = 128) -> PeerConfig:
    """The peer's configuration, every number taken from our Table 1 program."""
    from envs.registry import make_env

    cfg = table1_program(seeds, batch_size)
    env, params = make_env(cfg.env, **dict(cfg.env_kwargs))
    return PeerConfig(
        num_doors=env.num_doors, k_explore=cfg.k_explore, horizon=cfg.horizon,
        hidden=cfg.hidden, batch_size=cfg.batch_size, gamma=cfg.gamma,
        value_coef=cfg.value_coef, reward_scale=cfg.reward_input_scale,
        max_grad_norm=cfg.max_grad_norm,
        entropy_explore=(cfg.entropy_explore_start, cfg.entropy_explore_end),
        entropy_exploit=(cfg.entropy_exploit_start, cfg.entropy_exploit_end),
        anneal_updates=cfg.entropy_anneal_fraction * cfg.num_updates,
        gold_reward=float(params.gold_reward), bomb_reward=float(params.bomb_reward),
        methods=tuple(r.method for r in cfg.runs),
        learning_rates=tuple(r.learning_rate for r in cfg.runs),
    )


def param_count(pc: PeerConfig) -> int:
    """Parameters of one run: explore and exploit LSTMs (input kernels without bias,
    recurrent kernels with bias, as flax's OptimizedLSTMCell), their policy and
    value heads, and the learned initial explore state (c0, h0)."""
    h, d, a = pc.hidden, pc.input_dim, pc.num_actions
    lstm = 4 * h * (d + h + 1)
    heads = (h + 1) * a + (h + 1)
    return 2 * (lstm + heads) + 2 * h


def reference_returns(rewards, live, keep_explore: bool, t_explore: int, gamma: float):
    """Numpy reference of a sequential meta-episode's returns (one run, one episode).

    ``rewards`` / ``live`` [T]: the ``t_explore`` = K * H explore slots, then the exploit's.
    RL2 (``keep_explore``) trains on the raw explore rewards, ERL2 on zeros;
    G_t = r_t + gamma G_{t+1} on live slots, G_{t+1} on masked ones; the exploit
    return ends at 0 and every explore return continues into it.
    """
    rewards = np.asarray(rewards, np.float64)
    live = np.asarray(live, np.float64)
    train = rewards * live
    if not keep_explore:
        train[:t_explore] = 0.0
    g, out = 0.0, np.zeros_like(train)
    for t in reversed(range(len(train))):
        g = live[t] * (train[t] + gamma * g) + (1 - live[t]) * g
        out[t] = g
    return out


# ----------------------------------------------------------------------------- torch
NAMES = ("wi", "wh", "b", "head_w", "head_b")  # per LSTM + heads; "c0", "h0" for explore


def init_params(pc: PeerConfig, seed: int = 0) -> dict:
    """Stacked parameters [R, ...] initialised as ours (lecun-normal input kernels,
    orthogonal recurrent kernels, orthogonal heads at 0.01 (policy) / 1.0 (value),
    zero biases and initial state); the explore policy head is at 0.01 as ours."""
    g = torch.Generator().manual_seed(seed)
    r, h, d, a = pc.runs, pc.hidden, pc.input_dim, pc.num_actions

    def ortho(rows, cols, scale):
        q = torch.stack([torch.linalg.qr(torch.randn(max(rows, cols), min(rows, cols),
                                                     generator=g))[0] for _ in range(r)])
        q = q if rows >= cols else q.transpose(1, 2)
        return scale * q

    p = {}
    for phase in ("e", "x"):
        p[f"{phase}_wi"] = torch.randn(r, d, 4 * h, generator=g) / np.sqrt(d)
        p[f"{phase}_wh"] = torch.cat([ortho(h, h, 1.0) for _ in range(4)], dim=2)
        p[f"{phase}_b"] = torch.zeros(r, 1, 4 * h)
        p[f"{phase}_head_w"] = torch.cat([ortho(h, a, 0.01), ortho(h, 1, 1.0)], dim=2)
        p[f"{phase}_head_b"] = torch.zeros(r, 1, a + 1)
    p["c0"] = torch.zeros(r, 1, h)
    p["h0"] = torch.zeros(r, 1, h)
    return {k: v.contiguous().requires_grad_() for k, v in p.items()}


def params_from_flax(flax_params: list) -> dict:
    """Our SequentialAgent parameters (one pytree per run) -> the stacked torch layout."""

    def lstm(cell):
        wi = np.concatenate([np.asarray(cell[f"i{q}"]["kernel"]) for q in "ifgo"], axis=1)
        wh = np.concatenate([np.asarray(cell[f"h{q}"]["kernel"]) for q in "ifgo"], axis=1)
        b = np.concatenate([np.asarray(cell[f"h{q}"]["bias"]) for q in "ifgo"])[None]
        return wi, wh, b

    def heads(node):
        w = np.concatenate([np.asarray(node["pi"]["kernel"]), np.asarray(node["v"]["kernel"])], 1)
        b = np.concatenate([np.asarray(node["pi"]["bias"]), np.asarray(node["v"]["bias"])])
        return w, b[None]

    per_run = []
    for fp in flax_params:
        t = fp["params"]
        q = {}
        q["e_wi"], q["e_wh"], q["e_b"] = lstm(t["explore_lstm"])
        q["e_head_w"], q["e_head_b"] = heads(t)
        q["x_wi"], q["x_wh"], q["x_b"] = lstm(t["exploit"]["exploit_lstm"])
        q["x_head_w"], q["x_head_b"] = heads(t["exploit"])
        q["c0"] = np.asarray(t["explore_c0"])[None]
        q["h0"] = np.asarray(t["explore_h0"])[None]
        per_run.append(q)
    return {k: torch.tensor(np.stack([q[k] for q in per_run]), dtype=torch.float32)
            .requires_grad_() for k in per_run[0]}


def lstm_step(p: dict, phase: str, c, h, x):
    """One LSTM step (flax's gate order i, f, g, o) of every run: [R, B, D] -> c, h [R, B, H]."""
    gates = torch.baddbmm(torch.baddbmm(p[f"{phase}_b"], x, p[f"{phase}_wi"]), h,
                          p[f"{phase}_wh"])
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return c, torch.sigmoid(o) * torch.tanh(c)


def heads(p: dict, phase: str, h, num_actions: int):
    """Policy logits [R, B, A] and value [R, B] (one batched product for both heads)."""
    out = torch.baddbmm(p[f"{phase}_head_b"], h, p[f"{phase}_head_w"])
    return out[..., :num_actions], out[..., num_actions]


def env_step(pc: PeerConfig, gold, action):
    """Batched Monty-Hall step: action 0 = NOOP (0), door a - 1: gold +0.1 else -1; every
    action ends the sub-episode. -> reward float32, terminated bool, goal int (-1: none)."""
    door = action - 1
    opened = action > 0
    reward = torch.where(opened, torch.where(door == gold, pc.gold_reward, pc.bomb_reward), 0.0)
    goal = torch.where(opened, door, -1)
    return reward, torch.ones_like(opened), goal


def encode(pc: PeerConfig, obs, prev_a, prev_r, prev_d):
    """Agent input [R, B, D]: obs, one-hot previous action (-1: zeros), reward * scale, done."""
    one_hot = F.one_hot(prev_a + 1, pc.num_actions + 1)[..., 1:].to(obs.dtype)
    return torch.cat([obs, one_hot, (prev_r * pc.reward_scale)[..., None], prev_d[..., None]],
                     dim=-1)


def sample(logits):
    """Categorical sample by Gumbel-max (as ``jax.random.categorical``)."""
    u = torch.rand_like(logits).clamp_min(torch.finfo(logits.dtype).tiny)
    return torch.argmax(logits - torch.log(-torch.log(u)), dim=-1)


def returns(pc: PeerConfig, train_r, live):
    """Discounted returns over all T slots [T, ...] (explore then exploit), masked slots
    passed through; exploit ends at 0 and the explore returns continue into it."""
    g = torch.zeros_like(train_r[0])
    out = []
    for t in reversed(range(train_r.shape[0])):
        m = live[t]
        g = m * (train_r[t] + pc.gamma * g) + (1.0 - m) * g
        out.append(g)
    return torch.stack(out[::-1])


def update_loss(p: dict, keep_explore, ent_e, ent_x, pc: PeerConfig, forced=None):
    """Run a batch of meta-episodes for every run; -> (sum over runs of each run's mean
    loss, diagnostics [R]). ``keep_explore`` float [R]: 1 RL2 (Separate), 0 ERL2 (Zero).

    ``forced`` (checks only): {"gold": [R, B], "actions": [T, R, B]} replace the draws."""
    r = keep_explore.shape[0]
    b, a = pc.batch_size, pc.num_actions
    if forced is not None:
        b = forced["gold"].shape[1]
    gold = torch.randint(0, pc.num_doors, (r, b)) if forced is None else forced["gold"]
    obs = torch.ones(r, b, 1)
    c = p["c0"].expand(r, b, pc.hidden)
    h = p["h0"].expand(r, b, pc.hidden)
    prev_a = torch.full((r, b), -1, dtype=torch.long)
    prev_r = torch.zeros(r, b)
    prev_d = torch.zeros(r, b)
    logits_s, value_s, act_s, rew_s, live_s, goal_s = [], [], [], [], [], []

    def decide(phase, c, h, live, prev_a, prev_r, prev_d, t):
        x = encode(pc, obs, prev_a, prev_r, prev_d)
        c_new, h_new = lstm_step(p, phase, c, h, x)
        m = live[..., None]
        c, h = torch.where(m, c_new, c), torch.where(m, h_new, h)
        logits, value = heads(p, phase, h, a)
        action = sample(logits.detach()) if forced is None else forced["actions"][len(act_s)]
        reward, terminated, goal = env_step(pc, gold, action)
        done = terminated | (t + 1 >= pc.horizon)
        reward = torch.where(live, reward, 0.0)
        goal = torch.where(live, goal, -1)
        prev_a = torch.where(live, action, prev_a)
        prev_r = torch.where(live, reward, prev_r)
        prev_d = torch.where(live, done.to(prev_d.dtype), prev_d)
        for store, v in zip((logits_s, value_s, act_s, rew_s, live_s, goal_s),
                            (logits, value, action, reward, live, goal), strict=True):
            store.append(v)
        return c, h, live & ~done, prev_a, prev_r, prev_d

    for _ in range(pc.k_explore):  # sub-episodes: previous-* inputs carry over
        live = torch.ones(r, b, dtype=torch.bool)
        for t in range(pc.horizon):
            c, h, live, prev_a, prev_r, prev_d = decide("e", c, h, live, prev_a, prev_r,
                                                        prev_d, t)
    # Hand-off: the explore LSTM absorbs the last sub-episode's result (pending = ended).
    c_new, h_new = lstm_step(p, "e", c, h, encode(pc, obs, prev_a, prev_r, prev_d))
    pending = (~live)[..., None]
    c, h = torch.where(pending, c_new, c), torch.where(pending, h_new, h)
    # Exploit: own LSTM and heads, previous-* inputs zeroed.
    live = torch.ones(r, b, dtype=torch.bool)
    prev_a, prev_r, prev_d = torch.full_like(prev_a, -1), torch.zeros_like(prev_r), \
        torch.zeros_like(prev_d)
    for t in range(pc.horizon):
        c, h, live, prev_a, prev_r, prev_d = decide("x", c, h, live, prev_a, prev_r, prev_d, t)

    t_e = pc.k_explore * pc.horizon
    logits, value = torch.stack(logits_s), torch.stack(value_s)  # [T, R, B, A], [T, R, B]
    action, reward, goal = torch.stack(act_s), torch.stack(rew_s), torch.stack(goal_s)
    live = torch.stack(live_s).to(value.dtype)
    explore_keep = torch.ones(len(logits_s), r, 1)
    explore_keep[:t_e] = keep_explore[None, :, None]
    train_r = reward * live * explore_keep  # RL2 Separate; ERL2 zero; exploit raw
    g = returns(pc, train_r, live)
    logp = torch.log_softmax(logits, dim=-1)
    logp_a = logp.gather(-1, action[..., None])[..., 0]
    entropy = -(logp.exp() * logp).sum(-1)
    adv = (g - value).detach()
    coef = torch.cat([ent_e.expand(t_e), ent_x.expand(pc.horizon)])[:, None, None]
    per_episode = (-(live * logp_a * adv) + pc.value_coef * 0.5 * live * (g - value) ** 2
                   - coef * live * entropy).sum(0) / pc.slots  # [R, B]
    loss = per_episode.mean(1)  # [R]
    live_e, live_x = live[:t_e], live[t_e:]
    success = ((goal[t_e:] >= 0) & (reward[t_e:] > 0)).any(0).to(value.dtype)
    visited = F.one_hot(goal[:t_e] + 1, pc.num_doors + 1)[..., 1:].amax(0).sum(-1)
    info = {
        "loss": loss.detach(),
        "entropy_explore": ((entropy[:t_e] * live_e).sum(0)
                            / live_e.sum(0).clamp_min(1)).mean(1).detach(),
        "entropy_exploit": ((entropy[t_e:] * live_x).sum(0)
                            / live_x.sum(0).clamp_min(1)).mean(1).detach(),
        "success": success.mean(1),
        "visited_goals": visited.to(value.dtype).mean(1),
    }
    return loss.sum(), info


def clip_per_run(params: list, max_norm: float):
    """Per-run global-norm clipping of the stacked gradients (as ``optax.clip_by_global_norm``
    inside each run's vmap slice); -> each run's gradient norm [R]."""
    sq = torch.stack([q.grad.pow(2).flatten(1).sum(1) for q in params]).sum(0)
    norm = sq.sqrt()
    scale = torch.where(norm < max_norm, torch.ones_like(norm), max_norm / norm)
    for q in params:
        q.grad.mul_(scale.view((-1,) + (1,) * (q.grad.dim() - 1)))
    return norm


class TorchPeer:
    """Stacked parameters, fused Adam and one ``update()`` (eager or torch.compile)."""

    def __init__(self, pc: PeerConfig, compile: bool = False, seed: int = 0):
        if len(set(pc.learning_rates)) != 1:
            raise ValueError("the peer's Adam needs one learning rate for all runs")
        self.pc = pc
        self.params = init_params(pc, seed)
        self.plist = list(self.params.values())
        self.keep = torch.tensor([1.0 if m == "RL2" else 0.0 for m in pc.methods])
        self.opt = torch.optim.Adam(self.plist, lr=pc.learning_rates[0], fused=True)
        self.ent_e = torch.tensor(pc.entropy_explore[0])
        self.ent_x = torch.tensor(pc.entropy_exploit[0])
        self.updates = 0
        loss_fn = lambda p, keep, e, x: update_loss(p, keep, e, x, pc)

        def step():
            norm = clip_per_run(self.plist, pc.max_grad_norm)
            self.opt.step()
            return norm

        self.loss_fn = torch.compile(loss_fn) if compile else loss_fn
        self.step_fn = torch.compile(step) if compile else step

    def update(self) -> dict:
        """One A2C update of every run (entropy coefficients annealed as ours)."""
        pc = self.pc
        frac = min(self.updates / max(pc.anneal_updates, 1.0), 1.0)
        self.ent_e.fill_(pc.entropy_explore[0] + (pc.entropy_explore[1]
                                                  - pc.entropy_explore[0]) * frac)
        self.ent_x.fill_(pc.entropy_exploit[0] + (pc.entropy_exploit[1]
                                                  - pc.entropy_exploit[0]) * frac)
        loss, info = self.loss_fn(self.params, self.keep, self.ent_e, self.ent_x)
        loss.backward()
        info["grad_norm"] = self.step_fn()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():  # the finite guard (docs/design.md, "Faults")
            finite = torch.isfinite(info["loss"]) & torch.isfinite(info["grad_norm"])
            for q in self.plist:
                finite &= torch.isfinite(q).flatten(1).all(1)
        info["finite"] = finite
        self.updates += 1
        return info


# ------------------------------------------------------------------------ checks
def check_env(pc: PeerConfig) -> None:
    """The torch env step equals ``envs.monty_hall.MontyHall.step_env`` on every
    (gold door, action) pair: reward, done and goal."""
    import jax
    import jax.numpy as jnp

    from envs.registry import make_env

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

    from envs.registry import make_env

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
    (``loss.training_rewards`` + ``loss.meta_episode_returns``), the numpy reference
    and (if torch is installed) the torch peer's. -> the arrays per method."""
    import jax.numpy as jnp

    from cmrl_jax.engine import MetaEpisode, Transition
    from cmrl_jax.loss import meta_episode_returns, training_rewards
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

    from cmrl_jax.networks import make_agent

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
    ``loss.meta_episode_loss`` (batch mean) and its ``jax.grad``, against the peer's
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
    from cmrl_jax.loss import meta_episode_loss

    def batch_loss(params, scheme):
        loss, _ = jax.vmap(lambda key: meta_episode_loss(
            runner, cfg, params, key, perms, scheme, 0.0, ent_e, ent_x))(keys)
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


# ------------------------------------------------------------------------ timing
def pin_threads(threads: int) -> list[int]:
    """Pin every thread of this process (and the ones started later) to ``threads`` cores."""
    cores = sorted(os.sched_getaffinity(0))[:threads]
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:  # a thread that just ended
            pass
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set (parallel work has started)
        pass
    return cores


def timed(fn):
    """(wall s, process CPU s) of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


class LoopedPeer:
    """The runs as separate one-run peers updated one after another (eager): the layout
    the stacked weights replace, timed for reference (``--loop-runs``)."""

    def __init__(self, pc: PeerConfig):
        self.peers = [TorchPeer(dataclasses.replace(pc, methods=(m,), learning_rates=(lr,)),
                                seed=i)
                      for i, (m, lr) in enumerate(zip(pc.methods, pc.learning_rates,
                                                      strict=True))]

    def update(self) -> dict:
        """One update of every run; -> the diagnostics, concatenated over runs."""
        infos = [peer.update() for peer in self.peers]
        return {k: torch.cat([i[k] for i in infos]) for k in infos[0]}


def measure(updates: int = 20, repeats: int = 3, threads: int = 1, batch_size: int = 128,
            compile: bool = True, warm_caches: bool = False, loop_runs: bool = False) -> dict:
    """Interleaved timing of ours, torch eager and torch.compile on this process's cores
    (``loop_runs``: also eager with the runs as separate models in a Python loop).

    Compile times are cold unless ``warm_caches``: JAX's persistent compilation cache is
    off and inductor compiles into a fresh temporary cache folder."""
    import jax

    from cmrl_jax.train import make_trainer

    cores = pin_threads(threads)
    if not warm_caches:
        import tempfile

        jax.config.update("jax_enable_compilation_cache", False)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="torch_peer_inductor_")
    pc = table1_config(batch_size=batch_size)
    cfg = dataclasses.replace(table1_program(batch_size=batch_size), chunk_updates=updates,
                              num_updates=updates)
    trainer = make_trainer(cfg)
    state, hp = trainer.init()
    t0 = time.perf_counter()
    chunk = trainer.train_chunk.lower(state, hp).compile()
    compile_s = {"ours": time.perf_counter() - t0}
    holder = {"state": chunk(state, hp)[0]}  # warm-up
    jax.block_until_ready(holder["state"])

    def ours():
        holder["state"], metrics = chunk(holder["state"], hp)
        jax.block_until_ready((holder["state"], metrics))

    impls = {"ours (JAX/XLA)": ours}
    peers = {"torch eager": TorchPeer(pc)}
    if loop_runs:
        peers["torch eager, runs in a loop"] = LoopedPeer(pc)
    if compile:
        peers["torch.compile"] = TorchPeer(pc, compile=True)
    errors = {}
    for name, peer in list(peers.items()):
        try:
            t0 = time.perf_counter()
            peer.update()  # compiles the loss, its backward and the optimizer step
            first = time.perf_counter() - t0
            peer.update()
            if name == "torch.compile":
                compile_s[name] = first
        except Exception as e:  # noqa: BLE001 - report and keep eager
            errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            del peers[name]
            continue

        def run(peer=peer):
            for _ in range(updates):
                info = peer.update()
            float(info["loss"].sum())

        impls[name] = run
    times = {name: [] for name in impls}
    for _ in range(repeats):
        for name, fn in impls.items():
            times[name].append(timed(fn))
    runs = pc.runs
    rows = {}
    for name, ts in times.items():
        wall = min(w for w, _ in ts) / updates
        cpu = min(c for _, c in ts) / updates
        rows[name] = {"wall_ms": 1e3 * wall, "cpu_ms": 1e3 * cpu,
                      "wall_ms_per_run": 1e3 * wall / runs, "cpu_ms_per_run": 1e3 * cpu / runs}
    base = rows["ours (JAX/XLA)"]
    for row in rows.values():
        row["wall_ratio"] = row["wall_ms"] / base["wall_ms"]
        row["cpu_ratio"] = row["cpu_ms"] / base["cpu_ms"]
    return {"program": "Table 1 sequential program (RL2 + ERL2)", "runs": runs,
            "batch_size": pc.batch_size, "updates": updates, "repeats": repeats,
            "threads": threads, "cores": cores, "torch": torch.__version__,
            "jax": jax.__version__, "compile_s": {k: round(v, 1) for k, v in compile_s.items()},
            "compile_caches": "warm" if warm_caches else "cold",
            "rows": rows, "errors": errors}


def render(result: dict) -> str:
    """The benchmark's table (markdown)."""
    lines = [
        f"{result['program']}: {result['runs']} runs, batch "
        f"{result['batch_size']}, best of {result['repeats']} x {result['updates']} updates, "
        f"{result['threads']} thread(s) pinned to cores {result['cores']}; "
        f"torch {result['torch']}, jax {result['jax']}",
        "",
        "| implementation | ms / update (6 runs), wall | CPU | ms / update / run, wall | CPU "
        "| x ours, wall | x ours, CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["rows"].items():
        lines.append(f"| {name} | {r['wall_ms']:.1f} | {r['cpu_ms']:.1f} | "
                     f"{r['wall_ms_per_run']:.2f} | {r['cpu_ms_per_run']:.2f} | "
                     f"{r['wall_ratio']:.2f} | {r['cpu_ratio']:.2f} |")
    lines.append("")
    compiles = ", ".join(f"{k} {v}" for k, v in result["compile_s"].items())
    lines.append(f"compile s ({result['compile_caches']} caches): {compiles}")
    for name, err in result["errors"].items():
        lines.append(f"{name} FAILED: {err}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Checks, then the interleaved timing; prints the table and one JSON line."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=20, help="updates per timed repeat")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (best reported)")
    p.add_argument("--threads", type=int, default=1, help="cores both libraries are pinned to")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--skip-checks", action="store_true")
    p.add_argument("--loop-runs", action="store_true",
                   help="also time eager torch with the 6 runs as separate models in a loop")
    p.add_argument("--warm-caches", action="store_true",
                   help="keep JAX's persistent and inductor's compilation caches (default: cold)")
    a = p.parse_args(argv)
    if torch is None:
        p.exit(2, "error: torch is not installed: pip install -e '.[peer]' (make bench-peer)\n")
    for name in ("updates", "repeats", "threads", "batch_size"):
        if getattr(a, name) < 1:
            p.exit(2, f"error: --{name.replace('_', '-')} must be >= 1\n")
    pin_threads(a.threads)  # before the first JAX computation and torch op
    if not a.skip_checks:
        print("checks: " + json.dumps(run_checks(table1_config(batch_size=a.batch_size))),
              flush=True)
    result = measure(a.updates, a.repeats, a.threads, a.batch_size, not a.no_compile,
                     a.warm_caches, a.loop_runs)
    print(render(result))
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
