// One encoding of io_uring user_data for every operation: what kind of operation it is, the
// slot of its owner and the slot's generation, so a completion that arrives after its owner
// was closed and the slot reused is recognised as stale (STYLE.md, io_uring code).
#pragma once

#include <cstdint>

namespace ringmta::io {

enum class OpKind : std::uint8_t {
  none = 0,
  accept,         // slot: listener index
  recv,           // slot: connection
  send,           // slot: connection
  cancel,         // slot: connection (completion of an async cancel)
  close,          // slot: connection
  connect,        // slot: connection (outbound)
  file,           // slot: a pending file operation (writev, fsync)
  wake,           // the reactor's eventfd read
  message,        // IORING_OP_MSG_RING arriving from another reactor
  message_sent,   // completion of our own MSG_RING submission
  splice_in,      // slot: connection (file -> its pipe)
  splice_out,     // slot: connection (its pipe -> socket)
};

struct OpTag {
  OpKind kind = OpKind::none;
  std::uint32_t generation = 0;  // 24 bits used
  std::uint32_t slot = 0;
};

constexpr std::uint64_t encode_tag(OpKind kind, std::uint32_t generation, std::uint32_t slot) {
  return (static_cast<std::uint64_t>(kind) << 56) |
         (static_cast<std::uint64_t>(generation & 0xFFFFFFu) << 32) | slot;
}

constexpr OpTag decode_tag(std::uint64_t v) {
  return OpTag{static_cast<OpKind>(v >> 56), static_cast<std::uint32_t>((v >> 32) & 0xFFFFFFu),
               static_cast<std::uint32_t>(v)};
}

}  // namespace ringmta::io
