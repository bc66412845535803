"""Results worked out from a book, kept while the book is unchanged.

A rep asks for today's priorities many times a day, from chat, Slack and the web app, and most of those
times nothing in their book has changed. Each owner's book has a version that database triggers set anew on
every write to it (migration 0012, table `book_versions`); a result is kept under the versions of the books
in scope, read in the same session before the result is computed. A write after that read gives a new
version, so at worst a result fresher than its key is kept, never an older one. The whole workspace (an
admin's scope) is not cached: any write anywhere would change its key.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import TypeVar, cast

from cachetools import LRUCache
from sqlalchemy import Engine, Select, Table, bindparam, select
from sqlalchemy.orm import Session

from lumo.crm.scope import Scope
from lumo.db.models import BookVersion

T = TypeVar("T")
EVERY_BOOK = "*"
MAX_ENTRIES = 2048  # a few per active rep; a priorities result is a few kB


# One cache per engine: two databases (tests, tools) never share entries. One lock for all: tools run on worker
# threads, an LRU read reorders its cache, and every operation under it is a dict step.
_caches: weakref.WeakKeyDictionary[Engine, LRUCache[Hashable, object]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _cache_of(engine: Engine) -> LRUCache[Hashable, object]:
    """The engine's cache; call under `_lock`."""
    cache = _caches.get(engine)
    if cache is None:
        cache = _caches[engine] = LRUCache(MAX_ENTRIES)
    return cache


@functools.cache
def _versions(owners: int) -> Select[str, int]:
    """Built once per number of owners (every chat turn reads it, and building it cost as much as running it);
    one bound parameter per owner, as an expanding IN would be rewritten on every run. On the table's columns:
    an ORM select goes through the ORM's compile step on every run, for two plain columns."""
    table = cast(Table, BookVersion.__table__)
    return select(table.c.owner_id, table.c.version).where(table.c.owner_id.in_([bindparam(f"o{i}") for i in range(owners)]))


def book_version(session: Session, scope: Scope) -> tuple[int, ...] | None:
    """The versions of every book in scope (and of '*'), in owner order; None for the whole workspace."""
    if scope.owner_ids is None:
        return None
    owners = [EVERY_BOOK, *sorted(scope.owner_ids)]
    found = session.execute(_versions(len(owners)), {f"o{i}": owner for i, owner in enumerate(owners)})
    rows = {owner: version for owner, version in found}
    return tuple(rows.get(owner, 0) for owner in owners)


class Versions:
    """Book versions read at most once, for one chat turn: its reads all see the books as they were when it
    began (a read at that moment would have). `forget` after the turn's own write."""

    def __init__(self) -> None:
        self._read: dict[frozenset[str] | None, tuple[int, ...] | None] = {}

    def of(self, session: Session, scope: Scope) -> tuple[int, ...] | None:
        if scope.owner_ids not in self._read:
            self._read[scope.owner_ids] = book_version(session, scope)
        return self._read[scope.owner_ids]

    def forget(self) -> None:
        self._read.clear()


def cached(session: Session, scope: Scope, key: Hashable, compute: Callable[[], T], versions: Versions | None = None) -> T:
    """`compute()`, or what it gave for `key` over the same versions of the books in scope.

    The value is shared between callers: give only values nobody changes (tuples, frozen dataclasses, text).
    """
    version = book_version(session, scope) if versions is None else versions.of(session, scope)
    if version is None:
        return compute()
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    full = (key, scope.user_id, scope.owner_ids, version)
    with _lock:
        hit = _cache_of(engine).get(full)
    if hit is not None:
        return hit  # type: ignore[return-value]
    value = compute()
    with _lock:
        _cache_of(engine)[full] = value
    return value
