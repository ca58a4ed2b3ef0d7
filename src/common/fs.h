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

// One file a command is about to write and what it is made from (the input named in messages).
struct PlannedOutput {
  std::string path, from;
};

// Checks every output of a command before it writes anything (the rule of docs/guide.md, "Files
// ewa writes"): one line naming `flag` and the files, and nothing written, when an output is a
// file the command reads (any of `reads`, compared as files: the same normalised path, or the same
// device and inode, which catches links; never allowed), when two inputs would get the same output, or, unless `force`, when an output
// exists already.
void check_outputs(const std::vector<PlannedOutput>& outputs, const std::vector<std::string>& reads, bool force,
                   const std::string& flag);

// The same for one output file made from one input file.
void check_output(const std::string& output, const std::string& input, bool force, const std::string& flag);

// For commands that write a folder of files: refuses (one line naming `flag`) when `dir` exists and
// is not empty, unless `force` (then files of the same names are replaced, others kept).
void check_output_dir(const std::string& dir, bool force, const std::string& flag);

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
