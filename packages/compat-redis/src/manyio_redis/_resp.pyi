"""Types of manyio_redis._resp, the Rust RESP parser and command packer."""

from collections.abc import Callable
from typing import Any, Final, final

MAX_DEPTH: Final[int]

@final
class Incomplete: ...

INCOMPLETE: Final[Incomplete]

@final
class Push:
    @property
    def data(self) -> list[Any]: ...

@final
class ReplyParser:
    def __init__(
        self,
        *,
        resp3: bool,
        encoding: str | None,
        errors: str,
        on_error: Callable[[str], Any],
        raise_class: type[BaseException],
        invalid_class: type[BaseException],
    ) -> None: ...
    def parse(self, buf: bytearray, decode: bool) -> Any: ...

def pack_command(args: tuple[Any, ...], encoding: str, errors: str, cutoff: int) -> list[bytes] | None: ...
