// CRC-32 by folding with carry-less multiplication (Intel, "Fast CRC Computation for Generic
// Polynomials Using PCLMULQDQ Instruction", 2009): the running remainder is carried in 128-bit
// lanes that are multiplied forward by x^D mod P as new data arrives, so the work per byte is a
// few independent multiplies instead of the serial dependency of a table or crc32 instruction.
// With AVX-512 the same folding runs on four 512-bit accumulators (256 bytes a step).
//
// The constants are x^n mod P for the reflected polynomial, bit-reflected and shifted left by one
// (the paper's convention); each fold distance D needs x^(D+32) and x^(D-32). They are the same
// for every CPU; test/transport/checksum.test.ts checks the result against zlib.
#include "crc32.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

uint32_t table[256];

uint32_t Bytes(uint32_t state, const uint8_t* p, size_t n) {
  while (n--) state = table[(state ^ *p++) & 0xff] ^ (state >> 8);
  return state;
}

#if defined(__x86_64__)

// Fold distances: 128 bits (one lane to the next), 512 (one group of four lanes), 2048 (four
// 512-bit registers); then 64-bit and Barrett reduction constants.
constexpr uint64_t kFold128[2] = {0x1751997d0, 0x0ccaa009e};
constexpr uint64_t kFold512[2] = {0x154442bd4, 0x1c6e41596};
constexpr uint64_t kFold2048[2] = {0x11542778a, 0x1322d1430};
constexpr uint64_t kFold64 = 0x163cd6124;
constexpr uint64_t kBarrett[2] = {0x1db710641, 0x1f7011641};

#define CRC_SSE __attribute__((target("pclmul,sse4.1")))
#define CRC_AVX512 __attribute__((target("avx512f,avx512vl,vpclmulqdq,pclmul,sse4.1")))

CRC_SSE inline __m128i Fold(__m128i acc, __m128i next, __m128i k) {
  __m128i lo = _mm_clmulepi64_si128(acc, k, 0x00);
  __m128i hi = _mm_clmulepi64_si128(acc, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(hi, lo), next);
}

// Four lanes holding 64 consecutive bytes' remainder, then whole 16-byte blocks of p, down to
// the 32-bit state. Leaves the last n % 16 bytes to the caller.
CRC_SSE uint32_t Finish(__m128i x1, __m128i x2, __m128i x3, __m128i x4, const uint8_t* p, size_t n) {
  const __m128i k128 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kFold128));
  x1 = Fold(x1, x2, k128);
  x1 = Fold(x1, x3, k128);
  x1 = Fold(x1, x4, k128);
  for (; n >= 16; p += 16, n -= 16) x1 = Fold(x1, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), k128);

  // 128 -> 64 bits, then Barrett reduction to 32.
  const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);
  __m128i x2r = _mm_clmulepi64_si128(x1, k128, 0x10);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2r);
  __m128i k64 = _mm_set_epi64x(0, static_cast<long long>(kFold64));
  x2r = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k64, 0x00), x2r);
  const __m128i barrett = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kBarrett));
  x2r = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), barrett, 0x10);
  x2r = _mm_clmulepi64_si128(_mm_and_si128(x2r, low32), barrett, 0x00);
  return static_cast<uint32_t>(_mm_extract_epi32(_mm_xor_si128(x1, x2r), 1));
}

inline const __m128i* Block(const uint8_t* p, size_t i) { return reinterpret_cast<const __m128i*>(p) + i; }

// n >= 64; returns the state after the first n - n % 16 bytes.
CRC_SSE uint32_t Clmul(uint32_t state, const uint8_t* p, size_t n) {
  __m128i x1 = _mm_xor_si128(_mm_loadu_si128(Block(p, 0)), _mm_cvtsi32_si128(static_cast<int>(state)));
  __m128i x2 = _mm_loadu_si128(Block(p, 1));
  __m128i x3 = _mm_loadu_si128(Block(p, 2));
  __m128i x4 = _mm_loadu_si128(Block(p, 3));
  const __m128i k512 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kFold512));
  for (p += 64, n -= 64; n >= 64; p += 64, n -= 64) {
    x1 = Fold(x1, _mm_loadu_si128(Block(p, 0)), k512);
    x2 = Fold(x2, _mm_loadu_si128(Block(p, 1)), k512);
    x3 = Fold(x3, _mm_loadu_si128(Block(p, 2)), k512);
    x4 = Fold(x4, _mm_loadu_si128(Block(p, 3)), k512);
  }
  return Finish(x1, x2, x3, x4, p, n);
}

CRC_AVX512 inline __m512i Fold(__m512i acc, __m512i next, __m512i k) {
  __m512i lo = _mm512_clmulepi64_epi128(acc, k, 0x00);
  __m512i hi = _mm512_clmulepi64_epi128(acc, k, 0x11);
  return _mm512_ternarylogic_epi64(lo, hi, next, 0x96);  // lo ^ hi ^ next
}

CRC_AVX512 inline __m512i Broadcast(const uint64_t (&k)[2]) {
  const auto lo = static_cast<long long>(k[0]);
  const auto hi = static_cast<long long>(k[1]);
  return _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
}

// n >= 256; returns the state after the first n - n % 16 bytes.
CRC_AVX512 uint32_t Clmul512(uint32_t state, const uint8_t* p, size_t n) {
  const __m512i* z = reinterpret_cast<const __m512i*>(p);
  __m512i x1 = _mm512_xor_si512(_mm512_loadu_si512(z), _mm512_zextsi128_si512(_mm_cvtsi32_si128(static_cast<int>(state))));
  __m512i x2 = _mm512_loadu_si512(z + 1);
  __m512i x3 = _mm512_loadu_si512(z + 2);
  __m512i x4 = _mm512_loadu_si512(z + 3);
  const __m512i k2048 = Broadcast(kFold2048);
  for (p += 256, n -= 256; n >= 256; p += 256, n -= 256) {
    z = reinterpret_cast<const __m512i*>(p);
    x1 = Fold(x1, _mm512_loadu_si512(z), k2048);
    x2 = Fold(x2, _mm512_loadu_si512(z + 1), k2048);
    x3 = Fold(x3, _mm512_loadu_si512(z + 2), k2048);
    x4 = Fold(x4, _mm512_loadu_si512(z + 3), k2048);
  }
  const __m512i k512 = Broadcast(kFold512);
  x1 = Fold(x1, x2, k512);
  x1 = Fold(x1, x3, k512);
  x1 = Fold(x1, x4, k512);
  alignas(64) __m128i lanes[4];
  _mm512_store_si512(lanes, x1);
  return Finish(lanes[0], lanes[1], lanes[2], lanes[3], p, n);
}

#endif  // __x86_64__

enum class Path { kTable, kClmul, kClmul512 };
Path path = Path::kTable;

}  // namespace

void Crc32Init() {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1")) path = Path::kClmul;
  if (path == Path::kClmul && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("vpclmulqdq")) {
    path = Path::kClmul512;
  }
#endif
}

bool Crc32Accelerated() { return path != Path::kTable; }

const char* Crc32Path() {
  switch (path) {
    case Path::kClmul512: return "vpclmulqdq-avx512";
    case Path::kClmul: return "pclmulqdq";
    default: return "table";
  }
}

uint32_t Crc32(uint32_t seed, const uint8_t* data, size_t length) {
  uint32_t state = ~seed;
#if defined(__x86_64__)
  if (path != Path::kTable && length >= 64) {
    size_t whole = length & ~size_t{15};
    state = path == Path::kClmul512 && length >= 256 ? Clmul512(state, data, whole) : Clmul(state, data, whole);
    data += whole;
    length -= whole;
  }
#endif
  return ~Bytes(state, data, length);
}
