"""Errors of the auth service, and the one place they become HTTP answers (``http_answer``).

AuthError
├── BadRequest     400  an RPC body that is not JSON or not a valid request
├── Unauthorized   401  admin token missing or wrong
├── NotFound       404  no such key or plan
├── Conflict       409  e.g. a plan still in use
├── Invalid        422  a request that validates but makes no sense
└── StoreDown      503  Redis unreachable

Besides these, the admin app answers FastAPI's request validation errors (422), Starlette's
HTTP errors (its 404 and 405) and a Redis error that escaped a handler (503) the same way:
``{"status": false, "message": ...}`` with the status of ``http_answer``. The admin app
registers one handler for all of ``HTTP_ERRORS`` (app.py); the RPCs, which run on the services'
own server, answer an ``AuthError`` with the same status and body.
"""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

STORE_UNAVAILABLE = "credit store unavailable"


class AuthError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(AuthError):
    status = 400


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


HTTP_ERRORS = (AuthError, RequestValidationError, HTTPException, RedisError)


def http_answer(exc: Exception) -> tuple[int, str]:
    """The status and message a client is answered with for ``exc``, one of ``HTTP_ERRORS``."""
    if isinstance(exc, AuthError):
        return exc.status, exc.message
    if isinstance(exc, RequestValidationError):
        return 422, "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    return 503, STORE_UNAVAILABLE  # a RedisError: whichever command, the store is down
