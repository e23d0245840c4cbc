"""Errors of the auth service, turned into JSON responses in one place (app.py).

AuthError
├── Unauthorized   401  admin token missing or wrong
├── NotFound       404  no such key or plan
├── Conflict       409  e.g. a plan still in use
├── Invalid        422  a request that validates but makes no sense
└── StoreDown      503  Redis unreachable
"""

from __future__ import annotations


class AuthError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(AuthError):
    status = 401


class NotFound(AuthError):
    status = 404


class Conflict(AuthError):
    status = 409


class Invalid(AuthError):
    status = 422


class StoreDown(AuthError):
    status = 503
