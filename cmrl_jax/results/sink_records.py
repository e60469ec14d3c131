"""What an output sink already holds, read back from its own files.

A resumed session hands each sink the rows of ``eval.jsonl`` (``sinks.Sink.resume``); the
built-in sinks write only the (update, tag) pairs their files do not hold yet, so a row
lost to a kill is written once and a row already there is never written twice. Both
formats end with records a killed process may have cut short: a record that is short or
fails its checksum ends what is read (everything after it is treated as never written).
W&B (0.31) ships no reader of its transaction logs, so that one is written here.

- TensorBoard event files (``events.out.tfevents.*``): read with TensorBoard's own
  ``RawEventFileLoader`` (the ``tensorboard`` extra installs it), which stops at a record
  cut short or failing its CRC-32C.
- W&B transaction logs (``<session>-<run id>[-<suffix>]/run-<run id>.wandb``, offline and
  online):
  a 7-byte header (``:W&B``, magic, version), then LevelDB-log records in 32 KiB blocks
  (CRC-32 of type byte and data, uint16 length, type byte, data) of
  ``wandb_internal_pb2.Record``; its ``history`` records carry a step and the keys logged.
"""

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

Held = dict[int, set[str]]
"""step (the update) -> the tags a sink holds at that step."""


# ------------------------------------------------------------------ TensorBoard


def tensorboard_held(logdir: Path) -> Held:
    """The scalars the event files of ``logdir`` hold (none if it does not exist)."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboardX.proto import event_pb2

    held: Held = {}
    if not logdir.is_dir():
        return held
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for body in RawEventFileLoader(str(path)).Load():
            event = event_pb2.Event()
            event.ParseFromString(body)
            if event.HasField("summary"):
                held.setdefault(event.step, set()).update(v.tag for v in event.summary.value)
    return held


# ------------------------------------------------------------------ Weights & Biases

_WANDB_HEADER = 7
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _leveldb_records(data: bytes) -> Iterator[bytes]:
    """The whole, intact records of one W&B transaction log's bytes, in order."""
    pos, pending = _WANDB_HEADER, b""
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # a block's tail too short for a header is padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        body = data[pos + 7:pos + 7 + length]
        if len(body) < length or kind not in (_FULL, _FIRST, _MIDDLE, _LAST) or \
                crc != zlib.crc32(body, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF:
            return
        pos += 7 + length
        pending = body if kind in (_FULL, _FIRST) else pending + body
        if kind in (_FULL, _LAST):
            yield pending
            pending = b""


def wandb_held(folder: Path, run_id: str) -> Held:
    """The history W&B run ``run_id`` holds in the transaction logs under ``folder`` (every
    session's: ``wandb/*-<id>[-<suffix>]/run-<id>.wandb``); keys starting with ``_`` are
    W&B's own."""
    from wandb.proto import wandb_internal_pb2

    held: Held = {}
    paths = [*folder.glob(f"*-{run_id}/run-{run_id}.wandb"),
             *folder.glob(f"*-{run_id}-*/run-{run_id}.wandb")]
    for path in sorted(paths):
        for body in _leveldb_records(path.read_bytes()):
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(body)
            except Exception:  # noqa: BLE001 - a record we cannot parse holds nothing for us
                continue
            if record.WhichOneof("record_type") != "history":
                continue
            keys = {item.key or "/".join(item.nested_key) for item in record.history.item}
            held.setdefault(record.history.step.num, set()).update(
                k for k in keys if not k.startswith("_"))
    return held
