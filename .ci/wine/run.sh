#!/bin/sh
# Runs a Windows .exe of this project under Wine 8 (64-bit loader), with the ProcessPrng shim
# (see bcryptprimitives.c for why) built and placed beside it.
#   .ci/wine/run.sh path/to/program.exe [args...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exe=$1
shift
dir=$(cd "$(dirname "$exe")" && pwd)
if [ ! -f "$dir/bcryptprimitives.dll" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -o "$dir/bcryptprimitives.dll" \
        "$here/bcryptprimitives.c" "$here/bcryptprimitives.def" -ladvapi32
fi
# The plain `wine` wrapper wants 32-bit Wine; Debian's wine64 package has the 64-bit loader here.
loader=${WINE64:-/usr/lib/wine/wine64}
WINEDEBUG=${WINEDEBUG:--all} exec "$loader" "$dir/$(basename "$exe")" "$@"
