"""Immutable pages of the log: a full page (one that reached its `limit` and is anchored by
`after` or `before`, not by the moving head) can never change, because the log is append-only.
Such pages carry a strong ETag and a year-long Cache-Control, and their encoded bytes are kept in
a bounded least-recently-used cache, so the popular ones cost no database read and no encoding."""

from __future__ import annotations

import collections
import hashlib

import attrs

IMMUTABLE = "public, max-age=31536000, immutable"
MUTABLE = "no-cache"

PageKey = tuple[int, int | None, int, bool]  # after, before, limit, descending


@attrs.frozen
class Page:
    """An encoded page and its headers."""

    body: bytes
    etag: str
    link: str | None


def is_immutable(key: PageKey, count: int) -> bool:
    """Whether the page for `key` with `count` events can never change."""
    _after, before, limit, descending = key
    return count == limit and (not descending or before is not None)


def etag_for(key: PageKey, last_hash: str) -> str:
    """A strong ETag: the query and the last event's chain hash, which commits to every event before."""
    digest = hashlib.sha256(f"{key}|{last_hash}".encode()).hexdigest()[:32]
    return f'"{digest}"'


class PageCache:
    """At most `size` immutable pages, least recently used evicted first."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._pages: collections.OrderedDict[PageKey, Page] = collections.OrderedDict()

    def get(self, key: PageKey) -> Page | None:
        """The cached page for `key`, if any."""
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
        return page

    def put(self, key: PageKey, page: Page) -> None:
        """Keep `page` (only ever called for immutable pages)."""
        self._pages[key] = page
        self._pages.move_to_end(key)
        while len(self._pages) > self._size:
            self._pages.popitem(last=False)

    def __len__(self) -> int:
        return len(self._pages)
