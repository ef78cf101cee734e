// STARTTLS on the server side as ringmta-relay and ringmta-sink configure it: `starttls =
// off|on|required` (--starttls), with `tls-cert` and `tls-key`. One reading and one set of
// texts for both loaders; each keeps its own Value type and its own way of naming where a
// refused setting came from. (The loadgen's `starttls` is a client switch: not this.)
#pragma once

#include <string>
#include <string_view>

#include "core/smtp/server_session.hpp"

namespace ringmta::config {

// --help texts of the three settings.
inline constexpr std::string_view kStarttlsHelp =
    "off (default), on (offer STARTTLS, RFC 3207) or required (530 5.7.0 to MAIL before TLS)";
inline constexpr std::string_view kTlsCertHelp = "STARTTLS: PEM certificate chain, leaf first";
inline constexpr std::string_view kTlsKeyHelp = "STARTTLS: PEM private key";

// Sets server.starttls and server.require_tls from "off", "on" or "required". False, with
// server unchanged, for any other text.
bool set_starttls(std::string_view text, smtp::ServerConfig& server);

// "off", "on" or "required": what set_starttls reads back (for --print-config).
std::string_view starttls_text(const smtp::ServerConfig& server);

// `starttls` read from a loader's value type V, which has text(expected), shown() and a
// [[noreturn]] fail(reason) naming where the value came from (config::Value, the sink's
// Value). Refused as "must be off, on or required, got 'maybe'".
template <class V>
void read_starttls(const V& v, smtp::ServerConfig& server) {
  if (!set_starttls(v.text("off, on or required"), server)) {
    v.fail("must be off, on or required, got " + v.shown());
  }
}

// Empty when STARTTLS is off or both files are named; else the reason to refuse it, which the
// loader writes after its own prefix ("--starttls: ", "listener ADDR: starttls "). Whether the
// files can be read is found where the TLS context loads them (io::TlsContext::server).
std::string_view missing_tls_files(const smtp::ServerConfig& server, std::string_view cert,
                                   std::string_view key);

}  // namespace ringmta::config
