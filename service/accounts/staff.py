"""Creating staff accounts (``volreg admin``): admins, and teachers of one school."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Protocol

from service.accounts.login import ROLE_ADMIN, ROLE_TEACHER, StaffAccount
from service.core.passwords import Passwords

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SCHOOL = re.compile(r"^[0-9]{1,16}$")
_MIN_PASSWORD = 8


def account_problem(username: str, role: str, school: str, password: str) -> str | None:
    if not _USERNAME.match(username):
        return "username: 1-64 letters, digits, '.', '_' or '-'"
    if role not in (ROLE_ADMIN, ROLE_TEACHER):
        return f"role: {ROLE_ADMIN} or {ROLE_TEACHER}"
    if role == ROLE_TEACHER and not _SCHOOL.match(school):
        return "a teacher needs --school (digits)"
    if role == ROLE_ADMIN and school:
        return "an admin has no school"
    if len(password) < _MIN_PASSWORD:
        return f"password: at least {_MIN_PASSWORD} characters"
    return None


class StaffWriter(Protocol):
    async def upsert_staff(self, accounts: Sequence[StaffAccount]) -> None: ...


async def create_account(
    staff: StaffWriter, passwords: Passwords, username: str, role: str, school: str, password: str
) -> None:
    """Create or update (same username) an account; raises ValueError for bad values."""
    problem = account_problem(username, role, school, password)
    if problem:
        raise ValueError(problem)
    hashed = await asyncio.to_thread(passwords.hash, password)
    await staff.upsert_staff([StaffAccount(username, role, school, "", hashed)])
