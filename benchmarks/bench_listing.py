"""Listing, selecting and retention among many existing checkpoints."""

from __future__ import annotations

import io
import os
import pathlib
import random
from typing import Any

import torch
import yaml

from benchmarks.common import Row, Sizes, Timer
from recoverkit import Checkpointer
from recoverkit.storage.layout import METAFNAME, PARAMFILE_EXT
from recoverkit.storage.listing import LISTING_CACHE_FILENAME
from recoverkit.storage.manifest import MANIFEST_FORMAT, file_checksum
from recoverkit.storage.meta import END_OF_EPOCH_KEY, MANIFEST_KEY, UNIXTIME_KEY, dump_meta

_BUDGET_SECONDS = 0.25


def create_checkpoints(checkpoints_dir: pathlib.Path, count: int) -> None:
    """Write ``count`` small checkpoints in recoverkit's format, without fsync."""
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(4)}, buffer)
    payload = buffer.getvalue()
    sample = checkpoints_dir / "sample.bin"
    sample.write_bytes(payload)
    checksum = file_checksum(sample)
    sample.unlink()
    generator = random.Random(0)
    for index in range(count):
        folder = checkpoints_dir / f"CKPT+bench-{index:06d}"
        folder.mkdir()
        (folder / f"model{PARAMFILE_EXT}").write_bytes(payload)
        meta = {
            UNIXTIME_KEY: 1_700_000_000.0 + index,
            END_OF_EPOCH_KEY: True,
            "loss": generator.random(),
            "epoch": index,
            MANIFEST_KEY: {
                "format": MANIFEST_FORMAT,
                "recoverables": ["model"],
                "files": {f"model{PARAMFILE_EXT}": {"size": len(payload), "xxh3_64": checksum}},
            },
        }
        (folder / METAFNAME).write_text(dump_meta(meta), encoding="utf-8")


def list_like_speechbrain(checkpoints_dir: pathlib.Path) -> list[tuple[str, dict[str, Any], list[str]]]:
    """List checkpoints the way SpeechBrain's Checkpointer does.

    As in ``Checkpointer._construct_checkpoint_objects`` of
    ``speechbrain/utils/checkpoints.py`` (commit 00fed89), every ``CKPT+``
    folder's meta file is parsed with PyYAML's pure-Python ``yaml.Loader``
    and the folder is scanned for parameter files. ``os.scandir`` replaces
    SpeechBrain's ``pathlib`` calls, which makes this baseline a little
    faster than the original.
    """
    found = []
    for entry in os.scandir(checkpoints_dir):
        if not (entry.is_dir() and entry.name.startswith("CKPT+")):
            continue
        with open(os.path.join(entry.path, METAFNAME), encoding="utf-8") as handle:
            meta = yaml.load(handle, Loader=yaml.Loader)
        paramfiles = [name for name in os.listdir(entry.path) if name.endswith(PARAMFILE_EXT)]
        found.append((entry.path, meta, paramfiles))
    return found


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(4))


def run(sizes: Sizes, scratch: pathlib.Path, log: Any) -> list[Row]:
    """Measure listing and selection among ``sizes.listing_checkpoints`` checkpoints."""
    count = sizes.listing_checkpoints
    checkpoints_dir = scratch / "many-checkpoints"
    log(f"listing: creating {count} checkpoints")
    create_checkpoints(checkpoints_dir, count)
    timer = Timer()
    tiny = _Tiny()
    for attempt in range(sizes.repeat):
        log(f"  listing, run {attempt + 1} of {sizes.repeat}")
        listed = timer.measure("speechbrain", lambda: list_like_speechbrain(checkpoints_dir))
        assert len(listed) == count, len(listed)
        first = Checkpointer(checkpoints_dir, {"model": tiny})
        listed = timer.measure(
            "first", first.list_checkpoints,
            before=lambda: (checkpoints_dir / LISTING_CACHE_FILENAME).unlink(missing_ok=True),
        )
        assert len(listed) == count, len(listed)
        checkpointer = Checkpointer(checkpoints_dir, {"model": tiny})
        listed = timer.measure("cold", checkpointer.list_checkpoints)
        assert len(listed) == count, len(listed)
        timer.measure("warm", checkpointer.list_checkpoints)
        timer.measure("find", lambda: checkpointer.find_checkpoint(min_key="loss"))
        fresh = Checkpointer(checkpoints_dir, {"model": tiny})
        timer.measure("find cold", lambda: fresh.find_checkpoint(min_key="loss"))
        timer.measure(
            "keep",
            lambda: checkpointer.save_and_keep_only(
                meta={"loss": 1.0, "new": True},
                num_to_keep=0,
                ckpt_predicate=lambda checkpoint: checkpoint.meta.get("new") is True,
                keep_recent=False,
            ),
        )
    baseline = f"SpeechBrain-style listing: {timer['speechbrain']:.2f} s"
    rows = []
    for key, case in (
        ("first", f"list_checkpoints, {count} checkpoints, no listing cache file yet"),
        ("cold", f"list_checkpoints, {count} checkpoints, first call of a process"),
        ("warm", f"list_checkpoints, {count} checkpoints, next calls"),
        ("find cold", "find_checkpoint(min_key=...), first call of a process"),
        ("find", "find_checkpoint(min_key=...), next calls"),
    ):
        rows.append(Row("listing", case, f"{timer[key]:.3f} s", baseline,
                        timer["speechbrain"] / timer[key], 10, note="speed ratio"))
        rows.append(Row("listing", case, f"{timer[key]:.3f} s", f"budget {_BUDGET_SECONDS} s",
                        timer[key] / _BUDGET_SECONDS, 1.0, higher_is_better=False,
                        note="time / budget"))
    rows.append(Row("listing", f"save_and_keep_only among {count} checkpoints", f"{timer['keep']:.3f} s",
                    baseline, timer["speechbrain"] / timer["keep"], None, note="speed ratio"))
    return rows
