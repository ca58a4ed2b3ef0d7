// The one table of configuration keys: type, default, allowed range and meaning. The loader
// validates against it, `ewa config` prints it, and docs/config.md is generated from it.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ewa {

enum class FieldType { Int, Float, Bool, String, Blocks };

struct FieldSpec {
  std::string key;               // dotted path, e.g. "moe.num_experts"
  FieldType type;
  nlohmann::json default_value;
  double min = 0, max = 0;       // inclusive range for Int/Float (ignored when min > max)
  std::vector<std::string> choices;  // allowed values for String (empty = free text)
  std::string help;
};

const std::vector<FieldSpec>& config_schema();

// "[min, max]" of a numeric key, integers without a decimal point, huge bounds as "inf".
std::string range_text(const FieldSpec& f);

// The full default configuration as nested JSON.
nlohmann::json default_config();

// Markdown table of every key with type, default and meaning (docs/config.md).
std::string config_reference_markdown();

}  // namespace ewa
