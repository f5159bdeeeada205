#!/usr/bin/env bash
# System packages tscu uses; safe to run repeatedly, never fatal.
# - libgfortran5: the GNU Fortran runtime the OpenBLAS wheel (cmeel-openblas) needs. Without
#   it tscu still runs, on MLX's slow reference BLAS.
# - tmux: the end-to-end test runs the real app in a real terminal (tmux send-keys).
# - g++, cmake, make: build tscu's native CPU kernels (scripts/build_native.py); without
#   them tscu runs its pure-MLX kernels, slower.
set -uo pipefail
[ "$(uname -s)" = "Linux" ] || exit 0
missing=()
ldconfig -p 2>/dev/null | grep -q 'libgfortran\.so\.5' || missing+=(libgfortran5)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v make >/dev/null 2>&1 || missing+=(make)
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = "0" ] || SUDO="sudo -n"
  if $SUDO true 2>/dev/null; then
    echo "installing ${missing[*]}"
    if $SUDO apt-get update -qq >/dev/null 2>&1 &&
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
         >/dev/null 2>&1; then
      exit 0
    fi
    echo "note: apt-get could not install ${missing[*]}" >&2
  fi
fi
echo "note: missing system packages: ${missing[*]} (libgfortran5 for fast CPU matmul," \
     "tmux for the end-to-end test, g++/cmake/make for the native kernels)" >&2
exit 0
