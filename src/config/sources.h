// Where each value of a config came from, for `ewa config show --sources`.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace ewa {

// For every schema key of the config `path` (the defaults when empty) with `overrides` (--set):
// "default", "preset <name>" (model.preset filled it), the config file that set it last (the file
// itself or one of its bases, mixins included), or "--set". Errors as load_config's.
std::map<std::string, std::string> config_sources(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace ewa
