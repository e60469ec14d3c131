"""Ctrl-C while a command starts (imports, argument checks): exit 130, no traceback.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread is: in
the middle of an import it prints a traceback, and inside a garbage-collector
callback (JAX installs one) it is swallowed and the command goes on training.
Until training starts nothing needs cleaning up, so the commands install
``exit_on_interrupt`` first and ``run_table`` restores Python's handler just
before it trains (there a SIGINT waits for the checkpoint being saved).
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


def training_interrupts() -> None:
    """Back to Python's handler: SIGINT raises KeyboardInterrupt, which the loop handles."""
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:
        pass
