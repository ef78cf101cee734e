// Streaming message fingerprint; see message_digest.hpp.
#include "core/smtp/message_digest.hpp"

#include <openssl/evp.h>

#include <cstring>
#include <stdexcept>

#include "core/smtp/ascii.hpp"

namespace ringmta::smtp {

MessageDigest::MessageDigest() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) throw std::runtime_error("EVP_MD_CTX_new failed");
  hex_[64] = '\0';
  begin(BodyFormat::dot_stuffed);
}

MessageDigest::~MessageDigest() { EVP_MD_CTX_free(ctx_); }

void MessageDigest::begin(BodyFormat format) {
  EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
  format_ = format;
  in_headers_ = true;
  line_start_ = true;
  line_len_ = 0;
  line_overflow_ = false;
  in_id_header_ = false;
  id_len_ = 0;
  body_octets_ = 0;
  std::memset(hex_, '0', 64);
}

void MessageDigest::end_header_line() {
  // line_ holds one physical header line without CRLF. A folded continuation (starting
  // with SP/HT) continues the previous header; the id is a single token, so only the first
  // line of X-Ringmta-Id is used.
  const std::string_view line(line_, line_overflow_ ? sizeof(line_) : line_len_);
  const bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t');
  if (!continuation) {
    in_id_header_ = false;
    constexpr std::string_view kName = "X-RINGMTA-ID:";
    if (id_len_ == 0 && istarts_with(line, kName)) {
      std::string_view v = line.substr(kName.size());
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      id_len_ = v.copy(id_, sizeof(id_));
    }
  }
  line_len_ = 0;
  line_overflow_ = false;
}

void MessageDigest::header_byte(char c) {
  // Called for unstuffed header bytes; the empty line ends the header section.
  if (c == '\n') {
    if (line_len_ > 0 && line_[line_len_ - 1] == '\r') --line_len_;
    if (line_len_ == 0 && !line_overflow_) {
      in_headers_ = false;
      return;
    }
    end_header_line();
    return;
  }
  if (line_len_ < sizeof(line_)) line_[line_len_++] = c;
  else line_overflow_ = true;
}

void MessageDigest::body_bytes(std::string_view s) {
  if (s.empty()) return;
  EVP_DigestUpdate(ctx_, s.data(), s.size());
  body_octets_ += s.size();
}

void MessageDigest::update(std::string_view bytes) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    // RFC 5321 4.5.2: a '.' at the start of a line is a transparency dot; drop it.
    if (line_start_ && format_ == BodyFormat::dot_stuffed && bytes[i] == '.') {
      line_start_ = false;
      ++i;
      continue;
    }
    if (in_headers_) {
      const char c = bytes[i++];
      line_start_ = c == '\n';
      header_byte(c);
      continue;
    }
    // Body: hash runs up to each LF at once; only the byte after an LF needs a look.
    const void* lf = std::memchr(bytes.data() + i, '\n', bytes.size() - i);
    const std::size_t end =
        lf == nullptr ? bytes.size() : static_cast<std::size_t>(static_cast<const char*>(lf) -
                                                                bytes.data()) + 1;
    body_bytes(bytes.substr(i, end - i));
    line_start_ = lf != nullptr;
    i = end;
  }
}

void MessageDigest::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_, md, &n);
  static const char* kHex = "0123456789abcdef";
  for (unsigned int k = 0; k < 32 && k < n; ++k) {
    hex_[2 * k] = kHex[md[k] >> 4];
    hex_[2 * k + 1] = kHex[md[k] & 15];
  }
}

}  // namespace ringmta::smtp
