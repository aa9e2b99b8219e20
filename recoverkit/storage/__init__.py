"""On-disk format of checkpoints: folder layout, meta file, atomic writes, locks."""

from recoverkit.storage.layout import (
    CKPT_PREFIX,
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
)

__all__ = ["CKPT_PREFIX", "METAFNAME", "PARAMFILE_EXT", "Checkpoint"]
