#!/usr/bin/env bash
# Writes include/unstick.h from the crate's source with cbindgen (cbindgen.toml), or, with
# `--check`, fails if the committed header differs from what cbindgen writes now.
#
#   ffi/generate-header.sh           # regenerate ffi/include/unstick.h
#   ffi/generate-header.sh --check   # .ci/run: is the committed header current?
#
# The version is pinned so that every machine writes the same bytes; .ci/run installs it.
set -euo pipefail

CBINDGEN_VERSION=0.29.4
cd "$(dirname "${BASH_SOURCE[0]}")"
if [[ "$(cbindgen --version 2>/dev/null)" != "cbindgen $CBINDGEN_VERSION" ]]; then
    echo "needs cbindgen $CBINDGEN_VERSION: cargo install cbindgen --version $CBINDGEN_VERSION --locked" >&2
    exit 1
fi
if [[ "${1-}" == --check ]]; then
    fresh=$(mktemp)
    trap 'rm -f "$fresh"' EXIT
    cbindgen --quiet --config cbindgen.toml --output "$fresh"
    if ! diff -u include/unstick.h "$fresh"; then
        echo "ffi/include/unstick.h is not current: run ffi/generate-header.sh and commit it" >&2
        exit 1
    fi
    echo "ffi/include/unstick.h is current"
else
    cbindgen --quiet --config cbindgen.toml --output include/unstick.h
fi
