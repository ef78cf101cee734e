// The per-thread io_uring event loop; see reactor.hpp.
#include "core/io/reactor.hpp"

#include <fcntl.h>
#include <limits.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "core/io/user_data.hpp"

// Kernel 6.2 ABI, missing from liburing 2.3's headers.
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

namespace ringmta::io {
namespace {

constexpr std::uint16_t kBufferGroup = 1;
constexpr std::uint64_t kAcceptRetryMs = 100;

std::uint64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000;
}

}  // namespace

// ---------------------------------------------------------------------------- probe

std::string Reactor::probe_kernel(const ReactorConfig& config) {
  io_uring_probe* probe = io_uring_get_probe();
  if (probe == nullptr) {
    return "io_uring is not available (io_uring_setup failed: kernel too old, or disabled "
           "by the sysctl kernel.io_uring_disabled)";
  }
  struct Needed {
    int op;
    const char* name;
  };
  const Needed needed[] = {
      {IORING_OP_ACCEPT, "IORING_OP_ACCEPT (Linux 5.5)"},
      {IORING_OP_RECV, "IORING_OP_RECV (Linux 5.6)"},
      {IORING_OP_SEND, "IORING_OP_SEND (Linux 5.6)"},
      {IORING_OP_SENDMSG, "IORING_OP_SENDMSG (Linux 5.3)"},
      {IORING_OP_SPLICE, "IORING_OP_SPLICE (Linux 5.7)"},
      {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL (Linux 5.5)"},
      {IORING_OP_READ, "IORING_OP_READ (Linux 5.6)"},
      {IORING_OP_MSG_RING, "IORING_OP_MSG_RING (Linux 5.18)"},
      {IORING_OP_SEND_ZC, "IORING_OP_SEND_ZC (Linux 6.0, needed for send_zerocopy)"},
  };
  std::string missing;
  for (const Needed& n : needed) {
    if (n.op == IORING_OP_SEND_ZC && !config.send_zerocopy) continue;
    if (io_uring_opcode_supported(probe, n.op) == 0) {
      missing += missing.empty() ? "" : ", ";
      missing += n.name;
    }
  }
  io_uring_free_probe(probe);
  // Multishot accept (5.19) and multishot receive with provided-buffer rings (6.0) cannot
  // be probed by opcode: check the version.
  utsname u{};
  int major = 0, minor = 0;
  if (uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
      (major < 6)) {
    missing += missing.empty() ? "" : ", ";
    missing += "multishot receive into provided-buffer rings (Linux 6.0; running ";
    missing += u.release;
    missing += ")";
  }
  return missing.empty() ? "" : "the kernel lacks io_uring features: " + missing;
}

// ---------------------------------------------------------------------------- Connection

bool Connection::send(std::string_view data) {
  if (send_in_flight_ || closing_ || connecting_ || data.empty()) return false;
  iov_[0] = iovec{const_cast<char*>(data.data()), data.size()};
  iov_count_ = 1;
  return submit_send();
}

bool Connection::sendv(const iovec* iov, unsigned count) {
  if (send_in_flight_ || closing_ || connecting_ || count == 0 || count > std::size(iov_)) {
    return false;
  }
  for (unsigned i = 0; i < count; ++i) iov_[i] = iov[i];
  iov_ptr_ = iov_;
  iov_count_ = count;
  return submit_send();
}

bool Connection::sendv_owned(const iovec* iov, unsigned count) {
  if (send_in_flight_ || closing_ || connecting_ || count == 0 || count > IOV_MAX) return false;
  if (count <= std::size(iov_)) return sendv(iov, count);
  iov_ptr_ = iov;
  iov_count_ = count;
  return submit_send();
}

bool Connection::send_file(int file_fd, std::uint64_t offset, std::uint64_t len) {
  if (send_in_flight_ || closing_ || connecting_ || len == 0) return false;
  if (pipe_[0] < 0) {
    if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) return false;
    // A larger pipe moves a typical message in one pair of splices; the default (64 KiB)
    // stays if the limit refuses it.
    ::fcntl(pipe_[1], F_SETPIPE_SZ, 1 << 20);
  }
  splice_fd_ = file_fd;
  splice_offset_ = offset;
  splice_left_ = len;
  pipe_bytes_ = 0;
  splice_sent_ = 0;
  splicing_ = true;
  send_in_flight_ = true;
  submit_splice_in();
  return true;
}

void Connection::submit_splice_in() {
  const int cap = ::fcntl(pipe_[1], F_GETPIPE_SZ);
  const std::uint64_t room = cap > 0 ? static_cast<std::uint64_t>(cap) : 65536;
  const auto n = static_cast<unsigned>(splice_left_ < room ? splice_left_ : room);
  io_uring_sqe* s = reactor_->sqe();
  io_uring_prep_splice(s, splice_fd_, static_cast<std::int64_t>(splice_offset_), pipe_[1], -1, n,
                       0);
  io_uring_sqe_set_data64(s, encode_tag(OpKind::splice_in, generation_, slot_));
  ++inflight_;
}

void Connection::submit_splice_out() {
  io_uring_sqe* s = reactor_->sqe();
  io_uring_prep_splice(s, pipe_[0], -1, fd_, -1, pipe_bytes_, 0);
  io_uring_sqe_set_data64(s, encode_tag(OpKind::splice_out, generation_, slot_));
  ++inflight_;
}

bool Connection::submit_send() {
  Reactor& r = *reactor_;
  io_uring_sqe* s = r.sqe();
  std::size_t total = 0;
  for (unsigned i = 0; i < iov_count_; ++i) total += iov_ptr_[i].iov_len;
  const bool zc = r.config_.send_zerocopy && total >= r.config_.zerocopy_threshold;
  if (iov_count_ == 1 && !zc) {
    io_uring_prep_send(s, fd_, iov_ptr_[0].iov_base, iov_ptr_[0].iov_len, MSG_NOSIGNAL);
  } else if (iov_count_ == 1) {
    io_uring_prep_send_zc(s, fd_, iov_ptr_[0].iov_base, iov_ptr_[0].iov_len, MSG_NOSIGNAL,
                          IORING_SEND_ZC_REPORT_USAGE);
  } else {
    msg_ = msghdr{};
    msg_.msg_iov = const_cast<iovec*>(iov_ptr_);
    msg_.msg_iovlen = iov_count_;
    if (zc) {
      io_uring_prep_sendmsg_zc(s, fd_, &msg_, MSG_NOSIGNAL);
      s->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
    } else {
      io_uring_prep_sendmsg(s, fd_, &msg_, MSG_NOSIGNAL);
    }
  }
  io_uring_sqe_set_data64(s, encode_tag(OpKind::send, generation_, slot_));
  send_in_flight_ = true;
  ++inflight_;
  if (zc) {
    ++r.stats_.zerocopy_sends;
    zc_notif_pending_ = true;
  }
  return true;
}

void Connection::arm_recv() {
  io_uring_sqe* s = reactor_->sqe();
  io_uring_prep_recv_multishot(s, fd_, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(s, encode_tag(OpKind::recv, generation_, slot_));
  recv_armed_ = true;
  ++inflight_;
}

void Connection::pause_recv() {
  if (recv_paused_) return;
  recv_paused_ = true;
  if (recv_armed_ && !closing_) {
    io_uring_sqe* s = reactor_->sqe();
    io_uring_prep_cancel64(s, encode_tag(OpKind::recv, generation_, slot_), 0);
    io_uring_sqe_set_data64(s, encode_tag(OpKind::cancel, generation_, slot_));
    ++inflight_;
  }
}

void Connection::resume_recv() {
  if (!recv_paused_) return;
  recv_paused_ = false;
  if (!recv_armed_ && !closing_ && !recv_starved_) arm_recv();
}

void Connection::set_deadline(std::uint32_t ms) {
  if (closing_) return;
  if (ms == 0) deadline_.cancel();
  else reactor_->timers_.arm(deadline_, ms);
}

void Connection::close() {
  if (closing_) return;
  closing_ = true;
  deadline_.cancel();
  recv_starved_ = false;
  if (connecting_) {
    io_uring_sqe* s = reactor_->sqe();
    io_uring_prep_cancel64(s, encode_tag(OpKind::connect, generation_, slot_), 0);
    io_uring_sqe_set_data64(s, encode_tag(OpKind::cancel, generation_, slot_));
    ++inflight_;
  }
  if (recv_armed_) {
    io_uring_sqe* s = reactor_->sqe();
    io_uring_prep_cancel64(s, encode_tag(OpKind::recv, generation_, slot_), 0);
    io_uring_sqe_set_data64(s, encode_tag(OpKind::cancel, generation_, slot_));
    ++inflight_;
  }
  if (splicing_) {
    // A splice to a socket whose peer stopped reading waits in an io-wq worker: cancel it
    // (either half may be the one in flight).
    for (OpKind k : {OpKind::splice_in, OpKind::splice_out}) {
      io_uring_sqe* s = reactor_->sqe();
      io_uring_prep_cancel64(s, encode_tag(k, generation_, slot_), 0);
      io_uring_sqe_set_data64(s, encode_tag(OpKind::cancel, generation_, slot_));
      ++inflight_;
    }
  }
  reactor_->maybe_finish(*this);
}

// ---------------------------------------------------------------------------- Reactor

Reactor::Reactor(const ReactorConfig& config, unsigned index)
    : config_(config), index_(index), timers_(monotonic_ms()) {
  now_ms_ = timers_.now();
  // One thread submits and completion work runs when it waits: the cheapest mode (6.1).
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(config.ring_entries, &ring_, &p);
  if (rc < 0) {
    p = io_uring_params{};
    rc = io_uring_queue_init_params(config.ring_entries, &ring_, &p);
  }
  if (rc < 0) throw std::runtime_error(std::string("io_uring_setup: ") + std::strerror(-rc));
  try {
    buffers_ = std::make_unique<BufferRing>(ring_, kBufferGroup, config.buffer_count,
                                            config.buffer_size);
  } catch (...) {
    io_uring_queue_exit(&ring_);
    throw;
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  grace_.set_callback(
      [](Timer&, void* ctx) {
        auto* self = static_cast<Reactor*>(ctx);
        for (auto& c : self->slots_) {
          if (c && !c->closing_) c->close();
        }
      },
      this);
}

Reactor::~Reactor() {
  for (auto& c : slots_) {
    if (c && c->fd_ >= 0) ::close(c->fd_);
  }
  slots_.clear();
  for (auto& l : listeners_) {
    if (l->fd >= 0) ::close(l->fd);
  }
  buffers_.reset();
  io_uring_queue_exit(&ring_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

io_uring_sqe* Reactor::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (s == nullptr) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  if (s == nullptr) throw std::runtime_error("io_uring submission queue stays full");
  return s;
}

void Reactor::update_clock() { now_ms_ = monotonic_ms(); }

void Reactor::add_listener(int fd, ListenHandler& handler) {
  auto l = std::make_unique<Listener>();
  l->owner = this;
  l->index = static_cast<std::uint32_t>(listeners_.size());
  l->fd = fd;
  l->handler = &handler;
  l->retry.set_callback(
      [](Timer&, void* ctx) {
        auto* self = static_cast<Listener*>(ctx);
        self->owner->arm_accept(self->index);
      },
      l.get());
  listeners_.push_back(std::move(l));
}

void Reactor::arm_accept(std::uint32_t index) {
  Listener& l = *listeners_[index];
  if (l.armed || l.fd < 0 || stopping_) return;
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, encode_tag(OpKind::accept, 0, index));
  l.armed = true;
}

void Reactor::arm_wake() {
  io_uring_sqe* s = sqe();
  io_uring_prep_read(s, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
  io_uring_sqe_set_data64(s, encode_tag(OpKind::wake, 0, 0));
}

void Reactor::request_stop() {
  stop_requested_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

bool Reactor::post(Reactor& target, std::uint32_t a, std::int32_t b) {
  io_uring_sqe* s = sqe();
  io_uring_prep_msg_ring(s, target.ring_.ring_fd, static_cast<unsigned>(b),
                         encode_tag(OpKind::message, 0, a), 0);
  io_uring_sqe_set_data64(s, encode_tag(OpKind::message_sent, 0, 0));
  return true;
}

std::uint32_t Reactor::new_file_op(IoCallback cb, void* ctx) {
  std::uint32_t slot;
  if (free_file_ops_.empty()) {
    slot = static_cast<std::uint32_t>(file_ops_.size());
    file_ops_.push_back({});
  } else {
    slot = free_file_ops_.back();
    free_file_ops_.pop_back();
  }
  file_ops_[slot] = FileOp{cb, ctx};
  return slot;
}

void Reactor::submit_writev(int fd, const iovec* iov, unsigned count, std::uint64_t offset,
                            IoCallback cb, void* ctx) {
  io_uring_sqe* s = sqe();
  io_uring_prep_writev(s, fd, iov, count, offset);
  io_uring_sqe_set_data64(s, encode_tag(OpKind::file, 0, new_file_op(cb, ctx)));
}

void Reactor::submit_fsync(int fd, bool datasync, IoCallback cb, void* ctx) {
  io_uring_sqe* s = sqe();
  io_uring_prep_fsync(s, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
  io_uring_sqe_set_data64(s, encode_tag(OpKind::file, 0, new_file_op(cb, ctx)));
}

Connection* Reactor::lookup(std::uint32_t slot, std::uint32_t generation) {
  if (slot >= slots_.size()) return nullptr;
  Connection* c = slots_[slot].get();
  if (c == nullptr || c->generation_ != generation) return nullptr;
  return c;
}

void Reactor::run() {
  for (std::uint32_t i = 0; i < listeners_.size(); ++i) arm_accept(i);
  arm_wake();
  if (stop_requested_.load(std::memory_order_acquire)) begin_shutdown();
  // File operations (spool writes and syncs) hold memory until they complete: wait for them.
  while (!(stopping_ && live_ == 0 && file_ops_in_flight() == 0)) {
    update_clock();
    timers_.advance(now_ms_);
    finish_closed();
    buffers_->publish();
    rearm_starved();
    run_flush_hooks();
    const std::int64_t wait = timers_.ms_until_next();
    __kernel_timespec ts{};
    ts.tv_sec = wait / 1000;
    ts.tv_nsec = (wait % 1000) * 1'000'000;
    io_uring_cqe* cqe = nullptr;
    const int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, wait >= 0 ? &ts : nullptr,
                                                    nullptr);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) {
      throw std::runtime_error(std::string("io_uring_enter: ") + std::strerror(-rc));
    }
    update_clock();
    // Timers armed while handling these completions count from now, not from before the
    // wait (which may have lasted seconds).
    timers_.advance(now_ms_);
    finish_closed();
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      dispatch(cqe);
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    finish_closed();
    run_flush_hooks();  // before the loop's condition counts the file operations in flight
  }
}

void Reactor::add_flush_hook(FlushHook fn, void* ctx) { flush_hooks_.emplace_back(fn, ctx); }

void Reactor::remove_flush_hook(void* ctx) {
  std::erase_if(flush_hooks_, [ctx](const auto& h) { return h.second == ctx; });
}

void Reactor::run_flush_hooks() {
  for (const auto& [fn, ctx] : flush_hooks_) fn(ctx);
}

void Reactor::dispatch(io_uring_cqe* cqe) {
  const OpTag tag = decode_tag(io_uring_cqe_get_data64(cqe));
  switch (tag.kind) {
    case OpKind::accept:
      on_accept(tag.slot, cqe);
      return;
    case OpKind::wake:
      if (stop_requested_.load(std::memory_order_acquire)) {
        begin_shutdown();
      } else {
        arm_wake();
      }
      return;
    case OpKind::message:
      ++stats_.messages_received;
      if (message_handler_ != nullptr) message_handler_(*this, tag.slot, cqe->res, message_ctx_);
      return;
    case OpKind::message_sent:
    case OpKind::none:
      return;
    case OpKind::file: {
      const FileOp op = file_ops_[tag.slot];
      free_file_ops_.push_back(tag.slot);
      if (op.cb != nullptr) op.cb(op.ctx, cqe->res);
      finish_closed();
      return;
    }
    case OpKind::recv:
    case OpKind::send:
    case OpKind::cancel:
    case OpKind::close:
    case OpKind::connect:
    case OpKind::splice_in:
    case OpKind::splice_out:
      break;
  }
  Connection* c = lookup(tag.slot, tag.generation);
  if (c == nullptr) {
    // A completion for a connection already gone (should not happen: slots are freed only
    // when nothing is in flight); still give back a buffer it may carry.
    if ((cqe->flags & IORING_CQE_F_BUFFER) != 0) {
      buffers_->take(static_cast<std::uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT), 0);
    }
    return;
  }
  switch (tag.kind) {
    case OpKind::recv:
      on_recv(*c, cqe);
      return;
    case OpKind::send:
      on_send(*c, cqe);
      return;
    case OpKind::connect:
      on_connect(*c, cqe);
      return;
    case OpKind::splice_in:
    case OpKind::splice_out:
      on_splice(*c, tag.kind == OpKind::splice_in, cqe->res);
      return;
    default:  // cancel, close: only their completion matters
      op_done(*c);
      return;
  }
}

void Reactor::on_accept(std::uint32_t index, const io_uring_cqe* cqe) {
  Listener& l = *listeners_[index];
  if ((cqe->flags & IORING_CQE_F_MORE) == 0) l.armed = false;
  if (cqe->res < 0) {
    if (cqe->res == -ECANCELED || stopping_) return;
    ++stats_.accept_errors;  // EMFILE, ENFILE, ENOMEM: try again a little later
    if (!l.armed) timers_.arm(l.retry, kAcceptRetryMs);
    return;
  }
  const int fd = cqe->res;
  if (stopping_ || live_ >= config_.max_connections) {
    if (!stopping_) ++stats_.refused_over_limit;
    ::close(fd);
  } else {
    Connection& c = new_connection(fd);
    c.listener_ = index;
    c.peer_.length = sizeof(c.peer_.storage);
    getpeername(fd, reinterpret_cast<sockaddr*>(&c.peer_.storage), &c.peer_.length);
    ++stats_.accepted;
    c.handler_ = l.handler->on_accept(c);
    if (!c.handler_) {
      c.close();
    } else if (!c.closing_ && !c.recv_paused_) {
      c.arm_recv();
    }
  }
  if (!l.armed && !stopping_) arm_accept(index);
}

Connection& Reactor::new_connection(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // replies are small, send now
  std::uint32_t slot;
  if (free_slots_.empty()) {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
    generations_.push_back(0);
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
  }
  slots_[slot].reset(new Connection());
  Connection& c = *slots_[slot];
  c.reactor_ = this;
  c.fd_ = fd;
  c.slot_ = slot;
  c.generation_ = generations_[slot];
  c.deadline_.set_callback(
      [](Timer&, void* ctx) {
        auto* conn = static_cast<Connection*>(ctx);
        if (conn->connecting_) {
          // Connect took too long: cancel it; its completion closes with -ETIMEDOUT.
          conn->close_err_ = -ETIMEDOUT;
          io_uring_sqe* s = conn->reactor_->sqe();
          io_uring_prep_cancel64(s, encode_tag(OpKind::connect, conn->generation_, conn->slot_),
                                 0);
          io_uring_sqe_set_data64(s, encode_tag(OpKind::cancel, conn->generation_, conn->slot_));
          ++conn->inflight_;
          return;
        }
        if (!conn->closing_) conn->handler_->on_timeout(*conn);
      },
      &c);
  ++live_;
  return c;
}

Connection* Reactor::connect(const SocketAddress& to, std::unique_ptr<ConnectionHandler> handler,
                             std::uint32_t timeout_ms) {
  if (live_ >= config_.max_connections || stopping_) return nullptr;
  const int fd = ::socket(to.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ++stats_.connect_errors;
    return nullptr;
  }
  Connection& c = new_connection(fd);
  c.peer_ = to;
  c.handler_ = std::move(handler);
  c.connecting_ = true;
  io_uring_sqe* s = sqe();
  io_uring_prep_connect(s, fd, reinterpret_cast<const sockaddr*>(&c.peer_.storage),
                        c.peer_.length);
  io_uring_sqe_set_data64(s, encode_tag(OpKind::connect, c.generation_, c.slot_));
  ++c.inflight_;
  if (timeout_ms != 0) timers_.arm(c.deadline_, timeout_ms);
  return &c;
}

void Reactor::on_connect(Connection& c, const io_uring_cqe* cqe) {
  c.connecting_ = false;
  c.deadline_.cancel();
  if (cqe->res < 0 || c.closing_) {
    ++stats_.connect_errors;
    if (c.close_err_ == 0) c.close_err_ = cqe->res < 0 ? cqe->res : -ECANCELED;
    c.closing_ = true;  // never established: on_close only
    op_done(c);
    return;
  }
  ++stats_.connected;
  c.handler_->on_connect(c);
  if (!c.closing_ && !c.recv_paused_) c.arm_recv();
  op_done(c);
}

void Reactor::on_recv(Connection& c, const io_uring_cqe* cqe) {
  const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  const int res = cqe->res;
  if (!more) c.recv_armed_ = false;
  if (res > 0) {
    Slice data = buffers_->take(static_cast<std::uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT),
                                static_cast<std::uint32_t>(res));
    stats_.recv_bytes += static_cast<std::uint64_t>(res);
    if (!c.closing_) c.handler_->on_recv(c, std::move(data));
  } else if (res == 0) {
    c.close();  // the peer closed its side
  } else if (res == -ENOBUFS) {
    // Every receive buffer is held: backpressure, not an error. Receive again once
    // buffers come back.
    ++stats_.recv_no_buffers;
    if (!c.closing_ && !c.recv_starved_) {
      c.recv_starved_ = true;
      starved_.push_back(&c);
    }
  } else if (res != -ECANCELED) {
    c.close_err_ = res;
    c.close();
  }
  if (!more) {
    if (res > 0 && !c.closing_ && !c.recv_paused_ && !c.recv_armed_) c.arm_recv();
    op_done(c);
  }
}

void Reactor::on_send(Connection& c, const io_uring_cqe* cqe) {
  if ((cqe->flags & IORING_CQE_F_NOTIF) != 0) {
    // Zero-copy: the kernel is done with the memory only now.
    if ((static_cast<std::uint32_t>(cqe->res) & IORING_NOTIF_USAGE_ZC_COPIED) != 0) {
      ++stats_.zerocopy_copied;
    }
    c.zc_notif_pending_ = false;
    c.send_in_flight_ = false;
    if (c.zc_result_ >= 0) {
      stats_.sent_bytes += static_cast<std::uint64_t>(c.zc_result_);
      if (!c.closing_) c.handler_->on_sent(c, static_cast<std::size_t>(c.zc_result_));
    }
    op_done(c);
    return;
  }
  const int res = cqe->res;
  if (c.zc_notif_pending_ && (cqe->flags & IORING_CQE_F_MORE) != 0) {
    c.zc_result_ = res;  // report on_sent with the notification
    if (res < 0) {
      c.close_err_ = res;
      c.close();
    }
    return;
  }
  c.zc_notif_pending_ = false;
  c.send_in_flight_ = false;
  if (res < 0) {
    c.close_err_ = res;
    c.close();
  } else {
    stats_.sent_bytes += static_cast<std::uint64_t>(res);
    if (!c.closing_) c.handler_->on_sent(c, static_cast<std::size_t>(res));
  }
  op_done(c);
}

void Reactor::on_splice(Connection& c, bool in, int res) {
  if (res <= 0 || c.closing_) {
    // An error, the end of the file (it is shorter than promised), or a cancel at close.
    c.splicing_ = false;
    c.send_in_flight_ = false;
    if (!c.closing_) {
      c.close_err_ = res < 0 ? res : -EIO;
      c.close();
    }
    op_done(c);
    return;
  }
  const auto n = static_cast<std::uint32_t>(res);
  if (in) {
    c.splice_offset_ += n;
    c.splice_left_ -= n;
    c.pipe_bytes_ += n;
    c.submit_splice_out();
  } else {
    c.pipe_bytes_ -= n;
    c.splice_sent_ += n;
    stats_.sent_bytes += n;
    if (c.pipe_bytes_ != 0) {
      c.submit_splice_out();  // the socket took part of it
    } else if (c.splice_left_ != 0) {
      c.submit_splice_in();
    } else {
      c.splicing_ = false;
      c.send_in_flight_ = false;
      c.handler_->on_sent(c, static_cast<std::size_t>(c.splice_sent_));
    }
  }
  op_done(c);
}

void Reactor::op_done(Connection& c) {
  --c.inflight_;
  maybe_finish(c);
}

void Reactor::maybe_finish(Connection& c) {
  // Freed only when nothing of it is in flight; the handler's on_close runs outside any
  // handler call (finish_closed, between completions).
  if (!c.closing_ || c.inflight_ != 0 || c.finished_) return;
  c.finished_ = true;
  closed_.push_back(c.slot_);
}

void Reactor::finish_closed() {
  while (!closed_.empty()) {
    const std::uint32_t slot = closed_.back();
    closed_.pop_back();
    Connection& c = *slots_[slot];
    ::close(c.fd_);
    c.fd_ = -1;
    if (c.pipe_[0] >= 0) {
      ::close(c.pipe_[0]);
      ::close(c.pipe_[1]);
    }
    --live_;
    ++stats_.closed;
    c.handler_->on_close(c, c.close_err_);
    ++generations_[slot];
    slots_[slot].reset();
    free_slots_.push_back(slot);
  }
}

void Reactor::rearm_starved() {
  if (starved_.empty() || buffers_->in_use() >= buffers_->count()) return;
  for (Connection* c : starved_) {
    if (!c->recv_starved_) continue;  // closed meanwhile
    c->recv_starved_ = false;
    if (!c->closing_ && !c->recv_paused_ && !c->recv_armed_) c->arm_recv();
  }
  starved_.clear();
}

void Reactor::begin_shutdown() {
  if (stopping_) return;
  stopping_ = true;
  for (std::uint32_t i = 0; i < listeners_.size(); ++i) {
    Listener& l = *listeners_[i];
    l.retry.cancel();
    if (l.armed) {
      io_uring_sqe* s = sqe();
      io_uring_prep_cancel64(s, encode_tag(OpKind::accept, 0, i), 0);
      io_uring_sqe_set_data64(s, encode_tag(OpKind::none, 0, 0));
    }
    if (l.fd >= 0) ::close(l.fd);
    l.fd = -1;
  }
  for (auto& c : slots_) {
    if (c && !c->closing_) c->handler_->on_shutdown(*c);
  }
  timers_.arm(grace_, config_.shutdown_grace_ms);
}

}  // namespace ringmta::io
