"""The meta-episode strip's layout (matplotlib, Agg): the env's task panels, then one panel
per explore rollout or sub-episode and one for the exploit sub-episode, each drawn by the
env's ``Strip`` hook."""

from pathlib import Path

from cmrl_jax.reporting.figures.hooks import Strip
from cmrl_jax.reporting.figures.replay import Replay


def plot_strip(strip: Strip, env, params, obs0, state0, explore: list[Replay], exploit: Replay,
               concurrent: bool, suptitle: str, path: Path) -> Path:
    """Task panels, explore rollouts and exploit sub-episode as one PNG strip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    head = list(strip.task_panels(env, params, state0, obs0))
    n = len(head) + len(explore) + 1
    ratios = [p.width for p in head] + [1.0] * (len(explore) + 1)
    fig, axs = plt.subplots(1, n, figsize=(2.9 * sum(ratios) + 0.3, strip.height),
                            gridspec_kw={"width_ratios": ratios}, layout="constrained")
    for ax, panel in zip(axs, head, strict=False):
        panel.draw(ax)
        ax.set_title(panel.title, fontsize=9)
    kind = "rollout" if concurrent else "sub-episode"
    colours = list(strip.colours) or [plt.get_cmap("tab10")(i) for i in range(10)]
    panels = [(f"explore {kind} {i + 1}", r, colours[i % len(colours)])
              for i, r in enumerate(explore)]
    panels.append(("exploit", exploit, "black"))
    for ax, (title, r, colour) in zip(axs[len(head):], panels, strict=True):
        strip.draw_rollout(ax, env, params, state0, r, colour)
        ax.set_title(f"{title}\n{strip.outcome(r, state0)}", fontsize=9)
    if strip.clear_ticks:
        for ax in axs:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{suptitle}\n{strip.legend}" if strip.legend else suptitle, fontsize=10)
    from cmrl_jax.reporting.plots import save_figure

    return save_figure(fig, path, dpi=130)
