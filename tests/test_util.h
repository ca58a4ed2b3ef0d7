// Helpers shared by the tests: temporary directories, dataset files in the official formats,
// and running the ewa binary.
#pragma once
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "io/point_io.h"
#include "datasets/synthetic.h"

#include <cmath>

namespace ewa::testing {

// A fresh directory under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ewa_test_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

// IDX bytes for uint8 images [N, H, W] or labels [N].
inline std::string idx_bytes(const torch::Tensor& t) {
  auto c = t.to(torch::kUInt8).contiguous();
  std::string s = be32(t.dim() == 3 ? 0x00000803 : 0x00000801);
  for (int64_t d = 0; d < t.dim(); ++d) s += be32(static_cast<uint32_t>(t.size(d)));
  s.append(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
  return s;
}

inline void write_file(const std::string& path, const std::string& bytes, bool gz = false) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
}

// A 24-bit BMP of `image` (uint8 [H, W, 3], RGB) at `path` (folders made): bottom-up rows padded
// to 4 bytes, the format every build decodes (no libpng or libjpeg needed).
inline void write_bmp(const std::string& path, const torch::Tensor& image) {
  const int32_t h = static_cast<int32_t>(image.size(0)), w = static_cast<int32_t>(image.size(1));
  const int32_t stride = (3 * w + 3) / 4 * 4;
  std::string b(54 + size_t(stride) * size_t(h), '\0');
  auto put32 = [&](size_t at, int32_t v) { std::memcpy(&b[at], &v, 4); };
  b[0] = 'B', b[1] = 'M';
  put32(2, static_cast<int32_t>(b.size()));
  put32(10, 54);
  put32(14, 40);
  put32(18, w);
  put32(22, h);
  b[26] = 1, b[28] = 24;
  const auto img = image.to(torch::kUInt8).contiguous();
  const uint8_t* p = img.data_ptr<uint8_t>();
  for (int32_t y = 0; y < h; ++y)
    for (int32_t x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        b[54 + size_t(h - 1 - y) * size_t(stride) + size_t(3 * x + 2 - c)] = char(p[(size_t(y) * size_t(w) + size_t(x)) * 3 + size_t(c)]);
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  write_file(path, b);
}

// A 10-class IDX dataset in `dir` (Fashion-MNIST file names) of 28x28 gratings: class c has
// stripes at angle 18 c degrees with a 7-pixel period, random phase, plus pixel noise. Every
// 7x7 patch shows the orientation, so a tiny ViT learns it in a few dozen steps.
inline void write_pattern_idx(const std::string& dir, int64_t n_train, int64_t n_test, bool gz, uint64_t seed = 1) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto make = [&](int64_t n, const std::string& prefix) {
    auto labels = torch::randint(0, 10, {n}, gen, torch::kLong);
    auto angle = labels.to(torch::kDouble).view({n, 1, 1}) * (M_PI / 10.0);
    auto phase = torch::rand({n, 1, 1}, gen, torch::kDouble) * (2 * M_PI);
    auto yy = torch::arange(28, torch::kDouble).view({1, 28, 1});
    auto xx = torch::arange(28, torch::kDouble).view({1, 1, 28});
    auto wave = torch::sin((torch::cos(angle) * xx + torch::sin(angle) * yy) * (2 * M_PI / 7.0) + phase);
    auto noise = torch::rand({n, 28, 28}, gen, torch::kDouble) * 40.0 - 20.0;
    auto images = (128.0 + 90.0 * wave + noise).round().clamp(0, 255).to(torch::kLong);
    const std::string ext = gz ? ".gz" : "";
    write_file(dir + "/" + prefix + "-images-idx3-ubyte" + ext, idx_bytes(images), gz);
    write_file(dir + "/" + prefix + "-labels-idx1-ubyte" + ext, idx_bytes(labels), gz);
  };
  make(n_train, "train");
  make(n_test, "t10k");
}

// The data.dataset that reads what `ewa data synth` writes in this build: "modelnet_h5" with HDF5,
// "modelnet_folder" (.npy files in class folders) without.
inline std::string synth_dataset() { return ewa::datasets::synth_dataset_for(ewa::datasets::default_synth_format()); }

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The outputs of a Python fixture script, written once per build tree (and again when the script
// changes) under <build>/tests/test_fixtures/<prefix>_<stamp>: `commands(dir)` (run in order,
// each writing below `dir`, which exists) fill a fresh directory that is then renamed into place,
// so parallel test processes never see half of it (another process may have been first: then
// its directory is used). Returns the directory, or the failing command's output in `error`.
struct FixtureDir {
  std::string path, error;
};
inline FixtureDir python_fixture_dir(const std::string& script, const std::string& prefix,
                                     const std::function<std::vector<std::string>(const std::string& dir)>& commands) {
  namespace fs = std::filesystem;
  const auto stamp = fs::last_write_time(script).time_since_epoch().count() ^ static_cast<int64_t>(fs::file_size(script));
  FixtureDir out{(fs::path(EWA_BINARY).parent_path() / ("test_fixtures/" + prefix + "_" + std::to_string(stamp))).string(), ""};
  if (fs::exists(out.path)) return out;
  const std::string mine = out.path + ".tmp" + std::to_string(::getpid());
  fs::create_directories(mine);
  for (const auto& command : commands(mine)) {
    const auto r = run_command(command);
    if (r.exit_code != 0) {
      fs::remove_all(mine);
      return {"", command + " failed:\n" + r.output};
    }
  }
  std::error_code ec;
  fs::rename(mine, out.path, ec);
  if (ec) fs::remove_all(mine);
  return out;
}

// Largest absolute difference of two tensors of one shape (compared as float32).
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max().item<double>();
}

// A suite over the files a Python fixture script writes once per build tree
// (python_fixture_dir above): Derived names its script and directory prefix
// (`static std::string script()`, `static std::string prefix()`) and may replace `commands`
// (default: `<python> <script> make <dir>`). Its tests skip where no Python with torch was found
// at configure time. Base is ::testing::Test or a ::testing::TestWithParam<T>.
template <typename Derived, typename Base = ::testing::Test>
class PythonFixtureSuite : public Base {
 public:
  static void SetUpTestSuite() {
    if (python().empty()) return;
    const auto f = python_fixture_dir(Derived::script(), Derived::prefix(), &Derived::commands);
    ASSERT_TRUE(f.error.empty()) << f.error;
    dir() = f.path;
  }
  void SetUp() override {
    if (python().empty()) GTEST_SKIP() << "no Python with torch found at configure time";
  }

 protected:
  static std::string python() { return EWA_PYTHON; }
  static std::vector<std::string> commands(const std::string& d) {
    return {python() + " " + Derived::script() + " make " + d};
  }
  static std::string& dir() {
    static std::string d;  // one per suite: each Derived instantiates its own
    return d;
  }
  static std::string file(const std::string& name) { return dir() + "/" + name; }
  static torch::Tensor npy(const std::string& name) { return ewa::io::read_npy(file(name + ".npy")); }
};

// `ewa data synth` into <dir>/synth (256 points per cloud), then a 1-epoch `ewa train` of a tiny
// point transformer (32 wide, 2 blocks, 8 groups of 8, 64 points) into <dir>/runs/<name>, with
// `moe_json` as its "moe" section. Returns the training command's result; the checkpoint is
// <dir>/runs/<name>/last.pt.
inline CommandResult train_tiny_point_classifier(const std::string& ewa, const std::string& dir, const std::string& name,
                                                 const std::string& moe_json) {
  auto r = run_command(ewa + " data synth -o " + dir + "/synth --train-per-class 6 --test-per-class 2 --points 256");
  if (r.exit_code != 0) return r;
  write_file(dir + "/" + name + ".json", R"({"name": ")" + name + R"(", "model": {"name": "point_transformer", "embed_dim": 32,
    "depth": 2, "num_heads": 2, "num_groups": 8, "group_size": 8, "head_hidden": 32}, "moe": )" + moe_json + R"(,
    "data": {"dataset": ")" + synth_dataset() + R"(", "root": ")" + dir + R"(/synth", "num_points": 64, "batch_size": 16},
    "train": {"epochs": 1, "runs_dir": ")" + dir + R"(/runs", "log_every": 100}})");
  return run_command(ewa + " train --config " + dir + "/" + name + ".json");
}

// A cloud [P, C] as text: one point per line, values separated by `sep` ("," for ModelNet40's
// resampled files, " " for .xyz).
inline std::string cloud_text(const torch::Tensor& pts, const std::string& sep) {
  std::string s;
  auto a = pts.accessor<float, 2>();
  char buf[64];
  for (int64_t i = 0; i < pts.size(0); ++i) {
    for (int64_t k = 0; k < pts.size(1); ++k) {
      std::snprintf(buf, sizeof buf, "%.6e", a[i][k]);
      s += (k ? sep : "") + std::string(buf);
    }
    s += "\n";
  }
  return s;
}

// The message of the ewa::Error that `f` throws; empty when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ewa::Error& e) {
    return e.what();
  }
  return "";
}

inline int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace ewa::testing
