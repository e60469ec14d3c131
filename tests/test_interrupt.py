"""Ctrl-C reaches a table command at once, whichever thread the kernel hands SIGINT to."""

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import cmrl_jax.loop  # noqa: F401  (imported by _wait_for: not inside the timed window)
from cmrl_jax.commands.experiment import _wait_for


def test_sigint_to_a_worker_thread_interrupts_the_waiting_main_thread():
    """The kernel may deliver SIGINT to a worker (XLA runs there); the main thread, waiting
    for the programs, must still raise KeyboardInterrupt within a second, not once a
    program's chunk ends (a blocking wait slept through it until the worker returned)."""
    started, release = threading.Event(), threading.Event()

    def program():
        started.set()
        release.wait(20)
        return []

    # Python's own handler, as in a terminal (a runner started with `cmd &` ignores SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="program")
    future = pool.submit(program)
    assert started.wait(10)
    worker = next(t for t in threading.enumerate() if t.name.startswith("program"))
    timer = threading.Timer(0.3, signal.pthread_kill, (worker.ident, signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            _wait_for([future])
        assert time.perf_counter() - t0 < 2.0
    finally:
        release.set()
        pool.shutdown()
        signal.signal(signal.SIGINT, previous)


def test_waits_for_every_program():
    """Short wait slices still collect every program's rows, the slow one's too."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        fast = pool.submit(lambda: [{"run": 0}])
        slow = pool.submit(lambda: time.sleep(0.8) or [{"run": 1}])
        assert _wait_for([fast, slow], poll_s=0.05) == [{"run": 0}, {"run": 1}]
