"""The seed workload of "Async I/O Is Not Enough": N requests, each an I/O wait and then CPU.

Each request awaits an HTTP GET to a local delay server (D ms; optionally also a Redis GET and
a PostgreSQL query) and then burns C ms of pure-Python CPU. ``benchmarks/seed_demo.py`` runs
the grid (N, CPU share) for every implementation; this package holds its parts.
"""
