"""Ctrl-C while a command starts (imports, argument checks): exit 130, no traceback.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread is: in
the middle of an import it prints a traceback, and inside a garbage-collector
callback (JAX installs one) it is swallowed and the command goes on training.
Until training starts nothing needs cleaning up, so the commands install
``exit_on_interrupt`` first and ``run_table`` restores Python's handler just
before it trains (there a SIGINT waits for the checkpoint being saved).

While training, SIGINT and SIGTERM first close every open output sink
(``results.sinks.close_all``: W&B runs are finished, so the rows they were given are
on disk); then a SIGINT raises ``KeyboardInterrupt`` (exit 130, once no checkpoint is
being saved) and a SIGTERM, once no checkpoint is being saved, ends the process as
SIGTERM does by default (status -15). The folder resumes either way.
"""

import os
import signal
import sys

from cmrl_jax.commands.cli import EXIT_INTERRUPTED


def _exit(signum, frame) -> None:
    """The start-up handler: one line, exit 130 at once."""
    try:
        sys.stderr.write("\ninterrupted before training started; nothing was changed\n")
        sys.stderr.flush()
    finally:
        os._exit(EXIT_INTERRUPTED)


def exit_on_interrupt() -> None:
    """Install the start-up handler (main thread only; elsewhere a no-op)."""
    try:
        signal.signal(signal.SIGINT, _exit)
    except ValueError:  # not the main thread
        pass


def _close_sinks() -> None:
    """Close the process's open output sinks (their rows on disk)."""
    from cmrl_jax.results.sinks import close_all

    close_all()


def _interrupt(signum, frame) -> None:
    """SIGINT while training: sinks closed, then ``KeyboardInterrupt`` (the command exits
    130 once no checkpoint is being saved)."""
    _close_sinks()
    raise KeyboardInterrupt


def _terminate(signum, frame) -> None:
    """SIGTERM while training: sinks closed, the checkpoint being saved finished (at most
    a minute), then SIGTERM's default action."""
    from cmrl_jax.results.checkpoint import SAVE_LOCK

    _close_sinks()
    SAVE_LOCK.acquire(timeout=60)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def training_interrupts() -> None:
    """The training handlers: SIGINT closes the sinks and raises KeyboardInterrupt, which the
    command handles; SIGTERM closes the sinks and ends the process (main thread only)."""
    try:
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:
        pass
