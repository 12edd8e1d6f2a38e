"""Sign-up addresses in the SMTP handler, fast (the harness of tests/inprocess/test_handler.py, fakes for the
scanners and the downstream; the real ones are in tests/test_tags_gateway.py). The refusal path of a plain
address pays nothing for tags: no tag lookup, no secret read (the bench rule); a tagged one pays one lookup,
and a dated one reads the store's secret once per process. The per-tag folder reaches the deliverer."""

from __future__ import annotations

from typing import Any

import pytest

from tests.inprocess.test_handler import make, message, run, send, serving  # noqa: F401  (make: a fixture)

pytestmark = pytest.mark.fast


def counting(gw: Any) -> dict[str, int]:
    """Count the handler's tag lookups and secret reads (wrapping the store's methods on this instance)."""
    calls = {"tag_lookup": 0, "tag_secret": 0}
    store = gw.rt.store
    for name in calls:
        real = getattr(store, name)

        def wrapped(*a: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            calls[_name] += 1
            return _real(*a, **kw)
        setattr(store, name, wrapped)
    return calls


def test_a_plain_address_costs_no_tag_lookup(make: Any) -> None:  # noqa: F811
    gw = make()
    calls = counting(gw)

    async def go() -> list[str]:
        async with serving(gw) as port:
            return await send(port, "stranger@far.example", ["alice@example.org", "nobody@example.org"],
                              message("stranger@far.example"))

    replies = run(go())
    assert replies[1].startswith("250") and replies[2].startswith("550 5.1.1") and replies[3].startswith("550 5.7.1")
    assert calls == {"tag_lookup": 0, "tag_secret": 0}


def test_a_tagged_address_costs_one_lookup_and_a_dated_one_reads_the_secret_once(make: Any) -> None:  # noqa: F811
    gw = make()
    plain = gw.rt.store.add_tag(None, "alice@example.org", "shop", folder="tag")
    dated = gw.rt.store.add_tag(None, "alice@example.org", "fair", dated=True)
    calls = counting(gw)

    async def go() -> list[list[str]]:
        async with serving(gw) as port:
            return [await send(port, "deals@shop.example", [plain["address"]], message("deals@shop.example")),
                    await send(port, "deals@shop.example", [dated["address"]], message("deals@shop.example")),
                    await send(port, "deals@shop.example", [dated["address"]], message("deals@shop.example"))]

    for replies in run(go()):
        assert replies[-1].startswith("250"), replies
    assert calls == {"tag_lookup": 3, "tag_secret": 1}
    assert [folder for _, folder in gw.deliverer.handed] == ["Sign-ups.shop", "", ""]
    assert [e.tag for e in gw.events] == ["shop", "fair", "fair"]
    assert gw.scanners.calls == [(True, True)] * 3  # spam- and virus-scanned, each


def test_the_folder_prefix_comes_from_the_configuration(make: Any) -> None:  # noqa: F811
    gw = make(tags={"folder": "tag", "folder_prefix": "Lists"})
    t = gw.rt.store.add_tag(None, "alice@example.org", "club")  # no folder of its own: [tags] folder

    async def go() -> list[str]:
        async with serving(gw) as port:
            return await send(port, "news@club.example", [t["address"]], message("news@club.example"))

    assert run(go())[-1].startswith("250")
    assert [folder for _, folder in gw.deliverer.handed] == ["Lists.club"]
