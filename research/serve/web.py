"""The web UI: pages at / and the routes only the pages call (placeholder until it lands)."""

import fastapi


def router(services) -> fastapi.APIRouter:
  del services
  return fastapi.APIRouter()
