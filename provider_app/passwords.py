"""Password hashing with argon2id (argon2-cffi).

Parameters are OWASP's first recommended argon2id configuration (19 MiB, 2 passes, one
lane) rather than argon2-cffi's default (64 MiB, 3 passes, 4 lanes): a web worker holds
the whole memory cost while it hashes, and two sign-ins at once in a two-thread worker
took it from ~150 MB to ~290 MB. Hashing is also serialised per process, so a worker
never holds more than one hash's memory at a time (a sign-in waits a few milliseconds
behind another instead). Stored hashes made with other parameters still verify and are
re-hashed at the next successful sign-in (``needs_rehash``).
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

_one_at_a_time = threading.Lock()


def _hasher() -> PasswordHasher:
    return PasswordHasher(
        time_cost=current_app.config["ARGON2_TIME_COST"],
        memory_cost=current_app.config["ARGON2_MEMORY_COST"],
        parallelism=current_app.config["ARGON2_PARALLELISM"],
    )


def hash_password(password: str) -> str:
    hasher = _hasher()
    with _one_at_a_time:
        return hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    hasher = _hasher()
    try:
        with _one_at_a_time:
            return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than the configured ones."""
    try:
        return _hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


# A real hash of an unknowable password, checked when the e-mail is unknown so
# the response time does not reveal which addresses have accounts.
def dummy_verify(password: str) -> None:
    verify_password(
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "BbXxoemc5vuFDLYLw61OWCI3CSYJ0dckWIKj0tYhIyw",
        password,
    )


MIN_PASSWORD_LENGTH = 10


def password_problem(password: str) -> str | None:
    """A reason the password is too weak, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    return None
