#include "io/tfevents.h"

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <unistd.h>

#include "common/error.h"

namespace ewa::io {
namespace fs = std::filesystem;

namespace {

// Protocol-buffer wire format: varints, tags (field << 3 | wire type), length-delimited fields.
void varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}
void tag(std::string& s, int field, int wire) { varint(s, (uint64_t(field) << 3) | uint64_t(wire)); }
void bytes_field(std::string& s, int field, const std::string& b) {
  tag(s, field, 2);
  varint(s, b.size());
  s += b;
}
template <typename T>
void little_endian(std::string& s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86 / ARM are little-endian, as the format
  s.append(b, sizeof(T));
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Event.wall_time = 1 (double), step = 2 (int64), file_version = 3, summary = 5.
std::string event(double wall_time, int64_t step) {
  std::string e;
  tag(e, 1, 1);
  little_endian(e, wall_time);
  if (step != 0) {
    tag(e, 2, 0);
    varint(e, static_cast<uint64_t>(step));
  }
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0x82f63b78u ^ (c >> 1) : c >> 1;  // reflected Castagnoli polynomial
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

EventWriter::EventWriter(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  // A name of its own per process (a resumed run adds a file; TensorBoard reads them in order).
  const auto secs = static_cast<int64_t>(now_seconds());
  path_ = (fs::path(dir) / ("events.out.tfevents." + std::to_string(secs) + "." + host + "." + std::to_string(::getpid())))
              .string();
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) fail(path_ + ": cannot write the TensorBoard event file (train.tensorboard=false turns it off)");
  std::string e = event(now_seconds(), 0);
  bytes_field(e, 3, "brain.Event:2");
  write_record(e);
  flush();
}

void EventWriter::write_record(const std::string& bytes) {
  std::string header;
  little_endian(header, static_cast<uint64_t>(bytes.size()));
  const uint32_t len_crc = masked_crc32c(header.data(), header.size());
  little_endian(header, len_crc);
  out_.write(header.data(), static_cast<std::streamsize>(header.size()));
  out_.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::string footer;
  little_endian(footer, masked_crc32c(bytes.data(), bytes.size()));
  out_.write(footer.data(), static_cast<std::streamsize>(footer.size()));
}

void EventWriter::scalar(const std::string& name, double value, int64_t step) {
  // Summary.value = 1 -> Value {tag = 1, simple_value = 2 (float)}.
  std::string value_msg;
  bytes_field(value_msg, 1, name);
  tag(value_msg, 2, 5);
  little_endian(value_msg, static_cast<float>(value));
  std::string summary;
  bytes_field(summary, 1, value_msg);
  std::string e = event(now_seconds(), step);
  bytes_field(e, 5, summary);
  write_record(e);
}

void EventWriter::scalars(const std::string& prefix, const nlohmann::json& record, int64_t step) {
  for (const auto& [key, v] : record.items()) {
    if (v.is_object()) {
      scalars(prefix + key + "/", v, step);
    } else if (v.is_number() && std::isfinite(v.get<double>())) {
      scalar(prefix + key, v.get<double>(), step);
    }
  }
}

void EventWriter::flush() {
  out_.flush();
  if (!out_) fail(path_ + ": writing the TensorBoard event file failed (disk full?)");
}

}  // namespace ewa::io
