#include "config/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "config/datasets.h"
#include "config/model_kinds.h"
#include "config/schema.h"
#include "config/sources.h"

namespace ewa {
using nlohmann::json;

namespace {

const FieldSpec* find_field(const std::string& key) {
  for (const auto& f : config_schema())
    if (f.key == key) return &f;
  return nullptr;
}

bool is_section(const std::string& prefix) {
  for (const auto& f : config_schema())
    if (f.key.rfind(prefix + ".", 0) == 0) return true;
  return false;
}

std::string describe(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}


void check_value(const FieldSpec& f, const json& v, const std::string& where) {
  auto bad = [&](const std::string& expected) {
    fail(where + ": key '" + f.key + "': expected " + expected + ", got " + describe(v));
  };
  switch (f.type) {
    case FieldType::Int:
      if (!v.is_number_integer()) bad("an integer");
      if (f.min <= f.max && (v.get<double>() < f.min || v.get<double>() > f.max)) bad("an integer in " + range_text(f));
      break;
    case FieldType::Float:
      if (!v.is_number()) bad("a number");
      if (!std::isfinite(v.get<double>())) bad("a finite number");
      if (f.min <= f.max && (v.get<double>() < f.min || v.get<double>() > f.max)) bad("a number in " + range_text(f));
      break;
    case FieldType::Bool:
      if (!v.is_boolean()) bad("true or false");
      break;
    case FieldType::String: {
      if (!v.is_string()) bad("a string");
      if (!f.choices.empty()) {
        bool ok = false;
        std::string list;
        for (const auto& c : f.choices) {
          ok = ok || v.get<std::string>() == c;
          list += (list.empty() ? "" : ", ") + c;
        }
        if (!ok) bad("one of " + list);
      }
      break;
    }
    case FieldType::Blocks:
      if (v.is_string()) {
        const auto s = v.get<std::string>();
        if (s != "every_other" && s != "all" && s != "last_k") bad("\"every_other\", \"all\", \"last_k\" or a list of block indices");
      } else if (v.is_array()) {
        for (const auto& e : v)
          if (!e.is_number_integer() || e.get<int64_t>() < 0) bad("a list of non-negative block indices");
      } else {
        bad("\"every_other\", \"all\", \"last_k\" or a list of block indices");
      }
      break;
  }
}

// Walks the user's JSON: every leaf must be a schema key, every object a schema section.
void validate_tree(const json& node, const std::string& prefix, const std::string& where) {
  if (!node.is_object()) fail(where + ": " + (prefix.empty() ? "the top level" : "key '" + prefix + "'") + " must be a JSON object");
  for (const auto& [k, v] : node.items()) {
    const std::string key = prefix.empty() ? k : prefix + "." + k;
    if (const FieldSpec* f = find_field(key)) {
      check_value(*f, v, where);
    } else if (is_section(key)) {
      validate_tree(v, key, where);
    } else {
      fail(where + ": unknown key '" + key + "' (see docs/config.md for the keys)");
    }
  }
}

json::json_pointer pointer_of(const std::string& key) {
  std::string p = "/" + key;
  for (auto& c : p)
    if (c == '.') c = '/';
  return json::json_pointer(p);
}

MlpKind mlp_kind_of(const std::string& kind) {
  return kind == "dense" ? MlpKind::Dense : kind == "rup" ? MlpKind::Rup : MlpKind::Routed;
}

// model.preset -> the model.* keys it fills (those a config leaves out).
const std::map<std::string, std::map<std::string, int64_t>> kPresets = {
    {"tiny", {{"embed_dim", 192}, {"depth", 12}, {"num_heads", 3}}},
    {"small", {{"embed_dim", 384}, {"depth", 12}, {"num_heads", 6}}},
    {"base", {{"embed_dim", 768}, {"depth", 12}, {"num_heads", 12}}}};

}  // namespace


bool DataConfig::is_point_cloud() const { return dataset_info(dataset).point_cloud; }

namespace {
// The schema's default section `name` (computed once).
const json& defaults_of(const char* name) {
  static const json all = default_config();
  return all.at(name);
}
}  // namespace

ModelConfig::ModelConfig() { from_json(defaults_of("model"), *this); }
EwaConfig::EwaConfig() { from_json(defaults_of("ewa"), *this); }
DataConfig::DataConfig() { from_json(defaults_of("data"), *this); }
OptimConfig::OptimConfig() { from_json(defaults_of("optim"), *this); }
EvalConfig::EvalConfig() { from_json(defaults_of("eval"), *this); }
PretrainConfig::PretrainConfig() { from_json(defaults_of("pretrain"), *this); }
FinetuneConfig::FinetuneConfig() { from_json(defaults_of("finetune"), *this); }
TrainConfig::TrainConfig() { from_json(defaults_of("train"), *this); }
MoeConfig::MoeConfig() {
  const json& m = defaults_of("moe");
  kind = mlp_kind_of(m.at("kind"));
  m.at("num_experts").get_to(num_experts);
  m.at("top_k").get_to(top_k);
  m.at("capacity_factor").get_to(capacity_factor);
  m.at("eval_capacity_factor").get_to(eval_capacity_factor);
  m.at("aux_loss_weight").get_to(aux_loss_weight);
}


const char* mlp_kind_name(MlpKind kind) {
  switch (kind) {
    case MlpKind::Dense: return "dense";
    case MlpKind::Rup: return "rup";
    case MlpKind::Routed: return "routed";
  }
  return "?";
}

namespace {

// The dotted keys of every leaf below `node` (a value that is not an object), with `prefix`.
void leaf_keys(const json& node, const std::string& prefix, std::vector<std::string>& out) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object()) leaf_keys(*it, key, out);
    else out.push_back(key);
  }
}

// A config file's JSON with its bases merged in (mmcv / Pointcept style): "base" names one file
// or a list of them (paths relative to this file; a list is merged in order, the later winning, so
// shared blocks such as configs/mixins/rup_ewa.json live once), then this file's keys override
// them, objects merged key by key. `chain` holds the files already on the way down, to refuse a
// cycle; `origin` (when given) receives, for every leaf key a file sets, the file that set it last.
json compose_config_file(const std::string& path, std::vector<std::string>& chain,
                         std::map<std::string, std::string>* origin) {
  if (std::filesystem::is_directory(path)) fail("config " + path + ": is a directory, expected a JSON config file");
  std::ifstream in(path);
  if (!in) fail("config " + path + ": cannot open file");
  json j;
  try {
    j = json::parse(in, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    fail("config " + path + ": invalid JSON (" + what.substr(what.find(']') + 2) + ")");
  } catch (const std::exception& e) {  // the stream itself failed (a special file)
    fail("config " + path + ": cannot be read (" + e.what() + "), expected a JSON config file");
  }
  if (!j.is_object()) fail("config " + path + ": the top level must be a JSON object");
  json merged = json::object();
  if (j.contains("base")) {
    const json& named = j["base"];
    std::vector<std::string> bases;
    const auto is_path = [](const json& v) { return v.is_string() && !v.get<std::string>().empty(); };
    if (is_path(named)) {
      bases.push_back(named.get<std::string>());
    } else if (named.is_array() && !named.empty() && std::all_of(named.begin(), named.end(), is_path)) {
      for (const auto& b : named) bases.push_back(b.get<std::string>());
    } else {
      fail("config " + path + ": key 'base' expects the path of a config file (a non-empty string) or a list of them, got " +
           named.dump());
    }
    chain.push_back(std::filesystem::weakly_canonical(path).string());
    for (const auto& name : bases) {
      const std::string base = (std::filesystem::path(path).parent_path() / name).lexically_normal().string();
      if (std::find(chain.begin(), chain.end(), std::filesystem::weakly_canonical(base).string()) != chain.end())
        fail("config " + path + ": key 'base' names " + base + ", which is already on its chain of bases (a cycle)");
      if (!std::filesystem::exists(base)) fail("config " + path + ": key 'base' names " + base + ", which does not exist");
      if (std::filesystem::is_directory(base))
        fail("config " + path + ": key 'base' names " + base + ", which is a directory, not a config file");
      merged.merge_patch(compose_config_file(base, chain, origin));
    }
    chain.pop_back();
    j.erase("base");
  }
  if (origin) {
    std::vector<std::string> keys;
    leaf_keys(j, "", keys);
    for (const auto& k : keys) (*origin)[k] = path;
  }
  merged.merge_patch(j);
  return merged;
}

}  // namespace

json read_config_file(const std::string& path) {
  std::vector<std::string> chain;
  return compose_config_file(path, chain, nullptr);
}

json load_config_file(const std::string& path) { return resolve_config(read_config_file(path), "config " + path); }

void apply_override(json& cfg, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("--set " + assignment + ": expected key=value, e.g. --set ewa.share_rate=0.5");
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  const FieldSpec* f = find_field(key);
  if (!f) fail("--set " + assignment + ": unknown key '" + key + "' (see docs/config.md for the keys)");
  json value;
  try {
    value = json::parse(text);
  } catch (const json::parse_error&) {
    value = text;  // bare words are strings: --set data.dataset=mnist
  }
  if (f->type == FieldType::String && !value.is_string()) value = text;
  if (f->type == FieldType::Float && value.is_number_integer()) value = value.get<double>();
  check_value(*f, value, "--set " + assignment);
  cfg[pointer_of(key)] = value;
}

json resolve_config(const json& user, const std::string& source) {
  validate_tree(user, "", source);
  json cfg = default_config();
  // Floats given as integers in JSON (e.g. "lr": 1) are fine; store them as numbers.
  for (const auto& f : config_schema()) {
    const auto ptr = pointer_of(f.key);
    if (user.contains(ptr)) cfg[ptr] = user.at(ptr);
  }
  const std::string preset = cfg["model"]["preset"];
  if (preset != "custom")
    for (const auto& [key, value] : kPresets.at(preset))
      if (!user.contains(pointer_of("model." + key))) cfg["model"][key] = value;
  return cfg;
}

namespace {

// Reports a bad key of the config read from `source`, in one line.
struct KeyError {
  const std::string& source;
  [[noreturn]] void operator()(const std::string& key, const std::string& why) const {
    fail(source + ": key '" + key + "': " + why);
  }
};

// moe.blocks (a list, "all", "every_other" or the last moe.last_k) as sorted block indices.
std::vector<int64_t> moe_blocks(const json& moe, int64_t depth, const KeyError& bad) {
  std::vector<int64_t> out;
  const auto& blocks = moe["blocks"];
  if (blocks.is_array()) {
    std::set<int64_t> seen;
    for (const auto& b : blocks) {
      const int64_t i = b.get<int64_t>();
      if (i >= depth) bad("moe.blocks", "block index " + std::to_string(i) + " is outside 0.." + std::to_string(depth - 1));
      if (seen.insert(i).second) out.push_back(i);
    }
  } else if (blocks == "all") {
    for (int64_t i = 0; i < depth; ++i) out.push_back(i);
  } else if (blocks == "every_other") {
    for (int64_t i = 1; i < depth; i += 2) out.push_back(i);
  } else {
    const int64_t k = moe["last_k"];
    if (k > depth) bad("moe.last_k", "must not exceed model.depth (" + std::to_string(depth) + ")");
    for (int64_t i = depth - k; i < depth; ++i) out.push_back(i);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void parse_moe_and_ewa(const json& j, Config& c, const KeyError& bad) {
  const auto& moe = j["moe"];
  c.moe.kind = mlp_kind_of(moe["kind"]);
  c.moe.num_experts = moe["num_experts"];
  c.moe.top_k = moe["top_k"];
  c.moe.capacity_factor = moe["capacity_factor"];
  c.moe.eval_capacity_factor = moe["eval_capacity_factor"];
  c.moe.aux_loss_weight = moe["aux_loss_weight"];
  if (c.moe.top_k > c.moe.num_experts) bad("moe.top_k", "must not exceed moe.num_experts");
  if (c.moe.kind != MlpKind::Dense) c.moe.blocks = moe_blocks(moe, c.model.depth, bad);

  c.ewa = j["ewa"].get<EwaConfig>();
  const double beta_max = double(c.moe.num_experts - 1) / double(c.moe.num_experts);
  if (c.ewa.share_rate > beta_max + 1e-12) {
    std::ostringstream os;
    os << "share rate must be in [0, (N-1)/N] = [0, " << beta_max << "] for N = " << c.moe.num_experts
       << " experts, got " << c.ewa.share_rate;
    bad("ewa.share_rate", os.str());
  }
}

void parse_data(const json& j, Config& c, const KeyError& bad) {
  c.data = j["data"].get<DataConfig>();
  DataConfig& d = c.data;
  const DatasetInfo& info = dataset_info(d.dataset);
  if (d.root.empty()) {
    if (*info.default_root == 0) bad("data.root", "required for dataset " + d.dataset);
    d.root = info.default_root;
  }
  if (d.scale_low > d.scale_high) bad("data.scale_low", "must not exceed data.scale_high");
  if (!info.variants.empty() && std::find(info.variants.begin(), info.variants.end(), d.variant) == info.variants.end()) {
    std::string choices;
    for (const auto& v : info.variants) choices += (choices.empty() ? "" : ", ") + v;
    bad("data.variant", "required for " + d.dataset + ": one of " + choices);
  }
  if (d.use_normals && !info.normals) {
    std::vector<std::string> names;
    for (const auto& row : dataset_table())
      if (row.normals) names.push_back(row.name);
    std::string with;
    for (size_t i = 0; i < names.size(); ++i)
      with += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
    bad("data.use_normals", "only " + with + " files carry normals, dataset is " + d.dataset);
  }
  const ModelKind& kind = model_kind(c.model.name);
  const bool points_model = kind.input == ModelInput::Points;
  if (points_model != info.point_cloud)
    bad("model.name", "'" + c.model.name + "' cannot read dataset '" + d.dataset + "' (" +
                          (points_model ? "it takes point clouds" : "it takes images") + ")");
  if (kind.is_segmenter() && !info.segmentation)
    bad("model.name", c.model.name + " segments parts: dataset '" + d.dataset + "' has no per-point part labels");
  if (kind.is_classifier() && info.segmentation) {
    const ModelKind* segmenter = model_kind_for(ModelTask::Segment, kind.input);
    bad("model.name", "dataset '" + d.dataset + "' is a part-segmentation set: use model.name = " +
                          (segmenter ? segmenter->name : std::string("a segmenter")));
  }
  if (points_model) {
    if (c.model.group_size > d.num_points)
      bad("model.group_size", "must not exceed data.num_points (" + std::to_string(d.num_points) + "), got " +
                                  std::to_string(c.model.group_size));
    if (c.model.num_groups > d.num_points)
      bad("model.num_groups", "must not exceed data.num_points (" + std::to_string(d.num_points) + "), got " +
                                  std::to_string(c.model.num_groups));
  }
  if (info.folder && d.image_size == 0)
    bad("data.image_size", "required for " + d.dataset + ": the side of the images the model sees (224 for "
                           "ImageNet-style folders, 64 for Tiny-ImageNet)");
  if (!info.folder && d.image_size > 0)
    bad("data.image_size", "only image folders are resized (image_folder, tiny_imagenet); " + d.dataset +
                               " feeds its images at their stored size");
  if (info.num_classes == 0 && !info.folder) {  // a few-shot fold: the task is named by way, shot and fold
    if (d.way < 1) bad("data.way", "required for " + d.dataset + ": the classes of the few-shot task (5 or 10 as released)");
    if (d.shot < 1) bad("data.shot", "required for " + d.dataset + ": the training samples per class (10 or 20 as released)");
    if (d.fold < 0) bad("data.fold", "required for " + d.dataset + ": the fold, 0 to 9 as released");
  }
  if (info.point_cloud)
    for (const auto& [key, v] : {std::pair<const char*, double>{"data.mixup", d.mixup}, {"data.cutmix", d.cutmix}, {"data.reprob", d.reprob}})
      if (v > 0) bad(key, "mixes or erases images; " + d.dataset + " holds point clouds");
  if ((d.mixup > 0 || d.cutmix > 0) && d.batch_size % 2 != 0)
    bad("data.batch_size", "must be even with data.mixup or data.cutmix (timm mixes a batch with itself reversed), got " +
                               std::to_string(d.batch_size));
  if ((d.mixup > 0 || d.cutmix > 0) && !kind.is_classifier())
    bad(d.mixup > 0 ? "data.mixup" : "data.cutmix", "mixed batches train classifiers (soft targets); model '" + c.model.name +
                                                        "' is not one");
  if (d.pipeline == "resample" && !points_model)
    bad("data.pipeline", "'resample' resamples point clouds; image datasets have 'fixed' only");
  if (d.fps_points > 0 && d.fps_points < d.num_points)
    bad("data.fps_points", "must be at least data.num_points (" + std::to_string(d.num_points) + "), got " +
                               std::to_string(d.fps_points));
  if (d.source_points > 0 && d.source_points < d.num_points)
    bad("data.source_points", "must be at least data.num_points (" + std::to_string(d.num_points) + ") or 0, got " +
                                  std::to_string(d.source_points));
}

}  // namespace

namespace {

// A config's own keys with the --set overrides applied to them, resolved once: the defaults, and
// the preset's sizes for the size keys neither gives (so --set model.preset=small fills them as
// the same preset in the file would). `origin` (when given) receives, for every key something
// set, where it came from: "--set" or "preset <name>" here, the file or base that set it last
// from the caller.
json resolved_keys(json keys, const std::vector<std::string>& overrides, const std::string& source,
                   std::map<std::string, std::string>* origin) {
  for (const auto& o : overrides) {
    apply_override(keys, o);
    if (origin) (*origin)[o.substr(0, o.find('='))] = "--set";
  }
  json cfg = resolve_config(keys, source);
  const std::string preset = cfg["model"]["preset"];
  if (origin && preset != "custom")
    for (const auto& item : kPresets.at(preset)) origin->emplace("model." + item.first, "preset " + preset);
  return cfg;
}

std::string source_of(const std::string& path) { return path.empty() ? "config (defaults)" : "config " + path; }

// The JSON load_config parses: the file with its bases (nothing when `path` is empty) and the
// --set overrides, resolved once.
json loaded_config(const std::string& path, const std::vector<std::string>& overrides,
                   std::map<std::string, std::string>* origin) {
  std::vector<std::string> chain;
  json keys = path.empty() ? json::object() : compose_config_file(path, chain, origin);
  return resolved_keys(std::move(keys), overrides, source_of(path), origin);
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_config(loaded_config(path, overrides, nullptr), source_of(path));
}

Config config_from_keys(const json& keys, const std::vector<std::string>& overrides, const std::string& source) {
  return parse_config(resolved_keys(keys, overrides, source, nullptr), source);
}

std::vector<ConfigValue> config_sources(const std::string& path, const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> origin;
  const Config cfg = parse_config(loaded_config(path, overrides, &origin), source_of(path));
  std::vector<ConfigValue> out;
  for (const auto& f : config_schema()) {
    const auto it = origin.find(f.key);
    out.push_back({f.key, cfg.json.at(pointer_of(f.key)), it == origin.end() ? "default" : it->second});
  }
  return out;
}

Config parse_config(const json& j, const std::string& source) {
  // Re-validate: a config may come from a checkpoint or from overrides.
  validate_tree(j, "", source);
  const KeyError bad{source};
  Config c;
  c.json = j;
  c.name = j["name"];
  c.description = j["description"];
  c.model = j["model"].get<ModelConfig>();
  if (c.model.embed_dim % c.model.num_heads != 0)
    bad("model.num_heads", "must divide model.embed_dim (" + std::to_string(c.model.embed_dim) + "), got " +
                               std::to_string(c.model.num_heads));
  if (c.model.img_size > 0 && c.model.img_size % c.model.patch_size != 0)
    bad("model.patch_size", "must divide model.img_size (" + std::to_string(c.model.img_size) + "), got " +
                                std::to_string(c.model.patch_size));
  const ModelKind& kind = model_kind(c.model.name);
  if (!kind.variants.empty() &&
      std::find(kind.variants.begin(), kind.variants.end(), c.model.variant) == kind.variants.end()) {
    std::string choices;
    for (const auto& v : kind.variants) choices += (choices.empty() ? "" : " or ") + v;
    bad("model.variant", c.model.name + " has the " + choices + " variant" + (kind.variants.size() > 1 ? "s" : "") +
                             ", got '" + c.model.variant + "'");
  }
  if (c.model.init != "upstream" && (!kind.is_point_classifier() || c.model.variant != "point_mae"))
    bad("model.init", "'" + c.model.init + "' (Point-MAE's _init_weights) is an option of the point_mae "
                      "point_transformer only; " + c.model.name + " (" + c.model.variant +
                      ") starts as its upstream code leaves it: use upstream");
  parse_moe_and_ewa(j, c, bad);
  parse_data(j, c, bad);
  c.optim = j["optim"].get<OptimConfig>();
  if (c.optim.min_lr > c.optim.lr) bad("optim.min_lr", "must not exceed optim.lr");
  c.eval = j["eval"].get<EvalConfig>();
  c.pretrain = j["pretrain"].get<PretrainConfig>();
  kind.check(c, [&bad](const std::string& key, const std::string& why) { bad(key, why); });
  c.finetune = j["finetune"].get<FinetuneConfig>();
  c.train = j["train"].get<TrainConfig>();
  return c;
}

Config Config::with(const std::map<std::string, nlohmann::json>& changes) const {
  nlohmann::json j = this->json;
  for (const auto& [key, value] : changes) {
    const FieldSpec* f = find_field(key);
    if (!f) fail("config: unknown key '" + key + "'");
    check_value(*f, value, "config");
    j[pointer_of(key)] = value;
  }
  return parse_config(j, "config");
}

}  // namespace ewa
