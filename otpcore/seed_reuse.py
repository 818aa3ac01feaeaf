"""Seeds an import would share with a token already in the inventory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from otpcore.model import Algorithm
from otpcore.token_csv import TokenSpec, seed_forms


def first_reuse(
    specs: Sequence[TokenSpec], inventory: Iterable[tuple[str, Algorithm, bytes]]
) -> tuple[TokenSpec, str] | None:
    """The first spec (in file order) whose seed an inventory token has, with that serial.

    ``inventory`` yields (serial, algorithm, secret) of the tokens the import leaves as they
    are; a token the import replaces is no conflict with its own new seed.
    """
    # The import's seeds are indexed, not the inventory's: memory follows the file, and the
    # inventory, a million tokens perhaps, streams past once.
    wanted: dict[bytes, int] = {}
    for index, spec in enumerate(specs):
        if spec.secret is None:
            continue  # an update that keeps its seed
        for form in seed_forms(spec.secret, spec.algorithm):
            wanted.setdefault(form, index)
    if not wanted:
        # An update that keeps every seed (``serial,expires``) shares none: opening each
        # seed of the inventory took 5 s at a million tokens to extend one.
        return None
    first: tuple[int, str] | None = None
    for serial, algorithm, secret in inventory:
        for form in seed_forms(secret, algorithm):
            hit = wanted.get(form)
            if hit is not None and (first is None or hit < first[0]):
                first = (hit, serial)
    return None if first is None else (specs[first[0]], first[1])
