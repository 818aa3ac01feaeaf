"""Storage: typed models, atomic queries, transactions, engine setup and Alembic migrations."""

from otpcore.store.engine import make_engine
from otpcore.store.repo import Repo
from otpcore.store.sessions import Store

__all__ = ["Repo", "Store", "make_engine"]
