// HOST:PORT parsing and listening sockets. Addresses are numeric only (no DNS, by design:
// tests and benchmarks stay on loopback): "127.0.0.1:2525", "[::1]:2525", "0.0.0.0:0".
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace ringmta::io {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  std::uint16_t port() const;
  std::string to_string() const;  // "127.0.0.1:2525" / "[::1]:2525"
  std::string host() const;       // "127.0.0.1" / "::1"
};

// Parses HOST:PORT; returns false with a reason in *why.
bool parse_socket_address(std::string_view text, SocketAddress& out, std::string* why);

// A listening TCP socket with SO_REUSEADDR and SO_REUSEPORT (one per reactor thread, so the
// kernel spreads connections across threads). Throws std::runtime_error with the address.
int listen_socket(const SocketAddress& addr, int backlog);
// The address a socket is bound to (to learn the port chosen for port 0).
SocketAddress local_address(int fd);

}  // namespace ringmta::io
