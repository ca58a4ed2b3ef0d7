#include "datasets/cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace ewa::datasets {
namespace fs = std::filesystem;

std::string fingerprint(const std::vector<std::string>& files) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ULL; };
  for (const auto& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) == 0) {
      mix(static_cast<uint64_t>(st.st_size));
      mix(static_cast<uint64_t>(st.st_mtim.tv_sec));
      mix(static_cast<uint64_t>(st.st_mtim.tv_nsec));
    }
    for (char c : f) mix(static_cast<unsigned char>(c));
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string cache_dir_for(const std::string& cache_dir, const std::string& root) {
  if (!cache_dir.empty()) return cache_dir;
  const std::string local = (fs::path(root) / ".ewa_cache").string();
  std::error_code ec;
  fs::create_directories(local, ec);
  if (!ec && ::access(local.c_str(), W_OK) == 0) return local;
  const char* home = std::getenv("HOME");
  return (fs::path(home ? home : "/tmp") / ".cache" / "ewa").string();
}

bool read_cache_file(const std::string& path, const std::function<void(const io::PyRef& root)>& take, const std::string& redo,
                     std::vector<std::string>& notes) {
  try {
    take(io::read_torch_archive(path));
    notes.push_back("data cache: read " + path);
    return true;
  } catch (const std::exception& e) {
    std::string why = e.what();
    if (why.rfind(path + ": ", 0) == 0) why = why.substr(path.size() + 2);
    notes.push_back("data cache: " + path + " cannot be read (" + why + "); " + redo);
    return false;
  }
}

void write_cache_file(const std::string& path, const io::PyRef& root, const std::string& redo_next,
                      std::vector<std::string>& notes) {
  try {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    io::write_torch_archive(path, root);
    notes.push_back("data cache: written " + path);
  } catch (const std::exception& e) {
    notes.push_back("data cache: cannot write " + path + " (" + e.what() + "); " + redo_next);
  }
}

}  // namespace ewa::datasets
