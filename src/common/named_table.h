// Tables of named rows (the datasets of config/datasets.cpp, the model kinds of
// config/model_kinds.cpp): their names in table order, and a row by its name.
#pragma once
#include <string>
#include <vector>

#include "common/error.h"

namespace ewa {

template <class Row>
std::vector<std::string> row_names(const std::vector<Row>& rows) {
  std::vector<std::string> names;
  for (const auto& r : rows) names.push_back(r.name);
  return names;
}

// The row called `name`, or a one-line error: "<key>: unknown <noun> '<name>' (one of a, b, ...)".
template <class Row>
const Row& row_named(const std::vector<Row>& rows, const std::string& name, const std::string& key, const std::string& noun) {
  std::string known;
  for (const auto& r : rows) {
    if (r.name == name) return r;
    known += (known.empty() ? "" : ", ") + std::string(r.name);
  }
  fail(key + ": unknown " + noun + " '" + name + "' (one of " + known + ")");
}

}  // namespace ewa
