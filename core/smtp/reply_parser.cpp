// Reply assembly and EHLO capabilities; see reply_parser.hpp.
#include "core/smtp/reply_parser.hpp"

#include <cstring>

#include "core/smtp/ascii.hpp"

namespace ringmta::smtp {

std::size_t parse_enhanced_code(std::string_view text, std::uint16_t code, EnhancedCode& out) {
  // class "." subject "." detail, class in {2,4,5}, subject and detail 1*3digit.
  if (text.size() < 5 || !is_digit(static_cast<unsigned char>(text[0])) || text[1] != '.') {
    return 0;
  }
  const int cls = text[0] - '0';
  if ((cls != 2 && cls != 4 && cls != 5) || cls != code / 100) return 0;
  std::size_t i = 2;
  std::uint64_t parts[2] = {0, 0};
  for (int p = 0; p < 2; ++p) {
    const std::size_t start = i;
    while (i < text.size() && is_digit(static_cast<unsigned char>(text[i]))) ++i;
    if (!parse_decimal(text.substr(start, i - start), 3, parts[p])) return 0;
    if (p == 0) {
      if (i >= text.size() || text[i] != '.') return 0;
      ++i;
    }
  }
  if (i < text.size() && text[i] != ' ') return 0;
  out.cls = static_cast<std::uint8_t>(cls);
  out.subject = static_cast<std::uint16_t>(parts[0]);
  out.detail = static_cast<std::uint16_t>(parts[1]);
  return i < text.size() ? i + 1 : i;
}

ReplyParser::ReplyParser(std::size_t max_line, std::size_t max_text)
    : framer_(max_line),
      text_(std::make_unique_for_overwrite<char[]>(max_text)),
      max_text_(max_text) {}

ReplyError ReplyParser::take_line(std::string_view line, bool& last) {
  // Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF
  if (line.size() < 3 || !is_digit(static_cast<unsigned char>(line[0])) ||
      !is_digit(static_cast<unsigned char>(line[1])) ||
      !is_digit(static_cast<unsigned char>(line[2])) || line[0] < '2' || line[0] > '5') {
    return ReplyError::malformed;
  }
  if (line.size() > 3 && line[3] != ' ' && line[3] != '-') return ReplyError::malformed;
  const auto code = static_cast<std::uint16_t>((line[0] - '0') * 100 + (line[1] - '0') * 10 +
                                               (line[2] - '0'));
  if (lines_ == 0) {
    code_ = code;
    enhanced_ = EnhancedCode{};
  } else if (code != code_) {
    return ReplyError::code_mismatch;
  }
  last = line.size() == 3 || line[3] == ' ';
  std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
  if (lines_ == 0) text.remove_prefix(parse_enhanced_code(text, code, enhanced_));
  // Keep the text of every line, '\n'-separated, as far as it fits.
  if (lines_ != 0 && text_len_ < max_text_) text_[text_len_++] = '\n';
  const std::size_t n = std::min(text.size(), max_text_ - text_len_);
  if (n != 0) std::memcpy(text_.get() + text_len_, text.data(), n);
  text_len_ += n;
  ++lines_;
  return ReplyError::none;
}

ReplyParser::Step ReplyParser::next(std::string_view in) {
  Step s;
  while (s.consumed < in.size()) {
    if (lines_ != 0 && reply_.code != 0) {
      // The previous call returned a complete reply: start a new one.
      lines_ = 0;
      text_len_ = 0;
      reply_ = Reply{};
    }
    const FrameStep f = framer_.next(in.substr(s.consumed));
    s.consumed += f.consumed;
    if (!f.has_line) break;
    switch (f.line.flaw) {
      case LineFlaw::none:
        break;
      case LineFlaw::too_long:
        s.error = ReplyError::too_long;
        return s;
      case LineFlaw::bare_cr:
      case LineFlaw::bare_lf:
        s.error = ReplyError::bare_newline;
        return s;
    }
    bool last = false;
    s.error = take_line(f.line.text, last);
    if (s.error != ReplyError::none) return s;
    if (last) {
      reply_ = Reply{code_, enhanced_, std::string_view(text_.get(), text_len_)};
      s.complete = true;
      return s;
    }
  }
  return s;
}

Capabilities parse_ehlo_capabilities(std::string_view text) {
  Capabilities caps;
  caps.esmtp = true;
  bool first = true;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (first) {  // the greeting line: "domain [text]"
      first = false;
      continue;
    }
    const std::size_t sp = line.find(' ');
    const std::string_view kw = line.substr(0, sp);
    const std::string_view args = sp == std::string_view::npos ? std::string_view{}
                                                               : line.substr(sp + 1);
    if (iequals(kw, "PIPELINING")) caps.pipelining = true;
    else if (iequals(kw, "8BITMIME")) caps.eight_bit_mime = true;
    else if (iequals(kw, "SMTPUTF8")) caps.smtputf8 = true;
    else if (iequals(kw, "ENHANCEDSTATUSCODES")) caps.enhanced_status_codes = true;
    else if (iequals(kw, "CHUNKING")) caps.chunking = true;
    else if (iequals(kw, "BINARYMIME")) caps.binary_mime = true;
    else if (iequals(kw, "DSN")) caps.dsn = true;
    else if (iequals(kw, "STARTTLS")) caps.starttls = true;
    else if (iequals(kw, "SIZE")) {
      caps.size = true;
      std::uint64_t v = 0;
      if (parse_decimal(args, 20, v)) caps.max_size = v;
    } else if (iequals(kw, "AUTH")) {
      std::string_view rest = args;
      while (!rest.empty()) {
        const std::size_t e = rest.find(' ');
        const std::string_view mech = rest.substr(0, e);
        if (iequals(mech, "PLAIN")) caps.auth_plain = true;
        if (iequals(mech, "LOGIN")) caps.auth_login = true;
        rest = e == std::string_view::npos ? std::string_view{} : rest.substr(e + 1);
      }
    }
  }
  return caps;
}

}  // namespace ringmta::smtp
