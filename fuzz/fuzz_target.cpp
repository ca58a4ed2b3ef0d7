// One libFuzzer target per parser of ours (fuzz/CMakeLists.txt defines EWA_FUZZ_PARSER_<name>):
// the input is written to a file, the parser reads it, and a bad file must end in an exception
// (ewa::Error, c10::Error or another std::exception), never in a crash, a sanitizer report, a
// hang (-timeout) or an allocation beyond -rss_limit_mb.
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "config/config.h"
#include "datasets/image_datasets.h"
#include "io/point_io.h"
#include "io/state_dict.h"
#include "io/checkpoint.h"

namespace {

std::string temp_file(const std::string& name) {
  return "/tmp/ewa_fuzz_" + std::to_string(::getpid()) + "_" + name;
}

std::string write(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = temp_file(name);
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

void parse(const uint8_t* data, size_t size) {
#if defined(EWA_FUZZ_PARSER_off)
  ewa::io::read_off(write("in.off", data, size));
#elif defined(EWA_FUZZ_PARSER_ply)
  ewa::io::read_ply(write("in.ply", data, size));
#elif defined(EWA_FUZZ_PARSER_text_points)
  ewa::io::read_text_points(write("in.xyz", data, size));
#elif defined(EWA_FUZZ_PARSER_npy)
  ewa::io::read_npy(write("in.npy", data, size));
#elif defined(EWA_FUZZ_PARSER_idx)
  // The first byte splits the rest into the image file and the label file.
  if (size < 1) return;
  const size_t split = std::min<size_t>(size - 1, size_t(data[0]) * (size - 1) / 255);
  const std::string images = write("images-idx3-ubyte", data + 1, split);
  const std::string labels = write("labels-idx1-ubyte", data + 1 + split, size - 1 - split);
  ewa::datasets::read_idx(images, labels, 10);
#elif defined(EWA_FUZZ_PARSER_cifar)
  ewa::datasets::read_cifar({write("data_batch_1.bin", data, size)}, 1, 10);
#elif defined(EWA_FUZZ_PARSER_config)
  const auto json = ewa::load_config_file(write("config.json", data, size));
  ewa::parse_config(json, "fuzz");
#elif defined(EWA_FUZZ_PARSER_checkpoint)
  ewa::io::read_checkpoint(write("last.pt", data, size));
#elif defined(EWA_FUZZ_PARSER_weights)
  // The first byte picks the format: even = a torch.save archive, odd = safetensors.
  if (size < 1) return;
  ewa::io::read_state_dict(write(data[0] % 2 ? "w.safetensors" : "w.pth", data + 1, size - 1));
#else
#error "define EWA_FUZZ_PARSER_<name>"
#endif
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    parse(data, size);
  } catch (const std::exception&) {
    // A refused file: what the parsers are for.
  }
  return 0;
}
