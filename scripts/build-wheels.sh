#!/usr/bin/env bash
# Builds release wheels of the five packages (manyio, manyio-httpx, manyio-redis,
# manyio-asyncpg, manyio-anyio) into a wheelhouse:
#
#   scripts/build-wheels.sh [OUT_DIR]      (default: dist/)
#
# then, in any 3.14t environment:  pip install --find-links OUT_DIR "manyio[all]"
#
# The core and manyio-redis wheels (Rust extensions) are built by maturin (its PEP 517
# backend, through `uv build`) in the release profile into the workspace's Cargo target/ (or
# $CARGO_TARGET_DIR): the same profile, target dir, features and interpreter as the editable
# build of `./dev setup` (pyproject's `use-base-python` keeps PYO3_PYTHON stable), so on a
# machine where that ran, cargo finds every artifact fresh and only the wheel is packed. Keep
# RUSTFLAGS the same as for `./dev setup` (unset) or cargo rebuilds everything.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/dist}")

export UV_PYTHON_DOWNLOADS=never
CACHE=${MANYIO_CACHE:-$HOME/.cache/manyio}
PY=$("$ROOT/scripts/find-python.sh")
export UV_PYTHON=$PY PYO3_PYTHON=$PY
UV=$(command -v uv || echo "$CACHE/tools/bin/uv") # the uv that ./dev setup uses
[ -x "$UV" ] || { echo "build-wheels: no uv (run ./dev setup first)" >&2; exit 1; }

mkdir -p "$OUT"
cd "$ROOT"
# --wheel builds straight from the source trees (no sdist step, which would compile in a
# copy of the sources with a fresh target dir). maturin's PEP 517 backend tags wheels
# "linux_x86_64" unless told otherwise; "--compatibility pypi" makes it check the extension's
# glibc symbols and tag the wheel manylinux (it only inspects the built file: no recompile).
# hatchling, building the other adapters, ignores the setting.
"$UV" build --all-packages --wheel --out-dir "$OUT" --python "$PY" \
  --config-setting "build-args=--compatibility pypi"
ls -1 "$OUT"/*.whl
