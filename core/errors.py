"""One error type for domain failures; interfaces turn it into HTTP or CLI text."""

from __future__ import annotations


class DomainError(Exception):
    """A use case refused its input or its state.

    ``errors`` maps a field (or ``"non_field_errors"``) to messages, the shape
    DRF uses for HTTP 400 bodies, so the API can pass it through unchanged.
    """

    status_code = 400
    code = "invalid"

    def __init__(
        self, message: str, *, errors: dict[str, list[str]] | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.message = message
        self.errors = errors or {"non_field_errors": [message]}
        if code:
            self.code = code


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"
