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

}  // namespace ewa::datasets
