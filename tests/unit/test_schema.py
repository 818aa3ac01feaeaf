"""The schema revision the code checks at start equals the newest migration."""

from otpcore.store.schema import alembic_head, head_revision


def test_head_constant_matches_the_migrations() -> None:
    assert head_revision() == alembic_head()
