#!/usr/bin/env python3
"""Writes fixtures/frames.bin: the header frames the firmware example decodes.

The frames are made the way the classic Python scripts make them: a JSON header from
json.dumps (default ensure_ascii=True, so non-ASCII text travels as \\uXXXX escapes), its
length packed with struct.pack('i'), then the body. Digests are real: hashlib.md5, and XXH3-128
from the system's libxxhash (Debian package libxxhash0) through ctypes.

The build never runs this script; the fixture is committed. Run it again after changing it:

    python3 make_fixture.py            # rewrites fixtures/frames.bin
    python3 make_fixture.py --check    # exits 1 if the committed fixture is stale
"""

import ctypes
import ctypes.util
import hashlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixtures", "frames.bin")


class XXH128Hash(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]


def load_libxxhash():
    name = ctypes.util.find_library("xxhash") or "libxxhash.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        sys.exit("make_fixture.py: libxxhash not found; install it (apt-get install libxxhash0)")
    lib.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.XXH3_128bits.restype = XXH128Hash
    return lib


def xxh3_128_hex(lib, data):
    """XXH3-128 in its canonical big-endian form, as `xxhsum -H2` prints it."""
    h = lib.XXH3_128bits(data, len(data))
    return "%016x%016x" % (h.high64, h.low64)


def header_frame(head, body):
    bytes_head = json.dumps(head).encode("utf-8")
    return struct.pack("i", len(bytes_head)) + bytes_head + body


def build():
    lib = load_libxxhash()
    frames = []

    # 1. A firmware image "uploaded" the way the upload client sends a file: filesize and md5.
    #    3000 bytes: not a multiple of the 256-byte flash page, so the last page is partial.
    image = bytes((i * 31 + 7) % 251 for i in range(3000))
    frames.append(header_frame(
        {"filename": "app-v2.bin", "filesize": len(image),
         "md5": hashlib.md5(image).hexdigest()},
        image))

    # 2. A shell reply the way the server sends command output, with an xxh3 digest.
    output = b" Volume in drive C has no label.\r\n2 File(s)    1,024 bytes\r\n"
    frames.append(header_frame(
        {"file_name": "f1.txt", "total_size": len(output),
         "xxh3": xxh3_128_hex(lib, output)},
        output))

    # 3. The upload client's own header, with its non-ASCII folder name (escaped by json.dumps).
    config = b"[server]\nhost = 127.0.0.1\nport = 8090\n"
    frames.append(header_frame(
        {"filepath": r"C:\Users\Aaron\Desktop\新建文件夹", "filename": "config",
         "filesize": len(config), "md5": hashlib.md5(config).hexdigest()},
        config))

    return b"".join(frames)


def main():
    data = build()
    if sys.argv[1:] == ["--check"]:
        with open(FIXTURE, "rb") as f:
            if f.read() != data:
                sys.exit("fixtures/frames.bin is stale: run python3 make_fixture.py")
        print("fixtures/frames.bin is up to date (%d bytes)" % len(data))
        return
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    with open(FIXTURE, "wb") as f:
        f.write(data)
    print("wrote %s (%d bytes)" % (FIXTURE, len(data)))


if __name__ == "__main__":
    main()
