// Runs a ServerSession over a scripted client input and renders what happened as text: the
// server's replies ("S: ") and the handler's events ("E: ") in order. Golden tests compare
// it with .ref files; the split test checks that it does not depend on how input is cut.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/smtp/server_session.hpp"

namespace ringmta::smtp::testing {

// One step of a script: bytes the client sends (fed as one read), or the TLS handshake
// completing after STARTTLS.
struct ScriptStep {
  enum class Kind { bytes, tls };
  Kind kind = Kind::bytes;
  std::string bytes;
};

struct Script {
  ServerConfig config;
  std::vector<ScriptStep> steps;
};

// The .in format: one step per line, with C escapes (\r \n \t \\ \xHH); the file's own line
// breaks are not data. "# ..." is a comment; directives: "!config key=value ...",
// "!tls" (handshake done), "!repeat N text" (text N times, "{i}" replaced by 1..N).
Script parse_script(const std::string& text);

// How to cut each bytes step into reads: whole, or at the given offsets.
std::string run_script(const Script& script, const std::vector<std::vector<std::size_t>>& cuts = {});

// The bytes steps merged (consecutive bytes steps joined), for the split test.
Script merge_steps(const Script& script);

std::string escape(std::string_view bytes);

}  // namespace ringmta::smtp::testing
