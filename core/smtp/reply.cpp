// Writing SMTP reply lines; see reply.hpp.
#include "core/smtp/reply.hpp"

namespace ringmta::smtp {
namespace {

bool write_line(buf::OutBuffer& out, std::uint16_t code, char sep, const EnhancedCode* e,
                std::string_view text) {
  // Worst case: 3 digits, separator, "5.123.456 ", text, CRLF; cut text to stay in the limit.
  const std::size_t before = out.size();
  char head[4] = {static_cast<char>('0' + code / 100 % 10), static_cast<char>('0' + code / 10 % 10),
                  static_cast<char>('0' + code % 10), sep};
  bool ok = out.append(std::string_view(head, 4));
  if (e != nullptr && e->present()) {
    ok = ok && out.append(static_cast<char>('0' + e->cls)) && out.append('.') &&
         out.append_uint(e->subject) && out.append('.') && out.append_uint(e->detail) &&
         out.append(' ');
  }
  const std::size_t used = out.size() - before;
  const std::size_t room = kMaxReplyLine - 2 > used ? kMaxReplyLine - 2 - used : 0;
  if (text.size() > room) text = text.substr(0, room);
  for (std::size_t i = 0; ok && i < text.size();) {
    // Copy runs without CR/LF at once; a CR or LF in text would end the line early.
    std::size_t j = i;
    while (j < text.size() && text[j] != '\r' && text[j] != '\n') ++j;
    ok = out.append(text.substr(i, j - i));
    if (ok && j < text.size()) ok = out.append(' ');
    i = j + (j < text.size() ? 1 : 0);
  }
  ok = ok && out.append("\r\n");
  if (!ok) out.truncate(before);
  return ok;
}

}  // namespace

bool write_reply(buf::OutBuffer& out, const Reply& r, bool with_enhanced) {
  return write_line(out, r.code, ' ', with_enhanced ? &r.enhanced : nullptr, r.text);
}

bool write_reply_continuation(buf::OutBuffer& out, std::uint16_t code, std::string_view text) {
  return write_line(out, code, '-', nullptr, text);
}

}  // namespace ringmta::smtp
