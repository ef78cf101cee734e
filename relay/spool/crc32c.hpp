// CRC-32C (Castagnoli), the check on every spool record. Uses the SSE4.2 crc32 instruction
// when the CPU has it (checked once at run time), a table otherwise; both give the same
// values (tested against each other and the RFC 3720 B.4 test vectors).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ringmta::spool {

// Extends crc (0 to start) over data: crc32c(b, crc32c(a)) == crc32c(a + b).
std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0);
// The portable path alone (for tests and CPUs without SSE4.2).
std::uint32_t crc32c_portable(std::string_view data, std::uint32_t crc = 0);
bool crc32c_hardware();

}  // namespace ringmta::spool
