/* A stand-in for Windows' bcryptprimitives.dll, for running grattr.exe under wine 8,
 * which lacks it: Rust's std imports ProcessPrng from it (Windows 10 and later) for
 * HashMap seeds and random numbers, and an .exe that cannot resolve it does not start.
 * Built by scripts/windows-check.sh and placed beside the .exe under test only: the
 * release never ships it. ProcessPrng fills the buffer from advapi32's
 * RtlGenRandom (exported as SystemFunction036), which wine has. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    /* RtlGenRandom takes a ULONG length: fill a larger buffer in parts. */
    while (length > 0) {
        ULONG part = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, part)) {
            return FALSE;
        }
        data += part;
        length -= part;
    }
    return TRUE;
}
