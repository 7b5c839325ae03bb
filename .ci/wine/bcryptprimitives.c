/*
 * A stand-in for Windows' bcryptprimitives.dll, for running the Windows build under Wine 8.
 *
 * Why: Rust's std (1.78 and later) calls ProcessPrng from bcryptprimitives.dll at start-up to
 * seed its hash maps, and Wine 8 has no ProcessPrng, so every Rust program stops before main.
 * This DLL exports ProcessPrng over RtlGenRandom (SystemFunction036 in advapi32), which Wine
 * has. Placed beside the .exe, it is loaded instead of Wine's own. Not for real Windows, which
 * has ProcessPrng since Windows 10.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c
 *        bcryptprimitives.def -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x80000000u ? 0x80000000u : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
