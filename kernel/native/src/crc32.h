// CRC-32 (IEEE 802.3, reflected, as zlib computes it): the frame checksum (kernel/rpc/frame.ts).
#pragma once

#include <cstddef>
#include <cstdint>

void Crc32Init();
// True when the carry-less multiply path runs (PCLMULQDQ, or VPCLMULQDQ with AVX-512).
bool Crc32Accelerated();
// Which path runs: "vpclmulqdq-avx512", "pclmulqdq" or "table".
const char* Crc32Path();
// Continues the CRC `seed` (0 to start) over data[0..length).
uint32_t Crc32(uint32_t seed, const uint8_t* data, size_t length);
