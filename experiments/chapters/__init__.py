"""Tour chapters. Every module here registers itself with `research.tour.chapter`;
`experiments.tour` imports them all, so adding a chapter is adding a file."""

import importlib
import pkgutil


def import_all() -> None:
  for module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{module.name}")
