// scan_segment, a template so the visitor inlines; see record.hpp.
#pragma once

#include "relay/spool/crc32c.hpp"

namespace ringmta::spool {

template <typename F>
SegmentScan scan_segment(std::string_view bytes, F&& f) {
  SegmentScan s;
  std::uint64_t off = 0;
  while (off < bytes.size()) {
    RecordHeader h;
    const HeaderCheck hc = decode_header(bytes.substr(off), h);
    if (hc == HeaderCheck::newer_version) {
      s.newer_version = true;
      return s;
    }
    if (hc != HeaderCheck::ok) {
      // A damaged header, or zeros: the end of what was written, or the hole left by a write
      // that failed while later ones succeeded (writes complete in any order). Look for the
      // next sound header (the magic and a matching header crc); if there is none, this was
      // the end, or the last write cut short by a crash.
      std::uint64_t next = bytes.find("RGMS", off + 1);
      RecordHeader probe;
      while (next != std::string_view::npos && next + kHeaderSize <= bytes.size() &&
             decode_header(bytes.substr(next), probe) != HeaderCheck::ok) {
        next = bytes.find("RGMS", next + 1);
      }
      if (next == std::string_view::npos || next + kHeaderSize > bytes.size()) {
        if (hc != HeaderCheck::end) s.torn_tail = true;
        break;
      }
      s.corrupt.push_back({off, next - off});
      off = next;
      continue;
    }
    const std::uint64_t end = off + kHeaderSize + h.length;
    if (end > bytes.size()) {
      s.torn_tail = true;  // the payload never made it to disk whole
      break;
    }
    const std::string_view payload = bytes.substr(off + kHeaderSize, h.length);
    if (crc32c(payload) != h.payload_crc) {
      // The header is sound, so the next record can be found: skip this one. If nothing
      // valid follows, it was the torn tail after all (checked below).
      s.corrupt.push_back({off, end - off});
      off = end;
      continue;
    }
    if (!s.has_segment_record) {
      if (h.type != RecordType::segment || !decode_segment_payload(payload, s.info)) {
        s.corrupt.push_back({off, end - off});
        off = end;
        continue;
      }
      s.has_segment_record = true;
    } else {
      f(h, payload, off);
    }
    ++s.records;
    off = end;
    s.valid_end = off;
  }
  // Bad records after the last good one are the tail of a crash, not corruption.
  while (!s.corrupt.empty() && s.corrupt.back().offset >= s.valid_end) {
    s.corrupt.pop_back();
    s.torn_tail = true;
  }
  return s;
}

}  // namespace ringmta::spool
