"""The results-folder harness: file names and typed rows (``folder``), checkpoints, the
evaluation log, the writer lock, paths (local or object stores), the runtime record, and
the output sinks."""
