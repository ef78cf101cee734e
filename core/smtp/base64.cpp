// Base64 for AUTH; see base64.hpp.
#include "core/smtp/base64.hpp"

namespace ringmta::smtp {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::size_t base64_encode(std::string_view in, char* out) {
  std::size_t o = 0;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
    out[o++] = kAlphabet[v & 63];
  }
  const std::size_t rest = in.size() - i;
  if (rest != 0) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  return o;
}

long base64_decode(std::string_view in, char* out) {
  if (in.size() % 4 != 0) return -1;
  long o = 0;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const int a = value(in[i]), b = value(in[i + 1]);
    const bool pad2 = last && in[i + 2] == '=' && in[i + 3] == '=';
    const bool pad1 = last && !pad2 && in[i + 3] == '=';
    const int c = pad2 ? 0 : value(in[i + 2]);
    const int d = (pad1 || pad2) ? 0 : value(in[i + 3]);
    if (a < 0 || b < 0 || c < 0 || d < 0) return -1;
    const unsigned v = (static_cast<unsigned>(a) << 18) | (static_cast<unsigned>(b) << 12) |
                       (static_cast<unsigned>(c) << 6) | static_cast<unsigned>(d);
    out[o++] = static_cast<char>(v >> 16);
    if (!pad2) out[o++] = static_cast<char>((v >> 8) & 0xFF);
    if (!pad1 && !pad2) out[o++] = static_cast<char>(v & 0xFF);
    // Canonical: bits under the padding are zero (RFC 4648 3.5).
    if ((pad2 && (b & 15) != 0) || (pad1 && (c & 3) != 0)) return -1;
  }
  return o;
}

}  // namespace ringmta::smtp
