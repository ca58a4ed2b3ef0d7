#include "io/checkpoint.h"

#include <csignal>
#include <cstdlib>
#include <fstream>

#include "common/error.h"
#include "common/fs.h"

namespace ewa::io {
namespace {
constexpr const char* kFormat = "ewa-checkpoint-2";
constexpr const char* kFormatV1 = "ewa-checkpoint-1";
using Kind = PyValue::Kind;

// The checkpoint's fields, read strictly (a missing required field or a wrong type is an error
// naming `path`) or leniently (such a field is skipped).
class Fields {
 public:
  Fields(const PyRef& root, const std::string& path, bool strict) : root_(root), path_(path), strict_(strict) {}
  [[noreturn]] void bad(const std::string& what) const { fail("checkpoint " + path_ + ": " + what); }
  // Field `key` of kind `kind`; null when absent (an error when required and strict) or, lenient, of another kind.
  PyRef get(const std::string& key, Kind kind, const char* what, bool required) const {
    PyRef v = root_->get(key);
    if (!v) {
      if (required && strict_) bad("missing field '" + key + "'");
      return nullptr;
    }
    if (v->kind != kind) {
      if (strict_) bad("field '" + key + "' is not " + what);
      return nullptr;
    }
    return v;
  }
  nlohmann::json json(const std::string& key, bool required) const {
    const PyRef v = get(key, Kind::Str, "text", required);
    if (!v) return nlohmann::json::object();
    try {
      return nlohmann::json::parse(v->s);
    } catch (const nlohmann::json::exception&) {
      bad("field '" + key + "' is not valid JSON");
    }
  }
  bool strict() const { return strict_; }

 private:
  const PyRef& root_;
  const std::string& path_;
  bool strict_;
};

}  // namespace

bool is_ewa_checkpoint(const PyRef& root) {
  if (!root || root->kind != Kind::Dict) return false;
  const PyRef f = root->get("format");
  return f && f->kind == Kind::Str && f->s.rfind("ewa-checkpoint", 0) == 0;
}

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  PyRef root = py_dict();
  root->set("format", py_str(kFormat));
  root->set("kind", py_str(ckpt.kind));
  root->set("config", py_str(ckpt.config.dump()));
  root->set("step", py_int(ckpt.step));
  root->set("epoch", py_int(ckpt.epoch));
  PyRef model = py_dict();
  for (const auto& item : ckpt.model) model->set(item.key(), py_tensor(item.value()));
  root->set("model", model);
  if (!ckpt.model_train.is_empty()) {
    PyRef raw = py_dict();
    for (const auto& item : ckpt.model_train) raw->set(item.key(), py_tensor(item.value()));
    root->set("model_train", raw);
  }
  if (ckpt.optimizer) root->set("optimizer", ckpt.optimizer);
  if (ckpt.rng_cpu) root->set("rng_cpu", py_tensor(*ckpt.rng_cpu));
  if (!ckpt.rng_cuda.empty()) {
    PyRef states = py_list();
    for (const auto& t : ckpt.rng_cuda) states->items.push_back(py_tensor(t));
    root->set("rng_cuda", states);
  }
  if (!ckpt.class_names.empty()) {
    PyRef names = py_list();
    for (const auto& n : ckpt.class_names) names->items.push_back(py_str(n));
    root->set("class_names", names);
  }
  if (!ckpt.progress.empty()) root->set("progress", py_str(ckpt.progress.dump()));
  std::string top = std::filesystem::path(path).stem().string();
  const std::string bytes = torch_archive_bytes(root, top.empty() ? "archive" : top);
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

Checkpoint decode_checkpoint(const PyRef& root, const std::string& path, bool strict) {
  Fields f(root, path, strict);
  if (!root || root->kind != Kind::Dict) f.bad("not an ewa checkpoint (expected a dict)");
  const PyRef format = root->get("format");
  const bool v1 = format && format->kind == Kind::Str && format->s == kFormatV1;
  if (!format || format->kind != Kind::Str || (format->s != kFormat && !v1))
    f.bad(std::string("unsupported format: expected '") + kFormat + "'");
  Checkpoint c;
  if (const auto v = f.get("kind", Kind::Str, "text", true)) c.kind = v->s;
  c.config = f.json("config", true);
  if (const auto v = f.get("step", Kind::Int, "an integer", true)) c.step = v->i;
  if (const auto v = f.get("epoch", Kind::Int, "an integer", true)) c.epoch = v->i;
  const PyRef model = root->get("model");
  if (!model) f.bad("missing field 'model'");
  if (model->kind != Kind::Dict) f.bad("field 'model' is not a dict of tensors");
  for (const auto& [k, v] : model->dict) {
    if (k->kind != Kind::Str || v->kind != Kind::Tensor) f.bad("field 'model' is not a dict of tensors");
    c.model.insert(k->s, v->tensor);
  }
  if (const auto raw = f.get("model_train", Kind::Dict, "a dict of tensors", false))
    for (const auto& [k, v] : raw->dict) {
      if (k->kind != Kind::Str || v->kind != Kind::Tensor) f.bad("field 'model_train' is not a dict of tensors");
      c.model_train.insert(k->s, v->tensor);
    }
  if (v1) {
    c.legacy_optimizer = root->get("optimizer") != nullptr;
  } else {
    c.optimizer = f.get("optimizer", Kind::Dict, "a dict (an optimizer state dict)", false);
  }
  if (const auto v = f.get("rng_cpu", Kind::Tensor, "a tensor", false)) c.rng_cpu = v->tensor;
  if (const auto v = f.get("rng_cuda", Kind::List, "a list of tensors", false))
    for (const auto& t : v->items) {
      if (t->kind != Kind::Tensor) f.bad("field 'rng_cuda' is not a list of tensors");
      c.rng_cuda.push_back(t->tensor);
    }
  c.progress = f.json("progress", false);
  if (!c.progress.is_object()) f.bad("field 'progress' is not a JSON object");
  if (const auto v = f.get("class_names", Kind::List, "a list of names", false))
    for (const auto& n : v->items)
      if (n->kind == Kind::Str) c.class_names.push_back(n->s);
  return c;
}

Checkpoint read_checkpoint(const std::string& path) {
  if (!std::ifstream(path, std::ios::binary)) fail("checkpoint " + path + ": cannot open file");
  // Our own zip reader and unpickler (io/torch_pickle.h), not torch::pickle_load:
  // fuzz/fuzz_checkpoint found that LibTorch's copies past its buffer on a corrupt zip directory,
  // reserves whatever length a pickle opcode claims (3 GB from a 7 KB file) and allocates whatever
  // size a zip entry claims (4 GB); ours bound every length by the data.
  PyRef root;
  try {
    root = read_torch_archive(path);
  } catch (const std::exception& e) {
    // The reader's reason (a damaged zip record, a corrupt pickle) unless it only repeats this one.
    std::string why = e.what();
    if (why.rfind(path + ": ", 0) == 0) why.erase(0, path.size() + 2);
    if (why.rfind("not a readable torch.save file", 0) == 0) why.clear();
    fail("checkpoint " + path + ": not a readable checkpoint (truncated or not written by ewa)" +
         (why.empty() ? "" : ": " + why));
  }
  return decode_checkpoint(root, path, /*strict=*/true);
}

}  // namespace ewa::io
