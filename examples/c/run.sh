#!/usr/bin/env bash
# Builds and runs decode_frames.c against libunstick (the unstick-ffi crate, ffi/): on x86_64 with
# the system C compiler, against the static and then the shared library, and on a Cortex-M4
# (QEMU's mps2-an386) with arm-none-eabi-gcc and newlib against the thumbv7em static library.
# Then prints the firmware's text size next to examples/decoder-m4's, the Rust decode-only
# firmware for the same board. Checks first that ffi/include/unstick.h compiles as strict C99
# and as C++11.
#
#   examples/c/run.sh
#
# Needs: Rust (rustup's cargo for the host), a C and a C++ compiler, and Debian's rustc-web,
# cargo-web, rust-web-src (the thumb build of `core`), gcc-arm-none-eabi,
# libnewlib-arm-none-eabi and qemu-system-arm; .ci/run installs them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
HOST_OUT=$ROOT/target/ffi
THUMB=thumbv7em-none-eabihf
THUMB_OUT=$ROOT/target/thumb/$THUMB/ffi
DECODER_M4=$ROOT/examples/decoder-m4/target/$THUMB/release/unstick-decoder-m4
C_FLAGS=(-std=c99 -Wall -Wextra -Werror -pedantic -I "$ROOT/ffi/include")

step() { printf '\n==> %s\n' "$*"; }
run() {
    printf '+ %s\n' "$*"
    "$@"
}

missing=()
for tool in cc c++ arm-none-eabi-gcc arm-none-eabi-size qemu-system-arm /usr/bin/cargo; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ ! -e /usr/lib/arm-none-eabi/newlib/rdimon.specs ]]; then
    missing+=("newlib (libnewlib-arm-none-eabi)")
fi
if ((${#missing[@]})); then
    echo "missing: ${missing[*]} (.ci/run installs what this needs)" >&2
    exit 1
fi

step "unstick.h as strict C99 and as C++11"
run cc "${C_FLAGS[@]}" -fsyntax-only -x c ffi/include/unstick.h
run c++ -std=c++11 -Wall -Wextra -Werror -pedantic -fsyntax-only -x c++ ffi/include/unstick.h

step "x86_64: decode_frames against libunstick.a, then libunstick.so"
# The `ffi` profile (Cargo.toml) builds with panic = "abort": the library is no_std through and
# through and links with nothing but the C library.
run cargo build -p unstick-ffi --profile ffi --locked
run cc "${C_FLAGS[@]}" -O2 examples/c/decode_frames.c "$HOST_OUT/libunstick.a" \
    -o "$HOST_OUT/decode_frames"
run "$HOST_OUT/decode_frames"
run cc "${C_FLAGS[@]}" -O2 examples/c/decode_frames.c -L "$HOST_OUT" -lunstick \
    -Wl,-rpath,"$HOST_OUT" -o "$HOST_OUT/decode_frames_shared"
run "$HOST_OUT/decode_frames_shared"

step "Cortex-M4 (mps2-an386 under QEMU): decode_frames against the $THUMB libunstick.a"
# Built as examples/decoder-m4 is, so that their sizes compare: Debian's rustc-web builds `core`
# from source (nightly flags through RUSTC_BOOTSTRAP), MD5 only (the seed's digest), optimised
# for size, and panics trap where they happen (panic = "immediate-abort"; ffi/src/lib.rs). Only
# the static library: the target has no dynamic linking.
run env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$ROOT/target/thumb" \
    /usr/bin/cargo rustc -p unstick-ffi --profile ffi --locked --target "$THUMB" \
    --crate-type staticlib --no-default-features --features md5 \
    -Zbuild-std=core -Zpanic-immediate-abort --config 'profile.ffi.panic="immediate-abort"' \
    --config 'profile.ffi.opt-level="z"'
# newlib-nano's printf, its output and exit() through semihosting (rdimon); m4/startup.c has
# the vector table and reset, m4/mps2-an386.ld the board's memory. newlib's objects carry no
# .note.GNU-stack, which ld would warn about for every link.
run arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 "${C_FLAGS[@]}" \
    -Os -ffunction-sections -fdata-sections --specs=nano.specs --specs=rdimon.specs \
    -nostartfiles -T examples/c/m4/mps2-an386.ld -Wl,--gc-sections -Wl,--no-warn-execstack \
    -Wl,-Map="$THUMB_OUT/decode_frames.map" examples/c/decode_frames.c examples/c/m4/startup.c \
    "$THUMB_OUT/libunstick.a" -o "$THUMB_OUT/decode_frames.elf"
# The program exits through semihosting with main's status (70 on a fault); the timeout bounds
# a firmware that never gets there.
run timeout 60 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none \
    -serial none -semihosting-config enable=on,target=native -kernel "$THUMB_OUT/decode_frames.elf"

step "sizes on the Cortex-M4: the C example and examples/decoder-m4"
# The Rust firmware, built as .ci/run builds it (its own .cargo/config.toml sets how).
(cd examples/decoder-m4 && run env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
    CARGO_TARGET_DIR="$ROOT/examples/decoder-m4/target" /usr/bin/cargo build --release --locked \
    --target "$THUMB" -Zbuild-std=core)
run arm-none-eabi-size "$THUMB_OUT/decode_frames.elf" "$DECODER_M4"
# libunstick's share of the C example's text: what the link map places in .text (code and
# constants) and the unwind tables from the archive; the rest is the C code and newlib-nano.
unstick_text=$(awk '
    function hex(s,    i, n) {
        n = 0
        for (i = 3; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
        return n
    }
    /^Linker script and memory map/ { in_map = 1 }
    in_map && /^[.a-zA-Z_]/ { section = $1 }
    in_map && section ~ /^\.(text|ARM\.extab|ARM\.exidx)$/ && /libunstick\.a\(/ {
        for (i = 1; i < NF; i++) if ($i ~ /^0x/ && $(i + 1) ~ /^0x/) { total += hex($(i + 1)); break }
    }
    END { print total + 0 }' "$THUMB_OUT/decode_frames.map")
text_of() { arm-none-eabi-size "$1" | awk 'NR == 2 { print $1 }'; }
printf '%-58s %7s bytes\n' \
    "C example (decode_frames.elf), text:" "$(text_of "$THUMB_OUT/decode_frames.elf")" \
    "  of which libunstick.a (decoder, encoder, MD5, statuses):" "$unstick_text" \
    "examples/decoder-m4 (Rust, decoder, MD5, one typed header):" "$(text_of "$DECODER_M4")"
