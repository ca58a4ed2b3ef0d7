// Where each value of a config came from, for `ewa config show --sources`.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ewa {

struct ConfigValue {
  std::string key;       // dotted schema key
  nlohmann::json value;  // as load_config gives it
  // "default", "preset <name>" (model.preset filled it), the config file that set it last (the
  // file itself or one of its bases, mixins included), or "--set".
  std::string from;
};

// Every schema key of the config load_config(path, overrides) reads (the defaults when `path` is
// empty), in the schema's order, with its value and where it came from; read once, errors as
// load_config's.
std::vector<ConfigValue> config_sources(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace ewa
