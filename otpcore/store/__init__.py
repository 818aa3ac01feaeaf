"""Storage: typed models, atomic queries, engine setup and Alembic migrations."""

from otpcore.store.engine import make_engine
from otpcore.store.repo import Repo, Store

__all__ = ["Repo", "Store", "make_engine"]
