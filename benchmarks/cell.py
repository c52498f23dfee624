"""One benchmark cell, run by ``run.py`` in a fresh interpreter; prints one JSON result line.

    python cell.py --probe RUNTIME
    python cell.py --calibrate
    python cell.py --workload NAME --impl VARIANT --threads N --size N [--params JSON]

The result line starts with ``RESULT_MARK``. The cell imports the runtime first (and the
workload's client library, through its optional ``prepare(impl)``), then times only the
runtime's run call (creating the runtime and its threads is included), verifies the result and
reports wall and CPU time, peak RSS and whether the GIL is enabled.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from typing import Any

RESULT_MARK = "@@manyio-bench@@ "


def _gil() -> bool | None:
    check = getattr(sys, "_is_gil_enabled", None)
    return check() if check else None


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _emit(payload: dict[str, Any]) -> None:
    payload["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    payload["gil_enabled_end"] = _gil()
    sys.stdout.flush()
    print(RESULT_MARK + json.dumps(payload), flush=True)


def _probe(runtime: str) -> dict[str, Any]:
    import sysconfig

    from workloads import _runtimes

    out: dict[str, Any] = {"runtime": runtime, "gil_enabled_start": _gil()}
    out["info"] = {
        "version": sys.version,
        "executable": sys.executable,
        "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python_gil_env": os.environ.get("PYTHON_GIL"),
    }
    try:
        out["version"] = _runtimes.import_runtime(runtime)
    except BaseException as e:
        out["ok"] = False
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    out["ok"] = True
    out["gil_enabled_after_import"] = _gil()
    return out


def _cell(args: argparse.Namespace) -> dict[str, Any]:
    import workloads
    from workloads import _runtimes

    module = workloads.load(args.workload)
    runtime, main = module.VARIANTS[args.impl]
    params = json.loads(args.params)
    out: dict[str, Any] = {
        "workload": args.workload,
        "impl": args.impl,
        "runtime": runtime,
        "threads": args.threads,
        "size": args.size,
        "python_gil_env": os.environ.get("PYTHON_GIL"),
        "gil_enabled_start": _gil(),
    }
    try:
        out["version"] = _runtimes.import_runtime(runtime)
        prepare = getattr(module, "prepare", None)
        if prepare is not None:
            prepare(args.impl)  # the client library's one-time import (and patch): not timed
        out["gil_enabled_after_import"] = _gil()
        cpu0, t0 = _cpu(), time.perf_counter()
        result = _runtimes.run(runtime, args.threads, main, args.size, params)
        elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
        module.verify(result, args.size, params)
    except BaseException as e:
        out["ok"] = False
        tb = traceback.format_exception(e)
        out["error"] = f"{type(e).__name__}: {e}".strip()[:500]
        out["traceback"] = "".join(tb)[-4000:]
        return out
    out.update(ok=True, elapsed_s=elapsed, cpu_s=cpu)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe")
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--workload")
    ap.add_argument("--impl")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int)
    ap.add_argument("--params", default="{}")
    args = ap.parse_args()
    if args.probe:
        _emit(_probe(args.probe))
    elif args.calibrate:
        from workloads import cpu

        _emit({"ok": True, "cpu": cpu.calibrate()})
    else:
        _emit(_cell(args))


if __name__ == "__main__":
    main()
