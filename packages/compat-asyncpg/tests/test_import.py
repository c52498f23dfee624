import sys

import manyio
import manyio_asyncpg


def test_imports_without_enabling_the_gil() -> None:
    assert manyio_asyncpg.__all__ == []
    assert "asyncpg" not in manyio.compat.available()
    assert not sys._is_gil_enabled()
