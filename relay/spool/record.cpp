// Spool record encoding and decoding; see record.hpp.
#include "relay/spool/record.hpp"

#include <cstring>

#include "relay/spool/crc32c.hpp"

namespace ringmta::spool {
namespace {

void put16(std::string& o, std::uint16_t v) {
  const char b[2] = {static_cast<char>(v), static_cast<char>(v >> 8)};
  o.append(b, 2);
}
void put32(std::string& o, std::uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  o.append(b, 4);
}
void put64(std::string& o, std::uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  o.append(b, 8);
}
bool put_str(std::string& o, std::string_view s) {
  if (s.size() > 0xFFFF) return false;
  put16(o, static_cast<std::uint16_t>(s.size()));
  o.append(s);
  return true;
}

void store32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
std::uint32_t load32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

// A bounds-checked reader over a payload.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool u8(std::uint8_t& v) {
    if (pos_ + 1 > s_.size()) return fail();
    v = static_cast<std::uint8_t>(s_[pos_++]);
    return true;
  }
  bool u16(std::uint16_t& v) {
    if (pos_ + 2 > s_.size()) return fail();
    v = static_cast<std::uint16_t>(static_cast<std::uint8_t>(s_[pos_]) |
                                   (static_cast<std::uint8_t>(s_[pos_ + 1]) << 8));
    pos_ += 2;
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (pos_ + 4 > s_.size()) return fail();
    v = load32(s_.data() + pos_);
    pos_ += 4;
    return true;
  }
  bool u64(std::uint64_t& v) {
    std::uint32_t lo = 0, hi = 0;
    if (!u32(lo) || !u32(hi)) return false;
    v = (static_cast<std::uint64_t>(hi) << 32) | lo;
    return true;
  }
  bool str(std::string& v) {
    std::uint16_t n = 0;
    if (!u16(n) || pos_ + n > s_.size()) return fail();
    v.assign(s_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  std::string_view rest() const { return s_.substr(pos_); }
  bool ok() const { return ok_; }

 private:
  bool fail() {
    ok_ = false;
    return false;
  }
  std::string_view s_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

void encode_header(const RecordHeader& h, char* out) {
  store32(out, kRecordMagic);
  out[4] = static_cast<char>(h.version);
  out[5] = static_cast<char>(h.version >> 8);
  out[6] = static_cast<char>(h.type);
  out[7] = static_cast<char>(h.flags);
  store32(out + 8, h.length);
  store32(out + 12, h.payload_crc);
  store32(out + 16, crc32c(std::string_view(out, 16)));
  store32(out + 20, 0);
}

HeaderCheck decode_header(std::string_view bytes, RecordHeader& out) {
  if (bytes.size() < kHeaderSize) {
    for (char c : bytes) {
      if (c != 0) return HeaderCheck::short_input;
    }
    return HeaderCheck::end;
  }
  const char* p = bytes.data();
  bool zero = true;
  for (std::size_t i = 0; i < kHeaderSize; ++i) {
    if (p[i] != 0) {
      zero = false;
      break;
    }
  }
  if (zero) return HeaderCheck::end;
  if (load32(p) != kRecordMagic) return HeaderCheck::bad_magic;
  if (load32(p + 16) != crc32c(std::string_view(p, 16))) return HeaderCheck::bad_crc;
  out.version = static_cast<std::uint16_t>(static_cast<std::uint8_t>(p[4]) |
                                           (static_cast<std::uint8_t>(p[5]) << 8));
  if (out.version > kFormatVersion) return HeaderCheck::newer_version;
  out.type = static_cast<RecordType>(p[6]);
  out.flags = static_cast<std::uint8_t>(p[7]);
  out.length = load32(p + 8);
  out.payload_crc = load32(p + 12);
  if (out.length > kMaxPayload) return HeaderCheck::too_long;
  return HeaderCheck::ok;
}

void encode_segment_payload(const SegmentInfo& s, std::string& out) {
  put32(out, s.thread);
  put64(out, s.sequence);
  put64(out, s.created_unix_ms);
}

bool decode_segment_payload(std::string_view payload, SegmentInfo& out) {
  Reader r(payload);
  return r.u32(out.thread) && r.u64(out.sequence) && r.u64(out.created_unix_ms) &&
         r.rest().empty();
}

bool encode_envelope(const EnvelopeView& e, std::uint64_t body_length, std::string& out) {
  put64(out, e.id);
  put64(out, e.arrival_unix_ms);
  out += static_cast<char>(e.body_format);
  out += static_cast<char>(e.flags);
  out += static_cast<char>(e.ret);
  bool ok = put_str(out, e.sender) && put_str(out, e.envid) && put_str(out, e.client_ip) &&
            put_str(out, e.helo);
  if (e.recipients.size() > 0xFFFFFFFFu) return false;
  put32(out, static_cast<std::uint32_t>(e.recipients.size()));
  for (const RecipientView& r : e.recipients) {
    ok = ok && put_str(out, r.address);
    out += static_cast<char>(r.notify);
    ok = ok && put_str(out, r.orcpt);
  }
  put64(out, body_length);
  return ok;
}

bool decode_envelope(std::string_view bytes, StoredMessage& m, std::uint64_t& body_length,
                     std::size_t& used, std::string* why) {
  const auto bad = [why](const char* reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
  Reader r(bytes);
  std::uint8_t format = 0;
  std::uint32_t count = 0;
  const bool head = r.u64(m.id) && r.u64(m.arrival_unix_ms) && r.u8(format) && r.u8(m.flags) &&
                    r.u8(m.ret) && r.str(m.sender) && r.str(m.envid) && r.str(m.client_ip) &&
                    r.str(m.helo) && r.u32(count);
  if (!head || format > 1) return bad("envelope cut short or unknown body format");
  m.body_format = static_cast<StoredBody>(format);
  // Each recipient takes at least 5 bytes: a count beyond that is corruption, not a reason
  // to allocate.
  if (count > bytes.size() / 5) return bad("recipient count larger than the record");
  m.recipients.resize(count);
  for (StoredRecipient& rc : m.recipients) {
    if (!r.str(rc.address) || !r.u8(rc.notify) || !r.str(rc.orcpt)) {
      return bad("recipient list cut short");
    }
  }
  if (!r.u64(body_length)) return bad("envelope cut short or unknown body format");
  used = bytes.size() - r.rest().size();
  return true;
}

bool decode_message_payload(std::string_view payload, StoredMessage& m, std::string_view& body,
                            std::string* why) {
  std::uint64_t body_length = 0;
  std::size_t used = 0;
  if (!decode_envelope(payload, m, body_length, used, why)) return false;
  if (body_length != payload.size() - used) {
    if (why != nullptr) *why = "body length does not match the record";
    return false;
  }
  body = payload.substr(used);
  return true;
}

void encode_outcome(std::uint64_t message_id, std::span<const RecipientOutcome> entries,
                    std::string& out) {
  put64(out, message_id);
  const std::size_t n = entries.size() > 0xFFFF ? 0xFFFF : entries.size();
  put16(out, static_cast<std::uint16_t>(n));
  for (std::size_t i = 0; i < n; ++i) {
    const RecipientOutcome& e = entries[i];
    put32(out, e.index);
    out += static_cast<char>(e.state);
    put16(out, e.attempts);
    put64(out, e.next_attempt_unix_ms);
  }
}

bool decode_outcome(std::string_view payload, std::uint64_t& message_id,
                    std::vector<RecipientOutcome>& entries) {
  entries.clear();
  Reader r(payload);
  std::uint16_t n = 0;
  if (!r.u64(message_id) || !r.u16(n) || r.rest().size() != n * kOutcomeEntryBytes) return false;
  entries.resize(n);
  for (RecipientOutcome& e : entries) {
    std::uint8_t state = 0;
    if (!r.u32(e.index) || !r.u8(state) || !r.u16(e.attempts) || !r.u64(e.next_attempt_unix_ms)) {
      return false;
    }
    if (state < 1 || state > 3) return false;
    e.state = static_cast<RecipientState>(state);
  }
  return true;
}

}  // namespace ringmta::spool
