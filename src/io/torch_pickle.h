// A reader for torch.save zip archives, and for plain pickle files of numpy arrays, that does not
// need the Python classes the file names.
// LibTorch's own unpickler stops at objects it does not know (the `_metadata` state of an
// nn.Module.state_dict() OrderedDict, numpy scalars in a metrics dict, argparse namespaces); this
// one keeps every such object as an opaque value and still returns every tensor. It reads pickle
// protocols 2 to 5 (torch.save writes 2), rebuilds tensors from `torch._utils._rebuild_tensor_v2`
// / `_rebuild_parameter` records and loads every storage on the CPU, whatever device the file
// names ("cuda:0" in files saved from a GPU run).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace ewa::io {

struct PyValue;
using PyRef = std::shared_ptr<PyValue>;

// A value of the unpickled object tree.
struct PyValue {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict, Tensor, Global, Opaque };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                               // Str, Bytes, Global ("module.name"), Opaque (its class)
  std::vector<PyRef> items;                    // List, Tuple
  std::vector<std::pair<PyRef, PyRef>> dict;   // Dict, in insertion order
  torch::Tensor tensor;

  // The value of string key `key` of a Dict; null when absent or not a Dict.
  PyRef get(const std::string& key) const;
  // Adds (or replaces) string key `key` of a Dict.
  void set(const std::string& key, PyRef value);
};

// Reads the archive's data.pkl and its tensors: official weights, ewa's checkpoints and its
// dataset cache (all written by torch.save or torch::pickle_save). Every length in the pickle is
// bounded by the data left and every zip record's size and offset by the file's (io::ZipArchive),
// so a corrupt file cannot make it allocate more than the file could hold (LibTorch's
// torch::pickle_load and its zip reader trust both: fuzz/fuzz_checkpoint). Throws ewa::Error
// naming `path` for a file that is not a torch.save zip archive (including the pre-1.6 legacy
// format), is damaged (a record failing its CRC-32) or is corrupt.
PyRef read_torch_archive(const std::string& path);

// Reads a plain pickle file (protocols 2 to 5, as pickle.dump writes them), such as the released
// ModelNet40 few-shot sets and Point-MAE's modelnet40_*_8192pts_fps.dat. numpy arrays (the
// _reconstruct + BUILD form of protocols 2 to 4 and protocol 5's in-band _frombuffer, numpy 1 and 2
// module names; dtypes bool, int8/16/32/64, uint8, float16/32/64, either byte order, C or Fortran
// order) become CPU tensors of their dtype and shape; numpy scalars become Int or Float values.
// Lengths are bounded by the file; an array whose data does not match its shape and dtype is an
// error. Throws ewa::Error naming `path` for a file that is not such a pickle.
PyRef read_pickle_file(const std::string& path);

// "a list", "a tuple", "a float32 array [8192, 6]", "an int" ...: a value's kind for error messages.
std::string describe_value(const PyRef& v);

// Values to write (or compare with what was read).
PyRef py_none();
PyRef py_bool(bool b);
PyRef py_int(int64_t i);
PyRef py_float(double f);
PyRef py_str(std::string s);
PyRef py_tensor(torch::Tensor t);
PyRef py_list(std::vector<PyRef> items = {});
PyRef py_dict();  // then ->set(key, value)

// The writer of read_torch_archive's format, as torch.save writes it: pickle protocol 2 (dicts,
// lists, tuples, strings, ints, floats, bools, None) in a zip archive, each tensor as
// torch._utils._rebuild_tensor_v2 over a typed storage of its own record. Python's torch.load
// reads it with its default weights_only=True (nothing but those globals and
// collections.OrderedDict is named). Written atomically; tensors are copied to the CPU.
// `force_zip64` writes zip64 records whatever the size (they are needed past 4 GiB), for tests.
void write_torch_archive(const std::string& path, const PyRef& root, bool force_zip64 = false);
// The bytes write_torch_archive writes, with records under `top_folder`/.
std::string torch_archive_bytes(const PyRef& root, const std::string& top_folder, bool force_zip64 = false);

}  // namespace ewa::io
