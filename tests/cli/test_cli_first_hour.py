"""The traps a new user meets in the first hour, each as that user meets it."""

from __future__ import annotations

import stat

from click.testing import CliRunner

from loopline.cli import cli


def test_keygen_creates_the_key_directory_private(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The help's own example, in a directory without keys/.
    result = CliRunner().invoke(cli, ["models", "keygen", "keys/models.key"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "models.key").stat().st_mode) == 0o600
    assert (tmp_path / "keys" / "models.key.pub").exists()
