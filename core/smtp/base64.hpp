// Base64 (RFC 4648 4) for SMTP AUTH (RFC 4954): encode into a caller's buffer, decode
// strictly (padding required, no whitespace). Pure functions, no allocation.
#pragma once

#include <cstddef>
#include <string_view>

namespace ringmta::smtp {

// Bytes base64_encode writes for n input bytes.
constexpr std::size_t base64_size(std::size_t n) { return (n + 2) / 3 * 4; }

// Writes base64_size(in.size()) bytes to out; returns that count.
std::size_t base64_encode(std::string_view in, char* out);

// Decodes into out (room for in.size() / 4 * 3 bytes); returns the bytes written, or -1
// when in is not canonical base64.
long base64_decode(std::string_view in, char* out);

}  // namespace ringmta::smtp
