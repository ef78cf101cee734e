// The per-thread event loop: one io_uring, one provided-buffer ring, one timer wheel, its
// own listening sockets and connections (shared-nothing, DESIGN.md decision 2). Every
// operation carries one user_data encoding (user_data.hpp) and every completion goes through
// one dispatch, with errors handled apart from success. A connection's memory is freed only
// after every operation it started has completed, cancellations included.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/io/buffer_ring.hpp"
#include "core/io/socket_address.hpp"
#include "core/io/timer_wheel.hpp"

namespace ringmta::io {

struct ReactorConfig {
  unsigned ring_entries = 1024;
  unsigned buffer_count = 1024;          // receive buffers per thread (power of two)
  unsigned buffer_size = 16 * 1024;      // bytes per receive buffer
  std::size_t max_connections = 1 << 20; // per thread; beyond, new connections are closed
  bool send_zerocopy = false;            // IORING_OP_SEND_ZC for sends of at least:
  std::size_t zerocopy_threshold = 16 * 1024;
  unsigned shutdown_grace_ms = 10'000;   // sessions still open after this are closed
};

// A counter written by one thread and readable from any (a scrape): relaxed load + store,
// no locked instruction on the hot path, never a torn read.
class StatCounter {
 public:
  StatCounter() = default;
  StatCounter(const StatCounter& o) : v_(o.get()) {}
  StatCounter& operator=(const StatCounter& o) {
    v_.store(o.get(), std::memory_order_relaxed);
    return *this;
  }
  StatCounter& operator+=(std::uint64_t n) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    return *this;
  }
  StatCounter& operator++() { return *this += 1; }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }
  operator std::uint64_t() const { return get(); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// Per-thread counters of one reactor (single writer: its thread).
struct ReactorStats {
  StatCounter accepted;
  StatCounter accept_errors;
  StatCounter refused_over_limit;
  StatCounter closed;
  StatCounter recv_bytes;
  StatCounter sent_bytes;
  StatCounter recv_no_buffers;  // -ENOBUFS: backpressure, receive re-armed later
  StatCounter zerocopy_sends;
  StatCounter zerocopy_copied;  // the kernel fell back to copying (always on loopback)
  StatCounter messages_received;
  StatCounter connected;        // outbound connections established
  StatCounter connect_errors;   // outbound connections that failed (timeouts included)
};

class Reactor;
class Connection;

// The logic of one connection (a session). Called on the reactor's thread only.
class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  // Received bytes; the handler may keep the Slice (it keeps the buffer) or copy it.
  virtual void on_recv(Connection& c, Slice data) = 0;
  // A send() finished: `bytes` of it went out (less than asked: send the rest).
  virtual void on_sent(Connection& c, std::size_t bytes) = 0;
  virtual void on_timeout(Connection& c) = 0;
  // The reactor is stopping: finish up (e.g. say 421) and close().
  virtual void on_shutdown(Connection& c) = 0;
  // Last call: the connection is gone (err: 0 for an orderly close, else -errno; an
  // outbound connection that never connected gets only this, e.g. -ECONNREFUSED).
  virtual void on_close(Connection& c, int err) = 0;
  // Outbound connections (Reactor::connect): the connection is established.
  virtual void on_connect(Connection&) {}
};

class ListenHandler {
 public:
  virtual ~ListenHandler() = default;
  // A connection arrived; return its handler (owned by the connection from now on).
  virtual std::unique_ptr<ConnectionHandler> on_accept(Connection& c) = 0;
};

class Connection {
 public:
  Reactor& reactor() const { return *reactor_; }
  int fd() const { return fd_; }
  const SocketAddress& peer() const { return peer_; }
  std::uint32_t listener() const { return listener_; }
  ConnectionHandler* handler() const { return handler_.get(); }

  // Sends data; the memory must stay valid and unchanged until on_sent. One send at a time:
  // returns false if one is in flight or the connection is closing.
  bool send(std::string_view data);
  bool sendv(const iovec* iov, unsigned count);  // up to 8 pieces, copied
  // Up to IOV_MAX pieces; the array itself (not only what it points at) must stay valid
  // until on_sent.
  bool sendv_owned(const iovec* iov, unsigned count);
  // Sends len bytes of file_fd from offset by splice through a pipe of this connection: the
  // bytes go from the page cache to the socket without a copy in user memory. on_sent
  // reports the bytes sent (all of them, or fewer after an error that closes the
  // connection). file_fd must stay open until then.
  bool send_file(int file_fd, std::uint64_t offset, std::uint64_t len);
  bool sending() const { return send_in_flight_; }
  // Stops receiving (the handler holds too much unread input) and starts again.
  void pause_recv();
  void resume_recv();
  bool recv_paused() const { return recv_paused_; }
  // on_timeout after ms without a new deadline; 0 disarms.
  void set_deadline(std::uint32_t ms);
  // Closes once the send in flight (if any) completed; on_close follows.
  void close();
  bool closing() const { return closing_; }
  bool connecting() const { return connecting_; }

 private:
  friend class Reactor;
  Connection() = default;
  void arm_recv();
  bool submit_send();
  void submit_splice_in();
  void submit_splice_out();

  Reactor* reactor_ = nullptr;
  std::unique_ptr<ConnectionHandler> handler_;
  SocketAddress peer_{};
  int fd_ = -1;
  std::uint32_t slot_ = 0;
  std::uint32_t generation_ = 0;
  std::uint32_t listener_ = 0;
  unsigned inflight_ = 0;  // operations submitted and not yet completed
  bool recv_armed_ = false;
  bool recv_paused_ = false;
  bool recv_starved_ = false;
  bool send_in_flight_ = false;
  bool zc_notif_pending_ = false;
  int zc_result_ = 0;
  bool closing_ = false;
  bool connecting_ = false;  // outbound, connect() not completed yet
  bool finished_ = false;
  int close_err_ = 0;
  msghdr msg_{};
  iovec iov_[8]{};
  const iovec* iov_ptr_ = iov_;  // iov_ or the caller's array (sendv_owned)
  unsigned iov_count_ = 0;
  // send_file: file -> pipe -> socket.
  int pipe_[2] = {-1, -1};
  int splice_fd_ = -1;
  std::uint64_t splice_offset_ = 0;
  std::uint64_t splice_left_ = 0;   // file bytes not yet in the pipe
  std::uint32_t pipe_bytes_ = 0;    // bytes in the pipe, not yet on the socket
  std::uint64_t splice_sent_ = 0;   // bytes on the socket so far
  bool splicing_ = false;
  Timer deadline_;
};

class Reactor {
 public:
  // Sets up the ring and the buffer ring; throws std::runtime_error naming what the kernel
  // lacks.
  Reactor(const ReactorConfig& config, unsigned index);
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;
  ~Reactor();

  // Before run(): serve a listening socket (the reactor closes it at shutdown).
  void add_listener(int fd, ListenHandler& handler);
  // Opens an outbound TCP connection (IORING_OP_CONNECT) owned by handler: on_connect when
  // established, or on_close(-errno) alone if it fails or takes longer than timeout_ms
  // (-ETIMEDOUT). Returns nullptr (handler dropped) when over max_connections or out of fds.
  Connection* connect(const SocketAddress& to, std::unique_ptr<ConnectionHandler> handler,
                      std::uint32_t timeout_ms);
  // Runs until request_stop() and every connection closed (or the grace time passed).
  void run();
  // Thread-safe.
  void request_stop();
  bool stopping() const { return stopping_; }

  // Cross-thread messages (IORING_OP_MSG_RING, no locks): called on this reactor's thread,
  // delivers (a, b) to target's message handler on target's thread.
  using MessageHandler = void (*)(Reactor&, std::uint32_t a, std::int32_t b, void* ctx);
  void set_message_handler(MessageHandler h, void* ctx) {
    message_handler_ = h;
    message_ctx_ = ctx;
  }
  bool post(Reactor& target, std::uint32_t a, std::int32_t b);

  // File I/O on this thread's ring (the spool): cb(ctx, res) runs on this thread with the
  // bytes written or -errno. The iovecs and their memory must stay valid until then.
  using IoCallback = void (*)(void* ctx, int res);
  void submit_writev(int fd, const iovec* iov, unsigned count, std::uint64_t offset,
                     IoCallback cb, void* ctx);
  // fdatasync when datasync, else fsync; only after the writes it must cover completed
  // (io_uring does not order operations unless linked).
  void submit_fsync(int fd, bool datasync, IoCallback cb, void* ctx);
  std::size_t file_ops_in_flight() const { return file_ops_.size() - free_file_ops_.size(); }

  // Called after each round of completions and before the reactor waits: work gathered
  // during a round goes out as one operation (the spool writer's appends become one
  // writev). A hook may submit operations; it must not block.
  using FlushHook = void (*)(void* ctx);
  void add_flush_hook(FlushHook fn, void* ctx);
  void remove_flush_hook(void* ctx);

  TimerWheel& timers() { return timers_; }
  std::uint64_t now_ms() const { return now_ms_; }
  unsigned index() const { return index_; }
  const ReactorStats& stats() const { return stats_; }
  std::size_t connection_count() const { return live_; }
  BufferRing& buffers() { return *buffers_; }
  const ReactorConfig& config() const { return config_; }

  // What the running kernel lacks for this configuration, or "" (checked at start).
  static std::string probe_kernel(const ReactorConfig& config);

 private:
  friend class Connection;
  void run_flush_hooks();
  std::vector<std::pair<FlushHook, void*>> flush_hooks_;
  struct Listener {
    Reactor* owner = nullptr;
    std::uint32_t index = 0;
    int fd = -1;
    ListenHandler* handler = nullptr;
    bool armed = false;
    Timer retry;  // re-arms accept after an error (EMFILE...)
  };

  io_uring_sqe* sqe();
  void arm_accept(std::uint32_t index);
  void arm_wake();
  void dispatch(io_uring_cqe* cqe);
  void on_accept(std::uint32_t index, const io_uring_cqe* cqe);
  void on_recv(Connection& c, const io_uring_cqe* cqe);
  void on_send(Connection& c, const io_uring_cqe* cqe);
  void on_connect(Connection& c, const io_uring_cqe* cqe);
  void on_splice(Connection& c, bool in, int res);
  Connection& new_connection(int fd);
  void op_done(Connection& c);
  void maybe_finish(Connection& c);
  void finish_closed();
  void begin_shutdown();
  void rearm_starved();
  Connection* lookup(std::uint32_t slot, std::uint32_t generation);
  void update_clock();

  ReactorConfig config_;
  unsigned index_;
  io_uring ring_{};
  std::unique_ptr<BufferRing> buffers_;
  TimerWheel timers_;
  std::uint64_t now_ms_ = 0;
  ReactorStats stats_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<Connection>> slots_;
  std::vector<std::uint32_t> generations_;
  std::vector<std::uint32_t> free_slots_;
  std::vector<std::uint32_t> closed_;  // finished connections, freed between completions
  std::vector<Connection*> starved_;
  struct FileOp {
    IoCallback cb = nullptr;
    void* ctx = nullptr;
  };
  std::vector<FileOp> file_ops_;
  std::vector<std::uint32_t> free_file_ops_;
  std::uint32_t new_file_op(IoCallback cb, void* ctx);
  std::size_t live_ = 0;
  int wake_fd_ = -1;
  std::uint64_t wake_value_ = 0;
  std::atomic<bool> stop_requested_{false};
  bool stopping_ = false;
  Timer grace_;
  MessageHandler message_handler_ = nullptr;
  void* message_ctx_ = nullptr;
};

}  // namespace ringmta::io
