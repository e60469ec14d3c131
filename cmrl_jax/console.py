"""Console scripts: the start-up SIGINT handler first, then the command's imports."""

from cmrl_jax.startup import exit_on_interrupt

exit_on_interrupt()


def train() -> None:
    """``cmrl-train``: ``cmrl_jax.generic.main``, exit status 0 once the table is written."""
    from cmrl_jax.generic import main

    main()
