import pytest

from tests.classify import tiny


@pytest.fixture(scope="session")
def lm():
  return tiny.tiny_lm()
