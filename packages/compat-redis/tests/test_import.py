import sys

import manyio
import manyio_redis


def test_imports_without_enabling_the_gil() -> None:
    assert "redis" in manyio.compat.available()
    assert manyio_redis.patch()
    assert "hiredis" not in sys.modules
    assert not sys._is_gil_enabled()
