// A fixed-capacity byte buffer for protocol output (replies, commands). It is allocated once
// when its owner (a session) is created, so that writing replies never allocates.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace ringmta::buf {

// Writes v in decimal into out (at least 20 bytes); returns the length. No allocation.
inline std::size_t format_decimal(unsigned long long v, char* out) {
  char tmp[20];
  std::size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

class OutBuffer {
 public:
  // Not zero-filled: pages are touched only as far as output is written, so thousands of
  // idle sessions cost little resident memory.
  explicit OutBuffer(std::size_t capacity)
      : data_(std::make_unique_for_overwrite<char[]>(capacity)), capacity_(capacity) {}

  // Appends what fits; returns false (and appends nothing) when s does not fit. Owners check
  // free_space() before producing output, so a false return is a bug in the owner.
  bool append(std::string_view s) {
    if (s.size() > capacity_ - size_) return false;
    std::memcpy(data_.get() + size_, s.data(), s.size());
    size_ += s.size();
    return true;
  }
  bool append(char c) { return append(std::string_view(&c, 1)); }
  bool append_uint(unsigned long long v) {
    char tmp[20];
    return append(std::string_view(tmp, format_decimal(v, tmp)));
  }

  std::string_view view() const { return {data_.get(), size_}; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::size_t capacity() const { return capacity_; }
  std::size_t free_space() const { return capacity_ - size_; }

  // Drops the first n bytes (they were sent). Remaining bytes move to the front: replies are
  // small and mostly sent whole, so this is usually a no-op or a short move.
  void consume(std::size_t n) {
    if (n >= size_) {
      size_ = 0;
      return;
    }
    std::memmove(data_.get(), data_.get() + n, size_ - n);
    size_ -= n;
  }
  void clear() { size_ = 0; }
  // Rolls back to an earlier size (used to undo a partially written multi-part output).
  void truncate(std::size_t n) {
    if (n < size_) size_ = n;
  }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t capacity_;
  std::size_t size_ = 0;
};

}  // namespace ringmta::buf
