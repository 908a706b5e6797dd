"""The server's settings: one frozen record whose defaults are Ollama's port and loopback."""

import dataclasses
from pathlib import Path

import pytest

from research.serve.settings import Settings


def test_defaults_serve_like_ollama_on_loopback_only():
  s = Settings()
  assert (s.host, s.port, s.api_key) == ("127.0.0.1", 11434, None)
  assert s.max_body_bytes < s.max_upload_bytes


def test_settings_are_frozen_and_the_kb_root_follows_the_work_dir():
  s = Settings(work_dir=Path("/tmp/w"))
  assert s.kb_root == Path("/tmp/w/kb")
  with pytest.raises(dataclasses.FrozenInstanceError):
    s.port = 1
  assert dataclasses.replace(s, port=1).port == 1 and s.port == 11434
