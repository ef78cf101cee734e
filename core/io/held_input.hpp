// Received plaintext a server session has not taken yet (it was waiting for a decision, or
// its output was full), kept as the receive buffers' own slices, and the receive
// backpressure that goes with it. Shared by the relay's inbound sessions and the sink.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "core/io/buffer_ring.hpp"
#include "core/io/reactor.hpp"

namespace ringmta::io {

class HeldInput {
 public:
  // Stop receiving above this much held input, start again below the lower mark.
  static constexpr std::size_t kPauseAbove = 64 * 1024;
  static constexpr std::size_t kResumeBelow = 16 * 1024;

  void push(Slice data) {
    bytes_ += data.size();
    slices_.push_back(std::move(data));
  }
  void clear() {
    slices_.clear();
    bytes_ = 0;
  }
  std::size_t bytes() const { return bytes_; }
  const std::vector<Slice>& slices() const { return slices_; }

  // Hands the slices to the session in order while it takes them and `more()` holds (it is
  // asked again after each slice: a callback may have decided to close); a slice the
  // session took part of stays, trimmed.
  template <class Session, class More>
  void feed(Session& session, More more) {
    while (!slices_.empty() && !session.waiting() && more()) {
      Slice& s = slices_.front();
      const std::size_t used = session.feed(s.view());
      bytes_ -= used;
      s.remove_prefix(used);
      if (!s.empty()) break;  // the session paused: deferred, output full, closed
      slices_.erase(slices_.begin());
    }
  }

  // Pauses or resumes `c` by how much input waits (these slices, or a TLS stream's
  // plaintext): the client is held back by TCP instead of by our memory.
  static void apply_backpressure(Connection& c, std::size_t held) {
    if (held > kPauseAbove) c.pause_recv();
    else if (held < kResumeBelow && c.recv_paused()) c.resume_recv();
  }

 private:
  std::vector<Slice> slices_;
  std::size_t bytes_ = 0;
};

}  // namespace ringmta::io
