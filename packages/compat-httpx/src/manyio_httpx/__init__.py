"""manyio-httpx: runs httpx on manyio.

Not implemented yet: this package reserves the name and the workspace slot. It registers no
``manyio.compat`` adapter, so ``manyio.compat.patch_all()`` does not list it until it does.
"""

__all__: list[str] = []
