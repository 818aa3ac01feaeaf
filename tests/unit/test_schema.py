"""The schema revisions the code checks at start equal the migrations."""

from otpcore.store.schema import REVISIONS, alembic_head, alembic_revisions, head_revision


def test_head_constant_matches_the_migrations() -> None:
    assert head_revision() == alembic_head()


def test_the_known_revisions_are_the_migrations() -> None:
    assert list(REVISIONS) == alembic_revisions()
