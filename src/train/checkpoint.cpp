#include "train/checkpoint.h"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <iterator>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>

#include "common/error.h"
#include "common/fs.h"
#include "io/torch_pickle.h"

namespace ewa::train {
namespace {
constexpr const char* kFormat = "ewa-checkpoint-1";

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

torch::Tensor bytes_to_tensor(const std::string& bytes) {
  auto t = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

std::string tensor_to_bytes(const torch::Tensor& t) {
  auto c = t.contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
}
}  // namespace

torch::OrderedDict<std::string, torch::Tensor> state_dict(torch::nn::Module& model) {
  torch::OrderedDict<std::string, torch::Tensor> out;
  for (const auto& p : model.named_parameters()) out.insert(p.key(), p.value().detach().to(torch::kCPU).clone());
  for (const auto& b : model.named_buffers()) out.insert(b.key(), b.value().detach().to(torch::kCPU).clone());
  return out;
}

Checkpoint make_checkpoint(torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                           const nlohmann::json& config, int64_t step, int64_t epoch) {
  Checkpoint c;
  c.config = config;
  c.step = step;
  c.epoch = epoch;
  c.model = state_dict(model);
  if (optimizer) {
    torch::serialize::OutputArchive archive;
    optimizer->save(archive);
    std::ostringstream os;
    archive.save_to(os);
    c.optimizer = os.str();
  }
  c.rng_cpu = at::detail::getDefaultCPUGenerator().get_state();
  if (torch::cuda::is_available())
    for (int64_t d = 0; d < static_cast<int64_t>(torch::cuda::device_count()); ++d)
      c.rng_cuda.push_back(at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(d))).get_state());
  return c;
}

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  c10::impl::GenericDict root(c10::StringType::get(), c10::AnyType::get());
  root.insert(std::string("format"), std::string(kFormat));
  root.insert(std::string("kind"), ckpt.kind);
  root.insert(std::string("config"), ckpt.config.dump());
  root.insert(std::string("step"), ckpt.step);
  root.insert(std::string("epoch"), ckpt.epoch);
  c10::Dict<std::string, at::Tensor> model;
  for (const auto& item : ckpt.model) model.insert(item.key(), item.value());
  root.insert(std::string("model"), model);
  if (!ckpt.optimizer.empty()) root.insert(std::string("optimizer"), bytes_to_tensor(ckpt.optimizer));
  if (ckpt.rng_cpu) root.insert(std::string("rng_cpu"), *ckpt.rng_cpu);
  if (!ckpt.rng_cuda.empty()) {
    c10::List<at::Tensor> states;
    for (const auto& t : ckpt.rng_cuda) states.push_back(t);
    root.insert(std::string("rng_cuda"), states);
  }
  if (!ckpt.class_names.empty()) {
    c10::List<std::string> names;
    for (const auto& n : ckpt.class_names) names.push_back(n);
    root.insert(std::string("class_names"), names);
  }
  if (!ckpt.progress.empty()) root.insert(std::string("progress"), ckpt.progress.dump());
  const std::vector<char> bytes = torch::pickle_save(at::IValue(root));
  // Test hook: EWA_TEST_KILL_DURING_CHECKPOINT=N kills this process (SIGKILL, as kill -9) halfway
  // through writing its N-th checkpoint, so tests can show that a crash mid-write loses nothing.
  static const int64_t kill_at = std::getenv("EWA_TEST_KILL_DURING_CHECKPOINT")
                                     ? std::atoll(std::getenv("EWA_TEST_KILL_DURING_CHECKPOINT"))
                                     : 0;
  static int64_t written = 0;
  if (kill_at > 0 && ++written == kill_at)
    write_atomically(path, [&](const std::string& tmp) {
      std::ofstream out(tmp, std::ios::binary);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
      out.flush();
      std::raise(SIGKILL);
    });
  write_bytes_atomically(path, bytes.data(), bytes.size());
}

Checkpoint read_checkpoint(const std::string& path) {
  if (!std::ifstream(path, std::ios::binary)) fail("checkpoint " + path + ": cannot open file");
  // Our own zip reader and unpickler (io/torch_pickle.h), not torch::pickle_load:
  // fuzz/fuzz_checkpoint found that LibTorch's copies past its buffer on a corrupt zip directory,
  // reserves whatever length a pickle opcode claims (3 GB from a 7 KB file) and allocates whatever
  // size a zip entry claims (4 GB); ours bound every length by the data.
  io::PyRef root;
  try {
    root = io::read_torch_archive(path);
  } catch (const std::exception& e) {
    // The reader's reason (a damaged zip record, a corrupt pickle) unless it only repeats this one.
    std::string why = e.what();
    if (why.rfind(path + ": ", 0) == 0) why.erase(0, path.size() + 2);
    if (why.rfind("not a readable torch.save file", 0) == 0) why.clear();
    fail("checkpoint " + path + ": not a readable checkpoint (truncated or not written by ewa)" +
         (why.empty() ? "" : ": " + why));
  }
  using Kind = io::PyValue::Kind;
  auto bad = [&](const std::string& what) -> void { fail("checkpoint " + path + ": " + what); };
  if (!root || root->kind != Kind::Dict) bad("not an ewa checkpoint (expected a dict)");
  // Field `key` of kind `kind`; null when absent and optional.
  auto field = [&](const std::string& key, Kind kind, const char* what, bool required) -> io::PyRef {
    io::PyRef v = root->get(key);
    if (!v) {
      if (required) bad("missing field '" + key + "'");
      return nullptr;
    }
    if (v->kind != kind) bad("field '" + key + "' is not " + what);
    return v;
  };
  auto json_field = [&](const std::string& key, bool required) -> nlohmann::json {
    const io::PyRef v = field(key, Kind::Str, "text", required);
    if (!v) return nlohmann::json::object();
    try {
      return nlohmann::json::parse(v->s);
    } catch (const nlohmann::json::exception&) {
      bad("field '" + key + "' is not valid JSON");
    }
    return {};
  };
  const io::PyRef format = root->get("format");
  if (!format || format->kind != Kind::Str || format->s != kFormat)
    bad(std::string("unsupported format: expected '") + kFormat + "'");
  Checkpoint c;
  c.kind = field("kind", Kind::Str, "text", true)->s;
  c.config = json_field("config", true);
  c.step = field("step", Kind::Int, "an integer", true)->i;
  c.epoch = field("epoch", Kind::Int, "an integer", true)->i;
  for (const auto& [k, v] : field("model", Kind::Dict, "a dict of tensors", true)->dict) {
    if (k->kind != Kind::Str || v->kind != Kind::Tensor) bad("field 'model' is not a dict of tensors");
    c.model.insert(k->s, v->tensor);
  }
  if (const auto v = field("optimizer", Kind::Tensor, "a byte tensor", false)) {
    if (v->tensor.scalar_type() != torch::kUInt8) bad("field 'optimizer' is not a byte tensor");
    c.optimizer = tensor_to_bytes(v->tensor);
  }
  if (const auto v = field("rng_cpu", Kind::Tensor, "a tensor", false)) c.rng_cpu = v->tensor;
  if (const auto v = field("rng_cuda", Kind::List, "a list of tensors", false))
    for (const auto& t : v->items) {
      if (t->kind != Kind::Tensor) bad("field 'rng_cuda' is not a list of tensors");
      c.rng_cuda.push_back(t->tensor);
    }
  c.progress = json_field("progress", false);
  if (!c.progress.is_object()) bad("field 'progress' is not a JSON object");
  if (const auto v = field("class_names", Kind::List, "a list of names", false))
    for (const auto& n : v->items)
      if (n->kind == Kind::Str) c.class_names.push_back(n->s);
  return c;
}

void load_model_state(torch::nn::Module& model, const Checkpoint& ckpt, const std::string& path) {
  std::vector<std::string> problems;
  std::set<std::string> expected;
  auto check = [&](const std::string& name, torch::Tensor target) {
    expected.insert(name);
    const torch::Tensor* src = ckpt.model.find(name);
    if (!src) {
      problems.push_back("missing " + name);
      return;
    }
    if (src->sizes() != target.sizes()) {
      problems.push_back(name + " is " + shape_str(src->sizes()) + " in the checkpoint but " + shape_str(target.sizes()) +
                         " in the model");
      return;
    }
    torch::NoGradGuard guard;
    target.copy_(*src);
  };
  for (const auto& p : model.named_parameters()) check(p.key(), p.value());
  for (const auto& b : model.named_buffers()) check(b.key(), b.value());
  for (const auto& item : ckpt.model)
    if (!expected.count(item.key())) problems.push_back("unexpected " + item.key());
  if (!problems.empty()) {
    std::string msg = "checkpoint " + path + ": does not match the model architecture (" + std::to_string(problems.size()) +
                      " differences: ";
    for (size_t i = 0; i < problems.size() && i < 3; ++i) msg += (i ? "; " : "") + problems[i];
    fail(msg + (problems.size() > 3 ? "; ...)" : ")"));
  }
}

void load_training_state(torch::optim::Optimizer& optimizer, const Checkpoint& ckpt, const std::string& path) {
  if (ckpt.optimizer.empty()) fail("checkpoint " + path + ": has no optimizer state (a converted model cannot be resumed)");
  try {
    torch::serialize::InputArchive archive;
    std::istringstream is(ckpt.optimizer);
    archive.load_from(is);
    optimizer.load(archive);
  } catch (const c10::Error&) {
    fail("checkpoint " + path + ": optimizer state does not match this model's parameters");
  }
  if (ckpt.rng_cpu) {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(*ckpt.rng_cpu);
  }
  // GPU generators: restored for the GPUs present (a run resumed on fewer GPUs restores those).
  if (!ckpt.rng_cuda.empty() && torch::cuda::is_available()) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(ckpt.rng_cuda.size()), static_cast<int64_t>(torch::cuda::device_count()));
    for (int64_t d = 0; d < n; ++d) {
      at::Generator gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(d)));
      gen.set_state(ckpt.rng_cuda[d]);
    }
  }
}

}  // namespace ewa::train
