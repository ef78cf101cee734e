// Users file parsing and PBKDF2 verification; see users_file.hpp.
#include "core/auth/users_file.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <charconv>
#include <fstream>
#include <map>
#include <sstream>

#include "core/smtp/base64.hpp"

namespace ringmta::auth {
namespace {

constexpr std::string_view kScheme = "pbkdf2-sha256";

[[noreturn]] void fail(std::string_view file, std::size_t line, const std::string& why) {
  throw UsersFileError(std::string(file) + ":" + std::to_string(line) + ": " + why);
}

bool decode(std::string_view b64, std::vector<unsigned char>& out) {
  std::string buf(b64.size() / 4 * 3 + 3, '\0');
  const long n = smtp::base64_decode(b64, buf.data());
  if (n < 0) return false;
  out.assign(buf.begin(), buf.begin() + n);
  return true;
}

std::string_view name_fault(std::string_view name) {
  if (name.empty()) return "empty user name";
  if (name.size() > kMaxUserName) return "user name over 255 octets";
  for (char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= ' ' || c == 0x7f) return "user name holds a space or a control character";
  }
  return {};
}

}  // namespace

std::vector<unsigned char> derive_key(std::string_view password,
                                      const std::vector<unsigned char>& salt,
                                      std::uint32_t iterations, std::size_t length) {
  std::vector<unsigned char> key(length);
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                        static_cast<int>(salt.size()), static_cast<int>(iterations),
                        EVP_sha256(), static_cast<int>(length), key.data()) != 1) {
    key.clear();
  }
  return key;
}

bool verify_password(const PasswordHash& h, std::string_view password) {
  unsigned char key[kMaxHash];
  if (h.hash.empty() || h.hash.size() > sizeof(key)) return false;
  const bool derived =
      PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), h.salt.data(),
                        static_cast<int>(h.salt.size()), static_cast<int>(h.iterations),
                        EVP_sha256(), static_cast<int>(h.hash.size()), key) == 1;
  const bool same = derived && CRYPTO_memcmp(key, h.hash.data(), h.hash.size()) == 0;
  OPENSSL_cleanse(key, sizeof(key));
  return same;
}

UserTable::UserTable() {
  dummy_.iterations = 100'000;
  dummy_.salt.assign(16, 0);
  dummy_.hash.assign(32, 0);
  RAND_bytes(dummy_.salt.data(), static_cast<int>(dummy_.salt.size()));
  RAND_bytes(dummy_.hash.data(), static_cast<int>(dummy_.hash.size()));
}

UserTable UserTable::parse(std::string_view text, std::string_view file_name) {
  UserTable t;
  std::map<std::uint32_t, std::size_t> iteration_counts;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;

    std::string_view f[5];
    std::size_t n = 0;
    for (std::string_view rest = line;; ++n) {
      const std::size_t colon = rest.find(':');
      if (n == 5) fail(file_name, line_no, "more than 5 fields (name:scheme:iterations:salt:hash)");
      f[n] = rest.substr(0, colon);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
    if (n != 4) fail(file_name, line_no, "expected 5 fields (name:scheme:iterations:salt:hash)");
    if (const std::string_view why = name_fault(f[0]); !why.empty()) {
      fail(file_name, line_no, std::string(why));
    }
    if (f[1] != kScheme) {
      fail(file_name, line_no, "unknown scheme \"" + std::string(f[1].substr(0, 40)) +
                                   "\" (only pbkdf2-sha256)");
    }
    PasswordHash h;
    const auto [end, ec] = std::from_chars(f[2].data(), f[2].data() + f[2].size(), h.iterations);
    if (f[2].empty() || ec != std::errc{} || end != f[2].data() + f[2].size() ||
        h.iterations < kMinIterations || h.iterations > kMaxIterations) {
      fail(file_name, line_no, "iterations must be a number from 1000 to 10000000");
    }
    if (!decode(f[3], h.salt)) fail(file_name, line_no, "salt is not base64");
    if (h.salt.size() < kMinSalt || h.salt.size() > kMaxSalt) {
      fail(file_name, line_no, "salt must be 8 to 64 octets");
    }
    if (!decode(f[4], h.hash)) fail(file_name, line_no, "hash is not base64");
    if (h.hash.size() < kMinHash || h.hash.size() > kMaxHash) {
      fail(file_name, line_no, "hash must be 16 to 64 octets");
    }
    ++iteration_counts[h.iterations];
    if (!t.users_.emplace(std::string(f[0]), std::move(h)).second) {
      fail(file_name, line_no, "duplicate user \"" + std::string(f[0]) + "\"");
    }
  }
  // Unknown users cost what most known users cost.
  std::size_t most = 0;
  for (const auto& [iterations, count] : iteration_counts) {
    if (count > most) {
      most = count;
      t.dummy_.iterations = iterations;
    }
  }
  return t;
}

UserTable UserTable::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsersFileError(path + ": cannot read the users file");
  std::ostringstream s;
  s << in.rdbuf();
  return parse(s.str(), path);
}

bool UserTable::verify(std::string_view user, std::string_view password) const {
  const auto it = users_.find(std::string(user));
  if (it == users_.end()) {
    verify_password(dummy_, password);  // the same work, the answer is no
    return false;
  }
  return verify_password(it->second, password);
}

}  // namespace ringmta::auth
