"""``python -m manyio``: an async REPL, ``run module:function``, ``ps PID`` and ``pstree PID``."""

from manyio._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
