"""Accounts: logging in (candidates, teachers, admins), the failed-login guard, staff accounts."""
