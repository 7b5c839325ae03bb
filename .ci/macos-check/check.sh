#!/bin/sh
# `cargo check` of unstick-std and the CLI for macOS, from Linux, without a macOS SDK.
#   .ci/macos-check/check.sh [aarch64-apple-darwin|x86_64-apple-darwin]
#
# Debian's rustc builds std for the target (-Zbuild-std). The one C compiled on the way is
# ring's (rustls' cryptography), by its build script, which needs a C compiler for the target
# (clang: apt-get install clang) and a few SDK headers. A check never links, so ring's objects
# are never used: freestanding clang headers and the stand-ins in include/ (TargetConditionals.h,
# a no-op assert.h, string.h's declarations) are enough. A real build needs a macOS SDK.
set -eu
target=${1:-aarch64-apple-darwin}
here=$(cd "$(dirname "$0")" && pwd)
var=$(echo "$target" | tr - _)
export "CC_$var=clang" "AR_$var=llvm-ar" "CFLAGS_$var=-ffreestanding -I$here/include"
RUSTC_BOOTSTRAP=1 RUSTC=${RUSTC:-/usr/bin/rustc} \
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/check-$target} \
    ${CARGO:-/usr/bin/cargo} check -Zbuild-std=std,panic_abort --target "$target" \
    -p unstick-std -p unstick --lib --bins
