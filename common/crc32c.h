/*
 * crc32c.h - CRC-32C (Castagnoli), hardware-accelerated where the processor
 * has the instruction.  crc32c("123456789", 9) == 0xe3069283.
 */
#ifndef BNFS_CRC32C_H
#define BNFS_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(const void *data, size_t n);
/* Continue a checksum: crc32c_extend(crc32c(a), b) == crc32c(a || b). */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n);
/* True if the hardware instruction is used. */
bool crc32c_hw(void);

#endif
