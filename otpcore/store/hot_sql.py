"""The statements of the authentication hot path, as the driver runs them.

Named parameters (``:login``) are rewritten to the driver's own style once per statement by
``HotStore``. The statements are the same single conditional writes as in ``repo.py``, so
several processes and nodes stay correct.
"""

from __future__ import annotations

from typing import Any

USER = """SELECT login, name, user_class, password_hash, serial, start_date, revoked,
    suspended, password_failures, activation_failures FROM users WHERE login = :login"""
TOKEN = """SELECT serial, kind, algorithm, digits, period, sealed_secret, expires, last_step,
    drift, last_request, fail_count, suspended, disabled FROM tokens WHERE serial = :serial"""
# Any one token: a rotation re-seals every seed at once, so one seed names the key of them all.
SOME_SEED = "SELECT serial, sealed_secret FROM tokens LIMIT 1"
CHALLENGE = "SELECT login, stage, serial, expires_at, used_by FROM challenges WHERE id = :id"
TAKE_CHALLENGE = "UPDATE challenges SET used_by = :request WHERE id = :id AND used_by IS NULL"
# Kept until they expire, used or not: a used one still answers its resent answer (SPEC §4).
PURGE_CHALLENGES = """DELETE FROM challenges WHERE id IN
    (SELECT id FROM challenges WHERE expires_at <= :now LIMIT :limit)"""
# On PostgreSQL workers and nodes purge at once: each takes rows nobody else has locked, so
# two purges never wait for each other in opposite orders (a deadlock).
PURGE_CHALLENGES_PG = """DELETE FROM challenges WHERE id IN
    (SELECT id FROM challenges WHERE expires_at <= :now LIMIT :limit FOR UPDATE SKIP LOCKED)"""
ADD_CHALLENGE = """INSERT INTO challenges (id, login, stage, serial, expires_at)
    VALUES (:id, :login, :stage, :serial, :expires)"""
# The user is read again here, as the request was decided without a lock: a login must not
# pass after parallel wrong guesses suspended the user, nor after the user was revoked from
# the token (a lost token); an activation only while the user is still unbound. The period
# too: an import that changed it restated last_step in the new period's steps, and a step
# counted in the old ones would land far from now (every right code a replay, or used ones
# good again). And the seed: a code of the seed an import has just replaced (a leaked one)
# must not open a login once the import has returned; nor a token whose expiry has passed
# by then (an update may move it into the past). An activation binds only a user not
# revoked since it was decided: a revoke of an issued user (a token lost in the post) must
# not be undone by the finder's activation that commits just after it.
CONSUME = """UPDATE tokens SET last_step = :step, fail_count = 0,
    last_request = :request WHERE serial = :serial AND last_step < :step
    AND period = :period AND sealed_secret = :sealed AND NOT suspended AND NOT disabled
    AND (expires IS NULL OR expires > :now)
    AND EXISTS (SELECT 1 FROM users AS u WHERE u.login = :login AND NOT u.suspended
        AND (u.serial = :serial
            OR (u.serial IS NULL AND :binding AND (:revoked OR NOT u.revoked))))"""
STANDING = """SELECT u.suspended, u.serial, t.suspended, t.disabled, t.serial IS NOT NULL,
    t.last_step, t.last_request, t.period, t.sealed_secret,
    t.expires IS NOT NULL AND t.expires <= :now, u.revoked
    FROM users AS u LEFT JOIN tokens AS t ON t.serial = :serial WHERE u.login = :login"""
CHALLENGE_USED_BY = "SELECT used_by FROM challenges WHERE id = :id"
# Only from one of the token's users (SPEC §2): a wrong code decided as the user was revoked
# from the token, or deleted, must not count against the users who still hold it; nor on a
# token disabled or expired meanwhile, where nothing is checked or counted (SPEC §3).
TOKEN_FAILURE = """UPDATE tokens SET fail_count = fail_count + 1,
    suspended = (fail_count + 1 >= :threshold) WHERE serial = :serial AND NOT suspended
    AND NOT disabled AND (expires IS NULL OR expires > :now)
    AND EXISTS (SELECT 1 FROM users AS u WHERE u.login = :login AND u.serial = :serial)
    RETURNING suspended"""
PASSWORD_FAILURE = """UPDATE users SET password_failures = password_failures + 1,
    suspended = (password_failures + 1 >= :threshold) WHERE login = :login AND NOT suspended
    RETURNING suspended"""
ACTIVATION_FAILURE = """UPDATE users SET activation_failures = activation_failures + 1,
    suspended = (activation_failures + 1 >= :threshold) WHERE login = :login
    AND NOT suspended
    RETURNING suspended"""
RESET_PASSWORD_FAILURES = """UPDATE users SET password_failures = 0
    WHERE login = :login AND password_failures <> 0"""
BIND = """UPDATE users SET serial = :serial, revoked = :false, activation_failures = 0
    WHERE login = :login AND serial IS NULL"""
# Only over the hash the login verified: a password set meanwhile (otpctl user passwd, an
# import) must not be replaced by the rehash of the one it replaced.
SET_HASH = """UPDATE users SET password_hash = :hash WHERE login = :login
    AND password_hash = :verified"""
# PostgreSQL locks rows as the sorted rows come out: every batch takes them in one order.
LOCK_USERS_PG = """SELECT login FROM users WHERE login = ANY(:logins) ORDER BY login
    FOR UPDATE"""
LOCK_TOKENS_PG = """SELECT serial FROM tokens WHERE serial = ANY(:serials) ORDER BY serial
    FOR UPDATE"""
LOCK_CHALLENGES_PG = """SELECT id FROM challenges WHERE id = ANY(:ids) ORDER BY id
    FOR UPDATE"""
# The same, taking only the rows no other transaction holds (after a lock wait timed out).
LOCK_USERS_FREE_PG = LOCK_USERS_PG + " SKIP LOCKED"
LOCK_TOKENS_FREE_PG = LOCK_TOKENS_PG + " SKIP LOCKED"
LOCK_CHALLENGES_FREE_PG = LOCK_CHALLENGES_PG + " SKIP LOCKED"
SHARERS = "SELECT login FROM users WHERE serial = :serial ORDER BY login"
AUDIT = """INSERT INTO audit_events (at, actor, action, targets, outcome, detail)
    VALUES (:at, :actor, :action, :targets, :outcome, :detail)"""
# A server that answers but refuses every write serves no login: a standby the address led to
# after a failover, or a database set read-only. The health probe must not call it reachable,
# and says which of the two it found.
READ_ONLY_PG = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"


def storable(key: str) -> bool:
    """False for a login or serial no row can hold: one with a NUL, which PostgreSQL refuses
    in text with an error that would pass for the database being down (and logins and
    serials are printable anyway). Such a key is simply not found."""
    return "\x00" not in key


def returned_true(cursor: Any) -> bool:
    # fetchall, not fetchone: SQLite cannot commit while a RETURNING statement is unfinished.
    rows = cursor.fetchall()
    return bool(rows and rows[0][0])
