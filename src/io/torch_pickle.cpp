#include "io/torch_pickle.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"
#include "io/zip_archive.h"

namespace ewa::io {
namespace {

using Kind = PyValue::Kind;

PyRef make(Kind k) {
  auto v = std::make_shared<PyValue>();
  v->kind = k;
  return v;
}
PyRef make_str(Kind k, std::string s) {
  auto v = make(k);
  v->s = std::move(s);
  return v;
}

torch::ScalarType storage_dtype(const std::string& global) {
  static const std::map<std::string, torch::ScalarType> types = {
      {"torch.FloatStorage", torch::kFloat},     {"torch.DoubleStorage", torch::kDouble},
      {"torch.HalfStorage", torch::kHalf},       {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kLong},       {"torch.IntStorage", torch::kInt},
      {"torch.ShortStorage", torch::kShort},     {"torch.CharStorage", torch::kChar},
      {"torch.ByteStorage", torch::kByte},       {"torch.BoolStorage", torch::kBool},
      {"torch.ComplexFloatStorage", torch::kComplexFloat}, {"torch.ComplexDoubleStorage", torch::kComplexDouble}};
  auto it = types.find(global);
  if (it == types.end()) throw std::runtime_error("unsupported storage type " + global);
  return it->second;
}

std::vector<int64_t> int_tuple(const PyRef& v, const char* what) {
  if (!v || (v->kind != Kind::Tuple && v->kind != Kind::List)) throw std::runtime_error(std::string(what) + " is not a tuple");
  std::vector<int64_t> out;
  for (const auto& e : v->items) {
    if (e->kind != Kind::Int) throw std::runtime_error(std::string(what) + " holds a non-integer");
    out.push_back(e->i);
  }
  return out;
}

// numpy's dtype codes ("f4", "<i8", ...) as torch dtypes.
torch::ScalarType numpy_dtype(const std::string& code) {
  static const std::map<std::string, torch::ScalarType> types = {
      {"f4", torch::kFloat}, {"f8", torch::kDouble}, {"f2", torch::kHalf}, {"i1", torch::kChar},
      {"u1", torch::kByte},  {"i2", torch::kShort},  {"i4", torch::kInt},  {"i8", torch::kLong},
      {"b1", torch::kBool}};
  auto it = types.find(code);
  if (it == types.end()) throw std::runtime_error("unsupported numpy dtype '" + code + "'");
  return it->second;
}

bool is_numpy(const std::string& global, const char* name) {
  // numpy 1.x pickles name numpy.core.*, numpy 2.x numpy._core.*
  return global == std::string("numpy.core.") + name || global == std::string("numpy._core.") + name;
}

class Unpickler {
 public:
  // `archive` holds the tensors' storages of a torch.save file; null for a plain pickle.
  Unpickler(const char* data, size_t size, ZipArchive* archive) : p_(data), end_(data + size), archive_(archive) {}

  PyRef run() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;                             // PROTO
        case 0x95: bytes(8); break;                           // FRAME
        case '.': return pop();                               // STOP
        case '(': marks_.push_back(stack_.size()); break;     // MARK
        case 'N': push(make(Kind::None)); break;
        case 0x88: push_bool(true); break;                    // NEWTRUE
        case 0x89: push_bool(false); break;                   // NEWFALSE
        case 'J': push_int(static_cast<int32_t>(le(4))); break;  // BININT
        case 'K': push_int(static_cast<uint8_t>(le(1))); break;  // BININT1
        case 'M': push_int(static_cast<uint16_t>(le(2))); break; // BININT2
        case 0x8a: push_long(static_cast<size_t>(le(1))); break; // LONG1
        case 0x8b: push_long(static_cast<size_t>(le(4))); break; // LONG4
        case 'G': {                                            // BINFLOAT (big-endian double)
          uint64_t u = 0;
          for (int k = 0; k < 8; ++k) u = (u << 8) | byte();
          auto v = make(Kind::Float);
          std::memcpy(&v->f, &u, 8);
          push(v);
          break;
        }
        case 'X': push(make_str(Kind::Str, bytes(le(4)))); break;      // BINUNICODE
        case 0x8c: push(make_str(Kind::Str, bytes(le(1)))); break;     // SHORT_BINUNICODE
        case 0x8d: push(make_str(Kind::Str, bytes(le(8)))); break;     // BINUNICODE8
        case 'T': push(make_str(Kind::Str, bytes(le(4)))); break;      // BINSTRING
        case 'U': push(make_str(Kind::Str, bytes(le(1)))); break;      // SHORT_BINSTRING
        case 'B': push(make_str(Kind::Bytes, bytes(le(4)))); break;    // BINBYTES
        case 'C': push(make_str(Kind::Bytes, bytes(le(1)))); break;    // SHORT_BINBYTES
        case 0x8e: push(make_str(Kind::Bytes, bytes(le(8)))); break;   // BINBYTES8
        case 0x96: push(make_str(Kind::Bytes, bytes(le(8)))); break;   // BYTEARRAY8
        case '}': push(make(Kind::Dict)); break;               // EMPTY_DICT
        case ']': push(make(Kind::List)); break;               // EMPTY_LIST
        case ')': push(make(Kind::Tuple)); break;              // EMPTY_TUPLE
        case 0x8f: push(make(Kind::List)); break;              // EMPTY_SET (kept as a list)
        case 't': {                                            // TUPLE
          auto v = make(Kind::Tuple);
          v->items = pop_to_mark();
          push(v);
          break;
        }
        case 0x85: case 0x86: case 0x87: {                     // TUPLE1..3
          auto v = make(Kind::Tuple);
          v->items.resize(op - 0x84);
          for (size_t k = v->items.size(); k-- > 0;) v->items[k] = pop();
          push(v);
          break;
        }
        case 'l': {                                            // LIST
          auto v = make(Kind::List);
          v->items = pop_to_mark();
          push(v);
          break;
        }
        case 'd': {                                            // DICT
          auto v = make(Kind::Dict);
          auto kv = pop_to_mark();
          for (size_t k = 0; k + 1 < kv.size(); k += 2) v->dict.emplace_back(kv[k], kv[k + 1]);
          push(v);
          break;
        }
        case 'a': {                                            // APPEND
          auto x = pop();
          append(top(), {x});
          break;
        }
        case 'e': case 0x90: {                                 // APPENDS, ADDITEMS
          auto xs = pop_to_mark();
          append(top(), xs);
          break;
        }
        case 's': {                                            // SETITEM
          auto value = pop();
          auto key = pop();
          set_items(top(), {key, value});
          break;
        }
        case 'u': {                                            // SETITEMS
          auto kv = pop_to_mark();
          set_items(top(), kv);
          break;
        }
        case 0x91: {                                           // FROZENSET
          auto v = make(Kind::List);
          v->items = pop_to_mark();
          push(v);
          break;
        }
        case 'c': {                                            // GLOBAL "module\nname\n"
          std::string module = line(), name = line();
          if (module == "__builtin__") module = "builtins";    // protocol 2's Python 2 names
          push(make_str(Kind::Global, module + "." + name));
          break;
        }
        case 0x93: {                                           // STACK_GLOBAL
          auto name = pop(), module = pop();
          push(make_str(Kind::Global, module->s + "." + name->s));
          break;
        }
        case 'R': {                                            // REDUCE
          auto args = pop();
          auto fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 0x81: {                                           // NEWOBJ
          auto args = pop();
          auto cls = pop();
          push(reduce(cls, args));
          break;
        }
        case 0x92: {                                           // NEWOBJ_EX
          pop();
          auto args = pop();
          auto cls = pop();
          push(reduce(cls, args));
          break;
        }
        case 'b': {                                            // BUILD: numpy arrays and dtypes take their state;
          auto state = pop();                                  // other objects' state (OrderedDict._metadata, ...) is dropped
          build(top(), state);
          break;
        }
        case 'Q': push(persistent(pop())); break;              // BINPERSID
        case 'q': memo_[static_cast<size_t>(le(1))] = top(); break;  // BINPUT
        case 'r': memo_[static_cast<size_t>(le(4))] = top(); break;  // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;         // MEMOIZE
        case 'h': push(memo(static_cast<size_t>(le(1)))); break;  // BINGET
        case 'j': push(memo(static_cast<size_t>(le(4)))); break;  // LONG_BINGET
        case '0': pop(); break;                                // POP
        case '1': pop_to_mark(); break;                        // POP_MARK
        case '2': push(top()); break;                          // DUP
        default: {
          char b[64];
          std::snprintf(b, sizeof b, "unsupported pickle opcode 0x%02x", op);
          throw std::runtime_error(b);
        }
      }
    }
  }

 private:
  uint8_t byte() {
    if (p_ >= end_) throw std::runtime_error("pickle data ends early");
    return static_cast<uint8_t>(*p_++);
  }
  std::string bytes(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_)) throw std::runtime_error("pickle data ends early");
    std::string s(p_, p_ + n);
    p_ += n;
    return s;
  }
  uint64_t le(int n) {
    uint64_t v = 0;
    for (int k = 0; k < n; ++k) v |= static_cast<uint64_t>(byte()) << (8 * k);
    return v;
  }
  std::string line() {
    std::string s;
    for (char c; (c = static_cast<char>(byte())) != '\n';) s += c;
    return s;
  }
  void push(PyRef v) { stack_.push_back(std::move(v)); }
  void push_bool(bool b) {
    auto v = make(Kind::Bool);
    v->b = b;
    push(v);
  }
  void push_int(int64_t i) {
    auto v = make(Kind::Int);
    v->i = i;
    push(v);
  }
  void push_long(size_t n) {
    const std::string b = bytes(n);
    if (n > 8) return push(make_str(Kind::Opaque, "int (more than 64 bits)"));
    int64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<int64_t>(static_cast<uint8_t>(b[k])) << (8 * k);
    if (n > 0 && n < 8 && (static_cast<uint8_t>(b[n - 1]) & 0x80)) v -= int64_t(1) << (8 * n);  // sign
    push_int(v);
  }
  PyRef pop() {
    if (stack_.empty()) throw std::runtime_error("pickle stack underflow");
    auto v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PyRef top() {
    if (stack_.empty()) throw std::runtime_error("pickle stack underflow");
    return stack_.back();
  }
  std::vector<PyRef> pop_to_mark() {
    if (marks_.empty()) throw std::runtime_error("pickle MARK missing");
    const size_t m = marks_.back();
    marks_.pop_back();
    if (m > stack_.size()) throw std::runtime_error("pickle MARK beyond the stack");
    std::vector<PyRef> out(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return out;
  }
  PyRef memo(size_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) throw std::runtime_error("pickle memo entry missing");
    return it->second;
  }
  static void append(const PyRef& list, const std::vector<PyRef>& xs) {
    if (list->kind == Kind::List) list->items.insert(list->items.end(), xs.begin(), xs.end());
  }
  static void set_items(const PyRef& dict, const std::vector<PyRef>& kv) {
    if (dict->kind != Kind::Dict) return;  // an opaque object's __setitem__: ignored
    for (size_t k = 0; k + 1 < kv.size(); k += 2) dict->dict.emplace_back(kv[k], kv[k + 1]);
  }

  PyRef reduce(const PyRef& fn, const PyRef& args) {
    const std::string name = fn->kind == Kind::Global ? fn->s : "";
    const auto& a = args->items;
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      if (a.size() < 4 || a[0]->kind != Kind::Tensor || a[1]->kind != Kind::Int)
        throw std::runtime_error("malformed tensor record");
      const auto size = int_tuple(a[2], "tensor size"), stride = int_tuple(a[3], "tensor stride");
      auto v = make(Kind::Tensor);
      v->tensor = size.empty() && a[0]->tensor.numel() == 0 ? torch::empty({}, a[0]->tensor.options())
                                                            : a[0]->tensor.as_strided(size, stride, a[1]->i).clone();
      return v;
    }
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != Kind::Tensor) throw std::runtime_error("malformed parameter record");
      return a[0];
    }
    // LibTorch's own pickler wraps typed containers: restore_type_tag(value, type), build_*list(list).
    if (name == "torch.jit._pickle.restore_type_tag" || name.rfind("torch.jit._pickle.build_", 0) == 0) {
      if (a.empty()) throw std::runtime_error("malformed " + name + " record");
      return a[0];
    }
    if (name == "collections.OrderedDict" || name == "builtins.dict") {
      auto d = make(Kind::Dict);
      if (!a.empty() && a[0]->kind == Kind::List)  // OrderedDict([(k, v), ...])
        for (const auto& pair : a[0]->items)
          if (pair->kind == Kind::Tuple && pair->items.size() == 2) d->dict.emplace_back(pair->items[0], pair->items[1]);
      return d;
    }
    if (is_numpy(name, "multiarray._reconstruct")) return make_str(Kind::Opaque, "numpy.ndarray");  // BUILD fills it
    if (name == "numpy.dtype") {
      if (a.empty() || a[0]->kind != Kind::Str) throw std::runtime_error("malformed numpy dtype record");
      auto d = make_str(Kind::Opaque, "numpy.dtype");
      d->items = {a[0], make_str(Kind::Str, "|")};
      return d;
    }
    if (is_numpy(name, "multiarray.scalar")) {  // (dtype, bytes of one element)
      if (a.size() < 2 || a[1]->kind != Kind::Bytes) throw std::runtime_error("malformed numpy scalar record");
      auto t = numpy_array(a[0], {}, a[1]->s, false);
      if (t.is_floating_point()) {
        auto v = make(Kind::Float);
        v->f = t.item<double>();
        return v;
      }
      auto v = make(Kind::Int);
      v->i = t.to(torch::kLong).item<int64_t>();
      return v;
    }
    if (is_numpy(name, "numeric._frombuffer")) {  // protocol 5: (buffer, dtype, shape, order)
      if (a.size() < 4 || a[0]->kind != Kind::Bytes || a[3]->kind != Kind::Str)
        throw std::runtime_error("malformed numpy array record");
      auto v = make(Kind::Tensor);
      v->tensor = numpy_array(a[1], int_tuple(a[2], "numpy array shape"), a[0]->s, a[3]->s == "F");
      return v;
    }
    if (name == "builtins.bytes" && a.empty()) return make_str(Kind::Bytes, "");  // b'' under protocol 2
    if (name == "_codecs.encode") {  // bytes under protocol 2: codecs.encode(latin-1 text, 'latin1')
      if (a.empty() || a[0]->kind != Kind::Str) throw std::runtime_error("malformed _codecs.encode record");
      return make_str(Kind::Bytes, utf8_to_latin1(a[0]->s));
    }
    if (name == "builtins.set" || name == "builtins.frozenset" || name == "builtins.list") {
      auto l = make(Kind::List);
      if (!a.empty() && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple)) l->items = a[0]->items;
      return l;
    }
    return make_str(Kind::Opaque, name.empty() ? "object" : name);  // numpy scalars, namespaces, ...
  }

  // A numpy array's state: (version, shape, dtype, is_fortran, data bytes); a dtype's:
  // (version, byte order, ...).
  static void build(const PyRef& obj, const PyRef& state) {
    if (obj->kind != Kind::Opaque) return;
    const auto& st = state->items;
    if (obj->s == "numpy.dtype") {
      if (state->kind == Kind::Tuple && st.size() >= 2 && st[1]->kind == Kind::Str) obj->items[1] = st[1];
    } else if (obj->s == "numpy.ndarray") {
      if (state->kind != Kind::Tuple || st.size() < 5 || st[3]->kind != Kind::Bool)
        throw std::runtime_error("malformed numpy array state");
      if (st[4]->kind != Kind::Bytes) throw std::runtime_error("numpy object arrays are not supported");
      obj->tensor = numpy_array(st[2], int_tuple(st[1], "numpy array shape"), st[4]->s, st[3]->b);
      obj->kind = Kind::Tensor;
      obj->s.clear();
    }
  }

  // The tensor of numpy data `bytes` of `shape` in `dtype` (a numpy.dtype value).
  static torch::Tensor numpy_array(const PyRef& dtype, std::vector<int64_t> shape, const std::string& bytes, bool fortran) {
    if (dtype->kind != Kind::Opaque || dtype->s != "numpy.dtype") throw std::runtime_error("numpy array without a dtype");
    std::string code = dtype->items[0]->s;
    std::string order = dtype->items[1]->s;
    if (!code.empty() && (code[0] == '<' || code[0] == '>' || code[0] == '|' || code[0] == '=')) {
      order = code.substr(0, 1);
      code = code.substr(1);
    }
    const auto type = numpy_dtype(code);
    const uint64_t item = c10::elementSize(type);
    uint64_t count = 1;
    for (const int64_t d : shape) {
      if (d < 0 || (d > 0 && count > (uint64_t(1) << 62) / uint64_t(d))) throw std::runtime_error("numpy array shape out of range");
      count *= uint64_t(d);
    }
    if (count * item != bytes.size())
      throw std::runtime_error("numpy array of " + std::to_string(count) + " " + code + " elements holds " +
                               std::to_string(bytes.size()) + " bytes");
    auto flat = torch::empty({static_cast<int64_t>(count)}, torch::TensorOptions().dtype(type));
    if (count > 0) std::memcpy(flat.data_ptr(), bytes.data(), bytes.size());
    if (order == ">" && item > 1) {  // big-endian data: reverse each element's bytes
      auto raw = flat.view(torch::kByte).view({static_cast<int64_t>(count), static_cast<int64_t>(item)});
      flat = raw.flip({1}).contiguous().view(type).view({static_cast<int64_t>(count)});
    }
    if (!fortran) return flat.view(shape);
    std::vector<int64_t> reversed(shape.rbegin(), shape.rend());
    std::vector<int64_t> perm;
    for (int64_t k = static_cast<int64_t>(shape.size()) - 1; k >= 0; --k) perm.push_back(k);
    return flat.view(reversed).permute(perm).contiguous();
  }

  static std::string utf8_to_latin1(const std::string& s) {
    std::string out;
    for (size_t k = 0; k < s.size(); ++k) {
      const auto c = static_cast<uint8_t>(s[k]);
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if ((c & 0xe0) == 0xc0 && k + 1 < s.size() && c <= 0xc3) {
        out += static_cast<char>(((c & 0x03) << 6) | (static_cast<uint8_t>(s[++k]) & 0x3f));
      } else {
        throw std::runtime_error("_codecs.encode text is not latin-1");
      }
    }
    return out;
  }

  // ('storage', storage type, key, location, numel): the archive's data/<key>, on the CPU.
  PyRef persistent(const PyRef& pid) {
    if (!archive_) throw std::runtime_error("a persistent id (torch storage) in a plain pickle");
    const auto& t = pid->items;
    if (pid->kind != Kind::Tuple || t.size() < 5 || t[0]->s != "storage" || t[1]->kind != Kind::Global ||
        t[2]->kind != Kind::Str)
      throw std::runtime_error("unsupported persistent id in the pickle");
    const std::string key = t[2]->s;
    auto it = storages_.find(key);
    if (it != storages_.end()) return it->second;
    const auto dtype = storage_dtype(t[1]->s);
    // The record is read straight into the tensor (its size checked against the file already).
    const std::string record = "data/" + key;
    const uint64_t nbytes = archive_->size(record), item = c10::elementSize(dtype);
    if (nbytes % item != 0)
      throw std::runtime_error("storage '" + record + "' has " + std::to_string(nbytes) + " bytes, not a multiple of its " +
                               std::to_string(item) + "-byte element type");
    auto v = make(Kind::Tensor);
    v->tensor = torch::empty({static_cast<int64_t>(nbytes / item)}, torch::TensorOptions().dtype(dtype));
    archive_->read(record, v->tensor.data_ptr());
    storages_[key] = v;
    return v;
  }

  const char* p_;
  const char* end_;
  ZipArchive* archive_;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::map<size_t, PyRef> memo_;
  std::map<std::string, PyRef> storages_;
};

}  // namespace

namespace {
// Runs the unpickler over `data`; its failures become one line naming `path` as a corrupt `kind`.
PyRef unpickle(const std::vector<char>& data, ZipArchive* archive, const std::string& path, const char* kind) {
  try {
    Unpickler u(data.data(), data.size(), archive);
    return u.run();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string what = e.what();
    const auto nl = what.find('\n');
    fail(path + ": corrupt " + kind + ": " + (nl == std::string::npos ? what : what.substr(0, nl)));
  }
}
}  // namespace

PyRef PyValue::get(const std::string& key) const {
  if (kind != Kind::Dict) return nullptr;
  for (const auto& [k, v] : dict)
    if (k->kind == Kind::Str && k->s == key) return v;
  return nullptr;
}

PyRef read_torch_archive(const std::string& path) {
  std::unique_ptr<ZipArchive> archive;
  try {
    archive = std::make_unique<ZipArchive>(path);
  } catch (const ZipArchive::NotAZip&) {
    std::ifstream in(path, std::ios::binary);
    char magic[2] = {0, 0};
    in.read(magic, 2);
    if (static_cast<uint8_t>(magic[0]) == 0x80 && static_cast<uint8_t>(magic[1]) == 0x02)
      fail(path + ": a legacy (pre-1.6) torch.save file: re-save it with torch.save in PyTorch 1.6 or newer");
    fail(path + ": not a readable torch.save file (truncated, or not a zip archive written by torch.save)");
  }
  if (!archive->has("data.pkl")) fail(path + ": a zip archive without data.pkl: not a torch.save file");
  return unpickle(archive->read("data.pkl"), archive.get(), path, "torch.save file");
}

PyRef read_pickle_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open file");
  std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < 2 || static_cast<uint8_t>(data[0]) != 0x80 || static_cast<uint8_t>(data[1]) < 2 ||
      static_cast<uint8_t>(data[1]) > 5)
    fail(path + ": not a pickle file of protocol 2 to 5 (as Python's pickle.dump writes)");
  return unpickle(data, nullptr, path, "pickle file");
}

std::string describe_value(const PyRef& v) {
  if (!v) return "nothing";
  switch (v->kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "a bool";
    case Kind::Int: return "an int";
    case Kind::Float: return "a float";
    case Kind::Str: return "a str";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "a list of " + std::to_string(v->items.size());
    case Kind::Tuple: return "a tuple of " + std::to_string(v->items.size());
    case Kind::Dict: return "a dict";
    case Kind::Tensor: {
      std::string shape;
      for (const auto d : v->tensor.sizes()) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      return std::string("an array of ") + c10::toString(v->tensor.scalar_type()) + " [" + shape + "]";
    }
    case Kind::Global: return "the global " + v->s;
    case Kind::Opaque: return "an object of " + v->s;
  }
  return "?";
}

void PyValue::set(const std::string& key, PyRef value) {
  for (auto& [k, v] : dict)
    if (k->kind == Kind::Str && k->s == key) {
      v = std::move(value);
      return;
    }
  dict.emplace_back(py_str(key), std::move(value));
}

PyRef py_none() { return make(Kind::None); }
PyRef py_bool(bool b) {
  auto v = make(Kind::Bool);
  v->b = b;
  return v;
}
PyRef py_int(int64_t i) {
  auto v = make(Kind::Int);
  v->i = i;
  return v;
}
PyRef py_float(double f) {
  auto v = make(Kind::Float);
  v->f = f;
  return v;
}
PyRef py_str(std::string s) { return make_str(Kind::Str, std::move(s)); }
PyRef py_tensor(torch::Tensor t) {
  auto v = make(Kind::Tensor);
  v->tensor = std::move(t);
  return v;
}
PyRef py_list(std::vector<PyRef> items) {
  auto v = make(Kind::List);
  v->items = std::move(items);
  return v;
}
PyRef py_dict() { return make(Kind::Dict); }

namespace {

// Pickle protocol 2, the opcodes torch.save's pickler emits for these values.
class Pickler {
 public:
  std::string out = std::string("\x80\x02", 2);
  std::vector<torch::Tensor> storages;  // record data/<i>

  void value(const PyRef& v) {
    switch (v->kind) {
      case Kind::None: out += 'N'; break;
      case Kind::Bool: out += v->b ? '\x88' : '\x89'; break;
      case Kind::Int: integer(v->i); break;
      case Kind::Float: {
        out += 'G';
        uint64_t bits;
        std::memcpy(&bits, &v->f, 8);
        for (int i = 7; i >= 0; --i) out += static_cast<char>((bits >> (8 * i)) & 0xff);  // big-endian
        break;
      }
      case Kind::Str: text(v->s); break;
      case Kind::List:
        out += ']';
        if (!v->items.empty()) {
          out += '(';
          for (const auto& e : v->items) value(e);
          out += 'e';
        }
        break;
      case Kind::Tuple:
        out += '(';
        for (const auto& e : v->items) value(e);
        out += 't';
        break;
      case Kind::Dict:
        out += '}';
        if (!v->dict.empty()) {
          out += '(';
          for (const auto& [k, e] : v->dict) value(k), value(e);
          out += 'u';
        }
        break;
      case Kind::Tensor: tensor(v->tensor); break;
      default: throw std::runtime_error("cannot write a value of kind " + describe_value(v));
    }
  }

 private:
  void integer(int64_t i) {
    if (i >= 0 && i < 256) {
      out += 'K';
      out += static_cast<char>(i);
    } else if (i >= 0 && i < 65536) {
      out += 'M';
      out += static_cast<char>(i & 0xff);
      out += static_cast<char>(i >> 8);
    } else if (i >= INT32_MIN && i <= INT32_MAX) {
      out += 'J';
      for (int b = 0; b < 4; ++b) out += static_cast<char>((static_cast<uint32_t>(i) >> (8 * b)) & 0xff);
    } else {  // LONG1: 8 bytes, little-endian two's complement
      out += '\x8a';
      out += '\x08';
      for (int b = 0; b < 8; ++b) out += static_cast<char>((static_cast<uint64_t>(i) >> (8 * b)) & 0xff);
    }
  }
  void text(const std::string& s) {
    out += 'X';
    for (int b = 0; b < 4; ++b) out += static_cast<char>((s.size() >> (8 * b)) & 0xff);
    out += s;
  }
  void global(const std::string& module, const std::string& name) { out += "c" + module + "\n" + name + "\n"; }
  void int_tuple(at::IntArrayRef values) {
    out += '(';
    for (auto v : values) integer(v);
    out += 't';
  }
  void tensor(const torch::Tensor& t) {
    static const std::map<torch::ScalarType, std::string> names = {
        {torch::kFloat, "FloatStorage"}, {torch::kDouble, "DoubleStorage"}, {torch::kHalf, "HalfStorage"},
        {torch::kBFloat16, "BFloat16Storage"}, {torch::kLong, "LongStorage"}, {torch::kInt, "IntStorage"},
        {torch::kShort, "ShortStorage"}, {torch::kChar, "CharStorage"}, {torch::kByte, "ByteStorage"},
        {torch::kBool, "BoolStorage"}};
    const auto it = names.find(t.scalar_type());
    if (it == names.end()) throw std::runtime_error(std::string("cannot write a tensor of dtype ") + c10::toString(t.scalar_type()));
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const std::string key = std::to_string(storages.size());
    storages.push_back(c);
    global("torch._utils", "_rebuild_tensor_v2");
    out += '(';
    out += '(';  // the persistent id: ('storage', torch.<T>Storage, key, location, numel)
    text("storage");
    global("torch", it->second);
    text(key);
    text("cpu");
    integer(c.numel());
    out += 't';
    out += 'Q';  // BINPERSID
    integer(0);  // storage offset
    int_tuple(c.sizes());
    int_tuple(c.strides());
    out += '\x89';  // requires_grad False
    global("collections", "OrderedDict");
    out += ')';
    out += 'R';  // backward hooks: OrderedDict()
    out += 't';
    out += 'R';
  }
};

}  // namespace

std::string torch_archive_bytes(const PyRef& root, const std::string& top_folder, bool force_zip64) {
  Pickler pickler;
  pickler.value(root);
  pickler.out += '.';
  std::ostringstream out;
  ZipWriter zip(out, top_folder, force_zip64);
  zip.add("data.pkl", pickler.out.data(), pickler.out.size());
  zip.add("byteorder", "little", 6);
  for (size_t i = 0; i < pickler.storages.size(); ++i) {
    const auto& t = pickler.storages[i];
    zip.add("data/" + std::to_string(i), t.data_ptr(), static_cast<uint64_t>(t.numel()) * t.element_size());
  }
  zip.add("version", "3\n", 2);
  zip.add(".data/serialization_id", "0", 1);
  zip.finish();
  return out.str();
}

void write_torch_archive(const std::string& path, const PyRef& root, bool force_zip64) {
  std::string top = std::filesystem::path(path).stem().string();
  const std::string bytes = torch_archive_bytes(root, top.empty() ? "archive" : top, force_zip64);
  write_bytes_atomically(path, bytes.data(), bytes.size());
}

}  // namespace ewa::io
