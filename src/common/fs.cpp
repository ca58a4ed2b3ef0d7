#include "common/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/error.h"

namespace ewa {
namespace fs = std::filesystem;

void ensure_writable_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("run directory " + dir + ": cannot create it (" + ec.message() + ")");
  if (!fs::is_directory(dir)) fail("run directory " + dir + ": exists and is not a directory");
  if (::access(dir.c_str(), W_OK) != 0)
    fail("run directory " + dir + ": not writable (" + std::strerror(errno) + ")");
}

static void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

namespace {
constexpr const char* kTmpInfix = ".tmp.";  // write_atomically's temporaries: <path>.tmp.<pid>
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& writer) {
  const std::string tmp = path + kTmpInfix + std::to_string(::getpid());
  try {
    writer(tmp);
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    fail("cannot write " + path + ": " + std::string(e.what()).substr(0, 200));
  }
  fsync_path(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    fail("cannot write " + path + ": rename failed (" + why + ")");
  }
  fsync_path(fs::path(path).parent_path().empty() ? "." : fs::path(path).parent_path().string());
}

void remove_orphaned_temporaries(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const auto at = name.rfind(kTmpInfix);
    const size_t digits = at == std::string::npos ? 0 : at + std::strlen(kTmpInfix);
    if (at == std::string::npos || name.size() == digits) continue;
    const std::string pid = name.substr(digits);
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) fs::remove(entry.path(), ec);
  }
}

void write_bytes_atomically(const std::string& path, const char* data, size_t size) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(std::string("cannot open ") + tmp + " (" + std::strerror(errno) + ")");
    out.write(data, static_cast<std::streamsize>(size));
    out.flush();
    if (!out) throw std::runtime_error("write to " + tmp + " failed (disk full?)");
  });
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_bytes_atomically(path, text.data(), text.size());
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream out(path, std::ios::app);
  if (!out) fail("cannot append to " + path + " (" + std::strerror(errno) + ")");
  out << line << '\n';
  if (!out) fail("write to " + path + " failed");
}

uint64_t bytes_on_disk(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) fail(path + ": cannot open file (" + ec.message() + ")");
  return size;
}

std::string lower_extension(const std::string& path) {
  std::string e = std::filesystem::path(path).extension().string();
  for (auto& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

std::vector<std::string> read_text_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path + ": cannot open file");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

void check_outputs(const std::vector<PlannedOutput>& outputs, const std::vector<std::string>& reads, bool force,
                   const std::string& flag) {
  // The inputs by normalised path and, for those that exist, by file identity (links, hard links):
  // each output is looked up once, so a folder of many files costs n log n, not n^2.
  auto key_of = [](const std::string& p) {
    std::error_code ec;
    return fs::weakly_canonical(fs::absolute(p), ec).lexically_normal().string();
  };
  auto id_of = [](const std::string& p) -> std::pair<uint64_t, uint64_t> {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return {0, 0};
    return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  };
  std::map<std::string, std::string> read_keys;
  std::map<std::pair<uint64_t, uint64_t>, std::string> read_ids;
  for (const auto& r : reads) {
    read_keys.emplace(key_of(r), r);
    if (const auto id = id_of(r); id.second != 0) read_ids.emplace(id, r);
  }
  std::map<std::string, std::string> seen;  // normalised output -> the input it is made from
  int64_t existing = 0;
  std::string first_existing;
  for (const auto& o : outputs) {
    const std::string key = key_of(o.path);
    const auto id = id_of(o.path);
    const auto by_key = read_keys.find(key);
    const auto by_id = id.second != 0 ? read_ids.find(id) : read_ids.end();
    if (by_key != read_keys.end() || by_id != read_ids.end())
      fail(flag + ": " + o.path + " is a file this command reads (" +
           (by_key != read_keys.end() ? by_key->second : by_id->second) + "): choose an output that is not an input");
    const auto [it, fresh] = seen.emplace(key, o.from);
    if (!fresh)
      fail(flag + ": " + it->second + " and " + o.from + " would both be written to " + o.path +
           ": give them separate folders or outputs");
    if (id.second != 0 && existing++ == 0) first_existing = o.path;
  }
  if (existing > 0 && !force)
    fail(flag + ": " + first_existing + (existing > 1 ? " and " + std::to_string(existing - 1) + " more outputs exist" : " exists") +
         " already: pass --force to replace " + (existing > 1 ? "them" : "it"));
}

void check_output_dir(const std::string& dir, bool force, const std::string& flag) {
  std::error_code ec;
  if (force || !fs::is_directory(dir, ec) || fs::is_empty(dir, ec)) return;
  fail(flag + ": " + dir + " exists and is not empty: pass --force to write into it (files of the same names are replaced)");
}

void check_output(const std::string& output, const std::string& input, bool force, const std::string& flag) {
  check_outputs({{output, input}}, {input}, force, flag);
}

}  // namespace ewa
