// Resumable CRLF line framing; see line_framer.hpp.
#include "core/smtp/line_framer.hpp"

#include <openssl/crypto.h>

#include <cstring>

namespace ringmta::smtp {

LineFramer::LineFramer(std::size_t max_line)
    : buf_(std::make_unique_for_overwrite<char[]>(max_line)), max_line_(max_line) {}

FramedLine LineFramer::finish(std::string_view whole, std::size_t total_len) {
  // `whole` is the line including its LF (possibly cut when too long).
  FramedLine line;
  if (total_len > max_line_) {
    line.flaw = LineFlaw::too_long;
    line.text = whole.substr(0, whole.size() - 1);  // cut; only for diagnostics
    return line;
  }
  std::string_view text = whole.substr(0, whole.size() - 1);  // drop LF
  if (!text.empty() && text.back() == '\r') {
    text.remove_suffix(1);
  } else {
    line.flaw = LineFlaw::bare_lf;
  }
  if (line.flaw == LineFlaw::none && std::memchr(text.data(), '\r', text.size()) != nullptr) {
    line.flaw = LineFlaw::bare_cr;
  }
  line.text = text;
  return line;
}

void LineFramer::wipe() {
  // OPENSSL_cleanse: a memset the compiler may not remove as a dead store.
  OPENSSL_cleanse(buf_.get(), max_line_);
}

FrameStep LineFramer::next(std::string_view in) {
  FrameStep step;
  if (in.empty()) return step;
  const void* lf = std::memchr(in.data(), '\n', in.size());
  const std::size_t take =
      lf != nullptr ? static_cast<std::size_t>(static_cast<const char*>(lf) - in.data()) + 1
                    : in.size();
  step.consumed = take;
  if (partial_total_ == 0 && lf != nullptr) {
    // Common case: the whole line is in this input; hand out a view of it.
    step.has_line = true;
    step.line = finish(in.substr(0, take), take);
    return step;
  }
  // Gather into buf_, keeping at most max_line_ bytes; the rest is only counted.
  const std::size_t room = max_line_ - partial_;
  const std::size_t store = take < room ? take : room;
  std::memcpy(buf_.get() + partial_, in.data(), store);
  partial_ += store;
  partial_total_ += take;
  if (lf == nullptr) return step;
  step.has_line = true;
  step.line = finish(std::string_view(buf_.get(), partial_), partial_total_);
  partial_ = 0;
  partial_total_ = 0;
  return step;
}

}  // namespace ringmta::smtp
