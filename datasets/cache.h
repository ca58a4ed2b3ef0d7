// The data cache every dataset reader shares: where it lives and how a cache file is keyed.
#pragma once
#include <string>
#include <vector>

namespace ewa::datasets {

// A 64-bit hash (16 hex digits) of `inputs`: each one's text and, where it names a file, that
// file's size and modification time, so a changed, added or removed file gives another key.
std::string fingerprint(const std::vector<std::string>& inputs);

// data.cache_dir when set; else <root>/.ewa_cache when it can be written, else ~/.cache/ewa.
std::string cache_dir_for(const std::string& cache_dir, const std::string& root);

}  // namespace ewa::datasets
