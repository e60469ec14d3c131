"""Scope: ONE A2C update of the program ``experiments.table1`` trains for its RL2
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
"""

import dataclasses
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
    from cmrl_jax.commands.tables import TableArgs, make_plan
    from experiments.table1 import SPEC

    plan = make_plan(SPEC, TableArgs(seeds=seeds, batch_size=batch_size, methods=METHODS))
    (name, cfg), = plan.programs
    assert name == "sequential", name
    return cfg


def table1_config(seeds: int = 3, batch_size: int = 128) -> PeerConfig:
    """The peer's configuration, every number taken from our Table 1 program."""
    from cmrl_jax.registry import make_env

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
