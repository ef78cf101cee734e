// Scripted server sessions rendered as text; see transcript.hpp.
#include "transcript.hpp"

#include <sstream>
#include <stdexcept>

namespace ringmta::smtp::testing {
namespace {

std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    switch (c) {
      case 'r': out += '\r'; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case '\\': out += '\\'; break;
      case 'x':
        if (i + 2 >= s.size()) throw std::runtime_error("bad \\x escape: " + s);
        out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
        i += 2;
        break;
      default: throw std::runtime_error(std::string("unknown escape \\") + c);
    }
  }
  return out;
}

bool parse_bool(const std::string& v) {
  if (v == "on" || v == "true" || v == "1") return true;
  if (v == "off" || v == "false" || v == "0") return false;
  throw std::runtime_error("not a boolean: " + v);
}

void apply_config(ServerConfig& c, const std::string& key, const std::string& v) {
  if (key == "hostname") c.hostname = v;
  else if (key == "max_message_size") c.max_message_size = std::stoull(v);
  else if (key == "max_recipients") c.max_recipients = static_cast<std::uint32_t>(std::stoul(v));
  else if (key == "pipelining") c.pipelining = parse_bool(v);
  else if (key == "size") c.size = parse_bool(v);
  else if (key == "8bitmime") c.eight_bit_mime = parse_bool(v);
  else if (key == "smtputf8") c.smtputf8 = parse_bool(v);
  else if (key == "enhancedstatuscodes") c.enhanced_status_codes = parse_bool(v);
  else if (key == "chunking") c.chunking = parse_bool(v);
  else if (key == "dsn") c.dsn = parse_bool(v);
  else if (key == "starttls") c.starttls = parse_bool(v);
  else if (key == "require_tls") c.require_tls = parse_bool(v);
  else if (key == "auth") c.auth = parse_bool(v);
  else if (key == "auth_requires_tls") c.auth_requires_tls = parse_bool(v);
  else if (key == "max_auth_failures") c.max_auth_failures = static_cast<std::uint32_t>(std::stoul(v));
  else throw std::runtime_error("unknown config key: " + key);
}

// The golden handler: recipients whose local part starts with "reject" get 550, "defer"
// 450; a sender "reject@..." gets 550; a message is always deferred (as the relay defers
// until its spool sync) and resumed by the driver with "250 2.0.0 Ok: queued as N".
// AUTH: alice/s3cret is accepted, a user "tempfail" gets a temporary failure, "locked" is
// over the (relay's) per-client limit, everything else is refused.
class RecordingHandler : public ServerHandler {
 public:
  explicit RecordingHandler(std::string& log) : log_(log) {}
  void attach(ServerSession* s) { session_ = s; }

  Decision on_helo(const Command& c) override {
    event(std::string(verb_name(c.verb)) + " " + std::string(c.argument));
    return Decision::accept();
  }
  Decision on_mail(const Command& c) override {
    event("mail from=<" + path(c.path) + ">" + mail_params(c.mail));
    if (c.path.local_part == "reject") {
      return Decision::respond({550, {5, 7, 1}, "Sender rejected by test policy"});
    }
    return Decision::accept();
  }
  Decision on_rcpt(const Command& c) override {
    event("rcpt to=<" + path(c.path) + ">");
    if (c.path.local_part.rfind("reject", 0) == 0) {
      return Decision::respond({550, {5, 1, 1}, "Recipient rejected by test policy"});
    }
    if (c.path.local_part.rfind("defer", 0) == 0) {
      return Decision::respond({450, {4, 2, 0}, "Recipient deferred by test policy"});
    }
    return Decision::accept();
  }
  Decision on_data_start(BodyFormat) override {
    event("data-start");
    body_.clear();
    return Decision::accept();
  }
  void on_body(std::string_view b) override { body_.append(b); }
  Decision on_message(const MessageInfo& m) override {
    std::ostringstream o;
    o << "message format=" << (m.format == BodyFormat::raw ? "raw" : "dot-stuffed")
      << " wire=" << m.wire_octets << " size=" << m.message_octets
      << " dot-lines=" << m.dot_lines << " 8bit=" << (m.has_8bit ? 1 : 0)
      << " rcpts=" << m.recipients << " body=\"" << escape(body_) << "\"";
    event(o.str());
    return Decision::defer();
  }
  AuthVerdict on_auth(const AuthCredentials& c) override {
    event("auth " + std::string(mechanism_name(c.mechanism)) + " user=\"" + escape(c.user) +
          "\" password-octets=" + std::to_string(c.password.size()));
    if (c.user == "tempfail") return AuthVerdict::temporary_failure;
    if (c.user == "locked") return AuthVerdict::too_many_failures;
    return c.user == "alice" && c.password == "s3cret" ? AuthVerdict::accept
                                                       : AuthVerdict::reject;
  }
  void on_transaction_abort() override {
    event("abort");
    body_.clear();
  }

  void drain() {
    // Renders whole reply lines from the session's output.
    std::string_view out = session_->output();
    std::size_t used = 0;
    while (true) {
      const std::size_t eol = out.find("\r\n", used);
      if (eol == std::string_view::npos) break;
      log_ += "S: " + escape(out.substr(used, eol - used)) + "\n";
      used = eol + 2;
    }
    session_->consume_output(used);
  }

 private:
  static std::string path(const Path& p) {
    if (p.null) return "";
    if (p.postmaster) return std::string(p.local_part);
    return std::string(p.local_part) + "@" + std::string(p.domain);
  }
  static std::string mail_params(const MailParams& m) {
    std::string s;
    if (m.has_size) s += " size=" + std::to_string(m.size);
    if (m.body == BodyType::seven_bit) s += " body=7bit";
    if (m.body == BodyType::eight_bit_mime) s += " body=8bitmime";
    if (m.smtputf8) s += " smtputf8";
    return s;
  }
  void event(const std::string& e) {
    drain();  // replies written before this event come first
    log_ += "E: " + e + "\n";
  }

  std::string& log_;
  ServerSession* session_ = nullptr;
  std::string body_;
};

}  // namespace

std::string escape(std::string_view bytes) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c < 32 || c >= 127) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

Script parse_script(const std::string& text) {
  Script script;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("!config", 0) == 0) {
      std::istringstream kv(line.substr(7));
      std::string item;
      while (kv >> item) {
        const std::size_t eq = item.find('=');
        if (eq == std::string::npos) throw std::runtime_error("bad !config item: " + item);
        apply_config(script.config, item.substr(0, eq), item.substr(eq + 1));
      }
    } else if (line == "!tls") {
      script.steps.push_back({ScriptStep::Kind::tls, {}});
    } else if (line.rfind("!repeat ", 0) == 0) {
      const std::size_t sp = line.find(' ', 8);
      const int n = std::stoi(line.substr(8, sp - 8));
      const std::string pattern = line.substr(sp + 1);
      std::string bytes;
      for (int i = 1; i <= n; ++i) {
        std::string one = pattern;
        const std::size_t at = one.find("{i}");
        if (at != std::string::npos) one.replace(at, 3, std::to_string(i));
        bytes += unescape(one);
      }
      script.steps.push_back({ScriptStep::Kind::bytes, bytes});
    } else if (line[0] == '!') {
      throw std::runtime_error("unknown directive: " + line);
    } else {
      script.steps.push_back({ScriptStep::Kind::bytes, unescape(line)});
    }
  }
  return script;
}

Script merge_steps(const Script& script) {
  Script merged;
  merged.config = script.config;
  for (const ScriptStep& s : script.steps) {
    if (s.kind == ScriptStep::Kind::bytes && !merged.steps.empty() &&
        merged.steps.back().kind == ScriptStep::Kind::bytes) {
      merged.steps.back().bytes += s.bytes;
    } else {
      merged.steps.push_back(s);
    }
  }
  return merged;
}

std::string run_script(const Script& script, const std::vector<std::vector<std::size_t>>& cuts) {
  std::string log;
  RecordingHandler handler(log);
  ServerSession session(script.config, handler);
  handler.attach(&session);
  session.start();
  handler.drain();
  int queued = 0;
  std::size_t bytes_step = 0;
  // Feeds one read, honouring deferred decisions and output backpressure as a caller would.
  auto feed_read = [&](std::string_view data) {
    for (int guard = 0; !data.empty(); ++guard) {
      if (guard > 100000) throw std::runtime_error("session makes no progress");
      const std::size_t used = session.feed(data);
      data.remove_prefix(used);
      handler.drain();
      if (session.waiting()) {
        ++queued;
        const std::string text = "Ok: queued as " + std::to_string(queued);
        session.resume(Reply{250, {2, 0, 0}, text});
        handler.drain();
      }
      if (session.closed() || session.wants_tls()) {
        data = {};  // the rest is never read as plaintext
      }
    }
  };
  for (const ScriptStep& step : script.steps) {
    if (step.kind == ScriptStep::Kind::tls) {
      log += "E: tls-handshake\n";
      session.tls_started();
      continue;
    }
    std::vector<std::size_t> at;
    if (bytes_step < cuts.size()) at = cuts[bytes_step];
    ++bytes_step;
    std::size_t from = 0;
    for (std::size_t cut : at) {
      if (cut <= from || cut >= step.bytes.size()) continue;
      feed_read(std::string_view(step.bytes).substr(from, cut - from));
      from = cut;
    }
    feed_read(std::string_view(step.bytes).substr(from));
  }
  log += "summary: " + session.summary() + "\n";
  return log;
}

}  // namespace ringmta::smtp::testing
