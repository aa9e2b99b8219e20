"""A CKPT.yaml that is not valid YAML: one warning line naming the file and the YAML problem."""

from __future__ import annotations

import logging

# An unclosed flow sequence, which PyYAML reports on the line after it.
INVALID_YAML = "epoch: 3\nlosses: [0.5, 0.4\nvalid_loss: 0.3\n"


def test_ls_invalid_yaml_warning(run, checkpoints_dir, caplog):
    meta_path = checkpoints_dir / "CKPT+epoch-3" / "CKPT.yaml"
    meta_path.write_text(INVALID_YAML)
    with caplog.at_level(logging.WARNING, logger="recoverkit.storage.listing"):
        result = run("ls", checkpoints_dir)
    [warning] = [record.getMessage() for record in caplog.records if "CKPT+epoch-3" in record.getMessage()]
    assert "\n" not in warning
    assert str(meta_path) in warning
    assert "did not find expected ',' or ']' at line 3, column 11" in warning
    assert "<unicode string>" not in warning
    assert result.exit_code == 1


def test_ls_invalid_yaml_error_one_line(run, checkpoints_dir):
    (checkpoints_dir / "CKPT+epoch-3" / "CKPT.yaml").write_text(INVALID_YAML)
    result = run("ls", checkpoints_dir)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "<unicode string>" not in result.stderr
