#include "io/state_dict.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/fs.h"
#include "io/checkpoint.h"
#include "io/torch_pickle.h"

namespace ewa::io {
namespace fs = std::filesystem;

namespace {

// A dict whose values are all tensors -> ordered name -> tensor; false when it is not one.
bool tensor_dict(const PyRef& v, torch::OrderedDict<std::string, torch::Tensor>& out) {
  if (!v || v->kind != PyValue::Kind::Dict || v->dict.empty()) return false;
  torch::OrderedDict<std::string, torch::Tensor> tmp;
  for (const auto& [k, t] : v->dict) {
    if (k->kind != PyValue::Kind::Str || t->kind != PyValue::Kind::Tensor) return false;
    if (!tmp.contains(k->s)) tmp.insert(k->s, t->tensor);
  }
  out = std::move(tmp);
  return true;
}

struct SafeDtype {
  const char* name;
  torch::ScalarType type;
  int64_t size;
};
const SafeDtype kSafeDtypes[] = {{"F64", torch::kDouble, 8}, {"F32", torch::kFloat, 4},  {"F16", torch::kHalf, 2},
                                 {"BF16", torch::kBFloat16, 2}, {"I64", torch::kLong, 8}, {"I32", torch::kInt, 4},
                                 {"I16", torch::kShort, 2},    {"I8", torch::kChar, 1},   {"U8", torch::kByte, 1},
                                 {"BOOL", torch::kBool, 1}};

}  // namespace

torch::OrderedDict<std::string, torch::Tensor> read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open file");
  in.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  unsigned char len_bytes[8];
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(len_bytes), 8)) fail(path + ": truncated safetensors file (no header)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > file_size - 8 || n > (uint64_t(100) << 20)) fail(path + ": corrupt safetensors file: header length " + std::to_string(n) +
                                                         " exceeds the file");
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception&) {
    fail(path + ": corrupt safetensors file: the header is not valid JSON");
  }
  if (!j.is_object()) fail(path + ": corrupt safetensors file: the header is not a JSON object");
  const uint64_t data_start = 8 + n, data_size = file_size - data_start;
  std::vector<char> data(data_size);
  if (!in.read(data.data(), static_cast<std::streamsize>(data_size))) fail(path + ": truncated safetensors file");
  // Tensors in file order (by offset), as writers lay them out.
  std::vector<std::tuple<uint64_t, std::string, nlohmann::json>> entries;
  for (const auto& item : j.items()) {
    const std::string name = item.key();
    const auto& e = item.value();
    if (name == "__metadata__") continue;
    auto bad = [&](const std::string& what) { fail(path + ": tensor '" + name + "': " + what); };
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      bad("expected {dtype, shape, data_offsets}");
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      bad("data_offsets must be two non-negative integers");
    entries.emplace_back(off[0].get<uint64_t>(), name, e);
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
  torch::OrderedDict<std::string, torch::Tensor> out;
  for (const auto& entry : entries) {
    const uint64_t begin = std::get<0>(entry);
    const std::string& name = std::get<1>(entry);
    const nlohmann::json& e = std::get<2>(entry);
    auto bad = [&](const std::string& what) { fail(path + ": tensor '" + name + "': " + what); };
    const SafeDtype* dt = nullptr;
    for (const auto& d : kSafeDtypes)
      if (e["dtype"].is_string() && e["dtype"].get<std::string>() == d.name) dt = &d;
    if (!dt) bad("unsupported dtype " + e["dtype"].dump());
    std::vector<int64_t> shape;
    int64_t count = 1;
    if (!e["shape"].is_array()) bad("shape must be a list");
    for (const auto& s : e["shape"]) {
      if (!s.is_number_unsigned()) bad("shape must hold non-negative integers");
      shape.push_back(s.get<int64_t>());
      // The product must fit the data (checked before it could overflow).
      if (shape.back() != 0 && (shape.back() < 0 || count > static_cast<int64_t>(data_size) / shape.back()))
        bad("shape " + e["shape"].dump() + " holds more elements than the file's " + std::to_string(data_size) + " data bytes");
      count *= shape.back();
    }
    const uint64_t end = e["data_offsets"][1].get<uint64_t>();
    if (end < begin || end > data_size) bad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                            "] lie outside the " + std::to_string(data_size) + " data bytes");
    if (static_cast<uint64_t>(count * dt->size) != end - begin)
      bad("shape " + e["shape"].dump() + " of " + dt->name + " needs " + std::to_string(count * dt->size) + " bytes, offsets give " +
          std::to_string(end - begin));
    auto t = torch::empty(shape, dt->type);
    std::memcpy(t.data_ptr(), data.data() + begin, end - begin);
    out.insert(name, t);
  }
  return out;
}

void write_safetensors(const std::string& path, const torch::OrderedDict<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& item : tensors) {
    auto t = item.value().detach().to(torch::kCPU).contiguous();
    const SafeDtype* dt = nullptr;
    for (const auto& d : kSafeDtypes)
      if (d.type == t.scalar_type()) dt = &d;
    if (!dt) fail(path + ": tensor '" + item.key() + "' has a dtype safetensors cannot hold");
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * dt->size;
    header[item.key()] = {{"dtype", dt->name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(t);
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h += ' ';  // the data starts 8-byte aligned
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    uint64_t n = h.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out.write(len, 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& t : contiguous)
      out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    out.flush();
    if (!out) throw std::runtime_error("write to " + tmp + " failed (disk full?)");
  });
}

void write_torch_state_dict(const std::string& path, const torch::OrderedDict<std::string, torch::Tensor>& tensors,
                            int64_t epoch, const std::string& key) {
  PyRef sd = py_dict();
  for (const auto& item : tensors) sd->set(item.key(), py_tensor(item.value()));
  PyRef root = py_dict();
  root->set(key, sd);
  root->set("epoch", py_int(epoch));
  write_torch_archive(path, root);
}

StateDict read_state_dict(const std::string& path) {
  if (!fs::exists(path)) fail(path + ": cannot open file (it does not exist)");
  StateDict out;
  const std::string ext = lower_extension(path);
  if (ext == ".safetensors") {
    out.tensors = read_safetensors(path);
    out.origin = "safetensors";
    return out;
  }
  if (ext != ".pt" && ext != ".pth" && ext != ".ckpt" && ext != ".bin" && ext != ".tar")
    fail(path + ": unsupported weights file extension '" + ext + "' (expected .pt, .pth, .ckpt, .bin or .safetensors)");
  const PyRef root = read_torch_archive(path);
  if (tensor_dict(root, out.tensors)) {
    out.origin = "torch.save state dict";
    return out;
  }
  if (root->kind != PyValue::Kind::Dict) fail(path + ": expected a dict at the top level of the torch.save file");
  if (is_ewa_checkpoint(root)) {  // the checkpoint codec, lenient: what is there and well-formed
    Checkpoint c = decode_checkpoint(root, path, /*strict=*/false);
    out.origin = "ewa checkpoint (" + c.kind + ")";
    out.step = c.step;
    out.epoch = c.epoch;
    out.class_names = c.class_names;
    if (!c.config.empty()) out.config = c.config;
    out.tensors = std::move(c.model);
    return out;
  } else if (auto v = root->get("epoch"); v && v->kind == PyValue::Kind::Int) {
    out.epoch = v->i;
  }
  // model_state_dict: Point-MAE's segmentation checkpoints (segmentation/main.py).
  for (const char* key : {"model", "base_model", "state_dict", "model_state", "model_state_dict"}) {
    if (tensor_dict(root->get(key), out.tensors)) {
      if (out.origin.empty()) out.origin = std::string("torch.save dict, key '") + key + "'";
      return out;
    }
  }
  std::string keys;
  for (const auto& [k, v] : root->dict)
    if (k->kind == PyValue::Kind::Str) keys += (keys.empty() ? "" : ", ") + k->s;
  fail(path + ": no state dict found: expected a dict of tensors under 'model', 'base_model', 'state_dict' or 'model_state_dict'; the top level has: " +
       keys);
}

}  // namespace ewa::io
