#pragma once
#include <cstddef>
#include <cstdint>

void Crc32cInit();
bool Crc32cHardware();
uint32_t Crc32c(uint32_t seed, const uint8_t* data, size_t length);
