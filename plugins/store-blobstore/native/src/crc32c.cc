// CRC32C (Castagnoli), with the SSE4.2 instruction when the CPU has it and a table otherwise.
// Same convention as the JS version: crc32c(data, seed = 0) continues a running checksum.
#include "crc32c.h"

#include <cstring>

namespace {

uint32_t table[8][256];

void BuildTable() {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; n++) {
    for (int k = 1; k < 8; k++) table[k][n] = (table[k - 1][n] >> 8) ^ table[0][table[k - 1][n] & 0xff];
  }
}

uint32_t Software(uint32_t crc, const uint8_t* p, size_t n) {
  while (n >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    uint32_t lo = static_cast<uint32_t>(word) ^ crc;
    uint32_t hi = static_cast<uint32_t>(word >> 32);
    crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
          table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^ table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Hardware(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}
#endif

bool hardware = false;

}  // namespace

void Crc32cInit() {
  BuildTable();
#if defined(__x86_64__)
  __builtin_cpu_init();
  hardware = __builtin_cpu_supports("sse4.2");
#endif
}

bool Crc32cHardware() { return hardware; }

uint32_t Crc32c(uint32_t seed, const uint8_t* data, size_t length) {
  uint32_t crc = ~seed;
#if defined(__x86_64__)
  if (hardware) return ~Hardware(crc, data, length);
#endif
  return ~Software(crc, data, length);
}
