// One worker thread's part of the spool: append-only segment files under <spool>/t<N>/,
// preallocated, written with io_uring (writev of the record's header, envelope and the body
// slices as received: no copy), made durable by group commit (one fdatasync covering every
// message that arrived while the previous sync ran, as databases do). A message's done()
// runs only once its record is on stable storage, per the durability mode.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/io/buffer_ring.hpp"
#include "core/io/reactor.hpp"
#include "relay/spool/record.hpp"

namespace ringmta::spool {

enum class Durability : std::uint8_t {
  batch,   // group commit: one fdatasync per batch
  always,  // one fdatasync per message (as Postfix)
  none,    // no sync: only to measure what durability costs; every result says so
};
const char* durability_name(Durability d);

struct SpoolConfig {
  std::string dir;
  Durability durability = Durability::batch;
  std::uint32_t batch_max_messages = 64;  // a batch closes at this many messages...
  std::uint32_t batch_max_wait_us = 0;    // ...or this long after its first (0: as soon as
                                          // no sync is running)
  std::uint64_t segment_bytes = 64u << 20;
};

// Spool-wide figures, shared by the threads (relaxed atomics) for quotas and metrics.
struct SpoolTotals {
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> messages{0};
  std::atomic<bool> failed{false};  // a sync failed: accept nothing more (fsyncgate)
  std::atomic<int> failure_errno{0};
};

// A record on its way to the spool: a message (owned by its session) or an outcome record
// (owned by the queue). The owner keeps it (and what its iovecs point at) alive until done()
// is called.
struct PendingMessage {
  RecordType type = RecordType::message;
  // Filled by the session: iov[0] is the 24-byte record header the writer fills in; then the
  // envelope, the Received: header and the body pieces.
  std::vector<iovec> iov;
  char header[24] = {};
  std::uint64_t payload_bytes = 0;
  std::uint32_t payload_crc = 0;
  // Called on the writer's thread: 0 when durable (per the mode), else -errno.
  void (*done)(PendingMessage& m, int result) = nullptr;
  void* owner = nullptr;
  // Where the record went (valid in done() when result is 0, and after).
  std::uint64_t offset = 0;
  std::uint64_t segment_sequence = 0;
  // The writer's bookkeeping.
  int result = 0;
  bool written = false;
  PendingMessage* next = nullptr;  // in its batch
  void* batch = nullptr;
  struct Segment* segment = nullptr;
  class SpoolWriter* writer = nullptr;
};

struct Segment {
  int fd = -1;
  std::uint64_t sequence = 0;
  std::uint64_t end = 0;       // bytes given out so far
  std::uint64_t capacity = 0;  // preallocated size
  unsigned users = 0;          // writes and syncs in flight; closed when 0 and retired
  bool retired = false;
  std::string path;
};

class SpoolWriter {
 public:
  // Creates <dir>/t<thread>/ and a fresh segment numbered after `first_sequence` (recovery
  // says how far old segments go). Throws std::runtime_error naming what failed.
  SpoolWriter(io::Reactor& reactor, const SpoolConfig& config, SpoolTotals& totals,
              unsigned thread, std::uint64_t first_sequence);
  ~SpoolWriter();
  SpoolWriter(const SpoolWriter&) = delete;
  SpoolWriter& operator=(const SpoolWriter&) = delete;

  // Message ids: unique across threads and restarts (thread in the top bits, then a
  // sequence that starts past the current time).
  std::uint64_t next_id() { return next_id_++; }
  // The segment now being appended to (0 before the first): never deleted while current.
  std::uint64_t current_sequence() const { return current_ != nullptr ? current_->sequence : 0; }
  unsigned thread() const { return thread_; }
  // Appends m; m.done() follows (possibly before append returns, on an immediate error).
  void append(PendingMessage& m);

  struct Stats {
    std::uint64_t batches = 0;
    std::uint64_t syncs = 0;
    std::uint64_t last_batch_size = 0;
    std::uint64_t last_sync_ns = 0;
  };
  // Per-batch figures go to this callback (metrics): batch size and sync latency.
  using BatchObserver = void (*)(void* ctx, std::uint64_t messages, std::uint64_t sync_ns);
  void set_observer(BatchObserver f, void* ctx) {
    observer_ = f;
    observer_ctx_ = ctx;
  }
  const Stats& stats() const { return stats_; }
  // Told of every segment this writer creates (the queue tracks them for deletion).
  using SegmentObserver = void (*)(void* ctx, std::uint64_t sequence);
  void set_segment_observer(SegmentObserver f, void* ctx) {
    segment_observer_ = f;
    segment_ctx_ = ctx;
    if (current_ != nullptr && f != nullptr) f(ctx, current_->sequence);
  }

 private:
  struct Batch {
    PendingMessage* head = nullptr;
    PendingMessage* tail = nullptr;
    std::uint32_t count = 0;
    std::uint32_t unwritten = 0;  // writes not completed yet
    std::vector<Segment*> segments;  // usually one; more if a segment filled up meanwhile
    unsigned syncs_pending = 0;
    int sync_error = 0;
    std::uint64_t sync_start_ns = 0;
  };

  bool open_segment(std::uint64_t size, int* err);
  void retire(Segment* s);
  void release(Segment* s);
  // Appends of one reactor round go out as one writev per segment (gather_), submitted by
  // the reactor's flush hook: one io_uring write (often punted to a kernel worker) per
  // round instead of per record.
  struct GatherWrite {
    SpoolWriter* writer = nullptr;
    std::vector<PendingMessage*> records;  // in file order, contiguous
    std::vector<iovec> iov;
    std::uint64_t bytes = 0;
    GatherWrite* next_free = nullptr;
  };
  static void flush_hook(void* ctx);
  void flush_writes();
  static void on_gather_written(void* ctx, int res);
  void record_written(PendingMessage& m, bool ok, int err);
  GatherWrite* gather_ = nullptr;  // collecting, not submitted yet
  GatherWrite* free_gathers_ = nullptr;
  std::vector<std::unique_ptr<GatherWrite>> all_gathers_;
  static void on_sync(void* ctx, int res);
  static void on_sync_one(void* ctx, int res);
  void sync_failed(int err);
  static void on_timer(io::Timer& t, void* ctx);
  void close_batch();
  void maybe_sync();
  void finish(PendingMessage& m, int result);

  io::Reactor& reactor_;
  SpoolConfig config_;
  SpoolTotals& totals_;
  unsigned thread_;
  std::string dir_;
  std::uint64_t next_sequence_;
  std::uint64_t next_id_;
  Segment* current_ = nullptr;
  std::vector<Segment*> segments_;
  Batch open_;             // collecting messages
  Batch closed_;           // waiting for its writes, then syncing
  bool sync_running_ = false;
  bool open_due_ = false;  // the open batch should have closed while a sync was running
  io::Timer batch_timer_;
  std::uint64_t retry_after_ms_ = 0;  // segment creation failed: not before this
  bool create_failing_ = false;       // logged once per outage
  SegmentObserver segment_observer_ = nullptr;
  void* segment_ctx_ = nullptr;
  BatchObserver observer_ = nullptr;
  void* observer_ctx_ = nullptr;
  Stats stats_;
};

}  // namespace ringmta::spool
