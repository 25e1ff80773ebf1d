"""The REST front door (FastAPI): ``create_app``."""

from cdas.service.rest.app import create_app

__all__ = ["create_app"]
