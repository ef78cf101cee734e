// A message in a worker thread's queue, and the delivery jobs that carry its recipients to
// their destinations. Objects are pooled and reused (their strings and vectors keep their
// capacity), so the steady state allocates nothing per message. The body is either still
// in the receive buffers it arrived in (references, as the spool write used them), or only
// in the spool, from where delivery splices it.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/buffer_ring.hpp"
#include "core/smtp/reply.hpp"
#include "relay/queue/retry_wheel.hpp"
#include "relay/spool/record.hpp"
#include "relay/spool/spool_state.hpp"

namespace ringmta::relay {

inline constexpr std::uint32_t kNoRoute = 0xFFFFFFFFu;

struct QueuedRecipient {
  std::string address;
  std::string orcpt;  // "type;value" as received, or empty
  std::uint8_t notify = 0;
  spool::RecipientState state = spool::RecipientState::pending;
  std::uint16_t attempts = 0;
  std::uint32_t destination = kNoRoute;
  // The last answer about this recipient (for a bounce): the reply, where from.
  std::uint16_t last_code = 0;
  std::string last_reply;   // "550 5.1.1 text" (lines joined), or a local reason
  std::string last_hop;     // "HOST:PORT" or empty
  std::uint64_t next_attempt_unix_ms = 0;  // deferred: when it is tried again

  // A new recipient, still to deliver (the strings keep their capacity).
  void reset(std::string_view a, std::string_view o, std::uint8_t n) {
    address.assign(a);
    orcpt.assign(o);
    notify = n;
    state = spool::RecipientState::pending;
    attempts = 0;
    destination = kNoRoute;
    last_code = 0;
    last_reply.clear();
    last_hop.clear();
    next_attempt_unix_ms = 0;
  }
};

struct DeliveryJob;

struct QueuedMessage {
  std::uint64_t id = 0;
  std::uint64_t arrival_unix_ms = 0;
  spool::StoredBody body_format = spool::StoredBody::dot_stuffed;
  std::uint8_t flags = 0;
  std::uint8_t ret = 0;
  std::string sender, envid, client_ip, helo;
  std::vector<QueuedRecipient> rcpts;  // [0, rcpt_count) in use
  std::uint32_t rcpt_count = 0;
  std::uint32_t pending = 0;           // recipients not final
  std::uint32_t jobs = 0;              // delivery jobs alive (queued, waiting or in flight)
  std::uint32_t jobs_running = 0;      // of them, on a connection now
  std::uint32_t outcome_writes = 0;    // outcome records on their way to the spool
  std::uint32_t bounces_writing = 0;   // bounces of it on their way to the spool
  std::uint32_t holds = 0;             // a queue call is working on it: not finished yet

  // The body as stored: the Received: header, then the message.
  std::uint64_t body_length = 0;
  bool in_memory = false;
  std::string received;                // in memory: our Received: header
  std::vector<io::Slice> pieces;       // in memory: references to the receive buffers
  std::vector<iovec> body_iov;         // in memory: Received:, then the body's pieces
  std::string spill;                   // in memory: a large body copied into one buffer
  spool::SegmentKey segment;           // in the spool: the message record's segment
  std::uint64_t body_offset = 0;       // in the spool: where the body starts in the file
  std::uint64_t record_bytes = 0;
  std::vector<spool::SegmentKey> outcome_segments;  // pinned by final outcomes of it

  QueuedMessage* next_free = nullptr;

  // Drops the in-memory body (the receive buffers go back); delivery reads the spool then.
  void release_memory() {
    in_memory = false;
    pieces.clear();
    body_iov.clear();
    spill.clear();
    received.clear();
  }
};

// One message's recipients bound for one destination: what a single SMTP transaction
// delivers. Deferred recipients stay in their job, which waits on the retry wheel.
struct DeliveryJob : WheelNode {
  QueuedMessage* message = nullptr;
  std::uint32_t destination = kNoRoute;
  std::vector<std::uint32_t> rcpts;  // indices into message->rcpts
  DeliveryJob* next = nullptr;       // in its destination's ready list, or the free list
  std::uint64_t ready_since_ms = 0;
  bool running = false;
};

}  // namespace ringmta::relay
