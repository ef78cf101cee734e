// The queue's shape for an operator (`ringmta-relay queue --summary`, like Postfix's qshape):
// recipients still to deliver, by recipient domain and by age in minutes, and the oldest
// message.
#pragma once

#include <cstdint>
#include <ostream>
#include <vector>

#include "relay/spool/spool_state.hpp"

namespace ringmta::relay {

std::uint64_t unix_now_ms();

// One row per domain (most recipients first, then by name), a TOTAL row first; columns T
// (all) then age buckets: up to 5, 10, 20, 40, 80, 160, 320, 640, 1280 minutes, and older.
// Ages are taken at now_unix_ms from each message's arrival.
void print_queue_summary(const std::vector<spool::LiveMessage>& live, std::uint64_t now_unix_ms,
                         std::ostream& out);

}  // namespace ringmta::relay
