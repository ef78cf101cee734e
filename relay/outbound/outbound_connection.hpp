// One outbound SMTP connection of the relay to a destination's next hop: core/smtp's
// ClientSession on a reactor connection. It asks its queue for jobs while it is ready,
// pipelines each transaction (BDAT when the hop offers it and the body allows) and, with
// BDAT, writes further transactions behind it while ready jobs wait (up to the route's
// transactions-in-flight): their commands and bodies leave in one sendmsg and the hop
// answers them in one write. Bodies go from the receive buffers they arrived in (the same
// references the spool write used) or from the spool file (splice); one outcome per
// recipient.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/reactor.hpp"
#include "core/io/tls.hpp"
#include "core/smtp/client_session.hpp"
#include "relay/queue/queue_manager.hpp"
#include "relay/relay_metrics.hpp"

namespace ringmta::relay {

class OutboundConnection final : public io::ConnectionHandler, public smtp::ClientHandler {
 public:
  OutboundConnection(QueueManager& queue, std::uint32_t dest, std::size_t hop);

  std::uint32_t destination() const { return dest_; }
  std::size_t hop() const { return hop_; }
  bool idle() const { return idle_; }
  bool connected() const { return conn_ != nullptr; }
  // The queue has a job for this idle connection.
  void start(DeliveryJob* job);
  // Say QUIT now if idle, else after the transaction.
  void quit();

  // io::ConnectionHandler
  void on_connect(io::Connection& c) override;
  void on_recv(io::Connection& c, io::Slice data) override;
  void on_sent(io::Connection& c, std::size_t bytes) override;
  void on_timeout(io::Connection& c) override;
  void on_shutdown(io::Connection& c) override;
  void on_close(io::Connection& c, int err) override;

  // smtp::ClientHandler
  void on_greeting(const smtp::Reply& r) override;
  void on_rcpt_reply(std::size_t index, const smtp::Reply& r) override;
  void on_transaction_done(const smtp::TransactionResult& r) override;
  void on_closed(const smtp::Reply& last, std::string_view why) override;

 private:
  struct Slot;
  void pump();
  void flush();
  void take_job();
  bool begin(DeliveryJob* job);  // one more transaction; false if it ended at once
  void chain();                  // more transactions behind those in flight
  void prepare_stuffed_copy(const QueuedMessage& m);
  void lay_out_body();           // a due body from memory joins the output stream
  void send_stream();            // output and laid-out bodies, in order, in one send
  void account_sent(std::size_t bytes);
  void send_spool_body();
  void feed_early();
  // Body bytes laid out, in a send, or spliced from the spool: replies wait in early_.
  bool body_on_its_way() const { return spool_sending_ || body_in_flight_ || laid_count_ > 0; }
  void finish_job(Slot& slot, const smtp::TransactionResult* r, std::string_view local_reason);
  Slot& front_slot() { return slots_[slot_head_]; }
  Slot& back_slot() { return slots_[(slot_head_ + slot_count_ - 1) % slots_.size()]; }

  QueueManager& queue_;
  std::uint32_t dest_;
  std::size_t hop_;
  std::string hop_text_;
  io::Connection* conn_ = nullptr;
  std::unique_ptr<smtp::ClientSession> session_;
  bool idle_ = false;
  bool quit_requested_ = false;
  bool greeted_ = false;
  bool throttled_ = false;      // the hop said 421 / 4.7.x
  std::string close_reason_;
  std::uint32_t transactions_ = 0;

  // Transactions in flight, oldest first (the session's replies are for the oldest): a
  // ring sized once from the route's transactions-in-flight.
  struct RcptReply {
    std::uint16_t code = 0;
    bool throttle = false;
    std::string text;
  };
  struct Slot {
    DeliveryJob* job = nullptr;
    std::vector<std::string_view> rcpt_views;
    std::vector<smtp::RcptParams> rcpt_params;
    std::vector<RcptReply> rcpt_replies;
  };
  std::vector<Slot> slots_;
  std::size_t slot_head_ = 0;
  std::size_t slot_count_ = 0;
  std::vector<RcptOutcome> outcomes_;
  std::string final_text_;
  // Where the newest transaction's body comes from.
  enum class BodyFrom : std::uint8_t { none, memory, spool, copy };
  BodyFrom body_from_ = BodyFrom::none;
  // Bodies from memory laid into the output stream: each goes out right after the session
  // output up to `at` (a position counted from the start of the connection). A ring, like
  // slots_; the message memory stays referenced until the bytes are sent.
  struct LaidBody {
    std::uint64_t at = 0;
    std::vector<iovec> iov;  // trimmed in place as it goes out
    std::size_t iov_at = 0;
    std::uint64_t left = 0;
  };
  std::vector<LaidBody> laid_;
  std::size_t laid_head_ = 0;
  std::size_t laid_count_ = 0;
  std::uint64_t out_consumed_ = 0;  // session output bytes sent so far
  std::vector<iovec> send_iov_;     // the send in flight
  bool body_in_flight_ = false;     // ...holds body bytes
  bool spool_sending_ = false;      // a body is going out from the spool file (splice)
  // Replies that came while body bytes were still on their way out: the session hears them
  // once the bytes are sent, so that no transaction ends (and frees its message) while the
  // kernel may still read its body.
  std::vector<io::Slice> early_;
  std::string body_copy_;  // a raw body stuffed for DATA (rare: BDAT not offered)
  // STARTTLS (the route's policy): once the hop answered 220, everything goes through the
  // stream; the body is encrypted from memory or read from the spool (no splice then).
  std::unique_ptr<io::TlsStream> tls_;
  bool tls_up_ = false;
  bool tls_sending_ = false;
  std::string tls_body_;  // a spool body read for encryption
  bool tls_counted_ = false;  // the handshake's outcome is in the metrics and the log
  void start_tls();
  void check_tls();
  void count_tls(RelayMetrics::outbound_tls_total_outcome outcome);
  void flush_tls();
};

}  // namespace ringmta::relay
