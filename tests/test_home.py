"""wangge.home: the per-user home and the default sentence-encoder directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from wangge import home
from wangge.serve.config import Settings


def test_wangge_home_wins_over_xdg_cache_home(
    wangge_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/elsewhere")
    assert home.wangge_home() == wangge_home  # the conftest's temporary home
    assert home.default_encoder_dir() == wangge_home / "e5-small"


def test_default_follows_xdg_cache_home_then_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANGGE_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert home.default_encoder_dir() == tmp_path / "cache" / "wangge" / "e5-small"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert home.wangge_home() == tmp_path / ".cache" / "wangge"


def test_the_service_looks_in_the_home_unless_told_otherwise(
    wangge_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the working directory plays no part
    assert Settings().encoder_dir == wangge_home / "e5-small"
    monkeypatch.setenv("WANGGE_ENCODER_DIR", "/srv/encoder")
    assert Settings().encoder_dir == Path("/srv/encoder")


def test_a_directory_holds_an_encoder_when_it_holds_encoder_onnx(tmp_path: Path) -> None:
    encoder = tmp_path / "e5-small"
    assert not home.has_encoder(None) and not home.has_encoder(encoder)
    encoder.mkdir()
    (encoder / "tokenizer.json").write_text("{}")  # a directory, but no encoder in it
    assert not home.has_encoder(encoder)
    (encoder / "encoder.onnx").write_bytes(b"")
    assert home.has_encoder(encoder) and home.has_encoder(str(encoder))
