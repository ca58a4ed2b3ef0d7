// The catalogue of bad inputs (docs/errors.md): every row is run here, as a user would run it,
// and must end with its one-line "ewa: error: ..." message and exit code 1. The table in
// docs/errors.md is written from these runs (EWA_ERRORS_DOC=$PWD/docs/errors.md
// build/tests/ewa_cli_tests --gtest_filter='ErrorCatalogue/*'), and a test checks that it is current.
#include <gtest/gtest.h>

#include <sys/file.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <functional>
#include <regex>

#include "datasets/hdf5.h"
#include "io/point_io.h"
#include "test_util.h"
#include "train/checkpoint.h"

namespace {
using ewa::testing::run_command;
using ewa::testing::TempDir;
using ewa::testing::write_file;
namespace fs = std::filesystem;

const std::string kEwa = EWA_BINARY;

// What every case may use: a small synthetic point dataset, a trained tiny point classifier
// (train checkpoint and its dense conversion) and a small IDX image dataset. Built once for every
// process of a ctest run (each row is its own process): in <build>/tests/error_fixture, under a
// file lock, rebuilt when the ewa binary changes. Cases only read it (a case that changes data
// copies it into its own directory first).
struct Fixture {
  std::string dir, synth, ckpt, dense, images, parts, seg;
  Fixture() {
    const fs::path base = fs::path(kEwa).parent_path() / "tests" / "error_fixture";
    fs::create_directories(base.parent_path());
    dir = base.string();
    synth = (base / "synth").string();
    ckpt = (base / "runs/tiny/last.pt").string();
    dense = (base / "dense.pt").string();
    images = (base / "images").string();
    parts = (base / "parts").string();
    seg = (base / "runs/seg/last.pt").string();
    const int lock = ::open((base.string() + ".lock").c_str(), O_CREAT | O_RDWR, 0644);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0) throw std::runtime_error("fixture: cannot lock " + base.string() + ".lock");
    struct stat st {};
    ::stat(kEwa.c_str(), &st);
    const std::string stamp = std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
                              std::to_string(st.st_mtim.tv_nsec) + " v2";
    std::ifstream done(base / "complete");
    std::string found;
    std::getline(done, found);
    if (found != stamp) build(base, stamp);
    ::close(lock);  // releases the lock
  }
  void build(const fs::path& base, const std::string& stamp) {
    fs::remove_all(base);
    fs::create_directories(base);
    auto r = ewa::testing::train_tiny_point_classifier(kEwa, dir, "tiny", R"({"kind": "rup", "num_experts": 2})");
    if (r.exit_code != 0) throw std::runtime_error("fixture: " + r.output);
    r = run_command(kEwa + " convert " + ckpt + " -o " + dense);
    if (r.exit_code != 0) throw std::runtime_error("fixture: " + r.output);
    fs::create_directories(images);
    ewa::testing::write_pattern_idx(images, 40, 10, false);
    // A tiny part segmenter (one epoch on synthetic parts) for the rows of predict on a segmenter.
    r = run_command(kEwa + " data synth-parts -o " + parts + " --train-per-category 2 --val-per-category 1 --test-per-category 1");
    if (r.exit_code != 0) throw std::runtime_error("fixture: " + r.output);
    r = run_command(kEwa + " train -c " + std::string(EWA_SOURCE_DIR) + "/configs/synth_parts_dense.json --name seg --set data.root=" +
                    parts + " --set train.runs_dir=" + (base / "runs").string() + " --set train.epochs=1" +
                    " --set model.embed_dim=16 --set model.depth=3 --set model.num_heads=2 --set model.num_groups=8" +
                    " --set model.group_size=8 --set model.seg_fp_hidden=16 --set model.seg_fp_dim=16" +
                    " --set model.seg_head_hidden=16 --set data.num_points=64 --set data.batch_size=4");
    if (r.exit_code != 0) throw std::runtime_error("fixture: " + r.output);
    write_file((base / "complete").string(), stamp + "\n");
  }
  // A config for the tiny point classifier on `root`, with `extra` JSON members appended to "train".
  std::string point_config(const std::string& path, const std::string& root, const std::string& train_extra = "") const {
    write_file(path, R"({"name": "e", "model": {"name": "point_transformer", "embed_dim": 32, "depth": 2, "num_heads": 2,
      "num_groups": 8, "group_size": 8, "head_hidden": 32}, "moe": {"kind": "rup", "num_experts": 2},
      "data": {"dataset": ")" + ewa::testing::synth_dataset() + R"(", "root": ")" + root + R"(", "num_points": 64, "batch_size": 16},
      "train": {"epochs": 1, "runs_dir": ")" + fs::path(path).parent_path().string() + R"(/runs")" + train_extra + "}}");
    return path;
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// One bad input: `setup` writes it into the case's own directory and returns the command to run.
struct Case {
  std::string id, area, input;
  std::function<std::string(const Fixture&, const std::string& dir)> setup;
  std::string fragment;        // part of the expected message
  bool one_line = true;        // predict adds a summary line after the file's own error
};

// Rows that corrupt .h5 files need HDF5; a build without it skips them (and says so).
bool needs_hdf5(const Case& c) { return c.id[0] == 'H'; }

std::string npy_bytes(const std::string& descr, const std::string& shape, size_t data_bytes, int version = 1) {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = "\x93NUMPY";
  out += char(version);
  out += char(0);
  out += char(h.size() & 0xff);
  out += char(h.size() >> 8);
  return out + h + std::string(data_bytes, '\0');
}

std::string copy_synth(const Fixture& f, const std::string& dir) {
  const std::string root = dir + "/synth";
  fs::copy(f.synth, root, fs::copy_options::recursive);
  return root;
}

std::string predict(const Fixture& f, const std::string& file) { return kEwa + " predict " + f.dense + " " + file; }

std::string train_images(const std::string& root, const std::string& extra = "") {
  return kEwa + " train --set data.root=" + root + " --set train.runs_dir=" + root + "/runs --set model.embed_dim=16 " +
         "--set model.depth=1 --set model.num_heads=2 --set model.patch_size=7 " + extra;
}

std::string copy_images(const Fixture& f, const std::string& dir) {
  const std::string root = dir + "/images";
  fs::copy(f.images, root, fs::copy_options::recursive);
  return root;
}

std::vector<Case> cases() {
  std::vector<Case> c;
  // ---- point files (one reader entry point for training, evaluation and prediction) ----
  c.push_back({"P01", "point file", ".off that does not start with OFF", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.off", "PLY\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n");
                 return predict(f, d + "/a.off");
               }, "not an OFF file: expected 'OFF' at the start", false});
  c.push_back({"P02", "point file", ".off cut off in its vertices", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.off", "OFF\n3 1 0\n0 0 0\n1 0\n");
                 return predict(f, d + "/a.off");
               }, "truncated or malformed vertex 1 of 3", false});
  c.push_back({"P03", "point file", ".off of 28 bytes whose header claims 10^12 vertices", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.off", "OFF\n1000000000000 1 0\n0 0 0\n");
                 return predict(f, d + "/a.off");
               }, "header claims 1000000000000 vertices and 1 faces but the file has only 28 bytes", false});
  c.push_back({"P04", "point file", ".off with a face index past the vertices", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n");
                 return predict(f, d + "/a.off");
               }, "face 0 has a vertex index outside [0, 3)", false});
  c.push_back({"P05", "point file", ".off with 'nan' for a coordinate", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.off", "OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n");
                 return predict(f, d + "/a.off");
               }, "truncated or malformed vertex 1 of 3", false});
  c.push_back({"P06", "point file", ".off with no faces", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.off", "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n");
                 return predict(f, d + "/a.off");
               }, "empty mesh: 3 vertices, 0 faces", false});
  c.push_back({"P07", "point file", "empty .xyz file", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.xyz", "");
                 return predict(f, d + "/a.xyz");
               }, "empty point cloud (no points)", false});
  c.push_back({"P08", "point file", ".xyz with 2 values per point", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.xyz", "0 0\n1 1\n");
                 return predict(f, d + "/a.xyz");
               }, "expected at least 3 coordinates per point, got 2", false});
  c.push_back({"P09", "point file", ".xyz whose rows differ in length", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.xyz", "0 0 0\n1 1 1 1\n");
                 return predict(f, d + "/a.xyz");
               }, "expected 3 values like line 1, got 4", false});
  c.push_back({"P10", "point file", ".xyz with a word among the numbers", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.xyz", "0 0 0\n1 one 1\n");
                 return predict(f, d + "/a.xyz");
               }, "a.xyz:2:", false});
  c.push_back({"P11", "point file", ".npy without the NumPy magic", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.npy", "NUMPY 1.0 but not really");
                 return predict(f, d + "/a.npy");
               }, "not a NumPy .npy file", false});
  c.push_back({"P12", "point file", ".npy of int32", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.npy", npy_bytes("<i4", "(4, 3)", 48));
                 return predict(f, d + "/a.npy");
               }, "unsupported dtype '<i4': expected float32 ('<f4') or float64 ('<f8')", false});
  c.push_back({"P13", "point file", ".npy with fewer data bytes than its shape needs", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.npy", npy_bytes("<f4", "(100, 3)", 40));
                 return predict(f, d + "/a.npy");
               }, "truncated: shape (100, 3) needs more bytes of data than the file's 40", false});
  c.push_back({"P14", "point file", ".npy whose shape claims 10^12 points", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.npy", npy_bytes("<f4", "(1000000000000, 3)", 0));
                 return predict(f, d + "/a.npy");
               }, "truncated: shape (1000000000000, 3) needs more bytes", false});
  c.push_back({"P15", "point file", ".npy of one dimension", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.npy", npy_bytes("<f4", "(6,)", 24));
                 return predict(f, d + "/a.npy");
               }, "expected a point array [P, C] with C >= 3 columns, got shape (6,)", false});
  c.push_back({"P16", "point file", ".npy version 2 header claiming 4 GB", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.npy", std::string("\x93NUMPY\x02\x00\x00\x28\x6b\xee", 12) + "{}");
                 return predict(f, d + "/a.npy");
               }, "truncated or corrupt .npy header: it claims 4000000000 bytes", false});
  c.push_back({"P17", "point file", ".npy format version 9", [](const Fixture& f, const std::string& d) {
                 std::string b = npy_bytes("<f4", "(2, 3)", 24);
                 b[6] = 9;
                 write_file(d + "/a.npy", b);
                 return predict(f, d + "/a.npy");
               }, "unsupported .npy format version 9 (expected 1, 2 or 3)", false});
  c.push_back({"P18", "point file", ".ply whose header claims 10^12 vertices", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.ply", "ply\nformat ascii 1.0\nelement vertex 1000000000000\nproperty float x\nend_header\n");
                 return predict(f, d + "/a.ply");
               }, "header claims 1000000000000 points or elements but the file has only 78 bytes", false});
  c.push_back({"P19", "point file", ".pcd whose header claims 10^12 points", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.pcd", "VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1000000000000\n"
                                          "HEIGHT 1\nPOINTS 1000000000000\nDATA ascii\n");
                 return predict(f, d + "/a.pcd");
               }, "header claims 1000000000000 points or elements", false});
  c.push_back({"P20", "point file", "file with an unknown extension", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.stl", "solid x\n");
                 return predict(f, d + "/a.stl");
               }, "unsupported point file extension '.stl'", false});
  c.push_back({"P21", "point file", "a path that does not exist", [](const Fixture& f, const std::string& d) {
                 return predict(f, d + "/absent.xyz");
               }, "absent.xyz", false});
  c.push_back({"P22", "point file", "a PLY whose vertices have no x, y, z", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/abc.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float a\nproperty float b\n"
                                            "property float c\nelement face 1\nproperty list uchar int vertex_indices\n"
                                            "end_header\n1 2 3\n4 5 6\n7 8 9\n3 0 1 2\n");
                 return predict(f, d + "/abc.ply");
               }, "abc.ply: PLY vertex properties are 'a b c'; expected properties x, y and z", false});
  // ---- image datasets (IDX, CIFAR) ----
  c.push_back({"I01", "image data", "IDX image file with the wrong magic", [](const Fixture& f, const std::string& d) {
                 const auto root = copy_images(f, d);
                 write_file(root + "/train-images-idx3-ubyte", ewa::testing::be32(0x00000801) + std::string(12, '\0'));
                 return train_images(root);
               }, "not an IDX image file: expected magic 0x00000803"});
  c.push_back({"I02", "image data", "IDX images that are not square", [](const Fixture& f, const std::string& d) {
                 const auto root = copy_images(f, d);
                 write_file(root + "/train-images-idx3-ubyte", ewa::testing::idx_bytes(torch::zeros({40, 28, 14})));
                 return train_images(root);
               }, "expected square images of at most 65536x65536, header says 28x14"});
  c.push_back({"I03", "image data", "40-byte IDX file whose header claims 4e9 images", [](const Fixture& f, const std::string& d) {
                 const auto root = copy_images(f, d);
                 write_file(root + "/train-images-idx3-ubyte", ewa::testing::be32(0x803) + ewa::testing::be32(4000000000u) +
                                                                   ewa::testing::be32(28) + ewa::testing::be32(28) + std::string(24, '\0'));
                 return train_images(root);
               }, "header claims 4000000000 images of 28x28 (3136000000000 bytes) but the file has only 40 bytes"});
  c.push_back({"I04", "image data", "IDX image file cut off in its pixels", [](const Fixture& f, const std::string& d) {
                 const auto root = copy_images(f, d);
                 auto bytes = ewa::testing::idx_bytes(torch::zeros({40, 28, 28}));
                 write_file(root + "/train-images-idx3-ubyte", bytes.substr(0, bytes.size() - 100));
                 return train_images(root);
               }, "truncated: expected 31360 bytes of pixel data, found 31260"});
  c.push_back({"I05", "image data", "IDX labels fewer than images", [](const Fixture& f, const std::string& d) {
                 const auto root = copy_images(f, d);
                 write_file(root + "/train-labels-idx1-ubyte", ewa::testing::idx_bytes(torch::zeros({39})));
                 return train_images(root);
               }, "has 39 labels but"});
  c.push_back({"I06", "image data", "IDX label 12 in a 10-class dataset", [](const Fixture& f, const std::string& d) {
                 const auto root = copy_images(f, d);
                 write_file(root + "/train-labels-idx1-ubyte", ewa::testing::idx_bytes(torch::full({40}, 12)));
                 return train_images(root);
               }, "label 12 out of range: expected labels in [0, 10)"});
  c.push_back({"I07", "image data", "IDX labels file missing", [](const Fixture& f, const std::string& d) {
                 const auto root = copy_images(f, d);
                 fs::remove(root + "/train-labels-idx1-ubyte");
                 return train_images(root);
               }, "missing file train-labels-idx1-ubyte(.gz)"});
  c.push_back({"I08", "image data", "empty IDX image file", [](const Fixture& f, const std::string& d) {
                 const auto root = copy_images(f, d);
                 write_file(root + "/train-images-idx3-ubyte", "");
                 return train_images(root);
               }, "truncated: expected 4 bytes of header, found 0"});
  c.push_back({"I09", "image data", "CIFAR-10 batch whose size is not a whole number of records", [](const Fixture&, const std::string& d) {
                 for (int i = 1; i <= 5; ++i) write_file(d + "/data_batch_" + std::to_string(i) + ".bin", std::string(3073 * 2, '\0'));
                 write_file(d + "/test_batch.bin", std::string(3073 * 2 + 5, '\0'));
                 return train_images(d, "--set data.dataset=cifar10 --set model.patch_size=8");
               }, "not a positive multiple of the record size 3073"});
  c.push_back({"I10", "image data", "CIFAR-10 label 10", [](const Fixture&, const std::string& d) {
                 std::string batch(3073, '\0');
                 batch[0] = 10;
                 for (int i = 1; i <= 5; ++i) write_file(d + "/data_batch_" + std::to_string(i) + ".bin", batch);
                 write_file(d + "/test_batch.bin", std::string(3073, '\0'));
                 return train_images(d, "--set data.dataset=cifar10 --set model.patch_size=8");
               }, "label 10 out of range: expected labels in [0, 10)"});
  // ---- image folders ----
  auto folder_case = [](const std::function<void(const std::string&)>& spoil) {
    return [spoil](const Fixture&, const std::string& d) {
      const std::string root = d + "/pets";
      for (const char* f : {"train/cat/0.bmp", "train/dog/0.bmp", "val/cat/0.bmp", "val/dog/0.bmp"})
        ewa::testing::write_bmp(root + "/" + f, torch::zeros({8, 8, 3}, torch::kUInt8));
      spoil(root);
      return kEwa + " train --set data.dataset=image_folder --set data.root=" + root + " --set data.image_size=8 " +
             "--set model.patch_size=4 --set model.embed_dim=16 --set model.depth=1 --set model.num_heads=2 " +
             "--set train.runs_dir=" + d + "/runs";
    };
  };
  c.push_back({"I11", "image data", "an image folder holding a cut-off BMP", folder_case([](const std::string& r) {
                 write_file(r + "/train/cat/1.bmp", "BM");
               }), "1.bmp: not a readable BMP: the file is truncated"});
  c.push_back({"I12", "image data", "an image folder holding a .webp image", folder_case([](const std::string& r) {
                 write_file(r + "/train/dog/1.webp", "RIFF");
               }), "1.webp: an image ewa does not read (it reads .png, .jpg, .jpeg and .bmp)"});
  c.push_back({"I13", "image data", "an image folder whose val/ has a class train/ lacks", folder_case([](const std::string& r) {
                 ewa::testing::write_bmp(r + "/val/bird/0.bmp", torch::zeros({8, 8, 3}, torch::kUInt8));
               }), "val/bird: a class train/ does not have"});
  c.push_back({"I14", "image data", "an image folder with a file of no image format named .png", folder_case([](const std::string& r) {
                 write_file(r + "/val/dog/1.png", "hello");
               }), "1.png: not a PNG, JPEG or BMP image"});
  // ---- point datasets (HDF5) ----
  auto h5_case = [](const std::string& file_text, const std::function<void(const std::string&)>& corrupt) {
    return [file_text, corrupt](const Fixture& f, const std::string& d) {
      const auto root = copy_synth(f, d);
      corrupt(root);
      return kEwa + " train --config " + f.point_config(d + "/c.json", root);
    };
  };
  c.push_back({"H01", "point data", "a training .h5 that is not HDF5", h5_case("", [](const std::string& r) {
                 write_file(r + "/ply_data_train0.h5", "not hdf5 at all");
               }), "not a readable HDF5 file (truncated or corrupt)"});
  c.push_back({"H02", "point data", "an empty (0-byte) training .h5", h5_case("", [](const std::string& r) {
                 write_file(r + "/ply_data_train0.h5", "");
               }), "not a readable HDF5 file"});
  c.push_back({"H03", "point data", ".h5 'data' of 2 channels", h5_case("", [](const std::string& r) {
                 ewa::datasets::write_h5_clouds(r + "/ply_data_train0.h5", torch::rand({4, 64, 2}), torch::zeros({4}, torch::kLong));
               }), "dataset 'data' has shape [4, 64, 2], expected [N, P, 3]"});
  c.push_back({"H04", "point data", ".h5 with NaN coordinates", h5_case("", [](const std::string& r) {
                 auto pts = torch::rand({4, 64, 3});
                 pts[1][5][0] = NAN;
                 ewa::datasets::write_h5_clouds(r + "/ply_data_train0.h5", pts, torch::zeros({4}, torch::kLong));
               }), "dataset 'data' contains NaN or infinite coordinates"});
  c.push_back({"H05", "point data", ".h5 with label -1 (stored as uint8, so 255)", h5_case("", [](const std::string& r) {
                 ewa::datasets::write_h5_clouds(r + "/ply_data_train0.h5", torch::rand({4, 64, 3}), torch::tensor({0, -1, 0, 0}, torch::kLong));
               }), "label 255 out of range: expected labels in [0, 8)"});
  c.push_back({"H06", "point data", ".h5 label beyond shape_names.txt", h5_case("", [](const std::string& r) {
                 ewa::datasets::write_h5_clouds(r + "/ply_data_train0.h5", torch::rand({4, 64, 3}), torch::tensor({0, 99, 0, 0}, torch::kLong));
               }), "99"});
  c.push_back({"H07", "point data", "train_files.txt lists a file that is absent", h5_case("", [](const std::string& r) {
                 write_file(r + "/train_files.txt", "data/synth/ply_data_train7.h5\n");
               }), "ply_data_train7.h5"});
  c.push_back({"H08", "point data", "clouds of fewer points than data.num_points", h5_case("", [](const std::string& r) {
                 ewa::datasets::write_h5_clouds(r + "/ply_data_train0.h5", torch::rand({4, 16, 3}), torch::zeros({4}, torch::kLong));
               }), "16"});
  // ---- configs and --set ----
  auto config_case = [](const std::string& json) {
    return [json](const Fixture&, const std::string& d) {
      write_file(d + "/c.json", json);
      return kEwa + " train --config " + d + "/c.json";
    };
  };
  auto set_case = [](const std::string& sets) {
    return [sets](const Fixture& f, const std::string& d) {
      return kEwa + " train --config " + f.point_config(d + "/c.json", f.synth) + " " + sets;
    };
  };
  c.push_back({"C01", "config", "an unknown key", config_case(R"({"ewa": {"share": 0.3}})"), "unknown key 'ewa.share'"});
  c.push_back({"C02", "config", "a string where an integer belongs", config_case(R"({"train": {"epochs": "ten"}})"),
               "'train.epochs': expected an integer"});
  c.push_back({"C03", "config", "a value below its range", config_case(R"({"train": {"epochs": 0}})"), "'train.epochs'"});
  c.push_back({"C04", "config", "a value outside its choices", config_case(R"({"moe": {"kind": "sparse"}})"), "'moe.kind'"});
  c.push_back({"C05", "config", "not JSON", config_case("{\"train\": {\"epochs\": 3,,}}"), "invalid JSON"});
  c.push_back({"C06", "config", "JSON that is a list, not an object", config_case("[1, 2]"), "the top level must be a JSON object"});
  c.push_back({"C07", "config", "a config file that does not exist", [](const Fixture&, const std::string& d) {
                 return kEwa + " train --config " + d + "/absent.json";
               }, "absent.json: cannot open file"});
  c.push_back({"C08", "config", "share rate above (N-1)/N", set_case("--set ewa.share_rate=0.9"),
               "share rate must be in [0, (N-1)/N] = [0, 0.5] for N = 2 experts, got 0.9"});
  c.push_back({"C09", "config", "num_heads that does not divide embed_dim", set_case("--set model.num_heads=3"),
               "'model.num_heads': must divide model.embed_dim (32), got 3"});
  c.push_back({"C10", "config", "group_size larger than num_points", set_case("--set model.group_size=128"), "model.group_size"});
  c.push_back({"C11", "config", "moe.blocks index past the depth", set_case("--set moe.blocks=[5]"),
               "'moe.blocks': block index 5 is outside 0..1"});
  c.push_back({"C12", "config", "moe.top_k above moe.num_experts", set_case("--set moe.kind=routed --set moe.top_k=2 --set moe.num_experts=2 --set moe.top_k=3"),
               "moe.top_k"});
  c.push_back({"C13", "config", "moe.last_k above the depth", set_case("--set moe.blocks=last_k --set moe.last_k=4"),
               "'moe.last_k': must not exceed model.depth (2)"});
  c.push_back({"C14", "config", "data.scale_low above data.scale_high", set_case("--set data.scale_low=2 --set data.scale_high=1"),
               "'data.scale_low': must not exceed data.scale_high"});
  c.push_back({"C15", "config", "scanobjectnn without a variant", set_case("--set data.dataset=scanobjectnn"),
               "'data.variant': required for scanobjectnn"});
  c.push_back({"C16", "config", "an image model on a point dataset", set_case("--set model.name=vit"),
               "cannot read dataset '"});
  c.push_back({"C17", "config", "a dataset without data.root", config_case(R"({"data": {"dataset": "cifar10"}})"),
               "'data.root': required for dataset cifar10"});
  c.push_back({"C18", "config", "--set without '='", set_case("--set ewa.share_rate"), "expected key=value"});
  c.push_back({"C19", "config", "--set of an unknown key", set_case("--set ewa.sharerate=0.1"), "unknown key 'ewa.sharerate'"});
  c.push_back({"C20", "config", "--set of the wrong type", set_case("--set train.seed=abc"), "train.seed"});
  c.push_back({"C21", "config", "a --config path that is a directory", [](const Fixture&, const std::string& d) {
                 return kEwa + " train --config " + d;
               }, ": is a directory, expected a JSON config file"});
  c.push_back({"C22", "config", "a base config that does not exist", config_case(R"({"base": "absent.json"})"),
               "key 'base' names"});
  c.push_back({"C23", "config", "a config that is its own base", config_case(R"({"base": "c.json"})"), "(a cycle)"});
  c.push_back({"C24", "config", "data.use_normals on a dataset without normals", set_case("--set data.use_normals=true"),
               "'data.use_normals': only modelnet40_resampled, modelnet_fewshot and shapenetpart files carry normals, dataset is "});
  c.push_back({"C26", "config", "an image folder without data.image_size",
               config_case(R"({"data": {"dataset": "image_folder", "root": "/tmp"}})"), "'data.image_size': required for image_folder"});
  c.push_back({"C27", "config", "Mixup with an odd batch size",
               config_case(R"({"data": {"mixup": 0.8, "batch_size": 31}})"), "'data.batch_size': must be even with data.mixup or data.cutmix"});
  c.push_back({"C28", "config", "CutMix on point clouds",
               config_case(R"({"model": {"name": "point_transformer"}, "data": {"dataset": "modelnet_folder", "root": "/tmp", "cutmix": 1.0}})"),
               "'data.cutmix': mixes or erases images; modelnet_folder holds point clouds"});
  c.push_back({"C25", "config", "an empty 'base'", config_case(R"({"base": ""})"),
               "c.json: key 'base' expects the path of a config file (a non-empty string) or a list of them, got \"\""});
  // ---- flags and environment ----
  auto flag_case = [](const std::string& args) {
    return [args](const Fixture&, const std::string&) { return kEwa + (args.empty() ? "" : " " + args); };
  };
  c.push_back({"F01", "flags", "an unknown flag", flag_case("train --no-such-flag"), "--no-such-flag"});
  c.push_back({"F02", "flags", "no command", flag_case(""), "A subcommand is required"});
  c.push_back({"F03", "flags", "an unknown command", flag_case("frobnicate"), "unknown command 'frobnicate'"});
  c.push_back({"F04", "flags", "an integer flag of 0 where 1 is the least", flag_case("bench ops --k 0"),
               "--k: expected an integer >= 1, got '0'"});
  c.push_back({"F05", "flags", "a word where an integer belongs", flag_case("bench ops --repeats many"),
               "--repeats: expected an integer >= 1, got 'many'"});
  c.push_back({"F06", "flags", "a flag without its value", flag_case("train --config"), "--config"});
  c.push_back({"F07", "flags", "--nproc 0", flag_case("train --nproc 0"), "--nproc"});
  c.push_back({"F08", "flags", "an unknown EWA_SIMD", [](const Fixture&, const std::string&) {
                 return "EWA_SIMD=sse9 " + kEwa + " bench ops";
               }, "environment variable EWA_SIMD='sse9': expected baseline, avx2 or avx512"});
  c.push_back({"F09", "flags", "bench ops with a size under 64 points", flag_case("bench ops --sizes 8"),
               "--sizes: every size must be at least 64 points, got 8"});
  // ---- part segmentation (ShapeNetPart's released layout) ----
  auto part_root = [](const std::string& d, const std::string& shape, const std::string& list) {
    fs::create_directories(d + "/sp/train_test_split");
    fs::create_directories(d + "/sp/03797390");
    write_file(d + "/sp/synsetoffset2category.txt", "Mug\t03797390\n");
    write_file(d + "/sp/train_test_split/shuffled_train_file_list.json", list);
    write_file(d + "/sp/train_test_split/shuffled_val_file_list.json", "[]");
    write_file(d + "/sp/train_test_split/shuffled_test_file_list.json", list);
    write_file(d + "/sp/03797390/a.txt", shape);
    return kEwa + " train -c " + std::string(EWA_SOURCE_DIR) + "/configs/synth_parts_dense.json --set data.root=" + d +
           "/sp --set train.runs_dir=" + d + "/runs";
  };
  const std::string mug_list = "[\"shape_data/03797390/a\"]";
  c.push_back({"S01", "part data", "a part label outside the shape's category", [=](const Fixture&, const std::string& d) {
                 return part_root(d, "0 0 0 0 0 1 36\n1 0 0 0 0 1 12\n", mug_list);
               }, "a.txt: part label 12 is outside the parts of Mug (36..37)"});
  c.push_back({"S02", "part data", "a shape file whose rows differ in length", [=](const Fixture&, const std::string& d) {
                 return part_root(d, "0 0 0 0 0 1 36\n1 0 0 0 0 1\n", mug_list);
               }, "a.txt:2: expected 7 values like line 1, got 6"});
  c.push_back({"S03", "part data", "a split list naming a missing file", [=](const Fixture&, const std::string& d) {
                 return part_root(d, "0 0 0 0 0 1 36\n", "[\"shape_data/03797390/a\", \"shape_data/03797390/gone\"]");
               }, "03797390/gone.txt: named by the split list but missing"});
  c.push_back({"S04", "part data", "a shape file without the part column", [=](const Fixture&, const std::string& d) {
                 return part_root(d, "0 0 0 0 0 1\n1 0 0 0 0 1\n", mug_list);
               }, "a.txt: expected 7 columns (x y z nx ny nz part), got 6"});
  c.push_back({"S05", "part data", "a category that ShapeNetPart does not have", [=](const Fixture&, const std::string& d) {
                 auto cmd = part_root(d, "0 0 0 0 0 1 36\n", mug_list);
                 write_file(d + "/sp/synsetoffset2category.txt", "Sofa\t04256520\n");
                 return cmd;
               }, "synsetoffset2category.txt:1: 'Sofa' is not one of the 16 ShapeNetPart categories"});
  c.push_back({"S07", "part data", "a test split list that names no shapes", [=](const Fixture&, const std::string& d) {
                 auto cmd = part_root(d, "0 0 0 0 0 1 36\n1 0 0 0 0 1 37\n", mug_list);
                 write_file(d + "/sp/train_test_split/shuffled_test_file_list.json", "[]");
                 return cmd;
               }, "<dir>/sp/train_test_split/shuffled_test_file_list.json: names no shapes"});
  c.push_back({"S08", "part data", "predict with a part segmenter and vote flags (refused as eval refuses them)",
               [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.txt", "0 0 0 0 0 1 36\n");
                 return kEwa + " predict " + f.seg + " " + d + "/a.txt --protocol vote --views 3 -o " + d + "/out";
               }, "--protocol/--votes/--views/--repeats: <fixture>/runs/seg/last.pt is a part-segmentation model"});
  c.push_back({"S09", "part data", "a predict input whose labels mix two categories (a Mug part and an Airplane part)",
               [](const Fixture& f, const std::string& d) {
                 std::string text = "0 0 0 0 0 1 36\n0 1 0 0 0 1 0\n";
                 for (int i = 0; i < 100; ++i) text += std::to_string(i % 7) + " " + std::to_string(i % 5) + " " + std::to_string(i % 3) + " 0 0 1 37\n";
                 write_file(d + "/mixed.txt", text);
                 return kEwa + " predict " + f.seg + " " + d + "/mixed.txt -o " + d + "/out";
               }, "mixed.txt: part label 0 is outside the parts of Mug (36..37)", false});
  c.push_back({"S10", "part data", "--category that contradicts the released layout's synset folder",
               [](const Fixture& f, const std::string& d) {
                 fs::create_directories(d + "/03797390/points");
                 std::string text;
                 for (int i = 0; i < 100; ++i) text += std::to_string(i % 7) + " " + std::to_string(i % 5) + " " + std::to_string(i % 3) + "\n";
                 write_file(d + "/03797390/points/x.pts", text);
                 return kEwa + " predict " + f.seg + " " + d + "/03797390/points/x.pts --category Table -o " + d + "/out";
               }, "x.pts: lies in the Mug folder of the ShapeNetPart layout (synset 03797390), --category says Table", false});
  c.push_back({"S06", "part data", "point_seg on a classification dataset", [](const Fixture& f, const std::string& d) {
                 return kEwa + " train --config " + f.point_config(d + "/c.json", f.synth) + " --set model.name=point_seg";
               }, "point_seg segments parts: dataset"});
  // ---- Point-BERT pretraining ----
  auto bert = [](const Fixture& f, const std::string& d, const std::string& extra) {
    return kEwa + " pretrain -c " + std::string(EWA_SOURCE_DIR) + "/configs/synth_pointbert.json --set data.root=" + f.synth +
           " --set data.dataset=" + ewa::testing::synth_dataset() + " --set data.num_points=128 --set model.num_groups=8" +
           " --set model.group_size=8 --set pretrain.svm_dataset= --set pretrain.svm_root=" +
           " --set train.runs_dir=" + d + "/runs " + extra;
  };
  c.push_back({"B01", "Point-BERT", "stage 2 without a tokenizer", [=](const Fixture& f, const std::string& d) {
                 return bert(f, d, "--set pretrain.tokenizer=");
               }, "pretrain.tokenizer': point_bert predicts the tokens of a trained dVAE"});
  c.push_back({"B02", "Point-BERT", "a tokenizer file that holds no dVAE (a classifier)", [=](const Fixture& f, const std::string& d) {
                 return bert(f, d, "--set pretrain.tokenizer=" + f.ckpt);
               }, "pretrain.tokenizer: <fixture>/runs/tiny/last.pt holds no dVAE tokenizer"});
  c.push_back({"B03", "Point-BERT", "a queue that the global batch does not divide", [=](const Fixture& f, const std::string& d) {
                 return bert(f, d, "--set pretrain.tokenizer=" + f.ckpt + " --set pretrain.queue_size=100");
               }, "pretrain.queue_size: 100 is not a multiple of the global batch of 32 clouds"});
  c.push_back({"B04", "Point-BERT", "an SVM monitor on a part-segmentation set", [=](const Fixture& f, const std::string& d) {
                 return bert(f, d, "--set pretrain.svm_dataset=shapenetpart --set pretrain.svm_root=" + d);
               }, "'shapenetpart' is not a labelled point-cloud classification set"});
  // ---- protocols: votes, few-shot folds, the official pipeline ----
  auto fewshot_root = [](const std::string& d, const std::string& fold_bytes) {
    fs::create_directories(d + "/fs/5way_10shot");
    write_file(d + "/fs/5way_10shot/0.pkl", fold_bytes);
    write_file(d + "/fs.json", R"({"model": {"name": "point_transformer", "embed_dim": 16, "depth": 1, "num_heads": 2,
      "num_groups": 8, "group_size": 8, "num_classes": 40}, "data": {"dataset": "modelnet_fewshot", "root": ")" + d +
                                      R"(/fs", "pipeline": "resample", "num_points": 64, "fps_points": 100},
      "train": {"runs_dir": ")" + d + R"(/runs"}})");
    return d + "/fs.json";
  };
  c.push_back({"V01", "protocols", "a few-shot fold that does not exist", [fewshot_root](const Fixture&, const std::string& d) {
                 return kEwa + " fewshot -c " + fewshot_root(d, "x") + " --way 5 --shot 10 --folds 12";
               }, "data.fold: <dir>/fs/5way_10shot/12.pkl does not exist (the folds there: 0.pkl)"});
  c.push_back({"V13", "protocols", "a missing few-shot fold after one that exists, found before any fold trains",
               [fewshot_root](const Fixture&, const std::string& d) {
                 return kEwa + " fewshot -c " + fewshot_root(d, "x") + " --way 5 --shot 10 --folds 0 12";
               }, "data.fold: <dir>/fs/5way_10shot/12.pkl does not exist"});
  c.push_back({"V02", "protocols", "a few-shot pickle of another layout (a list, not {'train', 'test'})",
               [fewshot_root](const Fixture&, const std::string& d) {
                 return kEwa + " fewshot -c " + fewshot_root(d, std::string("\x80\x02]q\x00.", 6)) + " --way 5 --shot 10 --folds 0";
               }, "0.pkl: top level: expected a dict with keys 'train' and 'test', got a list of 0"});
  c.push_back({"V03", "protocols", "a few-shot fold that is not a pickle", [fewshot_root](const Fixture&, const std::string& d) {
                 return kEwa + " fewshot -c " + fewshot_root(d, "way,shot\n5,10\n") + " --way 5 --shot 10 --folds 0";
               }, "0.pkl: not a pickle file of protocol 2 to 5 (as Python's pickle.dump writes)"});
  c.push_back({"V04", "protocols", "a vote of 0 views", [](const Fixture& f, const std::string&) {
                 return kEwa + " eval " + f.ckpt + " --protocol vote --views 0";
               }, "--views"});
  c.push_back({"V05", "protocols", "eval.vote_repeats = 0 in a config", [](const Fixture& f, const std::string&) {
                 return kEwa + " eval " + f.ckpt + " --set eval.vote_repeats=0";
               }, "key 'eval.vote_repeats': expected an integer in [1, 100000], got 0"});
  c.push_back({"V06", "protocols", "the vote for a point count without an official fps_points", [](const Fixture& f, const std::string&) {
                 return kEwa + " eval " + f.ckpt + " --protocol vote";
               }, "data.fps_points: the official vote (eval protocol vote) draws data.num_points = 64 of the first fps_points FPS points"});
  c.push_back({"V07", "protocols", "eval.final_vote that could not run, refused before training", [](const Fixture& f, const std::string& d) {
                 return kEwa + " train --config " + f.point_config(d + "/c.json", f.synth) + " --set eval.final_vote=true";
               }, "data.fps_points: eval.final_vote draws data.num_points = 64"});
  c.push_back({"V08", "protocols", "data.fps_points below data.num_points", [](const Fixture& f, const std::string& d) {
                 return kEwa + " train --config " + f.point_config(d + "/c.json", f.synth) + " --set data.fps_points=32";
               }, "key 'data.fps_points': must be at least data.num_points (64), got 32"});
  c.push_back({"V09", "protocols", "--protocol tta with data.votes = 1", [](const Fixture& f, const std::string&) {
                 return kEwa + " eval " + f.ckpt + " --protocol tta";
               }, "--protocol tta: averages 1 clean and data.votes - 1 augmented passes; data.votes is 1"});
  c.push_back({"V10", "protocols", "data.pipeline = resample for images", [](const Fixture& f, const std::string& d) {
                 return train_images(copy_images(f, d), "--set data.pipeline=resample");
               }, "key 'data.pipeline': 'resample' resamples point clouds; image datasets have 'fixed' only"});
  c.push_back({"V11", "protocols", "a batch size larger than the training split, with drop_last", [](const Fixture& f, const std::string& d) {
                 return kEwa + " train --config " + f.point_config(d + "/c.json", f.synth) + " --set data.batch_size=100";
               }, "data.batch_size: 100 exceeds the 48 training samples, and data.drop_last leaves out the partial batch"});
  c.push_back({"V12", "protocols", "drop_last = false leaving a BatchNorm head a batch of one", [](const Fixture& f, const std::string& d) {
                 return kEwa + " train --config " + f.point_config(d + "/c.json", f.synth) +
                        " --set data.batch_size=47 --set data.drop_last=false";
               }, "data.drop_last=false leaves a last batch of 1 samples, so a training BatchNorm layer would see a single sample"});
  // ---- checkpoints and weights ----
  c.push_back({"K01", "checkpoint", "--resume of a file that does not exist", [](const Fixture& f, const std::string& d) {
                 return kEwa + " train --config " + f.point_config(d + "/c.json", f.synth) + " --resume " + d + "/absent.pt";
               }, "absent.pt: cannot open file"});
  c.push_back({"K02", "checkpoint", "a checkpoint cut off halfway", [](const Fixture& f, const std::string& d) {
                 std::ifstream in(f.ckpt, std::ios::binary);
                 std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
                 write_file(d + "/half.pt", bytes.substr(0, bytes.size() / 2));
                 return kEwa + " eval " + d + "/half.pt";
               }, "half.pt: not a readable torch.save file (truncated, or not a zip archive written by torch.save)"});
  c.push_back({"K03", "checkpoint", "a text file named .pt", [](const Fixture&, const std::string& d) {
                 write_file(d + "/notes.pt", "these are my notes\n");
                 return kEwa + " eval " + d + "/notes.pt";
               }, "notes.pt"});
  c.push_back({"K04", "checkpoint", "--resume into a model of another architecture", [](const Fixture& f, const std::string& d) {
                 return kEwa + " train --config " + f.point_config(d + "/c.json", f.synth) + " --set model.embed_dim=48 --resume " + f.ckpt;
               }, "does not match the model architecture"});
  c.push_back({"K05", "checkpoint", "a checkpoint of another format version", [](const Fixture& f, const std::string& d) {
                 c10::impl::GenericDict root(c10::StringType::get(), c10::AnyType::get());
                 root.insert(std::string("format"), std::string("ewa-checkpoint-0"));
                 const auto bytes = torch::pickle_save(at::IValue(root));
                 write_file(d + "/old.pt", std::string(bytes.begin(), bytes.end()));
                 return kEwa + " train --config " + f.point_config(d + "/c.json", f.synth) + " --resume " + d + "/old.pt";
               }, "old.pt: unsupported format: expected 'ewa-checkpoint-2'"});
  c.push_back({"K06", "checkpoint", "--resume from a converted (dense) model", [](const Fixture& f, const std::string& d) {
                 return kEwa + " train --config " + f.point_config(d + "/c.json", f.synth) + " --set moe.kind=dense --resume " + f.dense;
               }, "has no optimizer state (a converted model cannot be resumed)"});
  c.push_back({"K07", "checkpoint", "--resume with another batch size (the stop position no longer fits)", [](const Fixture& f, const std::string& d) {
                 // A mid-epoch checkpoint after step 2 of 3 (batches of 16 of 48 clouds): killed while
                 // writing the third; then resumed with one batch of 48 per epoch.
                 const auto cfg = f.point_config(d + "/c.json", f.synth, R"(, "checkpoint_every": 1)");
                 run_command("EWA_TEST_KILL_DURING_CHECKPOINT=3 " + kEwa + " train --config " + cfg);
                 return kEwa + " train --config " + cfg + " --set data.batch_size=48 --resume " + d + "/runs/e/last.pt";
               }, "which does not fit"});
  c.push_back({"K08", "checkpoint", "safetensors file shorter than its 8-byte header length", [](const Fixture&, const std::string& d) {
                 write_file(d + "/w.safetensors", "abc");
                 return kEwa + " eval " + d + "/w.safetensors";
               }, "truncated safetensors file (no header)"});
  c.push_back({"K09", "checkpoint", "safetensors header length beyond the file", [](const Fixture&, const std::string& d) {
                 write_file(d + "/w.safetensors", std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}");
                 return kEwa + " eval " + d + "/w.safetensors";
               }, "corrupt safetensors file: header length"});
  c.push_back({"K10", "checkpoint", "a weights file with an unknown extension", [](const Fixture&, const std::string& d) {
                 write_file(d + "/w.h5", "x");
                 return kEwa + " eval " + d + "/w.h5";
               }, "unsupported weights file extension '.h5'"});
  c.push_back({"K11", "checkpoint", "a checkpoint with one damaged byte", [](const Fixture& f, const std::string& d) {
                 std::ifstream in(f.ckpt, std::ios::binary);
                 std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
                 // The first record (data.pkl, as torch.save orders them) begins after its 30-byte local header,
                 // name and extra field.
                 const auto u16 = [&](size_t at) { return size_t(uint8_t(bytes[at])) | size_t(uint8_t(bytes[at + 1])) << 8; };
                 bytes.at(30 + u16(26) + u16(28) + 5) ^= 0x04;
                 write_file(d + "/flipped.pt", bytes);
                 return kEwa + " eval " + d + "/flipped.pt";
               }, "flipped.pt: corrupt zip archive: record 'data.pkl' fails its CRC-32 check (the file is damaged)"});
  c.push_back({"K12", "checkpoint", "a 7 KB checkpoint whose zip directory claims a 4 GB record", [](const Fixture&, const std::string& d) {
                 std::ifstream in(std::string(EWA_SOURCE_DIR) + "/tests/data/fuzz_oom_zip_record_size.bin", std::ios::binary);
                 write_file(d + "/huge.pt", std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
                 return kEwa + " eval " + d + "/huge.pt";
               }, "huge.pt: corrupt zip archive: record 'tmp/version' claims 4294967295 bytes from 2 stored bytes"});
  // ---- the run directory ----
  c.push_back({"R01", "run directory", "train.runs_dir is a file", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/file", "x");
                 return kEwa + " train --config " + f.point_config(d + "/c.json", f.synth) + " --set train.runs_dir=" + d + "/file";
               }, "cannot create it (Not a directory)"});
  c.push_back({"R02", "run directory", "a run directory that already holds a checkpoint, without --resume", [](const Fixture& f, const std::string& d) {
                 const auto cfg = f.point_config(d + "/c.json", f.synth);
                 run_command(kEwa + " train --config " + cfg);
                 return kEwa + " train --config " + cfg;
               }, "already holds a checkpoint (last.pt): pass --resume to continue it or choose another --name"});
  // ---- outputs: nothing a command reads or a user already has is overwritten ----
  c.push_back({"W01", "outputs", "convert -o naming its own input", [](const Fixture& f, const std::string& d) {
                 fs::copy(f.ckpt, d + "/last.pt");
                 return kEwa + " convert " + d + "/last.pt -o " + d + "/./last.pt --force";
               }, "--output: <dir>/./last.pt is a file this command reads (<dir>/last.pt): choose an output that is not an input"});
  c.push_back({"W02", "outputs", "export -o over an existing file, without --force", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/model.pth", "the user's own file");
                 return kEwa + " export " + f.dense + " -o " + d + "/model.pth";
               }, "--output: <dir>/model.pth exists already: pass --force to replace it"});
  c.push_back({"W03", "outputs", "data synth into a folder that holds files, without --force", [](const Fixture&, const std::string& d) {
                 write_file(d + "/notes.txt", "mine");
                 return kEwa + " data synth -o " + d;
               }, "--output: <dir> exists and is not empty: pass --force to write into it"});
  c.push_back({"W04", "outputs", "show --png naming one of the point files it shows", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/a.xyz", "0 0 0\n1 0 0\n0 1 0\n");
                 return kEwa + " show " + f.dense + " " + d + "/a.xyz --png " + d + "/a.xyz";
               }, "--png: <dir>/a.xyz is a file this command reads (<dir>/a.xyz)"});
  c.push_back({"W05", "outputs", "svm --write-features over existing files, without --force", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/f_train.txt", "mine");
                 return kEwa + " svm " + f.ckpt + " -c " + f.point_config(d + "/c.json", f.synth) + " --write-features " + d + "/f";
               }, "--write-features: <dir>/f_train.txt exists already: pass --force to replace it"});
  c.push_back({"W06", "outputs", "gallery -o over an existing file, without --force", [](const Fixture& f, const std::string& d) {
                 write_file(d + "/g.png", "mine");
                 return kEwa + " gallery " + f.dense + " -o " + d + "/g.png";
               }, "--output: <dir>/g.png exists already: pass --force to replace it"});
  c.push_back({"W07", "outputs", "pretrain --reconstruct into a folder that holds files, without --force",
               [](const Fixture& f, const std::string& d) {
                 write_file(d + "/notes.txt", "mine");
                 return kEwa + " pretrain --reconstruct " + f.ckpt + " -o " + d;
               }, "--output: <dir> exists and is not empty: pass --force to write into it"});
  c.push_back({"W08", "outputs", "data synth-files into a folder that holds files, without --force", [](const Fixture&, const std::string& d) {
                 write_file(d + "/notes.txt", "mine");
                 return kEwa + " data synth-files -o " + d;
               }, "--output: <dir> exists and is not empty: pass --force to write into it"});
  c.push_back({"W09", "outputs", "data synth-parts into a folder that holds files, without --force", [](const Fixture&, const std::string& d) {
                 write_file(d + "/notes.txt", "mine");
                 return kEwa + " data synth-parts -o " + d;
               }, "--output: <dir> exists and is not empty: pass --force to write into it"});
  auto study_case = [](const std::string& body) {
    return [body](const Fixture&, const std::string& d) {
      write_file(d + "/c.json", R"({"model": {"embed_dim": 24}})");
      write_file(d + "/study.json", body);
      return kEwa + " study " + d + "/study.json";
    };
  };
  c.push_back({"Y01", "study", "a study file that is not JSON", study_case("{\"config\": "), "not valid JSON"});
  c.push_back({"Y02", "study", "a study without arms", study_case(R"({"config": "c.json", "seeds": 5})"), "field 'arms'"});
  c.push_back({"Y03", "study", "one seed (nothing to pair)",
               study_case(R"({"config": "c.json", "arms": [{"name": "a"}, {"name": "b"}], "seeds": 1})"), "field 'seeds'"});
  c.push_back({"Y04", "study", "an arm overriding an unknown key",
               study_case(R"({"config": "c.json", "arms": [{"name": "a", "set": ["moe.kindd=dense"]}, {"name": "b"}], "seeds": 3})"),
               "arm 'a'"});
  c.push_back({"Y05", "study", "a run directory in the way that the study did not make", [](const Fixture&, const std::string& d) {
                 write_file(d + "/c.json", R"({"model": {"embed_dim": 24}})");
                 fs::create_directories(d + "/runs/st/a/s0");
                 write_file(d + "/study.json", R"({"name": "st", "config": "c.json", "arms": [{"name": "a"}, {"name": "b"}],
                   "seeds": 3, "runs_dir": ")" + d + R"(/runs"})");
                 return kEwa + " study " + d + "/study.json";
               }, "was not made by this study"});
  c.push_back({"R03", "run directory", "a disk too small for the next checkpoint (file-size limit)", [](const Fixture& f, const std::string& d) {
                 const auto cfg = f.point_config(d + "/c.json", f.synth, R"(, "checkpoint_every": 1)");
                 return "ulimit -f 8 && " + kEwa + " train --config " + cfg;
               }, "cannot write"});
  return c;
}

// The one-line messages of the runs, with the case directory shown as <dir> (process ids as <pid>).
struct Outcome {
  int exit_code;
  std::string first_line;
  int error_lines;
};

std::string clean(std::string s, const std::string& dir, const std::string& fixture_dir) {
  for (const auto& [from, to] : {std::pair{dir, std::string("<dir>")}, std::pair{fixture_dir, std::string("<fixture>")}})
    for (size_t p; (p = s.find(from)) != std::string::npos;) s.replace(p, from.size(), to);
  // Temporary files are named after the writer's process id: shown as <pid>.
  for (size_t p = s.find(".tmp."); p != std::string::npos; p = s.find(".tmp.", p + 1)) {
    size_t e = p + 5;
    while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
    if (e > p + 5) s.replace(p + 5, e - p - 5, "<pid>");
  }
  return s;
}

Outcome run_case(const Case& c, const std::string& dir) {
  auto r = run_command(c.setup(fixture(), dir));
  Outcome o{r.exit_code, "", 0};
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("ewa: error: ", 0) == 0) {
      if (o.error_lines++ == 0) o.first_line = clean(line, dir, fixture().dir);
    }
  return o;
}

// One test case per catalogue row (ErrorCatalogue/Row.Ends/<id>). With EWA_ERRORS_DOC=<file> the
// rows that ran write docs/errors.md's table when the test program ends.
std::map<std::string, std::string>& doc_rows() {
  static std::map<std::string, std::string> rows;  // id -> table row
  return rows;
}

class ErrorRow : public ::testing::TestWithParam<size_t> {};

TEST_P(ErrorRow, Ends) {
  static const auto all = cases();
  const Case& c = all.at(GetParam());
  if (needs_hdf5(c) && !ewa::datasets::built_with_hdf5()) GTEST_SKIP() << "built without HDF5: row " << c.id << " not run";
  SCOPED_TRACE(c.id + ": " + c.input);
  TempDir dir;
  const Outcome o = run_case(c, dir.path());
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_NE(o.first_line.find(c.fragment), std::string::npos) << o.first_line;
  if (c.one_line) {
    EXPECT_EQ(o.error_lines, 1);
  }
  std::string msg = o.first_line;
  for (size_t p; (p = msg.find('|')) != std::string::npos;) msg.replace(p, 1, "\\|");
  doc_rows()[c.id] = "| " + c.id + " | " + c.area + " | " + c.input + " | `` " + msg + " `` | " + std::to_string(o.exit_code) + " |\n";
}

INSTANTIATE_TEST_SUITE_P(ErrorCatalogue, ErrorRow, ::testing::Range<size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) { return cases().at(info.param).id; });

TEST(Errors, TheCatalogueHasEveryArea) { EXPECT_GE(cases().size(), 60u); }

// A refused write leaves what was there: the user's file keeps its bytes, a refused conversion
// onto its own input leaves the checkpoint resumable, and --force replaces what it is told to.
TEST(Errors, RefusedOutputsKeepTheUsersFiles) {
  TempDir d;
  const auto& f = fixture();
  write_file(d / "model.pth", "the user's own file");
  auto r = run_command(kEwa + " export " + f.dense + " -o " + (d / "model.pth"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  std::ifstream in(d / "model.pth");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "the user's own file");
  fs::copy(f.ckpt, d / "last.pt");
  const auto before = fs::file_size(d / "last.pt");
  r = run_command(kEwa + " convert " + (d / "last.pt") + " -o " + (d / "last.pt") + " --force");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(fs::file_size(d / "last.pt"), before);
  EXPECT_NO_THROW(ewa::train::read_checkpoint(d / "last.pt"));
  r = run_command(kEwa + " export " + f.dense + " -o " + (d / "model.pth") + " --force");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(fs::file_size(d / "model.pth"), 1000u);
}

class ErrorsDocWriter : public ::testing::Environment {
 public:
  void TearDown() override {
    const char* out = std::getenv("EWA_ERRORS_DOC");
    if (!out || doc_rows().empty()) return;
    std::string table = "| id | area | bad input | message (first line; `<dir>` is the case's directory) | exit |\n|---|---|---|---|---:|\n";
    for (const auto& c : cases())
      if (doc_rows().count(c.id)) table += doc_rows()[c.id];
    std::ifstream in(out);
    std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string begin = "<!-- table: written by tests/test_errors.cpp -->\n", end = "<!-- end of table -->";
    const auto a = doc.find(begin), b = doc.find(end);
    if (a == std::string::npos || b == std::string::npos) {
      std::fprintf(stderr, "%s lacks the table markers\n", out);
      return;
    }
    std::ofstream(out) << doc.substr(0, a + begin.size()) + table + doc.substr(b);
  }
};
const auto* const kDocWriter = ::testing::AddGlobalTestEnvironment(new ErrorsDocWriter);

TEST(Errors, DocsCatalogueListsEveryRow) {
  std::ifstream in(std::string(EWA_SOURCE_DIR) + "/docs/errors.md");
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& c : cases()) {
    const auto row = doc.find("| " + c.id + " | ");
    ASSERT_NE(row, std::string::npos) << c.id << " is missing from docs/errors.md: regenerate it (see its top)";
    const auto line = doc.substr(row, doc.find('\n', row) - row);
    EXPECT_NE(line.find(c.fragment), std::string::npos) << c.id << ": docs/errors.md is stale: " << line;
  }
}

}  // namespace
