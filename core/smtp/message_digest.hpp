// The accounting fingerprint of a message, computed as its bytes stream by: the value of its
// X-Ringmta-Id header (the loadgen stamps one per message) and the SHA-256 of its body (the
// part after the header section) with dot-stuffing undone. Headers are left out so a relay
// that prepends Received: keeps the fingerprint; the loadgen, the sinks and the harness all
// compute it this way (docs/result-format.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/smtp/server_session.hpp"

struct evp_md_ctx_st;

namespace ringmta::smtp {

class MessageDigest {
 public:
  MessageDigest();
  ~MessageDigest();
  MessageDigest(const MessageDigest&) = delete;
  MessageDigest& operator=(const MessageDigest&) = delete;

  void begin(BodyFormat format);
  // Wire bytes of the message, in order, cut anywhere.
  void update(std::string_view bytes);
  // Ends the message. The views stay valid until the next begin().
  void finish();

  std::string_view id() const { return {id_, id_len_}; }  // "" if the header is absent
  std::string_view sha256_hex() const { return {hex_, 64}; }
  std::uint64_t body_octets() const { return body_octets_; }  // bytes hashed

 private:
  void header_byte(char c);
  void body_bytes(std::string_view s);
  void end_header_line();

  evp_md_ctx_st* ctx_;
  BodyFormat format_ = BodyFormat::dot_stuffed;
  bool in_headers_ = true;
  bool line_start_ = true;  // the next byte starts a line (for unstuffing)
  char line_[1000];         // the current header line (RFC 5321 4.5.3.1.6 bound)
  std::size_t line_len_ = 0;
  bool line_overflow_ = false;
  bool in_id_header_ = false;  // the last complete header line was X-Ringmta-Id
  char id_[128];
  std::size_t id_len_ = 0;
  char hex_[65];
  std::uint64_t body_octets_ = 0;
};

}  // namespace ringmta::smtp
