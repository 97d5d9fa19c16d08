"""The staff accounts' token generations in MySQL (revocation), shared by the API's staff
tables and the reconciler, which checks admin tokens at its own endpoints."""

from __future__ import annotations

from service.storage.mysql_parts import AnyDatabase, home_of


class StaffGenerations:
    def __init__(self, db: AnyDatabase) -> None:
        self._db = db

    async def token_generation(self, username: str) -> int | None:
        row = await home_of(self._db).fetch_one("staff_token_generation", username)
        return None if row is None else int(row[0])

    async def bump_token_generation(self, username: str) -> None:
        await home_of(self._db).execute("bump_staff_tokens", username)
