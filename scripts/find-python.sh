#!/usr/bin/env bash
# Prints the path of a free-threaded CPython 3.14 ("3.14t"), building it once if none exists.
#
# Order of preference:
#   1. $MANYIO_PYTHON, if set
#   2. python3.14t on PATH
#   3. a uv-managed 3.14t (uv python find)
#   4. our cache ($MANYIO_CACHE, default ~/.cache/manyio), built from the upstream tarball
#      that Debian keeps in its source pool (the only place these machines can reach).
set -euo pipefail

VERSION=3.14.7
SHA256=3b48dac8fb59f62eaa67ac83c1eb12bda1b7a08406dd286e252c11a66be27f81
CACHE=${MANYIO_CACHE:-$HOME/.cache/manyio}
PREFIX=$CACHE/python-$VERSION-t

log() { echo "[find-python] $*" >&2; }

is_314t() {
  [ -x "$1" ] && "$1" -c 'import sys, sysconfig; sys.exit(not (sys.version_info[:2] == (3, 14) and sysconfig.get_config_var("Py_GIL_DISABLED")))' 2>/dev/null
}

candidates() {
  [ -n "${MANYIO_PYTHON:-}" ] && echo "$MANYIO_PYTHON"
  command -v python3.14t 2>/dev/null || true
  if command -v uv >/dev/null 2>&1; then
    UV_PYTHON_DOWNLOADS=never uv python find 3.14t 2>/dev/null || true
  fi
  echo "$PREFIX/bin/python3.14t"
}

for py in $(candidates); do
  if is_314t "$py"; then echo "$py"; exit 0; fi
done

# Nothing found: build from source, once.
missing=()
for pkg in build-essential libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev \
           libreadline-dev uuid-dev xz-utils curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing build dependencies: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

# The mirror is whatever this machine's apt sources point at; we never hard-code a host.
mirror=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n1)
if [ -z "$mirror" ]; then
  mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
[ -n "$mirror" ] || { log "no Debian mirror found in apt sources"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$work/python.tar.xz
url="${mirror%/}/pool/main/p/python3.14/python3.14_${VERSION}.orig.tar.xz"
log "downloading $url"
curl -fsSL --retry 3 -o "$tarball" "$url"
echo "$SHA256  $tarball" | sha256sum -c --quiet - >&2

tar -xf "$tarball" -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'Python-*' | head -n1)
log "building CPython $VERSION (free-threaded) into $PREFIX; this takes about 8 minutes"
(
  cd "$src"
  ./configure --disable-gil --prefix="$PREFIX" --with-ensurepip=install >"$work/configure.log" 2>&1 \
    || { tail -50 "$work/configure.log" >&2; exit 1; }
  make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -50 "$work/make.log" >&2; exit 1; }
  make install >"$work/install.log" 2>&1 || { tail -50 "$work/install.log" >&2; exit 1; }
)
is_314t "$PREFIX/bin/python3.14t" || { log "build finished but $PREFIX/bin/python3.14t is not 3.14t"; exit 1; }
echo "$PREFIX/bin/python3.14t"
