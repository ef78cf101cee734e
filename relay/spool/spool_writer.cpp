// Spool segments, writes and group commit; see spool_writer.hpp.
#include "relay/spool/spool_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "relay/spool/crc32c.hpp"
#include "relay/spool/record.hpp"

namespace ringmta::spool {
namespace {

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000 +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t unix_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

bool make_dir(const std::string& path) {
  return ::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST;
}

bool fsync_dir(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

constexpr std::uint64_t kRetryCreateMs = 100;

}  // namespace

const char* durability_name(Durability d) {
  switch (d) {
    case Durability::batch: return "batch";
    case Durability::always: return "always";
    case Durability::none: return "none";
  }
  return "?";
}

SpoolWriter::SpoolWriter(io::Reactor& reactor, const SpoolConfig& config, SpoolTotals& totals,
                         unsigned thread, std::uint64_t first_sequence)
    : reactor_(reactor),
      config_(config),
      totals_(totals),
      thread_(thread),
      dir_(config.dir + "/t" + std::to_string(thread)),
      next_sequence_(first_sequence + 1),
      // Thread in the top byte; then microseconds since the epoch, so ids keep growing
      // across restarts (a restart takes longer than the ids a run can use per microsecond).
      next_id_((static_cast<std::uint64_t>(thread) << 56) | (unix_us() & ((1ull << 56) - 1))),
      batch_timer_(&SpoolWriter::on_timer, this) {
  if (!make_dir(config.dir) || !make_dir(dir_)) {
    throw std::runtime_error("cannot create spool directory " + dir_ + ": " +
                             std::strerror(errno));
  }
  int err = 0;
  if (!open_segment(config_.segment_bytes, &err)) {
    throw std::runtime_error("cannot create a spool segment in " + dir_ + ": " +
                             std::strerror(-err));
  }
  reactor_.add_flush_hook(&SpoolWriter::flush_hook, this);
}

SpoolWriter::~SpoolWriter() {
  reactor_.remove_flush_hook(this);
  for (Segment* s : segments_) {
    if (s->fd >= 0) ::close(s->fd);
    delete s;
  }
}

bool SpoolWriter::open_segment(std::uint64_t size, int* err) {
  char name[64];
  std::snprintf(name, sizeof(name), "/seg-%016llx.log",
                static_cast<unsigned long long>(next_sequence_));
  const std::string path = dir_ + name;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    *err = -errno;
    return false;
  }
  // Preallocated: writes inside the segment never hit ENOSPC, and fdatasync need not
  // update the file size.
  const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
  std::string first;
  std::string payload;
  encode_segment_payload(SegmentInfo{thread_, next_sequence_, unix_us() / 1000}, payload);
  RecordHeader h;
  h.type = RecordType::segment;
  h.length = static_cast<std::uint32_t>(payload.size());
  h.payload_crc = crc32c(payload);
  first.resize(kHeaderSize);
  encode_header(h, first.data());
  first += payload;
  const bool ok = rc == 0 &&
                  ::pwrite(fd, first.data(), first.size(), 0) ==
                      static_cast<ssize_t>(first.size()) &&
                  ::fdatasync(fd) == 0 && fsync_dir(dir_);
  if (!ok) {
    *err = rc != 0 ? -rc : -errno;
    ::close(fd);
    ::unlink(path.c_str());
    return false;
  }
  auto* s = new Segment;
  s->fd = fd;
  s->sequence = next_sequence_++;
  s->end = first.size();
  s->capacity = size;
  s->path = path;
  segments_.push_back(s);
  current_ = s;
  if (segment_observer_ != nullptr) segment_observer_(segment_ctx_, s->sequence);
  return true;
}

void SpoolWriter::retire(Segment* s) {
  s->retired = true;
  if (current_ == s) current_ = nullptr;
  if (s->users == 0) release(s);
}

void SpoolWriter::release(Segment* s) {
  if (s->users > 0) --s->users;
  if (!s->retired || s->users != 0) return;
  ::close(s->fd);
  s->fd = -1;
  for (std::size_t i = 0; i < segments_.size(); ++i) {
    if (segments_[i] == s) {
      segments_[i] = segments_.back();
      segments_.pop_back();
      break;
    }
  }
  delete s;
}

void SpoolWriter::append(PendingMessage& m) {
  if (totals_.failed.load(std::memory_order_relaxed)) {
    m.done(m, -EIO);
    return;
  }
  const std::uint64_t total = kHeaderSize + m.payload_bytes;
  if (current_ == nullptr || current_->end + total > current_->capacity) {
    if (reactor_.now_ms() < retry_after_ms_) {
      m.done(m, -ENOSPC);
      return;
    }
    close_batch();
    if (current_ != nullptr) retire(current_);
    int err = 0;
    const std::uint64_t size =
        total + 4096 > config_.segment_bytes ? total + 4096 : config_.segment_bytes;
    if (!open_segment(size, &err)) {
      retry_after_ms_ = reactor_.now_ms() + kRetryCreateMs;  // do not hammer a full disk
      if (!create_failing_) {  // one line per outage, not one per message
        create_failing_ = true;
        std::fprintf(stderr,
                     "ringmta-relay: cannot create a spool segment in %s: %s; mail gets 451 "
                     "until one can be created\n",
                     dir_.c_str(), std::strerror(-err));
      }
      m.done(m, err);
      return;
    }
    if (create_failing_) {
      create_failing_ = false;
      std::fprintf(stderr, "ringmta-relay: spool segments can be created in %s again\n",
                   dir_.c_str());
    }
  }
  RecordHeader h;
  h.type = m.type;
  h.length = static_cast<std::uint32_t>(m.payload_bytes);
  h.payload_crc = m.payload_crc;
  encode_header(h, m.header);
  m.iov[0] = iovec{m.header, kHeaderSize};
  m.offset = current_->end;
  m.segment_sequence = current_->sequence;
  m.segment = current_;
  m.written = false;
  m.result = 0;
  m.next = nullptr;
  m.batch = nullptr;
  m.writer = this;
  current_->end += total;
  ++current_->users;
  if (m.type == RecordType::message) {
    totals_.bytes.fetch_add(total, std::memory_order_relaxed);
    totals_.messages.fetch_add(1, std::memory_order_relaxed);
  }
  if (config_.durability == Durability::batch) {
    Batch& b = open_;
    if (b.segments.empty() || b.segments.back() != current_) {
      b.segments.push_back(current_);  // a sync must cover every segment of the batch
      ++current_->users;
    }
    if (b.count == 0) {
      if (config_.batch_max_wait_us != 0) {
        reactor_.timers().arm(batch_timer_, (config_.batch_max_wait_us + 999) / 1000);
      }
    }
    if (b.tail != nullptr) b.tail->next = &m;
    else b.head = &m;
    b.tail = &m;
    ++b.count;
    ++b.unwritten;
    m.batch = &open_;
  }
  // Gathered with the other appends of this round (contiguous in the segment).
  if (gather_ != nullptr &&
      (gather_->records.back()->segment != current_ || gather_->iov.size() + m.iov.size() > IOV_MAX)) {
    flush_writes();
  }
  if (gather_ == nullptr) {
    gather_ = free_gathers_;
    if (gather_ != nullptr) {
      free_gathers_ = gather_->next_free;
    } else {
      all_gathers_.push_back(std::make_unique<GatherWrite>());
      gather_ = all_gathers_.back().get();
      gather_->writer = this;
    }
    gather_->records.clear();
    gather_->iov.clear();
    gather_->bytes = 0;
  }
  gather_->records.push_back(&m);
  gather_->iov.insert(gather_->iov.end(), m.iov.begin(), m.iov.end());
  gather_->bytes += total;
  if (config_.durability == Durability::batch) {
    if (open_.count >= config_.batch_max_messages) close_batch();
    maybe_sync();
  }
}

void SpoolWriter::flush_hook(void* ctx) { static_cast<SpoolWriter*>(ctx)->flush_writes(); }

void SpoolWriter::flush_writes() {
  GatherWrite* g = gather_;
  if (g == nullptr) return;
  gather_ = nullptr;
  const PendingMessage& first = *g->records.front();
  reactor_.submit_writev(first.segment->fd, g->iov.data(), static_cast<unsigned>(g->iov.size()),
                         first.offset, &SpoolWriter::on_gather_written, g);
}

void SpoolWriter::on_gather_written(void* ctx, int res) {
  auto* g = static_cast<GatherWrite*>(ctx);
  SpoolWriter& w = *g->writer;
  // The records wholly inside what was written are; a short write leaves the rest out.
  std::uint64_t done = res > 0 ? static_cast<std::uint64_t>(res) : 0;
  const int err = res < 0 ? res : -EIO;
  for (PendingMessage* m : g->records) {
    const std::uint64_t size = kHeaderSize + m->payload_bytes;
    const bool ok = done >= size;
    done = ok ? done - size : 0;
    w.record_written(*m, ok, err);  // may finish m (its owner may reuse it): not used after
  }
  g->next_free = w.free_gathers_;
  w.free_gathers_ = g;
}

void SpoolWriter::record_written(PendingMessage& m, bool ok, int err) {
  m.written = true;
  if (!ok) {
    // A failed or short write may leave part of a record behind: nothing more goes into
    // this segment (recovery skips the damage), the message gets a temporary failure.
    m.result = err;
    if (m.segment == current_) {
      close_batch();
      retire(m.segment);
    }
  }
  switch (config_.durability) {
    case Durability::none:
      finish(m, m.result);  // on the page cache only: the mode says so
      return;
    case Durability::always:
      if (m.result != 0) {
        finish(m, m.result);
        return;
      }
      reactor_.submit_fsync(m.segment->fd, true, &SpoolWriter::on_sync_one, &m);
      return;
    case Durability::batch: {
      auto* b = static_cast<Batch*>(m.batch);
      --b->unwritten;
      maybe_sync();
      return;
    }
  }
}

void SpoolWriter::on_sync_one(void* ctx, int res) {
  auto& m = *static_cast<PendingMessage*>(ctx);
  SpoolWriter& w = *m.writer;
  if (res < 0) {
    w.sync_failed(res);
    w.finish(m, -EIO);
    return;
  }
  ++w.stats_.syncs;
  w.finish(m, 0);
}

void SpoolWriter::on_timer(io::Timer&, void* ctx) {
  auto& w = *static_cast<SpoolWriter*>(ctx);
  w.close_batch();
  w.maybe_sync();
}

void SpoolWriter::close_batch() {
  // One closed batch at a time: the next closes when the running sync is done. Until then
  // the open batch is due, so that maybe_sync closes it then: its timer has already fired,
  // and the clients waiting for their 250 may never bring it to batch_max_messages.
  if (open_.count == 0) return;
  if (closed_.count != 0) {
    open_due_ = true;
    return;
  }
  open_due_ = false;
  batch_timer_.cancel();
  closed_ = std::move(open_);
  open_ = Batch{};
  for (PendingMessage* m = closed_.head; m != nullptr; m = m->next) m->batch = &closed_;
}

void SpoolWriter::maybe_sync() {
  if (sync_running_) return;
  // With no wait configured a batch closes as soon as nothing is syncing: under load the
  // messages that arrive during one sync form the next batch (natural group commit).
  if (closed_.count == 0 && (config_.batch_max_wait_us == 0 || open_due_)) close_batch();
  if (closed_.count == 0 || closed_.unwritten != 0) return;
  sync_running_ = true;
  closed_.sync_start_ns = now_ns();
  closed_.syncs_pending = static_cast<unsigned>(closed_.segments.size());
  closed_.sync_error = 0;
  for (Segment* seg : closed_.segments) {
    reactor_.submit_fsync(seg->fd, true, &SpoolWriter::on_sync, this);
  }
}

void SpoolWriter::on_sync(void* ctx, int res) {
  auto& w = *static_cast<SpoolWriter*>(ctx);
  if (res < 0 && w.closed_.sync_error == 0) w.closed_.sync_error = res;
  if (--w.closed_.syncs_pending != 0) return;  // the batch's other segments still syncing
  res = w.closed_.sync_error;
  w.sync_running_ = false;
  const std::uint64_t took = now_ns() - w.closed_.sync_start_ns;
  ++w.stats_.batches;
  ++w.stats_.syncs;
  w.stats_.last_batch_size = w.closed_.count;
  w.stats_.last_sync_ns = took;
  if (w.observer_ != nullptr) w.observer_(w.observer_ctx_, w.closed_.count, took);
  if (res < 0) w.sync_failed(res);
  Batch done = std::move(w.closed_);
  w.closed_ = Batch{};
  for (PendingMessage* m = done.head; m != nullptr;) {
    PendingMessage* next = m->next;  // done() may reuse m
    w.finish(*m, res < 0 ? -EIO : m->result);
    m = next;
  }
  for (Segment* seg : done.segments) w.release(seg);
  w.maybe_sync();
}

void SpoolWriter::sync_failed(int err) {
  // fsyncgate: after a failed fsync the kernel may have dropped the dirty pages, so a retry
  // that succeeds proves nothing. Never ack this batch, and accept nothing more.
  bool expected = false;
  if (totals_.failed.compare_exchange_strong(expected, true)) {
    totals_.failure_errno.store(-err);
    std::fprintf(stderr,
                 "ringmta-relay: spool sync failed in %s: %s; not accepting mail any more\n",
                 dir_.c_str(), std::strerror(-err));
  }
}

void SpoolWriter::finish(PendingMessage& m, int result) {
  if (result != 0 && m.type == RecordType::message) {
    totals_.bytes.fetch_sub(kHeaderSize + m.payload_bytes, std::memory_order_relaxed);
    totals_.messages.fetch_sub(1, std::memory_order_relaxed);
  }
  Segment* seg = m.segment;
  m.segment = nullptr;
  if (seg != nullptr) release(seg);
  m.done(m, result);  // last: the owner may reuse m
}

}  // namespace ringmta::spool
