// The reactor over real loopback sockets: an echo handler on one reactor thread, blocking
// clients in the test thread. Receive, send, peer close, many connections, deadlines,
// pause/resume, graceful stop, stale completions, and messages between two reactors.
#include "core/io/reactor.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/io/user_data.hpp"

namespace ringmta::io {
namespace {

// Echoes what it receives; "pause" pauses receiving for 100 ms; "timeout" arms a 50 ms
// deadline that closes; "close" closes.
class Echo : public ConnectionHandler {
 public:
  explicit Echo(std::atomic<int>& closed) : closed_(closed) {}
  void on_recv(Connection& c, Slice data) override {
    const std::string_view v = data.view();
    if (v.rfind("close", 0) == 0) {
      c.close();
      return;
    }
    if (v.rfind("timeout", 0) == 0) {
      c.set_deadline(50);
      return;
    }
    if (v.rfind("pause", 0) == 0) {
      c.pause_recv();
      resume_.set_callback([](Timer&, void* ctx) {
        static_cast<Connection*>(ctx)->resume_recv();
      }, &c);
      c.reactor().timers().arm(resume_, 100);
    }
    pending_.append(v);
    flush(c);
  }
  void on_sent(Connection& c, std::size_t n) override {
    out_.erase(0, n);  // the send is complete: out_ may change now
    if (!out_.empty()) {
      c.send(out_);  // the rest of a partial send
      return;
    }
    flush(c);
  }
  void on_timeout(Connection& c) override {
    timed_out_ = true;
    c.close();
  }
  void on_shutdown(Connection& c) override {
    if (!c.sending()) {
      out_ = "bye\n";
      c.send(out_);
    }
    c.close();
  }
  void on_close(Connection&, int) override { closed_.fetch_add(1); }

 private:
  void flush(Connection& c) {
    if (c.sending() || !out_.empty() || pending_.empty()) return;
    out_.swap(pending_);
    c.send(out_);
  }
  std::atomic<int>& closed_;
  std::string pending_;
  std::string out_;  // in flight: unchanged until on_sent
  bool timed_out_ = false;
  Timer resume_;
};

class EchoListener : public ListenHandler {
 public:
  std::unique_ptr<ConnectionHandler> on_accept(Connection&) override {
    accepted.fetch_add(1);
    return std::make_unique<Echo>(closed);
  }
  std::atomic<int> accepted{0};
  std::atomic<int> closed{0};
};

struct Server {
  explicit Server(ReactorConfig cfg = {}) {
    SocketAddress any;
    std::string why;
    EXPECT_TRUE(parse_socket_address("127.0.0.1:0", any, &why)) << why;
    listen_fd = listen_socket(any, 1024);
    port = local_address(listen_fd).port();
    thread = std::thread([this, cfg] {
      Reactor r(cfg, 0);
      reactor.store(&r);
      r.add_listener(listen_fd, listener);
      r.run();
      stats = r.stats();
      reactor.store(nullptr);
      done = true;
    });
    while (reactor.load() == nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Server() { stop(); }
  void stop() {
    if (thread.joinable()) {
      if (Reactor* r = reactor.load()) r->request_stop();
      thread.join();
    }
  }
  int listen_fd = -1;
  std::uint16_t port = 0;
  EchoListener listener;
  std::atomic<Reactor*> reactor{nullptr};
  std::thread thread;
  ReactorStats stats;
  std::atomic<bool> done{false};
};

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

// Reads until n bytes or EOF/timeout.
std::string read_n(int fd, std::size_t n, int timeout_ms = 2000) {
  std::string out;
  while (out.size() < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) break;
    char buf[65536];
    const ssize_t r = ::read(fd, buf, sizeof(buf));
    if (r <= 0) break;
    out.append(buf, static_cast<std::size_t>(r));
  }
  return out;
}

bool wait_eof(int fd, int timeout_ms = 2000) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return false;
  char c;
  return ::read(fd, &c, 1) == 0;
}

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    ASSERT_GT(n, 0);
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

TEST(UserData, RoundTrips) {
  const OpTag t = decode_tag(encode_tag(OpKind::send, 0xABCDEF, 123456));
  EXPECT_EQ(t.kind, OpKind::send);
  EXPECT_EQ(t.generation, 0xABCDEFu);
  EXPECT_EQ(t.slot, 123456u);
  EXPECT_EQ(decode_tag(encode_tag(OpKind::recv, 0x1ABCDEF, 1)).generation, 0xABCDEFu);
}

TEST(Reactor, KernelHasWhatWeNeed) {
  EXPECT_EQ(Reactor::probe_kernel(ReactorConfig{}), "");
}

TEST(Reactor, EchoesAndSeesThePeerClose) {
  Server s;
  const int fd = connect_to(s.port);
  write_all(fd, "hello\r\n");
  EXPECT_EQ(read_n(fd, 7), "hello\r\n");
  ::close(fd);
  for (int i = 0; i < 200 && s.listener.closed.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(s.listener.closed.load(), 1);
}

TEST(Reactor, LargeTransferAcrossManyBuffers) {
  ReactorConfig cfg;
  cfg.buffer_count = 8;  // 8 x 4 KiB: forces buffer reuse and ENOBUFS backpressure
  cfg.buffer_size = 4096;
  Server s(cfg);
  const int fd = connect_to(s.port);
  std::string big;
  for (int i = 0; big.size() < 4 << 20; ++i) big += "line " + std::to_string(i) + "\r\n";
  std::thread writer([&] { write_all(fd, big); });
  const std::string back = read_n(fd, big.size(), 10000);
  writer.join();
  EXPECT_EQ(back.size(), big.size());
  EXPECT_TRUE(back == big);
  ::close(fd);
  s.stop();
  EXPECT_GT(s.stats.recv_no_buffers.get(), 0u);  // the backpressure path ran and recovered
  EXPECT_EQ(s.stats.recv_bytes.get(), big.size());
}

TEST(Reactor, ZeroCopySendsCountTheKernelsCopies) {
  // On loopback the kernel copies zero-copy sends anyway: the fall-back must be counted,
  // and the data must arrive intact (memory held until the notification).
  ReactorConfig cfg;
  cfg.send_zerocopy = true;
  cfg.zerocopy_threshold = 1024;
  Server s(cfg);
  const int fd = connect_to(s.port);
  std::string big(256 * 1024, 'z');
  for (std::size_t i = 0; i < big.size(); i += 97) big[i] = static_cast<char>('a' + i % 26);
  std::thread writer([&] { write_all(fd, big); });
  const std::string back = read_n(fd, big.size(), 10000);
  writer.join();
  EXPECT_TRUE(back == big);
  ::close(fd);
  s.stop();
  EXPECT_GT(s.stats.zerocopy_sends.get(), 0u);
  EXPECT_GT(s.stats.zerocopy_copied.get(), 0u);
  EXPECT_EQ(s.stats.sent_bytes.get(), big.size());
}

TEST(Reactor, ManyConnectionsAtOnce) {
  Server s;
  std::vector<int> fds;
  for (int i = 0; i < 500; ++i) fds.push_back(connect_to(s.port));
  for (std::size_t i = 0; i < fds.size(); ++i) write_all(fds[i], "c" + std::to_string(i) + "\n");
  for (std::size_t i = 0; i < fds.size(); ++i) {
    const std::string want = "c" + std::to_string(i) + "\n";
    EXPECT_EQ(read_n(fds[i], want.size()), want);
  }
  for (int fd : fds) ::close(fd);
  for (int i = 0; i < 400 && s.listener.closed.load() < 500; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(s.listener.accepted.load(), 500);
  EXPECT_EQ(s.listener.closed.load(), 500);
}

TEST(Reactor, HandlerCloseAndDeadline) {
  Server s;
  const int a = connect_to(s.port);
  write_all(a, "close\n");
  EXPECT_TRUE(wait_eof(a));
  const int b = connect_to(s.port);
  const auto t0 = std::chrono::steady_clock::now();
  write_all(b, "timeout\n");
  EXPECT_TRUE(wait_eof(b));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(ms, 45);
  EXPECT_LT(ms, 1000);
  ::close(a);
  ::close(b);
}

TEST(Reactor, PauseHoldsInputUntilResumed) {
  Server s;
  const int fd = connect_to(s.port);
  write_all(fd, "pause\n");
  EXPECT_EQ(read_n(fd, 6), "pause\n");
  write_all(fd, "after\n");
  // Paused for 100 ms: nothing comes back at once, then it does.
  EXPECT_EQ(read_n(fd, 6, 30), "");
  EXPECT_EQ(read_n(fd, 6, 2000), "after\n");
  ::close(fd);
}

TEST(Reactor, GracefulStopLetsHandlersSayGoodbye) {
  Server s;
  const int fd = connect_to(s.port);
  write_all(fd, "x\n");
  EXPECT_EQ(read_n(fd, 2), "x\n");
  s.stop();
  EXPECT_TRUE(s.done.load());
  EXPECT_EQ(read_n(fd, 4), "bye\n");
  EXPECT_TRUE(wait_eof(fd));
  // The listener is closed: a new connection is refused.
  const int again = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(s.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_NE(::connect(again, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(again);
  ::close(fd);
  EXPECT_EQ(s.stats.accepted.get(), 1u);
  EXPECT_EQ(s.stats.closed.get(), 1u);
}

// An outbound client: sends "ping\n" when connected, records what it gets back.
class Pinger : public ConnectionHandler {
 public:
  struct Result {
    std::atomic<int> connected{0};
    std::atomic<int> closed{0};
    std::atomic<int> last_err{1};
    std::string echoed;
  };
  explicit Pinger(Result& r) : r_(r) {}
  void on_connect(Connection& c) override {
    r_.connected.fetch_add(1);
    c.send(msg_);
  }
  void on_recv(Connection& c, Slice data) override {
    r_.echoed.append(data.view());
    if (r_.echoed.size() >= msg_.size()) c.close();
  }
  void on_sent(Connection&, std::size_t) override {}
  void on_timeout(Connection& c) override { c.close(); }
  void on_shutdown(Connection& c) override { c.close(); }
  void on_close(Connection&, int err) override {
    r_.last_err.store(err);
    r_.closed.fetch_add(1);
  }

 private:
  Result& r_;
  std::string msg_ = "ping\n";
};

// Runs one reactor on a thread that opens a connection to `to` and stops once it closed.
void run_client(const SocketAddress& to, Pinger::Result& result, std::uint32_t timeout_ms) {
  std::thread t([&] {
    Reactor r(ReactorConfig{}, 0);
    struct Ctx {
      Reactor* r;
      const SocketAddress* to;
      Pinger::Result* res;
      std::uint32_t timeout;
    } ctx{&r, &to, &result, timeout_ms};
    Timer start;
    start.set_callback([](Timer&, void* p) {
      auto* c = static_cast<Ctx*>(p);
      c->r->connect(*c->to, std::make_unique<Pinger>(*c->res), c->timeout);
    }, &ctx);
    Timer watch;
    watch.set_callback([](Timer& self, void* p) {
      auto* c = static_cast<Ctx*>(p);
      if (c->res->closed.load() > 0) c->r->request_stop();
      else c->r->timers().arm(self, 5);
    }, &ctx);
    r.timers().arm(start, 1);
    r.timers().arm(watch, 5);
    r.run();
  });
  t.join();
}

TEST(Reactor, OutboundConnectSendsAndReceives) {
  Server s;
  SocketAddress to;
  ASSERT_TRUE(parse_socket_address("127.0.0.1:" + std::to_string(s.port), to, nullptr));
  Pinger::Result res;
  run_client(to, res, 2000);
  EXPECT_EQ(res.connected.load(), 1);
  EXPECT_EQ(res.echoed, "ping\n");
  EXPECT_EQ(res.last_err.load(), 0);
}

TEST(Reactor, OutboundConnectRefused) {
  // A port nobody listens on: the kernel refuses at once.
  const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len);
  const std::uint16_t port = ntohs(a.sin_port);
  ::close(probe);  // bound then closed: nothing listens there
  SocketAddress to;
  ASSERT_TRUE(parse_socket_address("127.0.0.1:" + std::to_string(port), to, nullptr));
  Pinger::Result res;
  run_client(to, res, 2000);
  EXPECT_EQ(res.connected.load(), 0);
  EXPECT_EQ(res.last_err.load(), -ECONNREFUSED);
}

TEST(Reactor, OutboundConnectTimesOut) {
  // A listener whose accept queue is full never completes the handshake in time: SYNs to it
  // are dropped, so connect() hangs until our deadline.
  const int l = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::listen(l, 0);
  getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {  // fill the backlog (never accepted)
    const int f = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(f, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    fillers.push_back(f);
  }
  SocketAddress to;
  ASSERT_TRUE(parse_socket_address("127.0.0.1:" + std::to_string(ntohs(a.sin_port)), to, nullptr));
  Pinger::Result res;
  const auto t0 = std::chrono::steady_clock::now();
  run_client(to, res, 200);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0).count();
  for (int f : fillers) ::close(f);
  ::close(l);
  if (res.connected.load() == 1) GTEST_SKIP() << "the kernel accepted the handshake anyway";
  EXPECT_EQ(res.last_err.load(), -ETIMEDOUT);
  EXPECT_GE(ms, 190);
  EXPECT_LT(ms, 2000);
}

// An outbound client that sends a header in many caller-owned pieces (sendv_owned), then a
// file by splice (send_file), then closes.
class FileSender : public ConnectionHandler {
 public:
  FileSender(int file_fd, std::uint64_t offset, std::uint64_t len, std::atomic<int>& closed,
             std::uint64_t& sent)
      : file_fd_(file_fd), offset_(offset), len_(len), closed_(closed), sent_(sent) {
    for (int i = 0; i < 40; ++i) pieces_.push_back("piece-" + std::to_string(i) + ";");
    for (const std::string& p : pieces_) iov_.push_back(iovec{const_cast<char*>(p.data()), p.size()});
  }
  void on_connect(Connection& c) override {
    ASSERT_TRUE(c.sendv_owned(iov_.data(), static_cast<unsigned>(iov_.size())));
  }
  void on_recv(Connection&, Slice) override {}
  void on_sent(Connection& c, std::size_t n) override {
    sent_ += n;
    if (!file_started_) {
      file_started_ = true;  // the pieces are small: one send took them all
      ASSERT_TRUE(c.send_file(file_fd_, offset_, len_));
      return;
    }
    c.close();
  }
  void on_timeout(Connection& c) override { c.close(); }
  void on_shutdown(Connection& c) override { c.close(); }
  void on_close(Connection&, int) override { closed_.fetch_add(1); }

 private:
  int file_fd_;
  std::uint64_t offset_, len_;
  std::atomic<int>& closed_;
  std::uint64_t& sent_;
  std::vector<std::string> pieces_;
  std::vector<iovec> iov_;
  bool file_started_ = false;
};

TEST(Reactor, SendsCallerOwnedPiecesThenAFileBySplice) {
  // A 3 MiB file (larger than a pipe) sent from an odd offset to a blocking reader.
  char path[] = "/tmp/ringmta-splice-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  std::string content(3 * 1024 * 1024 + 777, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 23);
  ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  const std::uint64_t offset = 13;
  const std::uint64_t len = content.size() - offset - 5;

  const int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof(a);
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(l, 4), 0);
  ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &alen);
  SocketAddress to;
  ASSERT_TRUE(parse_socket_address("127.0.0.1:" + std::to_string(ntohs(a.sin_port)), to, nullptr));

  std::atomic<int> closed{0};
  std::uint64_t sent = 0;
  std::thread client([&] {
    Reactor r(ReactorConfig{}, 0);
    r.connect(to, std::make_unique<FileSender>(fd, offset, len, closed, sent), 2000);
    std::pair<Reactor*, std::atomic<int>*> ctx{&r, &closed};
    Timer watch;
    watch.set_callback([](Timer& self, void* p) {
      auto* c = static_cast<std::pair<Reactor*, std::atomic<int>*>*>(p);
      if (c->second->load() > 0) c->first->request_stop();
      else c->first->timers().arm(self, 5);
    }, &ctx);
    r.timers().arm(watch, 5);
    r.run();
  });
  const int conn = ::accept(l, nullptr, nullptr);
  ASSERT_GE(conn, 0);
  std::string got;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(conn, buf, sizeof(buf));
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  client.join();
  ::close(conn);
  ::close(l);
  ::close(fd);
  std::string expected;
  for (int i = 0; i < 40; ++i) expected += "piece-" + std::to_string(i) + ";";
  expected += content.substr(offset, len);
  ASSERT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
  EXPECT_EQ(sent, expected.size());
}

TEST(Reactor, MessagesBetweenReactors) {
  // Two reactors on two threads ping-pong a counter through IORING_OP_MSG_RING (no locks);
  // the first post comes from a timer on reactor a's own thread.
  struct Side {
    std::atomic<Reactor*> self{nullptr};
    Side* other = nullptr;
    std::atomic<int> last{-1};
    std::atomic<int> received{0};
    Timer kick;
  };
  Side a, b;
  a.other = &b;
  b.other = &a;
  auto on_message = [](Reactor& r, std::uint32_t tag, std::int32_t value, void* p) {
    auto* side = static_cast<Side*>(p);
    side->last.store(value);
    side->received.fetch_add(1);
    EXPECT_EQ(tag, 7u);
    if (value < 1000) {
      r.post(*side->other->self.load(), tag, value + 1);
    } else {
      r.request_stop();
      side->other->self.load()->request_stop();
    }
  };
  auto body = [&](Side& side, unsigned index, bool starts) {
    Reactor r(ReactorConfig{}, index);
    r.set_message_handler(on_message, &side);
    side.self.store(&r);
    while (side.other->self.load() == nullptr) std::this_thread::yield();
    if (starts) {
      side.kick.set_callback([](Timer&, void* p) {
        auto* s = static_cast<Side*>(p);
        s->self.load()->post(*s->other->self.load(), 7, 0);
      }, &side);
      r.timers().arm(side.kick, 1);
    }
    r.run();
    EXPECT_GE(r.stats().messages_received.get(), 500u);
    // Keep this reactor alive until the other one has stopped posting to it.
    while (side.other->self.load() != nullptr && side.other->last.load() < 1000 &&
           side.last.load() < 1000) {
      std::this_thread::yield();
    }
  };
  std::thread ta([&] { body(a, 0, true); });
  std::thread tb([&] { body(b, 1, false); });
  ta.join();
  tb.join();
  EXPECT_EQ(std::max(a.last.load(), b.last.load()), 1000);
  EXPECT_EQ(a.received.load() + b.received.load(), 1001);
}

}  // namespace
}  // namespace ringmta::io
