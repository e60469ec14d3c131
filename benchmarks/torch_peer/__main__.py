"""``python -m benchmarks.torch_peer``: checks, then the interleaved timing (``timing.main``)."""

from benchmarks.torch_peer.timing import main

if __name__ == "__main__":
    main()
