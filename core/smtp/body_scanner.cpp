// Message content scanning; see body_scanner.hpp. The byte-at-a-time state machine is the
// reference; skip_blocks() is a fast path that only skips blocks the state machine would
// pass through without any event, and is tested against it.
#include "core/smtp/body_scanner.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ringmta::smtp {
namespace {
constexpr std::string_view kHeldBytes = ".\r";  // what can be held back, in order
}  // namespace

void BodyScanner::begin_data() { *this = BodyScanner(simd_); }

void BodyScanner::begin_chunked() {
  *this = BodyScanner(simd_);
  dot_mode_ = false;
}

void BodyScanner::end_line() {
  // line_len_ holds the octets before the LF (CR included); RFC 5321 4.5.3.1.6 counts the LF.
  if (line_len_ + 1 > kMaxTextLine) flaws_ |= kFlawLongLine;
  line_len_ = 0;
}

bool BodyScanner::step(unsigned char c) {
  if (c >= 0x80) has_8bit_ = true;
  switch (state_) {
    case State::line_start:
      if (c == '.') {
        ++dot_lines_;
        if (dot_mode_) {
          state_ = State::dot;  // the transparency dot is not counted in line_len_
          return false;
        }
      }
      [[fallthrough]];
    case State::mid:
      if (c == '\r') {
        state_ = State::cr;
      } else if (c == '\n') {
        flaws_ |= kFlawBareLf;  // a bare LF never ends a line or the data
        state_ = State::mid;
        line_len_ = 0;
        return false;
      } else {
        state_ = State::mid;
      }
      ++line_len_;
      return false;
    case State::cr:
      if (c == '\n') {
        state_ = State::line_start;
        end_line();
        return false;
      }
      flaws_ |= kFlawBareCr;
      state_ = State::mid;
      return step(c);
    case State::dot:
      ++stuffed_dots_;  // RFC 5321 4.5.2: the first dot of a line that continues is removed
      if (c == '\r') {
        --stuffed_dots_;  // not yet known: ".\r\n" is the end, not a stuffed line
        state_ = State::dot_cr;
        return false;
      }
      state_ = State::mid;
      return step(c);
    case State::dot_cr:
      if (c == '\n') return true;
      ++stuffed_dots_;
      flaws_ |= kFlawBareCr;
      state_ = State::mid;
      ++line_len_;  // the CR
      return step(c);
  }
  return false;
}

std::size_t BodyScanner::skip_blocks(const char* in, std::size_t pos, std::size_t end) {
#if defined(__SSE2__)
  if (!simd_) return pos;
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i dot = _mm_set1_epi8('.');
  while (end - pos >= 64 && (state_ == State::mid || state_ == State::line_start)) {
    std::uint64_t crm = 0, lfm = 0, dotm = 0, highm = 0;
    for (int i = 0; i < 4; ++i) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + pos + 16 * i));
      const auto shift = static_cast<unsigned>(16 * i);
      crm |= static_cast<std::uint64_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, cr))) << shift;
      lfm |= static_cast<std::uint64_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf))) << shift;
      dotm |= static_cast<std::uint64_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, dot))) << shift;
      highm |= static_cast<std::uint64_t>(_mm_movemask_epi8(v)) << shift;
    }
    // A block is skipped only if every CR is followed by LF and every LF preceded by CR
    // inside it (no CR in the last byte: its LF would be in the next block). A '.' that
    // begins a line is skipped too when it is plain stuffing (not followed by CR, and not
    // in the last byte); ".\r" may be the end of data and is left to step().
    const std::uint64_t line_starts = (lfm << 1) | (state_ == State::line_start ? 1U : 0U);
    const std::uint64_t dots = line_starts & dotm;
    if (lfm != (crm << 1) || (crm >> 63) != 0 || (dots >> 63) != 0 || (dots & (crm >> 1)) != 0) {
      return pos;
    }
    if (highm != 0) has_8bit_ = true;
    // The transparency dot of a stuffed line is not part of its length (RFC 5321 4.5.3.1.6).
    const std::uint64_t uncounted = dot_mode_ ? dots : 0;
    if (dots != 0) {
      const auto k = static_cast<std::uint64_t>(__builtin_popcountll(dots));
      dot_lines_ += k;
      if (dot_mode_) stuffed_dots_ += k;
    }
    if (lfm == 0) {
      line_len_ += 64 - (uncounted & 1U);
    } else {
      const auto first = static_cast<std::size_t>(__builtin_ctzll(lfm));
      line_len_ += first - (uncounted & 1U);
      end_line();
      const auto last = static_cast<std::size_t>(63 - __builtin_clzll(lfm));
      // Lines wholly inside the block are shorter than 64 octets: nothing to check.
      line_len_ = last == 63 ? 0 : 63 - last - ((uncounted >> (last + 1)) & 1U);
    }
    state_ = (lfm >> 63) != 0 ? State::line_start : State::mid;
    pos += 64;
  }
#else
  (void)in;
  (void)end;
#endif
  return pos;
}

BodyScanner::DataStep BodyScanner::scan_data(std::string_view in) {
  DataStep r;
  const std::size_t carried = held_;  // bytes of "." / ".\r" held from earlier inputs
  bool carried_pending = carried != 0;
  std::size_t pos = 0;
  const std::size_t n = in.size();
  std::size_t scalar_until = 0;  // after the fast path refused a block, step through it
  while (pos < n) {
    if (pos >= scalar_until) {
      const std::size_t next = skip_blocks(in.data(), pos, n);
      if (next == pos) scalar_until = pos + 64;
      pos = next;
      if (pos >= n) break;
    }
    const State before = state_;
    const bool done = step(static_cast<unsigned char>(in[pos]));
    ++pos;
    if (done) {
      // The terminator is ".\r\n"; its first bytes may have been carried in.
      const std::size_t in_input = 3 - (carried_pending ? carried : 0);
      const std::size_t body_end = pos - in_input;
      r.body = in.substr(0, body_end);
      r.consumed = pos;
      r.done = true;
      wire_octets_ += r.released.size() + body_end;
      --dot_lines_;  // the terminator's dot was counted as a line start
      held_ = 0;
      return r;
    }
    if (carried_pending && (before == State::dot || before == State::dot_cr) &&
        state_ != State::dot_cr) {
      // The carried bytes turned out to be body.
      r.released = kHeldBytes.substr(0, carried);
      carried_pending = false;
    }
  }
  // End of input: a trailing "." or ".\r" after a line start may begin the terminator.
  std::size_t held_total = 0;
  if (state_ == State::dot) held_total = 1;
  if (state_ == State::dot_cr) held_total = 2;
  const std::size_t held_here = held_total - (carried_pending ? carried : 0);
  r.body = in.substr(0, n - held_here);
  r.consumed = n;
  held_ = static_cast<std::uint8_t>(held_total);
  wire_octets_ += r.released.size() + r.body.size();
  return r;
}

void BodyScanner::scan_chunk(std::string_view in) {
  std::size_t pos = 0;
  std::size_t scalar_until = 0;
  while (pos < in.size()) {
    if (pos >= scalar_until) {
      const std::size_t next = skip_blocks(in.data(), pos, in.size());
      if (next == pos) scalar_until = pos + 64;
      pos = next;
    }
    if (pos < in.size()) step(static_cast<unsigned char>(in[pos++]));
  }
  wire_octets_ += in.size();
}

}  // namespace ringmta::smtp
