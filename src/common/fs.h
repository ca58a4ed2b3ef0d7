// Small filesystem helpers that keep what is already on disk intact.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ewa {

// Creates `dir` and its parents; throws ewa::Error naming the directory when that is not
// possible or the directory is not writable.
void ensure_writable_dir(const std::string& dir);

// Writes a file atomically: `writer` fills a temporary file next to `path`, which is flushed
// to disk and renamed over `path`. On any failure the temporary is removed and `path` keeps
// its old content.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp_path)>& writer);

// Removes the temporary files that write_atomically left in `dir` when their writing process was
// killed (<file>.tmp.<pid>, that process gone); those of live processes stay.
void remove_orphaned_temporaries(const std::string& dir);

// write_atomically for a buffer of bytes (a pickle, an .npy file, ...).
void write_bytes_atomically(const std::string& path, const char* data, size_t size);

// write_atomically for a string.
void write_text_atomically(const std::string& path, const std::string& text);

// The size of the file `path` in bytes (readers bound header counts by it); throws ewa::Error
// "<path>: cannot open file (<reason>)" when it cannot be read.
uint64_t bytes_on_disk(const std::string& path);

// The extension of `path` in lower case, with its dot: "a/B.PLY" -> ".ply"; "" when none.
std::string lower_extension(const std::string& path);

// The non-empty lines of a text file, trailing blanks and CRs removed; throws ewa::Error
// "<path>: cannot open file" when it cannot be read.
std::vector<std::string> read_text_lines(const std::string& path);

// Appends one line to a text file (log.jsonl); throws ewa::Error on failure.
void append_line(const std::string& path, const std::string& line);

}  // namespace ewa
