"""One meta-episode of a trained agent, drawn as a strip (cf. paper Figure 4).

    python -m experiments.episode_figure --results results/table2
    python -m experiments.episode_figure --results results/table2 --method ERL2 --episode 3
    python -m experiments.episode_figure --env reacher --results results/table3

The run is restored by ``cmrl_jax.saved.load_policy``; the env is the results
folder's (``--env`` only checks it). Any env whose registered renderer has a
``strip`` (``cmrl_jax.reporting.figures.hooks``) can be drawn: its task panels, then each
explore rollout (CMRL: K concurrent rollouts; RL2 / ERL2: K sequential
sub-episodes) and the exploit sub-episode, each drawn by the env; other envs
are refused in one line. The env states are rebuilt by re-stepping the env
with the recorded actions and checked against the record
(``cmrl_jax.reporting.figures.replay``). The PNG goes into the results folder
(``<env>_episode.png``) unless ``--out`` names another path (the README's
figures: ``--out docs/figures/<env>_episode.png``).
"""

import sys
from dataclasses import dataclass

from cmrl_jax.commands.cli import EXIT_USAGE, FIGURE_DISK_FULL, exit_if_disk_full, parse_cli
from cmrl_jax.config import ConfigError
from cmrl_jax.reporting.figures.replay import replay_meta_episode
from cmrl_jax.reporting.figures.strip_draw import plot_strip
from cmrl_jax.results.folder import find_run, safe_name
from cmrl_jax.results.paths import ResultsPath


@dataclass(frozen=True)
class EpisodeArgs:
    """Command-line options of the meta-episode figure."""

    results: str
    """a results folder, e.g. Table 2's (3-Color-Choice) or Table 3's (3-Reacher)"""
    env: str | None = None
    """environment of the results folder (default: the one its runs were trained on)"""
    method: str = "Max-Until-Exploit"
    """table row of the run to draw (e.g. RL2, ERL2, Max-Until-Exploit)"""
    seed: int = 0
    """seed of the run"""
    learning_rate: float | None = None
    """pick this learning rate when a folder holds several (a sweep; default: sweep.json's)"""
    episode: int = 0
    """which meta-episode: seed of its key"""
    greedy: bool = False
    """greedy actions instead of sampled ones"""
    out: str | None = None
    """PNG path (default: <results>/<env>_episode.png)"""


def default_png(results: ResultsPath, env: str) -> ResultsPath:
    """Where the PNG goes without ``--out``: beside the run it is drawn from, so a figure of
    a trial run never replaces the README's in docs/figures."""
    return results / f"{safe_name(env)}_episode.png"


def main(argv: list[str] | None = None) -> dict:
    """Run one meta-episode, replay its states, draw the strip; return what was drawn."""
    from cmrl_jax.registry import env_spec
    from cmrl_jax.results.lock import check_writable
    from cmrl_jax.results.paths import local_path, results_path

    args = parse_cli(EpisodeArgs, argv, __doc__.split("\n")[0])
    try:
        if args.env is not None:
            env_spec(args.env)  # unknown env: one line
        if args.out is not None:
            check_writable(local_path(args.out), is_file=True)  # before reading anything
        results = results_path(args.results, "--results")
        where = find_run(results, args.method, args.seed, args.learning_rate, env=args.env)
        out = local_path(args.out) if args.out is not None else default_png(results,
                                                                            where.cfg.env)
        check_writable(out, is_file=True)  # before the sampling, not after
        from cmrl_jax.registry import bind_env, renderer_of  # gymnax starts JAX's backend
        spec = env_spec(where.cfg.env)  # the run's env, resolved once
        strip = renderer_of(where.cfg.env, "strip", "the meta-episode strip", spec)
        bound = bind_env(where.cfg.env, where.cfg.env_kwargs, spec)  # built once
        from cmrl_jax.saved import load_policy
        policy = load_policy(where, env=bound)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None

    import jax

    runner = policy.runner
    run = jax.jit(lambda key: policy.meta_episode_with_task(key, args.greedy))
    ep, (obs0, state0) = jax.device_get(run(jax.random.PRNGKey(args.episode)))
    explore, exploit = replay_meta_episode(runner, ep, obs0, state0, strip.obs_atol)
    spec = policy.run_spec
    success = bool(ep.success)
    suptitle = (f"{spec.row} (seed {spec.seed}, update {policy.update}) on {runner.env.name}, "
                f"meta-episode {args.episode} ({'greedy' if args.greedy else 'sampled'} "
                f"actions): exploit {'succeeds' if success else 'fails'}")
    with exit_if_disk_full(FIGURE_DISK_FULL.format(folder=out.parent)):
        png = plot_strip(strip, runner.env, runner.env_params, obs0, state0, explore, exploit,
                         runner.concurrent, suptitle, out)
    print(f"episode_figure: {suptitle}; wrote {png}")
    return {"png": png, "explore": explore, "exploit": exploit, "success": success}


if __name__ == "__main__":
    main()
