import sys

import manyio
import manyio_redis


def test_imports_without_enabling_the_gil() -> None:
    assert manyio_redis.__all__ == []
    assert "redis" not in manyio.compat.available()
    assert not sys._is_gil_enabled()
