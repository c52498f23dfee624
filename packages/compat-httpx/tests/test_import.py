import sys

import manyio
import manyio_httpx


def test_imports_without_enabling_the_gil() -> None:
    assert manyio_httpx.__all__ == []
    assert "httpx" not in manyio.compat.available()
    assert not sys._is_gil_enabled()
