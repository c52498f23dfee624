"""Closed-loop TCP echo load generator, the same for every server (``run.py --only echo``).

    python loadgen.py --port P --conns C --size S --warmup W --duration D [--server-pid PID]

Opens C connections to 127.0.0.1:P; each sends one S-byte message, reads the whole echo back,
checks it byte for byte, and sends the next (one request in flight per connection). The
first 16 bytes of each message are (connection id, sequence number), so a stale, reordered or
cross-connection echo fails the check too. After W seconds of warm-up it counts requests
completed during D seconds and reads the server's CPU time (``/proc/PID/stat``
utime+stime, whole process and per thread) at both ends of that window. Then it finishes the
requests in flight, half-closes every connection and requires a clean EOF with no extra
bytes. Prints one JSON line; ``"ok": false`` with an ``error`` on any failure.

Plain Python on one thread: ``select.epoll`` and non-blocking sockets, no per-request
allocation beyond a memoryview slice. Its own CPU use over the window is reported
(``loadgen_util``): near 1.0 means the generator, not the server, set the pace. ``other_util``
is the rest of the machine's busy CPU over the window (other processes, and kernel work charged
to neither process), in cores: well above zero means the sample was disturbed.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
HEADER = struct.Struct("<QQ")
STALL_S = 10.0
IN, OUT = select.EPOLLIN, select.EPOLLOUT
BAD = select.EPOLLERR | select.EPOLLHUP


class EchoError(Exception):
    pass


def _stat_fields(path: str) -> list[bytes]:
    with open(path, "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2 :].split()  # fields from 3 (state) on; comm may hold spaces


def proc_cpu(pid: int) -> float:
    """utime + stime of the whole process in seconds (fields 14 and 15 of /proc/PID/stat)."""
    f = _stat_fields(f"/proc/{pid}/stat")
    return (int(f[11]) + int(f[12])) / CLK_TCK


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine, all cores (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat", "rb") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK  # user nice system idle iowait irq softirq steal


def thread_cpu(pid: int) -> dict[int, tuple[str, float, int]]:
    """Per thread: (name, utime + stime seconds, CPU it last ran on)."""
    out: dict[int, tuple[str, float, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            f = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue  # the thread exited
        out[int(tid)] = (name, (int(f[11]) + int(f[12])) / CLK_TCK, int(f[36]))
    return out


def affinity(pid: int) -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(pid))
    except OSError:
        return None


class Conn:
    __slots__ = ("buf", "bview", "cid", "fd", "got", "msg", "sent", "seq", "sock", "view", "writing")

    def __init__(self, cid: int, port: int, size: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.cid = cid
        pattern = bytes((cid * 7 + i) & 0xFF for i in range(256))
        self.msg = bytearray((pattern * (size // 256 + 1))[:size])
        self.view = memoryview(self.msg)
        self.buf = bytearray(size)
        self.bview = memoryview(self.buf)
        self.sent = self.got = self.seq = 0
        self.writing = False


def run(port: int, conns: int, size: int, warmup: float, duration: float, server_pid: int | None) -> dict:
    if size < HEADER.size:
        raise ValueError(f"size must be at least {HEADER.size} bytes")
    ep = select.epoll()
    table: dict[int, Conn] = {}
    for cid in range(conns):
        c = Conn(cid, port, size)
        table[c.fd] = c
        ep.register(c.fd, IN)

    def start(c: Conn) -> None:
        c.seq += 1
        HEADER.pack_into(c.msg, 0, c.cid, c.seq)
        c.got = 0
        try:
            c.sent = c.sock.send(c.view)
        except BlockingIOError:
            c.sent = 0
        if c.sent < size:
            c.writing = True
            ep.modify(c.fd, IN | OUT)

    def mismatch(c: Conn) -> EchoError:
        at = next(i for i in range(size) if c.buf[i] != c.msg[i])
        cid, seq = HEADER.unpack_from(c.buf, 0)
        return EchoError(
            f"connection {c.cid} request {c.seq}: echo differs from the request at byte {at} "
            f"(echo header says connection {cid} request {seq})"
        )

    completed = 0
    busy = conns
    running = True
    t_start = time.perf_counter()
    t_window = t_start + warmup
    t0 = t1 = None
    count0 = count1 = 0
    srv0 = srv1 = lg0 = lg1 = busy0 = busy1 = 0.0
    threads0: dict[int, tuple[str, float, int]] = {}
    threads1: dict[int, tuple[str, float, int]] = {}
    last_progress = t_start
    for c in table.values():
        start(c)

    while busy:
        events = ep.poll(1.0)
        now = time.perf_counter()
        if not events:
            if now - last_progress > STALL_S:
                stuck = [c.cid for c in table.values() if c.seq and (c.got < size)]
                raise EchoError(
                    f"no progress for {STALL_S:.0f} s ({len(stuck)} connection(s) waiting for an echo)"
                )
            continue
        last_progress = now
        for fd, ev in events:
            c = table[fd]
            if c.writing and ev & (OUT | BAD):
                try:
                    c.sent += c.sock.send(c.view[c.sent :])
                except BlockingIOError:
                    pass
                if c.sent == size:
                    c.writing = False
                    ep.modify(fd, IN)
            if ev & (IN | BAD):
                try:
                    n = c.sock.recv_into(c.bview[c.got :])
                except BlockingIOError:
                    continue
                if not n:
                    raise EchoError(
                        f"connection {c.cid}: server closed it after {c.got} of {size} echo bytes "
                        f"(request {c.seq})"
                    )
                c.got += n
                if c.got == size:
                    if c.buf != c.msg:
                        raise mismatch(c)
                    completed += 1
                    if running:
                        start(c)
                    else:
                        busy -= 1
        if t0 is None:
            if now >= t_window:
                t0, count0 = now, completed
                lg0, busy0 = time.process_time(), machine_busy()
                if server_pid:
                    srv0, threads0 = proc_cpu(server_pid), thread_cpu(server_pid)
        elif running and now >= t0 + duration:
            t1, count1 = now, completed
            lg1, busy1 = time.process_time(), machine_busy()
            if server_pid:
                srv1, threads1 = proc_cpu(server_pid), thread_cpu(server_pid)
            running = False
            busy = sum(1 for c in table.values() if c.got < size)

    # Every connection is idle: half-close and expect a clean EOF with nothing left over.
    for c in table.values():
        c.sock.shutdown(socket.SHUT_WR)
    for c in table.values():
        c.sock.setblocking(True)
        c.sock.settimeout(STALL_S)
        try:
            extra = c.sock.recv(65536)
        except TimeoutError:
            raise EchoError(f"connection {c.cid}: no EOF within {STALL_S:.0f} s of our half-close")
        if extra:
            raise EchoError(f"connection {c.cid}: {len(extra)} unexpected byte(s) after the last echo")
        c.sock.close()
    ep.close()

    assert t0 is not None and t1 is not None
    window = t1 - t0
    requests = count1 - count0
    out: dict[str, Any] = {
        "ok": True,
        "requests": requests,
        "window_s": window,
        "rps": requests / window,
        "total_requests": completed,
        "bytes_verified": completed * size,
        "loadgen_cpu_s": lg1 - lg0,
        "loadgen_util": (lg1 - lg0) / window,
        "loadgen_affinity": affinity(0),
    }
    if server_pid:
        out["server_cpu_s"] = srv1 - srv0
        out["server_util"] = (srv1 - srv0) / window
        out["server_cpu_us_per_req"] = (srv1 - srv0) / requests * 1e6 if requests else None
        # CPU used by everything else (other processes, softirq not charged to ours) in cores.
        out["other_util"] = max(0.0, (busy1 - busy0) - (srv1 - srv0) - (lg1 - lg0)) / window
        out["server_affinity"] = affinity(server_pid)
        out["server_threads"] = [
            {
                "tid": tid,
                "name": name,
                "cpu_s": round(cpu - threads0.get(tid, (name, 0.0, 0))[1], 3),
                "last_cpu": cpu_n,
            }
            for tid, (name, cpu, cpu_n) in sorted(threads1.items())
        ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--server-pid", type=int)
    args = ap.parse_args()
    try:
        out = run(args.port, args.conns, args.size, args.warmup, args.duration, args.server_pid)
    except (EchoError, OSError) as e:
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out), flush=True)
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
