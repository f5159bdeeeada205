#!/usr/bin/env bash
# System libraries tscu benefits from; safe to run repeatedly.
# On Linux, the OpenBLAS that tscu loads for MLX's CPU backend (pip: cmeel-openblas)
# needs the GNU Fortran runtime. Without it tscu still runs, on MLX's slow reference BLAS.
set -euo pipefail
[ "$(uname -s)" = "Linux" ] || exit 0
if ldconfig -p 2>/dev/null | grep -q 'libgfortran\.so\.5'; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = "0" ] || SUDO="sudo -n"
  if $SUDO true 2>/dev/null; then
    echo "installing libgfortran5 (GNU Fortran runtime, needed by OpenBLAS)"
    if $SUDO apt-get update -qq >/dev/null 2>&1 &&
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgfortran5 \
         >/dev/null 2>&1; then
      exit 0
    fi
    echo "note: apt-get could not install libgfortran5" >&2
  fi
fi
echo "note: libgfortran.so.5 is missing; install it (e.g. apt install libgfortran5) for fast" \
     "CPU matmul. tscu will run on MLX's reference BLAS meanwhile." >&2
