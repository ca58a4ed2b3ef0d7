// The data cache every dataset reader shares: where it lives and how a cache file is keyed.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "io/torch_pickle.h"

namespace ewa::datasets {

// A 64-bit hash (16 hex digits) of `inputs`: each one's text and, where it names a file, that
// file's size and modification time, so a changed, added or removed file gives another key.
std::string fingerprint(const std::vector<std::string>& inputs);

// data.cache_dir when set; else <root>/.ewa_cache when it can be written, else ~/.cache/ewa.
std::string cache_dir_for(const std::string& cache_dir, const std::string& root);

// Reads the cache file at `path` (a torch archive) and hands its root to `take`, which throws on
// anything missing or malformed. True with the note "data cache: read <path>"; false with the
// note "data cache: <path> cannot be read (<why>); <redo>" when it cannot be read (a cut-off or
// corrupt file is redone, never trusted).
bool read_cache_file(const std::string& path, const std::function<void(const io::PyRef& root)>& take, const std::string& redo,
                     std::vector<std::string>& notes);

// Writes `root` to the cache file at `path` (folders made) with the note "data cache: written
// <path>"; a cache that cannot be written only costs time: the note "data cache: cannot write
// <path> (<why>); <redo_next>".
void write_cache_file(const std::string& path, const io::PyRef& root, const std::string& redo_next,
                      std::vector<std::string>& notes);

}  // namespace ewa::datasets
