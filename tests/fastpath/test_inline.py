"""InlineRunner: packet coroutines run inline, and in order even when one suspends."""

from __future__ import annotations

import asyncio

import pytest

from rtcxfer.fastpath.inline import InlineRunner


async def test_coroutines_that_do_not_suspend_finish_before_run_returns() -> None:
    handled: list[int] = []

    async def handle(number: int) -> None:
        handled.append(number)

    runner = InlineRunner(on_error=pytest.fail)
    for number in range(3):
        runner.run(handle(number))
        assert handled == list(range(number + 1))


async def test_later_coroutines_wait_behind_a_suspended_one() -> None:
    handled: list[str] = []
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def slow() -> None:
        handled.append("slow started")
        await gate
        await asyncio.sleep(0)
        handled.append("slow finished")

    async def quick(name: str) -> None:
        handled.append(name)

    runner = InlineRunner(on_error=pytest.fail)
    runner.run(slow())
    runner.run(quick("second"))
    runner.run(quick("third"))
    assert handled == ["slow started"]
    gate.set_result(None)
    for _ in range(5):
        await asyncio.sleep(0)
    assert handled == ["slow started", "slow finished", "second", "third"]


async def test_an_exception_goes_to_the_owner_and_close_drops_the_rest() -> None:
    errors: list[BaseException] = []
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def broken() -> None:
        await gate
        raise ConnectionError("gone")

    async def never() -> None:
        raise AssertionError("must not run after close")

    runner = InlineRunner(on_error=errors.append)
    runner.run(broken())
    runner.run(never())
    gate.set_result(None)
    await asyncio.sleep(0)
    runner.close()
    assert [type(error) for error in errors] == [ConnectionError]
    runner.run(never())
