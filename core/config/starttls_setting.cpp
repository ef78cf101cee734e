// STARTTLS settings shared by the relay's and the sink's loaders; see starttls_setting.hpp.
// The texts are the ones both loaders wrote before they shared them.
#include "core/config/starttls_setting.hpp"

namespace ringmta::config {

bool set_starttls(std::string_view text, smtp::ServerConfig& server) {
  if (text == "off") {
    server.starttls = server.require_tls = false;
  } else if (text == "on") {
    server.starttls = true;
    server.require_tls = false;
  } else if (text == "required") {
    server.starttls = server.require_tls = true;
  } else {
    return false;
  }
  return true;
}

std::string_view starttls_text(const smtp::ServerConfig& server) {
  return !server.starttls ? "off" : server.require_tls ? "required" : "on";
}

std::string_view missing_tls_files(const smtp::ServerConfig& server, std::string_view cert,
                                   std::string_view key) {
  if (!server.starttls || (!cert.empty() && !key.empty())) return {};
  return "needs tls-cert and tls-key (--tls-cert FILE --tls-key FILE)";
}

}  // namespace ringmta::config
