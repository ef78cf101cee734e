// RFC 5322 3.3 date-time in UTC, e.g. "Sun, 30 Nov 2025 00:12:34 +0000", for the headers
// ringmta writes (the loadgen's Date:, the relay's Received:). No allocation, no locale.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ringmta::smtp {

inline constexpr std::size_t kDateBytes = 31;

// Writes exactly kDateBytes to out. Seconds are clamped to years 1970-9999.
void format_rfc5322_date(std::int64_t unix_seconds, char* out);

}  // namespace ringmta::smtp
