"""Putting tokens in the inventory: a seed file, a PSKC delivery, or an enrolled soft token.

One transaction whatever the size, under the inventory lock; a seed already held by another
token refuses the file; an update restates only what the file states.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from otpcore.crypto import Keyring
from otpcore.errors import AlreadyExists, ImportRefused, InvalidInput, OtpError
from otpcore.model import Algorithm
from otpcore.ports import Clock
from otpcore.progress import Progress, Ticker
from otpcore.seed_reuse import first_reuse
from otpcore.store import Repo, Store
from otpcore.store.models import TokenRow
from otpcore.token_csv import STATED_SETTINGS, TokenSpec
from otpcore.views import Imported

IMPORT_CHUNK = 5000  # tokens per executemany, and per progress report
TOKEN_IMPORT = "token_import"  # the audit action of every transaction that adds tokens


class TokenImport:
    """One import of token specs, by one actor."""

    def __init__(self, store: Store, keyring: Keyring, clock: Clock, actor: str) -> None:
        self.store = store
        self.keyring = keyring
        self.clock = clock
        self.actor = actor

    def run(
        self,
        specs: Sequence[TokenSpec],
        *,
        update_existing: bool = False,
        progress: Progress | None = None,
        source: str | None = None,
        label: str | None = None,
    ) -> Imported:
        """Put tokens in the inventory in one transaction; a present serial needs ``update``.

        A present serial without ``update_existing`` raises ImportRefused naming ``source``
        and the spec's line when a source file is given, else AlreadyExists (what a caller
        drawing random serials retries on). A file's seeds (``source`` given) must be new to
        the inventory too. ``progress`` counts one unit per token written. ``label`` names in
        the audit where tokens without a file came from (a software token's enrolment).
        """
        now = self.clock()
        ticker = Ticker(progress, len(specs))
        # Read the inventory's seeds before taking the sealing lock, which on SQLite is the
        # write lock: held for seconds, it would hold up the daemon's commits.
        seen = self._seeds_checked(specs, source) if source is not None else None
        try:
            with self.store.transaction() as repo:
                repo.lock_inventory()
                # Under the lock: no rotation can slip in now.
                sample = repo.some_token()
                kid = self.keyring.sealed_kid(sample.sealed_secret) if sample else None
                self.keyring.check_current(kid)
                present = repo.existing_serials([spec.serial for spec in specs])
                if present and not update_existing:
                    first = next(spec for spec in specs if spec.serial in present)
                    raise _present(first, source)
                seedless = next(
                    (s for s in specs if s.secret is None and s.serial not in present), None
                )
                if seedless is not None:
                    raise _not_present(seedless, source)
                if source is not None and repo.last_audit_id(TOKEN_IMPORT) != seen:
                    # Tokens were added since (every addition is a token_import under this
                    # lock): compare again, now that nobody can add more.
                    self._refuse_reused_seeds(repo, specs, source)
                repo.lock_keys(serials=sorted(present))  # then written in the file's order
                # Under the lock: a step a login committed after the read would be overwritten
                # by the older one the update restates.
                used = repo.used_steps([s.serial for s in specs if _restates_period(s, present)])
                for start in range(0, len(specs), IMPORT_CHUNK):
                    chunk = specs[start : start + IMPORT_CHUNK]
                    fresh = [self._token_values(s, now) for s in chunk if s.serial not in present]
                    changed = [
                        _rescaled(self._changed_values(s), used)
                        for s in chunk
                        if s.serial in present
                    ]
                    # Rows stating different settings are different UPDATEs; SQLAlchemy batches
                    # only neighbours alike, so put the alike together.
                    changed.sort(key=lambda values: sorted(values))
                    # One executemany per chunk: a row-by-row loop made 100,000 rows crawl.
                    if fresh:
                        repo.session.execute(insert(TokenRow), fresh)
                    if changed:
                        repo.session.execute(update(TokenRow), changed)  # by primary key
                    ticker.advance(len(chunk))
                added = len(specs) - len(present)
                detail = f"{added} added, {len(present)} updated"
                if source is not None or label is not None:
                    detail = f"{source or label}: {detail}"
                targets = Repo.import_targets([spec.serial for spec in specs])
                repo.audit(now, self.actor, TOKEN_IMPORT, targets, "ok", detail)
        except IntegrityError:
            # Another writer added one of these serials between the check and the insert.
            message = "a serial was added by someone else while importing; nothing was imported"
            if source is not None:
                raise ImportRefused(source, None, message) from None
            raise AlreadyExists(message) from None
        return Imported(added=len(specs) - len(present), updated=len(present))

    def _seeds_checked(self, specs: Sequence[TokenSpec], source: str) -> int:
        """Refuse seeds the inventory holds, reading it without a lock; the import mark read."""
        with self.store.reading() as repo:
            mark = repo.last_audit_id(TOKEN_IMPORT)  # first: a later addition changes it
            self._refuse_reused_seeds(repo, specs, source)
        return mark

    def _refuse_reused_seeds(self, repo: Repo, specs: Sequence[TokenSpec], source: str) -> None:
        # A seed file delivered again under new serials, or a vendor repeating seeds across
        # batches, would let either token open the other's logins; the file's own repeats
        # were refused as it was read. Files only: an enrolled software token's seed is
        # fresh from the system's random source, and reading every seed takes seconds at a
        # million tokens.
        # A row that keeps its seed keeps it in the inventory, where the file's other seeds
        # must not meet it.
        replaced = {spec.serial for spec in specs if spec.secret is not None}
        inventory = (
            (serial, Algorithm(algorithm), self.keyring.unseal(serial, sealed))
            for serial, algorithm, sealed in repo.sealed_seeds()
            if serial not in replaced
        )
        reuse = first_reuse(specs, inventory)
        if reuse is not None:
            spec, other = reuse
            raise ImportRefused(
                source,
                spec.line,
                f"serial {spec.serial} has the seed of token {other}, already in the "
                "inventory: every token needs a seed of its own",
            )

    def _token_values(self, spec: TokenSpec, now: datetime) -> dict[str, object]:
        # Only for serials not in the inventory, which run() refused without a seed.
        fresh = {"last_step": -1, "fail_count": 0, "suspended": False, "disabled": False}
        return {**self._seed_values(spec), **fresh, "created_at": now}

    def _changed_values(self, spec: TokenSpec) -> dict[str, object]:
        # What a seed file says; an update leaves last_step, counters and flags alone, so a
        # re-import neither reopens used steps nor lifts a suspension or a block. Defaults
        # stand in for what the file left out; on an update they must not.
        values = self._seed_values(spec)
        if spec.given is None:
            return values
        return {k: v for k, v in values.items() if k not in STATED_SETTINGS or k in spec.given}

    def _seed_values(self, spec: TokenSpec) -> dict[str, object]:
        values: dict[str, object] = {
            "serial": spec.serial,
            "kind": spec.kind.value,
            "algorithm": spec.algorithm.value,
            "digits": spec.digits,
            "period": spec.period,
            "expires": spec.expires,
            "drift": spec.drift,
        }
        if spec.secret is not None:  # else an update that keeps the sealed seed
            values["sealed_secret"] = self.keyring.seal(spec.serial, spec.secret)
        return values


def _restates_period(spec: TokenSpec, present: set[str]) -> bool:
    """Whether the spec updates a token of the inventory and states its period."""
    return spec.serial in present and (spec.given is None or "period" in spec.given)


def _rescaled(values: dict[str, object], used: dict[str, tuple[int, int]]) -> dict[str, object]:
    """An update's values, its token's used step restated in the steps of a new period."""
    period = values.get("period")
    if not isinstance(period, int) or str(values["serial"]) not in used:
        return values
    old_period, last = used[str(values["serial"])]
    if period != old_period:
        # Kept in the old unit, the step would be far ahead of (or behind) every new step:
        # every right code a replay (five suspend the token), or used codes good again. The
        # new step that holds the last used second is the last used one: no code for time
        # already used opens again, and the code after it does. -1 (never used) stays -1.
        values["last_step"] = ((last + 1) * old_period - 1) // period
    return values


def _not_present(spec: TokenSpec, source: str | None) -> OtpError:
    message = f"serial {spec.serial} is not in the inventory: a new token needs its secret"
    return _refused(spec, source, message, InvalidInput)


def _present(spec: TokenSpec, source: str | None) -> OtpError:
    message = f"serial {spec.serial} is already in the inventory (use --update)"
    return _refused(spec, source, message, AlreadyExists)


def _refused(
    spec: TokenSpec, source: str | None, message: str, without_file: type[OtpError]
) -> OtpError:
    """ImportRefused naming the file and line; without a file, ``without_file``'s error."""
    if source is not None:
        return ImportRefused(source, spec.line, message)
    where = f"line {spec.line}: " if spec.line else ""
    return without_file(where + message)
