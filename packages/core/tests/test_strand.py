"""Strands: at most one task of a strand runs at a time; strands run in parallel."""

from __future__ import annotations

import threading

import manyio
import pytest


def test_strand_run_returns_the_result() -> None:
    async def add(a: int, b: int) -> int:
        await manyio.checkpoint()
        return a + b

    async def main() -> int:
        return await manyio.Strand().run(add, 2, 3)

    assert manyio.run(main, threads=2) == 5


@pytest.mark.timeout(60)
def test_tasks_of_one_strand_never_overlap_and_strands_run_in_parallel() -> None:
    strands = 8
    tasks_per_strand = 16
    steps = 200

    async def main() -> tuple[list[int], int, set[int]]:
        violations = [0] * strands
        counters = [0] * strands
        inside = [0] * strands
        threads_seen: set[int] = set()
        guard = threading.Lock()

        async def body(i: int) -> None:
            for _ in range(steps):
                # Unsynchronised read-modify-write across an await is only safe in a strand.
                inside[i] += 1
                if inside[i] != 1:
                    violations[i] += 1
                value = counters[i]
                for _ in range(50):
                    pass
                counters[i] = value + 1
                with guard:
                    threads_seen.add(threading.get_ident())
                inside[i] -= 1
                await manyio.checkpoint()

        async with manyio.TaskGroup() as tg:
            for i in range(strands):
                strand = manyio.Strand()
                for _ in range(tasks_per_strand):
                    tg.spawn(strand.spawn(body(i)))
        return violations, sum(counters), threads_seen

    for _ in range(3):
        violations, total, threads_seen = manyio.run(main, threads=2)
        assert violations == [0] * strands
        assert total == strands * tasks_per_strand * steps
        assert len(threads_seen) == 2, "different strands ran on both workers"


def test_tasks_spawned_from_a_strand_stay_in_it_unless_told_otherwise() -> None:
    async def main() -> None:
        strand = manyio.Strand()

        async def child() -> int:
            await manyio.checkpoint()
            return strand.steps

        async def parent() -> tuple[int, int]:
            before = strand.steps
            inherited = await manyio.spawn(child())
            free_steps_before = strand.steps
            await manyio.spawn(child(), strand=None)
            free_steps_after = strand.steps
            # The inherited child's steps count in the strand; the free child's do not
            # (only the parent's own resumption adds one).
            assert inherited > before
            return free_steps_before, free_steps_after

        before, after = await strand.run(parent)
        assert after - before <= 2

    manyio.run(main, threads=2)


def test_spawn_rejects_a_non_strand() -> None:
    async def main() -> None:
        async def nothing() -> None:
            pass

        coro = nothing()
        with pytest.raises(TypeError, match=r"manyio\.Strand"):
            manyio.spawn(coro, strand=42)
        coro.close()

    manyio.run(main, threads=1)
