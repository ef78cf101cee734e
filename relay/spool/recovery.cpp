// Spool recovery; see recovery.hpp.
#include "relay/spool/recovery.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace ringmta::spool {
namespace {

std::vector<std::string> list(const std::string& dir, bool want_dirs, std::string_view prefix) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind(prefix, 0) != 0) continue;
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode) == want_dirs) out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());  // seg-<16 hex digits>: name order is write order
  return out;
}

bool quarantine(const std::string& spool, const std::string& seg_path, std::uint64_t offset,
                std::string_view bytes, RecoveryReport& r) {
  const std::string qdir = spool + "/quarantine";
  ::mkdir(qdir.c_str(), 0700);
  std::string base = seg_path.substr(spool.size() + 1);
  std::replace(base.begin(), base.end(), '/', '-');
  const std::string path = qdir + "/" + base + "@" + std::to_string(offset) + ".bad";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  ::fsync(fd);
  ::close(fd);
  r.log.push_back("record at " + seg_path + "@" + std::to_string(offset) + " (" +
                  std::to_string(bytes.size()) + " bytes) failed its check: copied to " + path);
  return ok;
}

}  // namespace

bool recover_spool(const std::string& dir, bool repair,
                   const std::function<void(const RecoveredMessage&)>& visit,
                   RecoveryReport& report, std::string* error) {
  struct OnlyMessages : RecoveryVisitor {
    const std::function<void(const RecoveredMessage&)>* f;
    void on_message(const RecoveredMessage& m) override { (*f)(m); }
  } v;
  v.f = &visit;
  return recover_spool(dir, repair, v, report, error);
}

bool recover_spool(const std::string& dir, bool repair, RecoveryVisitor& visit,
                   RecoveryReport& report, std::string* error) {
  std::vector<RecipientOutcome> entries;
  const auto t0 = std::chrono::steady_clock::now();
  for (const std::string& tdir : list(dir, true, "t")) {
    const unsigned thread = static_cast<unsigned>(std::strtoul(tdir.c_str() + 1, nullptr, 10));
    for (const std::string& name : list(dir + "/" + tdir, false, "seg-")) {
      const std::string path = dir + "/" + tdir + "/" + name;
      const int fd = ::open(path.c_str(), (repair ? O_RDWR : O_RDONLY) | O_CLOEXEC);
      if (fd < 0) {
        if (error != nullptr) *error = "cannot open " + path + ": " + std::strerror(errno);
        return false;
      }
      struct stat st {};
      ::fstat(fd, &st);
      const auto size = static_cast<std::size_t>(st.st_size);
      void* map = size == 0 ? nullptr : ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (size != 0 && map == MAP_FAILED) {
        ::close(fd);
        if (error != nullptr) *error = "cannot read " + path + ": " + std::strerror(errno);
        return false;
      }
      const std::string_view bytes(static_cast<const char*>(map), size);
      std::uint64_t found = 0;
      const auto file_sequence = std::strtoull(name.c_str() + 4, nullptr, 16);
      const SegmentScan scan = scan_segment(bytes, [&](const RecordHeader& h,
                                                       std::string_view payload,
                                                       std::uint64_t offset) {
        std::string why;
        if (h.type == RecordType::outcome) {
          RecoveredOutcome o;
          if (!decode_outcome(payload, o.message_id, entries)) {
            why = "malformed outcome record";
          } else {
            ++found;
            o.entries = &entries;
            o.thread = thread;
            o.sequence = file_sequence;
            visit.on_outcome(o);
            return;
          }
        }
        RecoveredMessage m;
        if (h.type != RecordType::message) {
          if (why.empty()) why = "unknown record type " + std::to_string(static_cast<int>(h.type));
        } else if (decode_message_payload(payload, m.envelope, m.body, &why)) {
          why.clear();
        } else if (why.empty()) {
          why = "malformed message record";
        }
        if (!why.empty()) {
          // The checksum matched, so this was written that way: a bug, not the disk.
          report.log.push_back("record at " + path + "@" + std::to_string(offset) +
                               " has a good checksum but does not decode: " + why);
          ++report.corrupt_records;
          if (repair) quarantine(dir, path, offset, bytes.substr(offset, kHeaderSize + h.length),
                                 report);
          return;
        }
        m.segment = path;
        m.thread = thread;
        m.sequence = file_sequence;
        m.offset = offset;
        m.body_offset = static_cast<std::uint64_t>(m.body.data() - bytes.data());
        m.record_bytes = kHeaderSize + h.length;
        ++found;
        ++report.messages;
        report.recipients += m.envelope.recipients.size();
        report.bytes += kHeaderSize + h.length;
        visit.on_message(m);
      });
      if (scan.newer_version) {
        if (map != nullptr) ::munmap(map, size);
        ::close(fd);
        if (error != nullptr) {
          *error = path + " was written by a newer ringmta (spool format version above " +
                   std::to_string(kFormatVersion) + "): refusing to touch the spool";
        }
        return false;
      }
      ++report.segments;
      if (scan.has_segment_record) {
        auto& last = report.last_sequence[thread];
        last = std::max(last, scan.info.sequence);
      } else {
        // Named after its sequence: keep numbering past it even if it is unreadable.
        const auto seq = std::strtoull(name.c_str() + 4, nullptr, 16);
        auto& last = report.last_sequence[thread];
        last = std::max<std::uint64_t>(last, seq);
      }
      for (const SegmentScan::Bad& b : scan.corrupt) {
        ++report.corrupt_records;
        if (repair) quarantine(dir, path, b.offset, bytes.substr(b.offset, b.length), report);
      }
      if (repair && !scan.has_segment_record && found == 0) {
        bool all_zero = true;
        for (char c : bytes) {
          if (c != 0) {
            all_zero = false;
            break;
          }
        }
        if (all_zero) {
          ::unlink(path.c_str());  // created, never written: a crash during creation
          ++report.removed_empty;
          report.log.push_back("removed " + path + ": created but never written");
        } else {
          quarantine(dir, path, 0, bytes, report);
          ::unlink(path.c_str());
        }
      } else {
        visit.on_segment(thread, file_sequence, path);
      }
      if (scan.torn_tail && (!repair || scan.has_segment_record || found != 0)) {
        ++report.torn_tails;
        if (repair) {
          // Cut the partial record off; nothing is ever appended to an old segment again.
          if (::ftruncate(fd, static_cast<off_t>(scan.valid_end)) == 0) ::fsync(fd);
          report.log.push_back("cut a torn tail off " + path + " at " +
                               std::to_string(scan.valid_end));
        }
      }
      if (map != nullptr) ::munmap(map, size);  // last: the checks above read the mapping
      ::close(fd);
    }
  }
  report.elapsed_ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
  return true;
}

}  // namespace ringmta::spool
