"""Console scripts: the start-up SIGINT handler first, then the command's imports."""

from cmrl_jax.commands.startup import exit_on_interrupt

exit_on_interrupt()


def train() -> None:
    """``cmrl-train``: ``commands.generic.main``, exit status 0 once the table is written."""
    from cmrl_jax.commands.generic import main

    main()
