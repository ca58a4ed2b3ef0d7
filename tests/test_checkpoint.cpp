// Checkpoints: round trip, atomic writes, and errors for foreign or broken files.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/error.h"
#include "common/fs.h"
#include "models/registry.h"
#include "test_util.h"
#include "io/state_dict.h"
#include "io/torch_pickle.h"
#include "train/checkpoint.h"

namespace {
using nlohmann::json;
using ewa::testing::TempDir;

ewa::Config vit_cfg(int64_t dim) {
  json j = {{"model", {{"img_size", 8}, {"in_chans", 1}, {"num_classes", 3}, {"patch_size", 4}, {"embed_dim", dim},
                       {"depth", 2}, {"num_heads", 2}}}};
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test");
}

using ewa::testing::error_of;

// A model after one AdamW step, and its checkpoint at step 17, epoch 3.
struct SteppedModel {
  explicit SteppedModel(const ewa::Config& cfg)
      : model(ewa::models::build_model(cfg)), opt(model->parameters(), torch::optim::AdamWOptions(1e-3)) {
    model->forward(torch::randn({2, 1, 8, 8})).sum().backward();
    opt.step();
    ckpt = ewa::train::make_checkpoint(*model, &opt, cfg.json, 17, 3);
  }
  decltype(ewa::models::build_model(std::declval<const ewa::Config&>())) model;
  torch::optim::AdamW opt;
  ewa::train::Checkpoint ckpt;
};

TEST(Checkpoint, RoundTripsModelOptimizerRngAndMetadata) {
  TempDir dir;
  auto cfg = vit_cfg(8);
  SteppedModel stepped(cfg);
  auto& model = stepped.model;
  auto& opt = stepped.opt;
  auto ckpt = stepped.ckpt;
  const auto rng_draw = torch::rand({4});  // drawn after the state was captured
  ewa::train::save_checkpoint(dir / "c.pt", ckpt);

  auto back = ewa::train::read_checkpoint(dir / "c.pt");
  EXPECT_EQ(back.step, 17);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.config, cfg.json);
  auto other = ewa::models::build_model(cfg);
  torch::optim::AdamW other_opt(other->parameters(), torch::optim::AdamWOptions(1e-3));
  ewa::train::load_model_state(*other, back, "c.pt");
  ewa::train::load_training_state(other_opt, back, "c.pt");
  for (const auto& p : model->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), other->named_parameters()[p.key()]));
  EXPECT_TRUE(torch::equal(torch::rand({4}), rng_draw));  // generator restored
  // The restored optimizer continues exactly like the original (eval mode: no random partition
  // or drop path, so both models see the same computation).
  model->eval();
  other->eval();
  auto x = torch::randn({2, 1, 8, 8});
  opt.zero_grad();
  model->forward(x).sum().backward();
  other->forward(x).sum().backward();
  opt.step();
  other_opt.step();
  for (const auto& p : model->named_parameters())
    EXPECT_TRUE(torch::allclose(p.value(), other->named_parameters()[p.key()], 1e-6, 1e-7)) << p.key();

  // CUDA generator states (one per GPU; captured only where CUDA is available) survive the file.
  EXPECT_EQ(ckpt.rng_cuda.size(), torch::cuda::is_available() ? size_t(torch::cuda::device_count()) : size_t(0));
  auto with_gpu_state = ckpt;
  with_gpu_state.rng_cuda = {torch::randint(256, {16}, torch::kUInt8), torch::randint(256, {16}, torch::kUInt8)};
  ewa::train::save_checkpoint(dir / "g.pt", with_gpu_state);
  auto g = ewa::train::read_checkpoint(dir / "g.pt");
  ASSERT_EQ(g.rng_cuda.size(), 2u);
  EXPECT_TRUE(torch::equal(g.rng_cuda[0], with_gpu_state.rng_cuda[0]));
  EXPECT_TRUE(torch::equal(g.rng_cuda[1], with_gpu_state.rng_cuda[1]));
}

TEST(Checkpoint, ForeignArchitectureIsAnErrorListingDifferences) {
  TempDir dir;
  auto small = ewa::models::build_model(vit_cfg(8));
  ewa::train::save_checkpoint(dir / "small.pt", ewa::train::make_checkpoint(*small, nullptr, vit_cfg(8).json, 0, 0));
  auto big = ewa::models::build_model(vit_cfg(16));
  auto e = error_of([&] { ewa::train::load_model_state(*big, ewa::train::read_checkpoint(dir / "small.pt"), dir / "small.pt"); });
  EXPECT_NE(e.find("does not match the model architecture"), std::string::npos) << e;
  EXPECT_NE(e.find("in the checkpoint but"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
}

TEST(Checkpoint, TruncatedOrForeignFilesAreErrors) {
  TempDir dir;
  auto model = ewa::models::build_model(vit_cfg(8));
  ewa::train::save_checkpoint(dir / "good.pt", ewa::train::make_checkpoint(*model, nullptr, vit_cfg(8).json, 0, 0));
  std::ifstream in(dir / "good.pt", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ewa::testing::write_file(dir / "cut.pt", bytes.substr(0, bytes.size() / 2));
  auto e = error_of([&] { ewa::train::read_checkpoint(dir / "cut.pt"); });
  EXPECT_NE(e.find(dir / "cut.pt"), std::string::npos) << e;
  ewa::testing::write_file(dir / "text.pt", "hello");
  EXPECT_NE(error_of([&] { ewa::train::read_checkpoint(dir / "text.pt"); }).find("not a readable checkpoint"), std::string::npos);
  // A valid torch pickle that is not ours.
  auto foreign = torch::pickle_save(at::IValue(torch::ones({2})));
  ewa::testing::write_file(dir / "foreign.pt", std::string(foreign.begin(), foreign.end()));
  EXPECT_NE(error_of([&] { ewa::train::read_checkpoint(dir / "foreign.pt"); }).find("not an ewa checkpoint"), std::string::npos);
  EXPECT_NE(error_of([&] { ewa::train::read_checkpoint(dir / "absent.pt"); }).find("cannot open"), std::string::npos);
}

TEST(Checkpoint, ZipWithACorruptDirectoryIsAnErrorNotAnOverflow) {
  // Found by fuzz/fuzz_checkpoint: a zip whose central directory lies past the end of the file
  // made torch::pickle_load copy beyond its buffer (AddressSanitizer: heap-buffer-overflow). The
  // checkpoint reader now reads through bounds-checked file reads; under make sanitize this test
  // would report the overflow.
  const std::string path = std::string(EWA_SOURCE_DIR) + "/tests/data/fuzz_crash_zip_directory.bin";
  ASSERT_TRUE(std::filesystem::exists(path));
  const std::string msg = ewa::testing::error_of([&] { ewa::train::read_checkpoint(path); });
  EXPECT_NE(msg.find("not a readable checkpoint"), std::string::npos) << msg;
}

TEST(Checkpoint, APickleLengthBeyondTheDataIsRefusedBeforeAllocating) {
  // Found by fuzz/fuzz_checkpoint: in a 7 KB archive, a pickle opcode claiming a 3.3 GB string
  // made torch::pickle_load reserve 3.3 GB first (libFuzzer: out-of-memory). Checkpoints are now
  // read with our own unpickler, which bounds every length by the data left; this input is also a
  // seed of fuzz_checkpoint (fuzz/run.sh), whose -malloc_limit_mb would catch a regression.
  // (Its records' CRC-32s were recomputed when the zip reader began checking them, so that it
  // still reaches the unpickler.)
  const std::string path = std::string(EWA_SOURCE_DIR) + "/tests/data/fuzz_oom_pickle_length.bin";
  ASSERT_LT(std::filesystem::file_size(path), 10000u);
  const std::string msg = ewa::testing::error_of([&] { ewa::train::read_checkpoint(path); });
  EXPECT_NE(msg.find("not a readable checkpoint"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pickle data ends early"), std::string::npos) << msg;
}

TEST(Checkpoint, AZipRecordSizeBeyondTheFileIsRefusedBeforeAllocating) {
  // Found by fuzz/fuzz_checkpoint (75,496 runs into a 10-minute run): in a 7 KB archive, a
  // directory entry claiming a 4 GB record made LibTorch's zip reader (miniz) allocate 4 GB while
  // opening the file (libFuzzer: out-of-memory). Archives are now read by io::ZipArchive, which
  // checks every size and offset against the file first.
  const std::string path = std::string(EWA_SOURCE_DIR) + "/tests/data/fuzz_oom_zip_record_size.bin";
  ASSERT_LT(std::filesystem::file_size(path), 10000u);
  const std::string msg = ewa::testing::error_of([&] { ewa::train::read_checkpoint(path); });
  EXPECT_NE(msg.find("corrupt zip archive: record 'tmp/version' claims 4294967295 bytes from 2 stored bytes"),
            std::string::npos) << msg;
}

TEST(Checkpoint, AnEmptyTensorStorageRecordIsRead) {
  // Found by fuzz/fuzz_checkpoint (70,848 runs into a 10-minute run): a storage record of 0 bytes
  // made our unpickler call memcpy with a null source (UBSan: undefined behaviour). A regression
  // test under make sanitize; here it must end in a clean error or a checkpoint, as the file says.
  // (CRC-32s recomputed as above; ZipArchive.PickleSaveArchivesReadBackExactlyIncludingAnEmptyStorage
  // reads a valid empty storage.)
  const std::string path = std::string(EWA_SOURCE_DIR) + "/tests/data/fuzz_ubsan_empty_storage.bin";
  ASSERT_TRUE(std::filesystem::exists(path));
  try {
    ewa::train::read_checkpoint(path);
  } catch (const ewa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint " + path + ": "), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, AFailedWriteLeavesTheOldFileIntact) {
  TempDir dir;
  auto model = ewa::models::build_model(vit_cfg(8));
  auto ckpt = ewa::train::make_checkpoint(*model, nullptr, vit_cfg(8).json, 5, 1);
  ewa::train::save_checkpoint(dir / "last.pt", ckpt);
  std::ifstream in(dir / "last.pt", std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Block the temporary file's path so the write fails.
  std::filesystem::create_directory(dir / ("last.pt.tmp." + std::to_string(::getpid())));
  ckpt.step = 6;
  auto e = error_of([&] { ewa::train::save_checkpoint(dir / "last.pt", ckpt); });
  EXPECT_NE(e.find("cannot write " + (dir / "last.pt")), std::string::npos) << e;
  std::ifstream again(dir / "last.pt", std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>());
  EXPECT_EQ(before, after);
  EXPECT_EQ(ewa::train::read_checkpoint(dir / "last.pt").step, 5);
  // Into a directory that does not exist: error, no file appears.
  e = error_of([&] { ewa::train::save_checkpoint(dir / "missing/last.pt", ckpt); });
  EXPECT_NE(e.find("cannot write"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(dir / "missing"));
}

// Every torch.save-format file ewa writes (checkpoints with their optimizer state, exported
// .pth weights, any archive past the zip64 limit) loads with torch.load(path, weights_only=True),
// as the official loaders call it on PyTorch >= 2.6, and holds the values written.
TEST(Checkpoint, EveryFileWeWriteLoadsWithTorchLoadWeightsOnly) {
  TempDir dir;
  auto cfg = vit_cfg(8);
  SteppedModel stepped(cfg);
  auto ckpt = stepped.ckpt;
  ckpt.class_names = {"a", "b", "c"};
  ckpt.progress = {{"position", 2}};
  ewa::train::save_checkpoint(dir / "c.pt", ckpt);
  ewa::io::write_torch_state_dict(dir / "export.pth", ckpt.model, 300);
  auto values = ewa::io::py_dict();
  values->set("big", ewa::io::py_int(int64_t(1) << 40));
  values->set("negative", ewa::io::py_int(-70000));
  values->set("float", ewa::io::py_float(-0.1));
  values->set("flags", ewa::io::py_list({ewa::io::py_bool(true), ewa::io::py_none()}));
  values->set("bf16", ewa::io::py_tensor(torch::arange(6, torch::kBFloat16).view({2, 3}).t()));  // not contiguous
  ewa::io::write_torch_archive(dir / "zip64.pt", values, /*force_zip64=*/true);
  const std::string script = dir / "load.py";
  ewa::testing::write_file(script, R"(import sys, torch
c = torch.load(sys.argv[1], weights_only=True)
w = torch.load(sys.argv[2], weights_only=True)
z = torch.load(sys.argv[3], weights_only=True)
s = c["optimizer"]["state"][0]
print("step", c["step"], "epoch", c["epoch"], "names", ",".join(c["class_names"]), "opt_step", s["step"],
      "groups", len(c["optimizer"]["param_groups"]), "epoch_w", w["epoch"])
print("model_sum %.9g" % sum(float(t.double().sum()) for t in c["model"].values()))
print("export_equal", all(torch.equal(w["base_model"][k], v) for k, v in c["model"].items()))
print("zip64", z["big"], z["negative"], z["float"], z["flags"], z["bf16"].dtype, z["bf16"].tolist())
)");
  const auto r = ewa::testing::run_command(std::string(EWA_PYTHON) + " " + script + " " + (dir / "c.pt") + " " +
                                           (dir / "export.pth") + " " + (dir / "zip64.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("step 17 epoch 3 names a,b,c opt_step 1 groups 1 epoch_w 300"), std::string::npos) << r.output;
  double sum = 0;
  for (const auto& item : ckpt.model) sum += item.value().to(torch::kDouble).sum().item<double>();
  char expect[64];
  std::snprintf(expect, sizeof expect, "model_sum %.9g", sum);
  EXPECT_NE(r.output.find(expect), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("export_equal True"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("zip64 1099511627776 -70000 -0.1 [True, None] torch.bfloat16 [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]"),
            std::string::npos)
      << r.output;
  // Our own reader reads the zip64 archive back too.
  const auto back = ewa::io::read_torch_archive(dir / "zip64.pt");
  EXPECT_EQ(back->get("big")->i, int64_t(1) << 40);
  EXPECT_TRUE(torch::equal(back->get("bf16")->tensor, torch::arange(6, torch::kBFloat16).view({2, 3}).t()));
}

}  // namespace

namespace {
// The output checks every writing command runs first (common/fs.h): an input is never an output,
// whether named by another path or reached through a link; two inputs never share an output;
// existing outputs need --force.
TEST(Outputs, CheckOutputsRefusesInputsByPathOrLinkClashesAndExistingFiles) {
  ewa::testing::TempDir d;
  ewa::testing::write_file(d / "in.txt", "x");
  std::filesystem::create_symlink(d / "in.txt", d / "link.txt");
  auto message = [](const std::function<void()>& f) { return ewa::testing::error_of(f); };
  EXPECT_NE(message([&] { ewa::check_outputs({{d / "link.txt", "in"}}, {d / "in.txt"}, true, "-o"); })
                .find("-o: " + (d / "link.txt") + " is a file this command reads (" + (d / "in.txt") + ")"),
            std::string::npos);
  EXPECT_NE(message([&] { ewa::check_outputs({{d.path() + "/./in.txt", "in"}}, {d / "in.txt"}, true, "-o"); })
                .find("is a file this command reads"),
            std::string::npos);
  EXPECT_NE(message([&] { ewa::check_outputs({{d / "o.ply", "a.txt"}, {d / "o.ply", "a.ply"}}, {}, true, "-o"); })
                .find("-o: a.txt and a.ply would both be written to " + (d / "o.ply")),
            std::string::npos);
  ewa::testing::write_file(d / "old.pt", "y");
  EXPECT_NE(message([&] { ewa::check_outputs({{d / "old.pt", "in"}, {d / "new.pt", "in"}}, {}, false, "-o"); })
                .find("-o: " + (d / "old.pt") + " exists already: pass --force to replace it"),
            std::string::npos);
  EXPECT_NO_THROW(ewa::check_outputs({{d / "old.pt", "in"}, {d / "new.pt", "in"}}, {d / "in.txt"}, true, "-o"));
  EXPECT_NO_THROW(ewa::check_output_dir(d / "absent", false, "-o"));
  EXPECT_NE(message([&] { ewa::check_output_dir(d.path(), false, "-o"); }).find("exists and is not empty: pass --force"),
            std::string::npos);
  EXPECT_NO_THROW(ewa::check_output_dir(d.path(), true, "-o"));
}
}  // namespace
