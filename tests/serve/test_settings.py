"""The server's settings: one frozen record whose defaults are Ollama's port and loopback, and
the checks that refuse, before anything loads, a setting that would open it by mistake."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from research.serve import settings as settings_lib
from research.serve.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_serves_without_a_key(host):
  assert Settings(host=host).check().host == host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "mybox.lan"])
def test_a_network_host_needs_a_key_or_the_insecure_flag(host):
  with pytest.raises(ValueError, match=f"--host={re.escape(host)} is reachable from the "
                     "network.*--insecure_no_key") as e:
    Settings(host=host).check()
  assert "\n" not in str(e.value)
  Settings(host=host, api_key="k").check()
  Settings(host=host, insecure_no_key=True).check()


@pytest.mark.parametrize("key", ["", "  "])
def test_an_empty_key_is_refused_not_matched(key):
  with pytest.raises(ValueError, match="The API key is empty"):
    Settings(api_key=key).check()


@pytest.mark.parametrize("field, value, says", [
    ("allowed_hosts", ("http://x.com",), "--allowed_hosts entry 'http://x.com'"),
    ("allowed_hosts", ("a b",), "--allowed_hosts entry 'a b'"),
    ("origins", ("localhost:3000",), "--origins entry 'localhost:3000'"),
    ("origins", ("http://x.com/path",), "--origins entry"),
    ("api_key", "a\nb", "line break")])
def test_malformed_lists_and_keys_are_one_sentence(field, value, says):
  with pytest.raises(ValueError, match=re.escape(says)):
    Settings(**{field: value}).check()
  Settings(allowed_hosts=("*", "*.example.com", "proxy:8080"),
           origins=("*", "http://localhost:*", "app://x")).check()


def test_the_key_comes_from_the_flag_a_file_or_the_environment(tmp_path):
  env = {settings_lib.KEY_ENV: "from-env"}
  assert settings_lib.api_key_from("flag", None, env) == "flag"
  (tmp_path / "key").write_text("from-file  \nignored\n")
  assert settings_lib.api_key_from(None, str(tmp_path / "key"), env) == "from-file"
  assert settings_lib.api_key_from(None, None, env) == "from-env"
  assert settings_lib.api_key_from(None, None, {}) is None
  with pytest.raises(ValueError, match="The API key is empty"):  # `export BOOKFORAI_API_KEY=`
    Settings(api_key=settings_lib.api_key_from(None, None, {settings_lib.KEY_ENV: ""})).check()
  with pytest.raises(ValueError, match="not both"):
    settings_lib.api_key_from("flag", str(tmp_path / "key"), env)
  (tmp_path / "empty").write_text("\n")
  with pytest.raises(ValueError, match="first line is empty"):
    settings_lib.api_key_from(None, str(tmp_path / "empty"), env)
  with pytest.raises(FileNotFoundError):
    settings_lib.api_key_from(None, str(tmp_path / "missing"), env)


def test_the_script_refuses_a_network_host_without_a_key_in_one_sentence():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("BOOKFORAI_TRACEBACK", None)
  env.pop(settings_lib.KEY_ENV, None)
  done = subprocess.run([sys.executable, "-m", "experiments.serve", "--warmup=false",
                         "--host=0.0.0.0"], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=120)
  assert done.returncode == 2, done.stderr
  assert done.stderr.strip().startswith("error: --host=0.0.0.0 is reachable from the "
                                        "network"), done.stderr
  assert len(done.stderr.strip().splitlines()) == 1, done.stderr
