"""Domain errors: one type per kind of failure, mapped once to CLI and HTTP messages."""

from __future__ import annotations


class LumoError(Exception):
    """Base of every error a user can cause; the message is shown as is."""

    exit_code = 1
    http_status = 400


class NotFound(LumoError):
    """Unknown record, or one outside the caller's scope: the two look the same."""

    exit_code = 3
    http_status = 404


class UnknownUser(LumoError):
    exit_code = 2
    http_status = 401


class Forbidden(LumoError):
    """Allowed to the caller's role no further (e.g. finance's work for a rep): said, not hidden."""

    exit_code = 2
    http_status = 403


class InvalidInput(LumoError):
    exit_code = 2
    http_status = 422


class ImportRejected(LumoError):
    """A snapshot with bad records; `problems` has one line per problem."""

    exit_code = 2
    http_status = 422

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing was imported")
        self.problems = problems
