// Numeric socket addresses and listening sockets; see socket_address.hpp.
#include "core/io/socket_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace ringmta::io {

std::uint16_t SocketAddress::port() const {
  if (storage.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(storage).sin_port);
  }
  if (storage.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(storage).sin6_port);
  }
  return 0;
}

std::string SocketAddress::host() const {
  char host[INET6_ADDRSTRLEN] = "?";
  if (storage.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(storage).sin_addr, host,
              sizeof(host));
  } else if (storage.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(storage).sin6_addr, host,
              sizeof(host));
  }
  return host;
}

std::string SocketAddress::to_string() const {
  char host[INET6_ADDRSTRLEN] = "?";
  if (storage.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(storage).sin_addr, host,
              sizeof(host));
    return std::string(host) + ":" + std::to_string(port());
  }
  if (storage.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(storage).sin6_addr, host,
              sizeof(host));
    return "[" + std::string(host) + "]:" + std::to_string(port());
  }
  return "?";
}

bool parse_socket_address(std::string_view text, SocketAddress& out, std::string* why) {
  auto fail = [&](const char* reason) {
    if (why != nullptr) *why = std::string(reason) + ": \"" + std::string(text) + "\"";
    return false;
  };
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return fail("expected HOST:PORT");
  std::string host(text.substr(0, colon));
  const std::string_view port_text = text.substr(colon + 1);
  unsigned long port = 0;
  if (port_text.empty() || port_text.size() > 5) return fail("bad port");
  for (char c : port_text) {
    if (c < '0' || c > '9') return fail("bad port");
    port = port * 10 + static_cast<unsigned long>(c - '0');
  }
  if (port > 65535) return fail("port out of range");
  out = SocketAddress{};
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    auto& a6 = reinterpret_cast<sockaddr_in6&>(out.storage);
    if (inet_pton(AF_INET6, host.c_str(), &a6.sin6_addr) != 1) {
      return fail("not a numeric IPv6 address");
    }
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(static_cast<std::uint16_t>(port));
    out.length = sizeof(sockaddr_in6);
    return true;
  }
  auto& a4 = reinterpret_cast<sockaddr_in&>(out.storage);
  if (inet_pton(AF_INET, host.c_str(), &a4.sin_addr) != 1) {
    return fail("not a numeric IPv4 address (IPv6 goes in brackets; no host names)");
  }
  a4.sin_family = AF_INET;
  a4.sin_port = htons(static_cast<std::uint16_t>(port));
  out.length = sizeof(sockaddr_in);
  return true;
}

int listen_socket(const SocketAddress& addr, int backlog) {
  const int fd = ::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket(): " + std::string(std::strerror(errno)));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      ::bind(fd, reinterpret_cast<const sockaddr*>(&addr.storage), addr.length) != 0 ||
      ::listen(fd, backlog) != 0) {
    const int e = errno;
    ::close(fd);
    throw std::runtime_error("cannot listen on " + addr.to_string() + ": " + std::strerror(e));
  }
  return fd;
}

SocketAddress local_address(int fd) {
  SocketAddress a;
  a.length = sizeof(a.storage);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length);
  return a;
}

}  // namespace ringmta::io
