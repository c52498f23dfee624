"""Memory channels: ``manyio.channel(max_buffer)``."""

from __future__ import annotations

import math

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def test_channel_returns_a_pair_of_ends() -> None:
    send, receive = manyio.channel(1)
    assert isinstance(send, manyio.SendChannel)
    assert isinstance(receive, manyio.ReceiveChannel)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", math.nan])
def test_invalid_buffer_sizes_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        manyio.channel(bad)  # type: ignore[arg-type]


def test_unbuffered_channel_is_a_rendezvous(wait_until) -> None:
    async def main() -> None:
        send, receive = manyio.channel(0)
        sent: list[int] = []

        async def sender() -> None:
            for i in range(3):
                await send.send(i)
                sent.append(i)

        task = manyio.spawn(sender())
        await wait_until(lambda: send.statistics()["tasks_waiting_send"] == 1)
        assert sent == []  # nobody received yet: the first send is still waiting
        assert await receive.receive() == 0
        assert await receive.receive() == 1
        assert await receive.receive() == 2
        await task
        assert sent == [0, 1, 2]

    run(main)


def test_buffered_channel_nowait_operations() -> None:
    async def main() -> None:
        send, receive = manyio.channel(2)
        with pytest.raises(manyio.WouldBlock):
            receive.receive_nowait()
        send.send_nowait("a")
        send.send_nowait("b")
        with pytest.raises(manyio.WouldBlock):
            send.send_nowait("c")
        stats = receive.statistics()
        assert stats["current_buffer_used"] == 2
        assert stats["max_buffer_size"] == 2
        assert stats["open_send_channels"] == 1
        assert stats["open_receive_channels"] == 1
        assert receive.receive_nowait() == "a"
        assert await receive.receive() == "b"

    run(main)


def test_values_of_any_kind_arrive_unchanged() -> None:
    async def main() -> None:
        send, receive = manyio.channel(math.inf)
        values = [None, 0, (1, 2), [3], {"k": "v"}, ValueError("as a value"), StopIteration(5)]
        for v in values:
            await send.send(v)
        got = [await receive.receive() for _ in values]
        assert got[:5] == values[:5]
        assert got[5] is values[5]
        assert got[6] is values[6]

    run(main)


def test_values_handed_to_a_waiting_receiver_arrive_unchanged(wait_until) -> None:
    async def main() -> None:
        send, receive = manyio.channel(0)
        values = [None, 0, (1, 2), (), [3], ValueError("as a value"), StopIteration(5)]
        got: list[object] = []

        async def receiver() -> None:
            for _ in values:
                got.append(await receive.receive())

        task = manyio.spawn(receiver())
        for v in values:
            # Wait until the receiver is parked, so the value goes through its waiter.
            await wait_until(lambda: receive.statistics()["tasks_waiting_receive"] == 1)
            send.send_nowait(v)
        await task
        assert len(got) == len(values)
        for sent, received in zip(values, got, strict=True):
            assert received is sent or received == sent

    run(main)


def test_async_iteration_ends_when_every_sender_closed() -> None:
    async def producer(send: manyio.SendChannel[int], start: int) -> None:
        async with send:
            for i in range(start, start + 10):
                await send.send(i)

    async def main() -> list[int]:
        send, receive = manyio.channel(0)
        got: list[int] = []
        async with manyio.TaskGroup() as tg:
            tg.start_soon(producer, send.clone(), 0)
            tg.start_soon(producer, send.clone(), 100)
            send.close()  # the clones keep the channel open
            async for value in receive:
                got.append(value)
        return got

    assert sorted(run(main)) == [*range(10), *range(100, 110)]


def test_buffered_values_are_drained_after_the_senders_close() -> None:
    async def main() -> None:
        send, receive = manyio.channel(5)
        for i in range(3):
            send.send_nowait(i)
        await send.aclose()
        assert [v async for v in receive] == [0, 1, 2]
        with pytest.raises(manyio.EndOfChannel):
            await receive.receive()
        with pytest.raises(manyio.EndOfChannel):
            receive.receive_nowait()

    run(main)


def test_waiting_receiver_gets_end_of_channel_when_the_last_sender_closes(wait_until) -> None:
    async def main() -> None:
        send, receive = manyio.channel(0)
        extra = send.clone()

        async def receiver() -> None:
            with pytest.raises(manyio.EndOfChannel):
                await receive.receive()

        task = manyio.spawn(receiver())
        await wait_until(lambda: receive.statistics()["tasks_waiting_receive"] == 1)
        send.close()
        await manyio.sleep(0.01)
        assert not task.done()  # a clone is still open
        extra.close()
        await task

    run(main)


def test_using_a_closed_end_raises_closed_resource_error() -> None:
    async def main() -> None:
        send, receive = manyio.channel(1)
        send2 = send.clone()
        send.close()
        send.close()  # idempotent
        with pytest.raises(manyio.ClosedResourceError):
            await send.send(1)
        with pytest.raises(manyio.ClosedResourceError):
            send.send_nowait(1)
        with pytest.raises(manyio.ClosedResourceError):
            send.clone()
        receive2 = receive.clone()
        receive.close()
        with pytest.raises(manyio.ClosedResourceError):
            await receive.receive()
        with pytest.raises(manyio.ClosedResourceError):
            receive.receive_nowait()
        with pytest.raises(manyio.ClosedResourceError):
            receive.clone()
        # The other ends still work.
        await send2.send("still open")
        assert await receive2.receive() == "still open"

    run(main)


def test_sending_after_every_receiver_closed_raises_broken_resource_error() -> None:
    async def main() -> None:
        send, receive = manyio.channel(1)
        with receive:
            pass
        with pytest.raises(manyio.BrokenResourceError):
            await send.send(1)
        with pytest.raises(manyio.BrokenResourceError):
            send.send_nowait(1)

    run(main)


def test_blocked_sender_is_woken_with_broken_resource_error(wait_until) -> None:
    async def main() -> None:
        send, receive = manyio.channel(0)

        async def sender() -> None:
            with pytest.raises(manyio.BrokenResourceError):
                await send.send("never received")

        task = manyio.spawn(sender())
        await wait_until(lambda: send.statistics()["tasks_waiting_send"] == 1)
        await receive.aclose()
        await task

    run(main)


def test_cancelled_sender_does_not_deliver_its_value() -> None:
    async def main() -> None:
        send, receive = manyio.channel(0)
        with manyio.move_on_after(0.02) as scope:
            await send.send("abandoned")
        assert scope.cancelled_caught
        assert send.statistics()["tasks_waiting_send"] == 0
        with pytest.raises(manyio.WouldBlock):
            receive.receive_nowait()

    run(main)


def test_cancelled_receiver_leaves_the_queue() -> None:
    async def main() -> None:
        send, receive = manyio.channel(0)
        with manyio.move_on_after(0.02):
            await receive.receive()
        assert receive.statistics()["tasks_waiting_receive"] == 0
        # A later send is not handed to the receiver that left.
        with pytest.raises(manyio.WouldBlock):
            send.send_nowait("x")

    run(main)


def test_closing_a_receive_end_wakes_the_tasks_blocked_on_it(wait_until) -> None:
    # trio semantics: close() on an end makes the tasks blocked on *that* end raise
    # ClosedResourceError, rather than leaving them parked forever.
    async def main() -> None:
        send, receive = manyio.channel(0)

        async def receiver() -> str:
            try:
                await receive.receive()
            except manyio.ClosedResourceError:
                return "closed"
            return "received"  # pragma: no cover

        task = manyio.spawn(receiver())
        await wait_until(lambda: receive.statistics()["tasks_waiting_receive"] == 1)
        receive.close()
        with manyio.move_on_after(2) as guard:
            result = await task
        assert not guard.cancelled_caught, "the receiver stayed blocked on a closed receive end"
        assert result == "closed"
        send.close()

    run(main)


def test_closing_a_send_end_wakes_the_tasks_blocked_on_it(wait_until) -> None:
    async def main() -> None:
        send, receive = manyio.channel(0)

        async def sender() -> str:
            try:
                await send.send("value")
            except manyio.ClosedResourceError:
                return "closed"
            return "sent"  # pragma: no cover

        task = manyio.spawn(sender())
        await wait_until(lambda: send.statistics()["tasks_waiting_send"] == 1)
        send.close()
        with manyio.move_on_after(2) as guard:
            result = await task
        assert not guard.cancelled_caught, "the sender stayed blocked on a closed send end"
        assert result == "closed"
        # The value of a send that failed was not delivered.
        with pytest.raises(manyio.EndOfChannel):
            receive.receive_nowait()

    run(main)


def test_blocked_senders_move_into_the_buffer_in_order(wait_until) -> None:
    async def main() -> None:
        send, receive = manyio.channel(1)
        send.send_nowait(0)

        async def sender(i: int) -> None:
            await send.send(i)

        tasks = []
        for i in range(1, 4):
            tasks.append(manyio.spawn(sender(i)))
            await wait_until(lambda i=i: send.statistics()["tasks_waiting_send"] == i)
        got = [await receive.receive() for _ in range(4)]
        assert got == [0, 1, 2, 3]
        for t in tasks:
            await t

    run(main)


def test_mpmc_checksum() -> None:
    producers, consumers, per_producer = 4, 3, 500

    async def producer(send: manyio.SendChannel[int], base: int) -> None:
        async with send:
            for i in range(per_producer):
                await send.send(base + i)

    async def consumer(receive: manyio.ReceiveChannel[int], out: list[int]) -> None:
        async with receive:
            async for value in receive:
                out.append(value)

    async def main() -> list[list[int]]:
        send, receive = manyio.channel(8)
        outs: list[list[int]] = [[] for _ in range(consumers)]
        async with manyio.TaskGroup() as tg:
            for p in range(producers):
                tg.start_soon(producer, send.clone(), p * 1_000_000)
            for c in range(consumers):
                tg.start_soon(consumer, receive.clone(), outs[c])
            send.close()
            receive.close()
        return outs

    outs = run(main)
    values = [v for out in outs for v in out]
    expected = [p * 1_000_000 + i for p in range(producers) for i in range(per_producer)]
    assert len(values) == len(expected)
    assert sorted(values) == expected
    # Each producer's values reach any single consumer in the order they were sent.
    for out in outs:
        for p in range(producers):
            mine = [v for v in out if v // 1_000_000 == p]
            assert mine == sorted(mine)


def test_sync_context_manager_closes() -> None:
    send, receive = manyio.channel(1)
    with send:
        pass
    assert send.statistics()["open_send_channels"] == 0
    with receive:
        pass
    assert receive.statistics()["open_receive_channels"] == 0
