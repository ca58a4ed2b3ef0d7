#include "io/pretrained.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/text.h"

namespace ewa::io {
namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

// Official Conv1d layers that we hold as Linear.
// The last four lines: Point-MAE's segmentation network (label_conv, propagation_0, convs1..3).
const char* const kConvSuffixes[] = {"first_conv.0.weight",  "first_conv.3.weight",
                                     "second_conv.0.weight", "second_conv.3.weight",
                                     "increase_dim.0.weight", "label_conv.0.weight",
                                     "mlp_convs.0.weight",   "mlp_convs.1.weight",
                                     "convs1.weight",        "convs2.weight",
                                     "convs3.weight"};

bool is_conv_weight(const std::string& name) {
  for (const char* s : kConvSuffixes)
    if (ends_with(name, s)) return true;
  return false;
}

// "blocks.blocks.3.mlp.w1" -> {"blocks.blocks.3.mlp", "w1"}.
std::pair<std::string, std::string> split_last(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? std::make_pair(std::string(), name)
                                  : std::make_pair(name.substr(0, dot), name.substr(dot + 1));
}

// Expert tensor <-> dense FFN tensor names.
const std::map<std::string, std::string> kExpertToDense = {
    {"w1", "fc1.weight"}, {"b1", "fc1.bias"}, {"w2", "fc2.weight"}, {"b2", "fc2.bias"}};

// A key's group in the table: its components up to the first number, then ".*":
// "blocks.blocks.3.mlp.w1" -> "blocks.blocks.*", "cls_head_finetune.0.weight" ->
// "cls_head_finetune.*", "norm.weight" -> "norm.*", "mask_token" -> "mask_token".
std::string group_of(const std::string& name) {
  std::string out;
  size_t start = 0;
  while (true) {
    const auto dot = name.find('.', start);
    const std::string part = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool number = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (number || dot == std::string::npos) return out.empty() ? name : out + ".*";
    out += (out.empty() ? "" : ".") + part;
    start = dot + 1;
  }
}

std::string summarize(const std::vector<std::string>& names, size_t max_groups = 6) {
  std::vector<std::pair<std::string, int>> groups;  // in order of first appearance
  for (const auto& n : names) {
    const std::string g = group_of(n);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& e) { return e.first == g; });
    if (it == groups.end()) groups.emplace_back(g, 1);
    else ++it->second;
  }
  std::string out;
  for (size_t i = 0; i < groups.size() && i < max_groups; ++i)
    out += (i ? ", " : "") + groups[i].first + (groups[i].second > 1 ? " (" + std::to_string(groups[i].second) + ")" : "");
  if (groups.size() > max_groups) out += ", ...";
  return out;
}

// A ViT's absolute position embedding [1, 1 + g*g, D] resampled to [1, 1 + h*h, D]: the class
// token's row kept, the g x g grid bicubically interpolated to h x h (timm's
// resample_abs_pos_embed). Undefined when the token counts are not 1 + a square.
torch::Tensor resample_pos_embed(const torch::Tensor& pos, int64_t tokens) {
  auto side = [](int64_t n) {
    const auto r = static_cast<int64_t>(std::lround(std::sqrt(double(n))));
    return r * r == n ? r : int64_t(-1);
  };
  const int64_t g = side(pos.size(1) - 1), h = side(tokens - 1);
  if (g <= 0 || h <= 0) return {};
  const int64_t D = pos.size(2);
  auto grid = pos.narrow(1, 1, g * g).reshape({1, g, g, D}).permute({0, 3, 1, 2}).to(torch::kFloat);
  namespace F = torch::nn::functional;
  auto out = F::interpolate(grid, F::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{h, h})
                                      .mode(torch::kBicubic)
                                      .align_corners(false));
  out = out.permute({0, 2, 3, 1}).reshape({1, h * h, D});
  return torch::cat({pos.narrow(1, 0, 1).to(torch::kFloat), out}, 1);
}

}  // namespace

torch::OrderedDict<std::string, torch::Tensor> normalize_keys(const torch::OrderedDict<std::string, torch::Tensor>& in,
                                                              std::vector<std::string>* dropped, bool own_layout) {
  bool point_bert = false;
  for (const auto& item : in) {
    std::string k = item.key();
    if (starts_with(k, "module.")) k = k.substr(7);
    if (starts_with(k, "transformer_q.")) point_bert = true;
  }
  if (own_layout) point_bert = false;
  torch::OrderedDict<std::string, torch::Tensor> out;
  for (const auto& item : in) {
    std::string k = item.key();
    if (starts_with(k, "module.")) k = k.substr(7);
    if (point_bert) {
      if (!starts_with(k, "transformer_q.") || starts_with(k, "transformer_q.cls_head")) {
        if (dropped) dropped->push_back(item.key());
        continue;
      }
      k = k.substr(14);
    } else if (own_layout) {
    } else if (starts_with(k, "MAE_encoder.")) {
      k = k.substr(12);
    } else if (starts_with(k, "base_model.")) {
      k = k.substr(11);
    }
    if (out.contains(k)) {
      if (dropped) dropped->push_back(item.key());
      continue;
    }
    out.insert(k, item.value());
  }
  return out;
}

namespace {

// Fills one model tensor after another from the file's tensors, recording in the report how.
struct Importer {
  const torch::OrderedDict<std::string, torch::Tensor>& src;
  LoadReport& r;
  std::set<std::string> used;

  void copy(torch::Tensor& target, const torch::Tensor& s) { target.copy_(s.to(target.dtype())); }

  // The file's tensor of the same name: as it is, squeezed (Conv1d weights), averaged over
  // another number of experts, or a resampled pos_embed. False when the file has no such name.
  bool same_name(const std::string& name, torch::Tensor& target, bool fresh_ok) {
    const torch::Tensor* s = src.find(name);
    if (!s) return false;
    used.insert(name);
    torch::Tensor v = *s;
    if (v.dim() == target.dim() + 1 && v.size(-1) == 1 && is_conv_weight(name)) v = v.squeeze(-1);
    const auto [prefix, leaf] = split_last(name);
    if (v.sizes() != target.sizes() && kExpertToDense.count(leaf) && v.dim() == target.dim() &&
        v.sizes().slice(1) == target.sizes().slice(1)) {
      // Another number of experts: every new expert starts as the mean of the file's.
      copy(target, v.mean(0, true).expand_as(target));
      r.expanded.push_back(name);
      return true;
    }
    if (name == "pos_embed" && v.dim() == 3 && target.dim() == 3 && v.size(2) == target.size(2) &&
        v.size(1) != target.size(1)) {
      if (auto resampled = resample_pos_embed(v, target.size(1)); resampled.defined()) {
        copy(target, resampled);
        r.resampled.push_back(name + ": " + shape_str(v.sizes()) + " -> " + shape_str(target.sizes()));
        return true;
      }
    }
    if (v.sizes() != target.sizes()) mismatch(name, *s, target, fresh_ok);
    else {
      copy(target, v);
      r.loaded.push_back(name);
    }
    return true;
  }

  // An MoE expert tensor from a dense FFN: every expert starts as the FFN.
  bool from_dense(const std::string& name, torch::Tensor& target, bool fresh_ok) {
    const auto [prefix, leaf] = split_last(name);
    const auto it = kExpertToDense.find(leaf);
    if (it == kExpertToDense.end()) return false;
    const std::string dense = prefix + "." + it->second;
    const torch::Tensor* s = src.find(dense);
    if (!s) return false;
    used.insert(dense);
    if (target.dim() == s->dim() + 1 && target.sizes().slice(1) == s->sizes()) {
      copy(target, s->unsqueeze(0).expand_as(target));
      r.expanded.push_back(name);
    } else {
      mismatch(name, *s, target, fresh_ok);
    }
    return true;
  }

  // A dense FFN tensor from MoE experts: their mean.
  bool from_experts(const std::string& name, torch::Tensor& target, bool fresh_ok) {
    for (const auto& [expert_leaf, dense_leaf] : kExpertToDense) {
      if (!ends_with(name, "." + dense_leaf)) continue;
      const std::string expert = name.substr(0, name.size() - dense_leaf.size() - 1) + "." + expert_leaf;
      const torch::Tensor* s = src.find(expert);
      if (!s) continue;
      used.insert(expert);
      if (s->dim() == target.dim() + 1 && s->sizes().slice(1) == target.sizes()) {
        copy(target, s->mean(0));
        r.averaged.push_back(name);
      } else {
        mismatch(name, *s, target, fresh_ok);
      }
      return true;
    }
    return false;
  }

  void mismatch(const std::string& name, const torch::Tensor& s, const torch::Tensor& target, bool fresh_ok) {
    if (fresh_ok) r.fresh.push_back(name);
    else r.mismatched.push_back(name + ": file " + shape_str(s.sizes()) + ", model " + shape_str(target.sizes()));
  }
};

std::string first_three(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 3; ++i) s += (i ? "; " : "") + v[i];
  return s + (v.size() > 3 ? "; ..." : "");
}

}  // namespace

LoadReport load_pretrained(torch::nn::Module& model, const StateDict& sd, const LoadOptions& options,
                           const std::string& path) {
  LoadReport r;
  r.path = path;
  r.origin = sd.origin;
  std::vector<std::string> dropped;
  const auto src = normalize_keys(sd.tensors, &dropped, options.own_layout);
  torch::NoGradGuard guard;

  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (const auto& p : model.named_parameters()) targets.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) targets.emplace_back(b.key(), b.value());

  Importer in{src, r, {}};
  for (auto& [name, target] : targets) {
    const bool fresh_ok = options.may_be_fresh(name) || name.find(".gate.") != std::string::npos;
    if (in.same_name(name, target, fresh_ok) || in.from_dense(name, target, fresh_ok) ||
        in.from_experts(name, target, fresh_ok))
      continue;
    if (fresh_ok) r.fresh.push_back(name);
    else r.missing.push_back(name);
  }
  for (const auto& item : src)
    if (!in.used.count(item.key())) r.unexpected.push_back(item.key());
  r.unexpected.insert(r.unexpected.end(), dropped.begin(), dropped.end());

  if (!r.mismatched.empty())
    fail(path + ": " + std::to_string(r.mismatched.size()) + " tensors have another shape than the model's (" +
         first_three(r.mismatched) + "): the file is for another architecture or size (check model.* in the config)");
  if (!r.missing.empty() && !options.allow_missing)
    fail(path + ": lacks " + std::to_string(r.missing.size()) + " tensors the model needs (" + first_three(r.missing) + "); " +
         (options.missing_hint.empty() ? "it does not hold the whole model the config describes" : options.missing_hint));
  if (r.loaded.empty() && r.expanded.empty() && r.averaged.empty())
    fail(path + ": none of its " + std::to_string(sd.tensors.size()) + " tensors match the model's names");
  return r;
}

ImpliedModel implied_model(const StateDict& sd) {
  auto has = [&](const char* prefix) {
    for (const auto& item : sd.tensors) {
      std::string k = item.key();
      if (k.rfind("module.", 0) == 0) k = k.substr(7);
      if (k.rfind(prefix, 0) == 0) return true;
    }
    return false;
  };
  if (has("transformer_q."))
    return {"point_bert", "point_bert", "Point-BERT's pretraining module (transformer_q, transformer_k, dvae)",
            "configs/shapenet55_pointbert.json"};
  if (has("codebook") && has("dgcnn_1."))
    return {"point_bert_dvae", "point_bert", "Point-BERT's dVAE tokenizer", "configs/shapenet55_pointbert_dvae.json"};
  if (has("MAE_encoder.") || has("MAE_decoder."))
    return {"point_mae", "point_mae", "Point-MAE's pretraining module (MAE_encoder, MAE_decoder)",
            "configs/shapenet55_pointmae_pretrain.json"};
  if (has("convs3.") || has("label_conv."))
    return {"point_seg", "point_mae", "Point-MAE's part-segmentation network", "configs/finetune_shapenetpart_pointmae_dense.json"};
  if (has("cls_head_finetune."))  // Point-MAE's head has BatchNorm at index 1, Point-BERT's none
    return !has("cls_head_finetune.1.") ? ImpliedModel{"point_transformer", "point_bert", "a Point-BERT classifier",
                                             "configs/finetune_modelnet40_1k_pointbert_dense.json"}
                              : ImpliedModel{"point_transformer", "point_mae", "a Point-MAE classifier",
                                             "configs/finetune_modelnet40_pointmae_dense.json"};
  if (has("patch_embed.proj."))
    return {"vit", "", "a ViT (timm layout)", "configs/fmnist_vit_dense.json"};
  return {};
}

std::string LoadReport::table() const {
  std::ostringstream os;
  os << "init       " << path << " (" << origin << ")\n";
  auto row = [&](const char* label, const std::vector<std::string>& v, const char* note) {
    os << "  " << label << std::string(12 - std::strlen(label), ' ') << v.size();
    if (!v.empty()) os << ": " << summarize(v) << note;
    os << "\n";
  };
  row("loaded", loaded, "");
  row("experts", expanded, " (copies of the pretrained FFN)");
  row("averaged", averaged, " (mean of the file's experts)");
  row("resampled", resampled, " (bicubic, as timm)");
  row("new", fresh, " (trained from scratch)");
  row("missing", missing, " (kept fresh: finetune.allow_missing)");
  row("unused", unexpected, "");
  row("mismatched", mismatched, "");
  std::string s = os.str();
  s.pop_back();
  return s;
}

torch::OrderedDict<std::string, torch::Tensor> to_official_layout(const torch::OrderedDict<std::string, torch::Tensor>& model) {
  torch::OrderedDict<std::string, torch::Tensor> out;
  for (const auto& item : model) {
    const auto [prefix, leaf] = split_last(item.key());
    if (kExpertToDense.count(leaf) || item.key().find(".gate.") != std::string::npos)
      fail("export: " + item.key() + " belongs to a MoE layer: run `ewa convert` first (the official models are dense)");
    auto v = item.value();
    if (is_conv_weight(item.key()) && v.dim() == 2) v = v.unsqueeze(-1);
    out.insert(item.key(), v.contiguous());
  }
  return out;
}

}  // namespace ewa::io
