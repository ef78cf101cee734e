// A bounce on its way to the spool (bounce.cpp); here so that the queue manager, which
// pools them, can destroy them.
#pragma once

#include <string>
#include <vector>

#include "relay/dsn.hpp"
#include "relay/queue/queue_manager.hpp"

namespace ringmta::relay {

struct QueueManager::BounceWrite {
  spool::PendingMessage pm;
  std::string envelope;
  std::string body;       // the report, dot-stuffed wire form
  std::string original;   // scratch: the start of the original message
  std::string reasons;    // scratch: the recipients' reply texts, kept alive for build_dsn
  std::vector<DsnRecipient> dsn_rcpts;
  std::vector<std::uint32_t> failed;  // the original's recipients this bounce reports
  spool::EnvelopeView view;
  spool::RecipientView rcpt_view;
  std::uint64_t id = 0;
  std::uint64_t arrival_unix_ms = 0;
  std::uint8_t flags = 0;
  QueuedMessage* message = nullptr;
  QueueManager* owner = nullptr;
  BounceWrite* next_free = nullptr;
};

}  // namespace ringmta::relay
