// Provided-buffer ring set up with io_uring_register_buf_ring (liburing 2.3 lacks
// io_uring_setup_buf_ring); see buffer_ring.hpp.
#include "core/io/buffer_ring.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ringmta::io {

Slice::Slice(BufferRing* ring, std::uint16_t bid, std::uint32_t offset, std::uint32_t len)
    : ring_(ring), bid_(bid), offset_(offset), len_(len) {
  if (ring_ != nullptr) ring_->ref(bid_);
}

Slice::Slice(const Slice& o) : ring_(o.ring_), bid_(o.bid_), offset_(o.offset_), len_(o.len_) {
  if (ring_ != nullptr) ring_->ref(bid_);
}

Slice::Slice(Slice&& o) noexcept
    : ring_(o.ring_), bid_(o.bid_), offset_(o.offset_), len_(o.len_) {
  o.ring_ = nullptr;
  o.len_ = 0;
}

Slice& Slice::operator=(const Slice& o) {
  if (this != &o) {
    Slice tmp(o);
    *this = std::move(tmp);
  }
  return *this;
}

Slice& Slice::operator=(Slice&& o) noexcept {
  if (this != &o) {
    reset();
    ring_ = o.ring_;
    bid_ = o.bid_;
    offset_ = o.offset_;
    len_ = o.len_;
    o.ring_ = nullptr;
    o.len_ = 0;
  }
  return *this;
}

std::string_view Slice::view() const {
  if (ring_ == nullptr) return {};
  return {ring_->addr(bid_) + offset_, len_};
}

void Slice::remove_prefix(std::size_t n) {
  if (n >= len_) {
    reset();
    return;
  }
  offset_ += static_cast<std::uint32_t>(n);
  len_ -= static_cast<std::uint32_t>(n);
}

Slice Slice::sub(const char* p, std::size_t n) const {
  const std::string_view v = view();
  const auto off = static_cast<std::uint32_t>(p - v.data());
  return Slice(ring_, bid_, offset_ + off, static_cast<std::uint32_t>(n));
}

void Slice::reset() {
  if (ring_ != nullptr) ring_->unref(bid_);
  ring_ = nullptr;
  len_ = 0;
}

BufferRing::BufferRing(io_uring& ring, std::uint16_t group_id, std::uint32_t count,
                       std::uint32_t size)
    : ring_(ring), group_id_(group_id), count_(count), size_(size), refs_(count, 0) {
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0) {
    throw std::invalid_argument("buffer count must be a power of two up to 32768");
  }
  ring_bytes_ = count * sizeof(io_uring_buf);
  void* r = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (r == MAP_FAILED) throw std::runtime_error("mmap of the buffer ring failed");
  br_ = static_cast<io_uring_buf_ring*>(r);
  // Buffer memory is only touched when the kernel writes into a buffer, so unused buffers
  // cost no resident memory.
  data_bytes_ = static_cast<std::size_t>(count) * size;
  void* d = mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (d == MAP_FAILED) {
    munmap(r, ring_bytes_);
    throw std::runtime_error("mmap of receive buffers failed");
  }
  base_ = static_cast<char*>(d);
  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
  reg.ring_entries = count;
  reg.bgid = group_id;
  const int rc = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (rc != 0) {
    munmap(base_, data_bytes_);
    munmap(br_, ring_bytes_);
    throw std::runtime_error(
        std::string("kernel lacks provided buffer rings (IORING_REGISTER_PBUF_RING, Linux "
                    "5.19): ") +
        std::strerror(-rc));
  }
  const int mask = io_uring_buf_ring_mask(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    io_uring_buf_ring_add(br_, addr(static_cast<std::uint16_t>(i)), size,
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(count));
}

BufferRing::~BufferRing() {
  io_uring_unregister_buf_ring(&ring_, group_id_);
  munmap(base_, data_bytes_);
  munmap(br_, ring_bytes_);
}

Slice BufferRing::take(std::uint16_t bid, std::uint32_t n) {
  ++in_use_;
  Slice s(this, bid, 0, n);
  return s;
}

void BufferRing::unref(std::uint16_t bid) {
  if (--refs_[bid] != 0) return;
  --in_use_;
  io_uring_buf_ring_add(br_, addr(bid), size_, bid, io_uring_buf_ring_mask(count_),
                        static_cast<int>(pending_));
  ++pending_;
}

void BufferRing::publish() {
  if (pending_ == 0) return;
  io_uring_buf_ring_advance(br_, static_cast<int>(pending_));
  pending_ = 0;
}

}  // namespace ringmta::io
