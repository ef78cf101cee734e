// RFC 5322 dates; see rfc5322_date.hpp.
#include "core/smtp/rfc5322_date.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace ringmta::smtp {
namespace {

// Howard Hinnant's civil_from_days: days since 1970-01-01 to (year, month 1-12, day 1-31).
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
}

void two_digits(char* out, unsigned v) {
  out[0] = static_cast<char>('0' + v / 10);
  out[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

void format_rfc5322_date(std::int64_t unix_seconds, char* out) {
  constexpr std::int64_t kLast = 253402300799;  // 9999-12-31 23:59:59
  const std::int64_t t = std::clamp<std::int64_t>(unix_seconds, 0, kLast);
  const std::int64_t days = t / 86400;
  const auto secs = static_cast<unsigned>(t % 86400);
  std::int64_t year = 0;
  unsigned month = 0;
  unsigned day = 0;
  civil_from_days(days, year, month, day);
  static constexpr std::string_view kDays = "SunMonTueWedThuFriSat";
  static constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
  const auto wd = static_cast<std::size_t>((days + 4) % 7);  // 1970-01-01 was a Thursday
  std::memcpy(out, kDays.data() + 3 * wd, 3);
  out[3] = ',';
  out[4] = ' ';
  two_digits(out + 5, day);
  out[7] = ' ';
  std::memcpy(out + 8, kMonths.data() + 3 * (month - 1), 3);
  out[11] = ' ';
  two_digits(out + 12, static_cast<unsigned>(year / 100));
  two_digits(out + 14, static_cast<unsigned>(year % 100));
  out[16] = ' ';
  two_digits(out + 17, secs / 3600);
  out[19] = ':';
  two_digits(out + 20, secs / 60 % 60);
  out[22] = ':';
  two_digits(out + 23, secs % 60);
  std::memcpy(out + 25, " +0000", 6);
}

}  // namespace ringmta::smtp
