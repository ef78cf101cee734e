// Receive buffers the kernel picks from (a provided-buffer ring, IORING_REGISTER_PBUF_RING):
// multishot receives need no buffer per idle connection, only per arriving chunk. Received
// data is handed on as Slices that count references to their buffer; a buffer goes back to
// the kernel when its last Slice is gone. One ring per reactor thread; not thread-safe.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <string_view>
#include <vector>

namespace ringmta::io {

class BufferRing;

// A view of received bytes that keeps its buffer from being reused. Copying adds a
// reference (a plain counter: slices stay on their reactor's thread).
class Slice {
 public:
  Slice() = default;
  Slice(BufferRing* ring, std::uint16_t bid, std::uint32_t offset, std::uint32_t len);
  Slice(const Slice& o);
  Slice(Slice&& o) noexcept;
  Slice& operator=(const Slice& o);
  Slice& operator=(Slice&& o) noexcept;
  ~Slice() { reset(); }

  std::string_view view() const;
  std::size_t size() const { return len_; }
  bool empty() const { return len_ == 0; }
  // Drops the first n bytes (they were used); the buffer stays referenced while bytes remain.
  void remove_prefix(std::size_t n);
  // Another reference to the part [p, p + n) of this slice's bytes (p must lie inside it):
  // how a handler keeps a view it was given (e.g. a message body) without copying it.
  Slice sub(const char* p, std::size_t n) const;
  bool contains(const char* p) const {
    const std::string_view v = view();
    return ring_ != nullptr && p >= v.data() && p < v.data() + v.size();
  }
  void reset();

 private:
  BufferRing* ring_ = nullptr;
  std::uint16_t bid_ = 0;
  std::uint32_t offset_ = 0;
  std::uint32_t len_ = 0;
};

class BufferRing {
 public:
  // count: a power of two up to 32768; size: bytes per buffer.
  BufferRing(io_uring& ring, std::uint16_t group_id, std::uint32_t count, std::uint32_t size);
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;
  ~BufferRing();

  std::uint16_t group_id() const { return group_id_; }
  std::uint32_t buffer_size() const { return size_; }
  // A completion delivered buffer bid with n bytes: the first reference.
  Slice take(std::uint16_t bid, std::uint32_t n);
  // Buffers returned since the last publish() are made visible to the kernel at once.
  void publish();
  std::uint32_t in_use() const { return in_use_; }
  std::uint32_t count() const { return count_; }

 private:
  friend class Slice;
  void ref(std::uint16_t bid) { ++refs_[bid]; }
  void unref(std::uint16_t bid);
  char* addr(std::uint16_t bid) const { return base_ + static_cast<std::size_t>(bid) * size_; }

  io_uring& ring_;
  io_uring_buf_ring* br_ = nullptr;
  char* base_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::size_t data_bytes_ = 0;
  std::uint16_t group_id_;
  std::uint32_t count_;
  std::uint32_t size_;
  std::uint32_t pending_ = 0;  // returned, not yet published
  std::uint32_t in_use_ = 0;
  std::vector<std::uint32_t> refs_;
};

}  // namespace ringmta::io
