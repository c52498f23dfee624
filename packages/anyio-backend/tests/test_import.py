import sys

import manyio
import manyio_anyio


def test_imports_without_enabling_the_gil() -> None:
    assert manyio_anyio.__all__ == []
    assert "anyio" not in manyio.compat.available()
    assert not sys._is_gil_enabled()
