"""HandleGateway, the orders app's way to the Payments deployment, over a stand-in handle."""

from __future__ import annotations

from typing import Any

from actors.payments_handle import HandleGateway


class Method:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []

    async def remote(self, *args: Any) -> Any:
        self.calls.append(args)
        return self.answer


class Handle:
    def __init__(self) -> None:
        self.fingerprint = Method("fp_card_1")


async def test_a_gateway_that_names_cards_is_asked() -> None:
    handle = Handle()
    gateway = HandleGateway(handle)
    assert await gateway.fingerprint("pm_tok") == "fp_card_1"
    assert handle.fingerprint.calls == [("pm_tok",)]


async def test_the_test_gateway_is_not_asked_for_a_fingerprint_it_never_has() -> None:
    handle = Handle()
    gateway = HandleGateway(handle, fingerprints=False)
    assert await gateway.fingerprint("pm_card_visa") is None
    assert handle.fingerprint.calls == []  # no handle call on a checkout's path
