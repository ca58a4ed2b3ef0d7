// TensorBoard event files, the one codec of the format (as TensorBoard's own reader reads it):
// a file <dir>/events.out.tfevents.<seconds>.<host> of TFRecords (uint64 length, masked CRC-32C
// of the length, the bytes, masked CRC-32C of the bytes; little-endian), each an Event protocol
// buffer: the first {wall_time, file_version "brain.Event:2"}, then {wall_time, step, summary
// {value {tag, simple_value}}} per scalar. Every run writes its scalars there (train.tensorboard),
// so `tensorboard --logdir runs` shows and compares them.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace ewa::io {

// CRC-32C (Castagnoli) of `n` bytes, and TFRecord's mask of it.
uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

class EventWriter {
 public:
  // Opens a new event file in `dir` (created if needed); ewa::Error naming the path when it cannot.
  explicit EventWriter(const std::string& dir);
  const std::string& path() const { return path_; }
  // One scalar at `step` (float32 in the file, as TensorBoard's simple_value).
  void scalar(const std::string& tag, double value, int64_t step);
  // Every finite number of `record` as a scalar at `step`, tagged `prefix` + its key path joined
  // by "/" (nested objects flattened; strings, booleans and arrays left out).
  void scalars(const std::string& prefix, const nlohmann::json& record, int64_t step);
  void flush();

 private:
  void write_record(const std::string& bytes);
  std::string path_;
  std::ofstream out_;
};

}  // namespace ewa::io
