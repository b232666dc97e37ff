"""Full pages of the log never change: strong ETag, a year-long Cache-Control, 304 on revalidation."""

from __future__ import annotations

import pytest

from eventstate.http.pages import PageCache


def write(client, count: int) -> None:
    for i in range(count):
        assert 200 == client.post("/update", json={"counter": i}).status_code


@pytest.mark.parametrize("query", ["/logs?after=0&limit=5", "/logs?after=2&limit=3",
                                   "/logs?order=desc&before=6&limit=5", "/logs?after=0&before=5&limit=4"])
def test_a_full_anchored_page_is_immutable(client, query):
    """A page that reached its limit, anchored by after/before, is cacheable forever and revalidates."""
    write(client, 6)
    first = client.get(query)
    assert 200 == first.status_code
    assert "immutable" in first.headers["cache-control"]
    etag = first.headers["etag"]
    assert not etag.startswith("W/")
    write(client, 2)
    again = client.get(query)
    assert (first.content, etag) == (again.content, again.headers["etag"])
    revalidated = client.get(query, headers={"If-None-Match": etag})
    assert 304 == revalidated.status_code
    assert b"" == revalidated.content


@pytest.mark.parametrize("query", ["/logs?after=0&limit=50", "/logs?order=desc&limit=2"])
def test_pages_that_can_still_change_are_not_cached(client, query):
    """A page short of its limit, or newest-first from the head, may change: no-cache, no ETag."""
    write(client, 3)
    first = client.get(query)
    assert "no-cache" == first.headers["cache-control"]
    assert "etag" not in first.headers
    write(client, 1)
    assert first.content != client.get(query).content


def test_a_page_that_fills_up_later_shows_the_new_events(client):
    """A short page is not cached: once the log grows it shows the new events and becomes immutable."""
    write(client, 2)
    assert 2 == len(client.get("/logs?limit=3").json()["items"])
    write(client, 1)
    full = client.get("/logs?limit=3")
    assert 3 == len(full.json()["items"])
    assert "immutable" in full.headers["cache-control"]


def test_the_page_cache_is_bounded():
    """The cache keeps at most its size, evicting the least recently used page."""
    from eventstate.http.pages import Page

    cache = PageCache(size=2)
    for after in range(3):
        cache.put((after, None, 1, False), Page(b"x", '"x"', None))
    assert 2 == len(cache)
    assert cache.get((0, None, 1, False)) is None
    assert cache.get((2, None, 1, False)) is not None
