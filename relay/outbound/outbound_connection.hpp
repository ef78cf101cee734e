// One outbound SMTP connection of the relay to a destination's next hop: core/smtp's
// ClientSession on a reactor connection. It asks its queue for jobs while it is ready,
// pipelines each transaction (BDAT when the hop offers it and the body allows), sends the
// body from the receive buffers it arrived in (sendmsg of the same references the spool
// write used) or from the spool file (splice), and reports one outcome per recipient.
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
  void pump();
  void flush();
  void take_job();
  void prepare_stuffed_copy(const QueuedMessage& m);
  void send_body();
  void finish_job(const smtp::TransactionResult* r, std::string_view local_reason);

  QueueManager& queue_;
  std::uint32_t dest_;
  std::size_t hop_;
  std::string hop_text_;
  io::Connection* conn_ = nullptr;
  std::unique_ptr<smtp::ClientSession> session_;
  DeliveryJob* job_ = nullptr;
  bool idle_ = false;
  bool quit_requested_ = false;
  bool greeted_ = false;
  bool throttled_ = false;      // the hop said 421 / 4.7.x
  std::string close_reason_;
  std::uint32_t transactions_ = 0;

  // The transaction in flight.
  std::vector<std::string_view> rcpt_views_;
  std::vector<smtp::RcptParams> rcpt_params_;
  struct RcptReply {
    std::uint16_t code = 0;
    bool throttle = false;
    std::string text;
  };
  std::vector<RcptReply> rcpt_replies_;
  std::vector<RcptOutcome> outcomes_;
  std::string final_text_;
  // The body going out: iovecs over the message's memory, or the spool file.
  enum class BodyFrom : std::uint8_t { none, memory, spool, copy };
  BodyFrom body_from_ = BodyFrom::none;
  std::vector<iovec> body_iov_;
  std::size_t body_iov_at_ = 0;  // first piece not fully sent
  std::size_t head_left_ = 0;    // session output sent in the same send as the body
  std::uint64_t body_left_ = 0;
  bool body_sending_ = false;
  std::vector<io::Slice> early_;  // replies that came while the body was being sent
  std::string body_copy_;  // a raw body stuffed for DATA (rare: BDAT not offered)
  // STARTTLS (the route's policy): once the hop answered 220, everything goes through the
  // stream; the body is encrypted from memory or read from the spool (no splice then).
  std::unique_ptr<io::TlsStream> tls_;
  bool tls_up_ = false;
  bool tls_sending_ = false;
  std::string tls_body_;  // a spool body read for encryption
  void start_tls();
  void check_tls();
  void flush_tls();
};

}  // namespace ringmta::relay
