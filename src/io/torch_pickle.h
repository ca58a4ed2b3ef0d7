// A reader for torch.save zip archives that does not need the Python classes the file names.
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
};

// Reads the archive's data.pkl and its tensors. Throws ewa::Error naming `path` for a file that
// is not a torch.save zip archive (including the pre-1.6 legacy format) or is corrupt.
PyRef read_torch_archive(const std::string& path);

// LibTorch's own reading of a zip archive written by torch::pickle_save or torch.save (an IValue),
// but through bounds-checked file reads (torch::pickle_load's in-memory reader copies past its
// buffer on a corrupt zip directory, found by fuzz/fuzz_checkpoint) and with every record's size
// checked against the file. LibTorch's unpickler still trusts the lengths in the pickle, so this
// is for files we wrote (the dataset cache); checkpoints and weights use read_torch_archive.
// Throws c10::Error or std::exception for a file that is not such an archive.
at::IValue load_pickle_archive(const std::string& path);

}  // namespace ewa::io
