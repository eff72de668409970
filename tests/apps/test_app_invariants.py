"""Invariants of the app dialogs over real sockets, for generated inputs (docs/apps.md)."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.apps.appserver import MSISDN, Seen, con, gateway_for, running, screen

# What a subscriber may type: any printable text, `*` and `#` included, Cyrillic and emoji too.
TYPED = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30
)
REPLIES = st.lists(TYPED, min_size=1, max_size=5)
DIRECT = st.lists(st.from_regex(r"[0-9]{1,4}", fullmatch=True), max_size=3)

SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(dialect: str, direct: list[str], replies: list[str]) -> list[dict[str, object]]:
    """Dial *384# with the direct-dial inputs, send the replies; what the app received."""

    def app(seen: Seen) -> object:
        # The answer sums the request up in one short screen (never paginated, so `98` and
        # `0` always reach the app): a crossed or altered request shows on the screen.
        if dialect == "json":
            return screen(f"got {len(seen.fields['inputs'])}")
        return con(f"got {len(seen.fields['text'])}")

    async def main() -> list[dict[str, object]]:
        async with running(app) as srv, gateway_for(srv.url, dialect) as gw:
            dial = "*384" + "".join(f"*{d}" for d in direct) + "#"
            await gw.dial(MSISDN, dial)
            for i, text in enumerate(replies):
                shown = await gw.reply(MSISDN, text)
                inputs = [*direct, *replies[: i + 1]]
                size = len(inputs) if dialect == "json" else len("*".join(inputs))
                assert (shown.text, shown.pages) == (f"got {size}", 1)
        return srv.bodies()

    return asyncio.run(main())


@SLOW
@given(DIRECT, REPLIES)
def test_json_apps_get_every_input_exactly_as_typed(direct: list[str], replies: list[str]) -> None:
    bodies = run("json", direct, replies)
    assert [b["inputs"] for b in bodies] == [
        [*direct, *replies[:i]] for i in range(len(replies) + 1)
    ]
    assert [b["new"] for b in bodies] == [True] + [False] * len(replies)


@SLOW
@given(DIRECT, REPLIES)
def test_africastalking_text_is_every_input_joined_with_stars(
    direct: list[str], replies: list[str]
) -> None:
    bodies = run("africastalking", direct, replies)
    assert [b["text"] for b in bodies] == [
        "*".join([*direct, *replies[:i]]) for i in range(len(replies) + 1)
    ]
