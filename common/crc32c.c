/*
 * crc32c.c - CRC-32C (Castagnoli), the checksum of every cached block.
 *
 * The SSE 4.2 crc32 instruction when the processor has it (chosen once, at
 * first use), else a table-driven loop.  Both give the standard CRC-32C
 * (RFC 3720 appendix B.4): crc32c("123456789") = 0xe3069283.
 *
 * Threads: pure functions; the table and the choice are set up once under
 * pthread_once.
 */
#include "common/crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82f63b78u /* reflected 0x1edc6f41 */

static uint32_t table[8][256];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool have_hw;

static void init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t sw(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= crc;
        crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^ table[5][(v >> 16) & 0xff] ^
              table[4][(v >> 24) & 0xff] ^ table[3][(v >> 32) & 0xff] ^
              table[2][(v >> 40) & 0xff] ^ table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t hw(uint32_t crc, const unsigned char *p,
                                                     size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&once, init);
    crc = ~crc;
#if defined(__x86_64__)
    if (have_hw)
        return ~hw(crc, data, n);
#endif
    return ~sw(crc, data, n);
}

uint32_t crc32c(const void *data, size_t n)
{
    return crc32c_extend(0, data, n);
}

bool crc32c_hw(void)
{
    pthread_once(&once, init);
    return have_hw;
}
