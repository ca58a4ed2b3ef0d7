// Config loading: unknown keys, wrong types and out-of-range values stop with the key named.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "common/error.h"
#include "config/config.h"
#include "config/schema.h"
#include "config/sources.h"
#include "test_util.h"

namespace {
using nlohmann::json;

using ewa::testing::error_of;

ewa::Config parse(const json& j) { return ewa::parse_config(ewa::resolve_config(j, "config t.json"), "config t.json"); }

TEST(Config, DefaultsFollowThePaper) {
  auto c = parse(json::object());
  EXPECT_EQ(c.moe.kind, ewa::MlpKind::Rup);
  EXPECT_EQ(c.moe.num_experts, 4);
  EXPECT_DOUBLE_EQ(c.ewa.share_rate, 0.3);
  EXPECT_EQ(c.ewa.schedule, "constant");
  EXPECT_EQ(c.moe.blocks, (std::vector<int64_t>{1, 3, 5, 7, 9, 11}));  // every other block of 12
}

TEST(Config, UnknownKeysAreErrorsNamingTheKey) {
  auto e = error_of([] { parse(json{{"model", {{"embed_dimm", 8}}}}); });
  EXPECT_NE(e.find("config t.json"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'model.embed_dimm'"), std::string::npos) << e;
  e = error_of([] { parse(json{{"optimiser", {{"lr", 1}}}}); });
  EXPECT_NE(e.find("unknown key 'optimiser'"), std::string::npos) << e;
}

TEST(Config, WrongTypesAreErrors) {
  auto e = error_of([] { parse(json{{"moe", {{"num_experts", "four"}}}}); });
  EXPECT_NE(e.find("'moe.num_experts': expected an integer"), std::string::npos) << e;
  e = error_of([] { parse(json{{"ewa", {{"enabled", 1}}}}); });
  EXPECT_NE(e.find("'ewa.enabled': expected true or false"), std::string::npos) << e;
  e = error_of([] { parse(json{{"model", 3}}); });
  EXPECT_NE(e.find("'model' must be a JSON object"), std::string::npos) << e;
  e = error_of([] { parse(json{{"moe", {{"kind", "switch"}}}}); });
  EXPECT_NE(e.find("one of dense, rup, routed"), std::string::npos) << e;
}

TEST(Config, ShareRateMustLieInZeroToNMinusOneOverN) {
  EXPECT_NO_THROW(parse(json{{"ewa", {{"share_rate", 0.75}}}}));  // (4-1)/4
  auto e = error_of([] { parse(json{{"ewa", {{"share_rate", 0.8}}}}); });
  EXPECT_NE(e.find("'ewa.share_rate'"), std::string::npos) << e;
  EXPECT_NE(e.find("[0, 0.75]"), std::string::npos) << e;
  e = error_of([] { parse(json{{"moe", {{"num_experts", 2}}}, {"ewa", {{"share_rate", 0.6}}}}); });
  EXPECT_NE(e.find("[0, 0.5]"), std::string::npos) << e;
  e = error_of([] { parse(json{{"ewa", {{"share_rate", -0.1}}}}); });
  EXPECT_NE(e.find("'ewa.share_rate'"), std::string::npos) << e;
}

TEST(Config, RangesAndCrossChecks) {
  auto e = error_of([] { parse(json{{"moe", {{"num_experts", 1}}}}); });
  EXPECT_NE(e.find("'moe.num_experts': expected an integer in [2, 256]"), std::string::npos) << e;
  e = error_of([] { parse(json{{"model", {{"embed_dim", 100}, {"num_heads", 3}}}}); });
  EXPECT_NE(e.find("'model.num_heads': must divide"), std::string::npos) << e;
  e = error_of([] { parse(json{{"model", {{"depth", 4}}}, {"moe", {{"blocks", json::array({1, 4})}}}}); });
  EXPECT_NE(e.find("block index 4 is outside 0..3"), std::string::npos) << e;
}

// DeiT's batch recipe (data.mixup, data.cutmix, data.reprob) is for image classifiers.
TEST(Config, MixingAndErasingAreForImageClassifiers) {
  auto e = error_of([] { parse(json{{"data", {{"mixup", 0.8}, {"batch_size", 31}}}}); });
  EXPECT_NE(e.find("'data.batch_size': must be even with data.mixup or data.cutmix"), std::string::npos) << e;
  e = error_of([] { parse(json{{"model", {{"name", "point_transformer"}}}, {"data", {{"dataset", "modelnet_folder"}, {"root", "/data"}, {"cutmix", 1.0}}}}); });
  EXPECT_NE(e.find("'data.cutmix': mixes or erases images; modelnet_folder holds point clouds"), std::string::npos) << e;
  e = error_of([] { parse(json{{"data", {{"remode", "noise"}}}}); });
  EXPECT_NE(e.find("'data.remode'"), std::string::npos) << e;
  const auto ok = parse(json{{"data", {{"mixup", 0.8}, {"cutmix", 1.0}, {"reprob", 0.25}, {"batch_size", 32}}}});
  EXPECT_EQ(ok.data.mixup, 0.8);
  EXPECT_EQ(ok.data.remode, "pixel");
  EXPECT_EQ(ok.data.recount, 1);
}

TEST(Config, BlockSelections) {
  EXPECT_EQ(parse(json{{"model", {{"depth", 4}}}, {"moe", {{"blocks", "all"}}}}).moe.blocks, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(parse(json{{"model", {{"depth", 6}}}, {"moe", {{"blocks", "last_k"}, {"last_k", 3}}}}).moe.blocks,
            (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(parse(json{{"model", {{"depth", 6}}}, {"moe", {{"blocks", json::array({5, 0, 5})}}}}).moe.blocks,
            (std::vector<int64_t>{0, 5}));
  EXPECT_TRUE(parse(json{{"moe", {{"kind", "dense"}}}}).moe.blocks.empty());
}

TEST(Config, PresetsFillSizesUnlessGivenExplicitly) {
  auto c = parse(json{{"model", {{"preset", "small"}}}});
  EXPECT_EQ(c.model.embed_dim, 384);
  EXPECT_EQ(c.model.num_heads, 6);
  c = parse(json{{"model", {{"preset", "small"}, {"depth", 4}}}});
  EXPECT_EQ(c.model.depth, 4);
  EXPECT_EQ(c.model.embed_dim, 384);
}

// --set is applied to the config's own keys and the result resolved once: a preset set on the
// command line fills the sizes the file leaves out, as the same preset written in the file does,
// and a size the file gives stays; a study's arm (config_from_keys of the file's keys) reads the
// same config as --set. A checkpoint's config gives every size (its weights'), so they stay.
TEST(Config, SetAPresetFillsTheSizesTheFileLeavesOut) {
  ewa::testing::TempDir dir;
  ewa::testing::write_file(dir / "t.json", R"({"model": {"preset": "tiny", "depth": 4}})");
  ewa::testing::write_file(dir / "s.json", R"({"model": {"preset": "small", "depth": 4}})");
  const auto c = ewa::load_config(dir / "t.json", {"model.preset=small"});
  EXPECT_EQ(c.model.embed_dim, 384);
  EXPECT_EQ(c.model.num_heads, 6);
  EXPECT_EQ(c.model.depth, 4);
  EXPECT_EQ(c.json, ewa::load_config(dir / "s.json", {}).json);
  EXPECT_EQ(ewa::config_from_keys(ewa::read_config_file(dir / "t.json"), {"model.preset=small"}, "study").json, c.json);
  EXPECT_EQ(ewa::load_config("", {"model.preset=base"}).model.embed_dim, 768);
  const auto resolved = ewa::load_config(dir / "t.json", {}).json;
  const auto from_checkpoint = ewa::config_from_keys(resolved, {"model.preset=small"}, "checkpoint c.pt");
  EXPECT_EQ(from_checkpoint.model.embed_dim, 192);
  EXPECT_EQ(from_checkpoint.json["model"]["preset"], "small");
}

TEST(Config, SetOverridesParseValuesAndRejectUnknownKeys) {
  json cfg = ewa::default_config();
  ewa::apply_override(cfg, "ewa.share_rate=0.5");
  ewa::apply_override(cfg, "data.dataset=mnist");
  ewa::apply_override(cfg, "data.root=/data/mnist");
  ewa::apply_override(cfg, "moe.blocks=[0,2]");
  ewa::apply_override(cfg, "optim.lr=1");  // an integer for a float key is fine
  auto c = parse(cfg);
  EXPECT_DOUBLE_EQ(c.ewa.share_rate, 0.5);
  EXPECT_EQ(c.data.dataset, "mnist");
  EXPECT_EQ(c.moe.blocks, (std::vector<int64_t>{0, 2}));
  EXPECT_DOUBLE_EQ(c.optim.lr, 1.0);
  auto e = error_of([&] { ewa::apply_override(cfg, "ewa.share=0.5"); });
  EXPECT_NE(e.find("unknown key 'ewa.share'"), std::string::npos) << e;
  e = error_of([&] { ewa::apply_override(cfg, "train.epochs=many"); });
  EXPECT_NE(e.find("'train.epochs': expected an integer"), std::string::npos) << e;
  e = error_of([&] { ewa::apply_override(cfg, "novalue"); });
  EXPECT_NE(e.find("expected key=value"), std::string::npos) << e;
}

TEST(Config, FilesWithInvalidJsonNameTheFile) {
  ewa::testing::TempDir dir;
  ewa::testing::write_file(dir / "bad.json", "{\"model\": {\"depth\": 4,}");
  auto e = error_of([&] { ewa::load_config_file(dir / "bad.json"); });
  EXPECT_NE(e.find(dir / "bad.json"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
  e = error_of([&] { ewa::load_config_file(dir / "missing.json"); });
  EXPECT_NE(e.find("cannot open"), std::string::npos) << e;
}

// A config names a base and gives only what it changes; objects merge key by key through a chain
// of bases (a base in a subfolder names its own base relative to itself), the nearest file winning.
TEST(Config, ABaseChainMergesKeyByKeyTheNearestFileWinning) {
  ewa::testing::TempDir dir;
  std::filesystem::create_directories(dir / "bases");
  ewa::testing::write_file(dir / "root.json", R"({"name": "root", "model": {"depth": 6, "embed_dim": 96, "num_heads": 4},
                                                 "train": {"epochs": 7, "seed": 3}})");
  ewa::testing::write_file(dir / "bases/mid.json", R"({"base": "../root.json", "name": "mid", "model": {"depth": 2}})");
  ewa::testing::write_file(dir / "leaf.json", R"({"base": "bases/mid.json", "train": {"epochs": 1}})");
  const auto j = ewa::load_config_file(dir / "leaf.json");
  EXPECT_EQ(j["name"], "mid");
  EXPECT_EQ(j["model"]["depth"], 2);        // mid over root
  EXPECT_EQ(j["model"]["embed_dim"], 96);   // root's, kept under mid's partial "model"
  EXPECT_EQ(j["train"]["epochs"], 1);       // leaf over root
  EXPECT_EQ(j["train"]["seed"], 3);
  EXPECT_EQ(j["optim"], ewa::default_config()["optim"]);  // untouched sections: the defaults
  EXPECT_FALSE(j.contains("base"));
  // Errors name the file: a base that is not a string, a cycle through two files.
  ewa::testing::write_file(dir / "num.json", R"({"base": 3})");
  EXPECT_NE(error_of([&] { ewa::load_config_file(dir / "num.json"); }).find("num.json: key 'base' expects the path"),
            std::string::npos);
  ewa::testing::write_file(dir / "a.json", R"({"base": "b.json"})");
  ewa::testing::write_file(dir / "b.json", R"({"base": "a.json"})");
  EXPECT_NE(error_of([&] { ewa::load_config_file(dir / "a.json"); }).find("(a cycle)"), std::string::npos);
}

// "base" may list several files (mixins): merged in order, the later winning, then the file; the
// sources say which file set each key (the last to set it), --set, the preset or the default.
TEST(Config, AListOfBasesMergesInOrderAndEveryValueSaysWhereItCameFrom) {
  ewa::testing::TempDir dir;
  std::filesystem::create_directories(dir / "mixins");
  ewa::testing::write_file(dir / "root.json", R"({"name": "root", "model": {"depth": 6, "preset": "tiny"},
                                                 "moe": {"kind": "rup", "num_experts": 8}, "train": {"epochs": 7}})");
  ewa::testing::write_file(dir / "mixins/four.json", R"({"moe": {"num_experts": 4, "blocks": "all"}})");
  ewa::testing::write_file(dir / "mixins/two.json", R"({"moe": {"num_experts": 2}, "ewa": {"share_rate": 0.25}})");
  ewa::testing::write_file(dir / "leaf.json", R"({"base": ["root.json", "mixins/four.json", "mixins/two.json"],
                                                 "name": "leaf", "train": {"epochs": 1}})");
  const auto j = ewa::load_config_file(dir / "leaf.json");
  EXPECT_EQ(j["moe"]["num_experts"], 2);  // two.json, the last base, over four.json and root.json
  EXPECT_EQ(j["moe"]["blocks"], "all");   // four.json's, kept under two.json's partial "moe"
  EXPECT_EQ(j["moe"]["kind"], "rup");     // root.json's
  EXPECT_EQ(j["train"]["epochs"], 1);     // the file over its bases
  EXPECT_EQ(j["model"]["depth"], 6);
  EXPECT_EQ(j["model"]["embed_dim"], 192);  // the tiny preset
  std::map<std::string, std::string> from;
  std::map<std::string, json> value;
  for (const auto& v : ewa::config_sources(dir / "leaf.json", {"optim.lr=0.01", "train.epochs=3"}))
    from[v.key] = v.from, value[v.key] = v.value;
  EXPECT_EQ(value.at("moe.num_experts"), 2);
  EXPECT_EQ(value.at("train.epochs"), 3);
  EXPECT_EQ(value.at("model.embed_dim"), 192);
  EXPECT_EQ(from.at("moe.num_experts"), dir / "mixins/two.json");
  EXPECT_EQ(from.at("moe.blocks"), dir / "mixins/four.json");
  EXPECT_EQ(from.at("moe.kind"), dir / "root.json");
  EXPECT_EQ(from.at("ewa.share_rate"), dir / "mixins/two.json");
  EXPECT_EQ(from.at("name"), dir / "leaf.json");
  EXPECT_EQ(from.at("model.embed_dim"), "preset tiny");
  EXPECT_EQ(from.at("optim.lr"), "--set");
  EXPECT_EQ(from.at("train.epochs"), "--set");  // --set over the file
  EXPECT_EQ(from.at("optim.weight_decay"), "default");
  EXPECT_EQ(from.size(), ewa::config_schema().size());
  // Two sibling bases are no cycle; a list with something other than paths is refused.
  ewa::testing::write_file(dir / "twice.json", R"({"base": ["mixins/two.json", "mixins/two.json"]})");
  EXPECT_EQ(ewa::load_config_file(dir / "twice.json")["moe"]["num_experts"], 2);
  for (const char* bad : {R"({"base": []})", R"({"base": ["root.json", 3]})", R"({"base": ["root.json", ""]})"}) {
    ewa::testing::write_file(dir / "bad.json", bad);
    EXPECT_NE(error_of([&] { ewa::load_config_file(dir / "bad.json"); })
                  .find("bad.json: key 'base' expects the path of a config file (a non-empty string) or a list of them"),
              std::string::npos)
        << bad;
  }
  ewa::testing::write_file(dir / "missing.json", R"({"base": ["root.json", "mixins/none.json"]})");
  EXPECT_NE(error_of([&] { ewa::load_config_file(dir / "missing.json"); }).find("none.json, which does not exist"),
            std::string::npos);
}

// The structs take their defaults from the schema alone: a default-constructed section is the
// schema's default section, and a Config parsed from the default JSON equals the defaults field by
// field (both serialised by the same to_json).
TEST(Config, StructDefaultsAreTheSchemasDefaults) {
  const json d = ewa::default_config();
  json model = d["model"];
  model.erase("preset");  // resolved into embed_dim/depth/num_heads, not a field
  EXPECT_EQ(json(ewa::ModelConfig()), model);
  EXPECT_EQ(json(ewa::EwaConfig()), d["ewa"]);
  EXPECT_EQ(json(ewa::DataConfig()), d["data"]);
  EXPECT_EQ(json(ewa::OptimConfig()), d["optim"]);
  EXPECT_EQ(json(ewa::EvalConfig()), d["eval"]);
  EXPECT_EQ(json(ewa::PretrainConfig()), d["pretrain"]);
  EXPECT_EQ(json(ewa::FinetuneConfig()), d["finetune"]);
  EXPECT_EQ(json(ewa::TrainConfig()), d["train"]);
  const ewa::MoeConfig moe;
  EXPECT_EQ(ewa::mlp_kind_name(moe.kind), d["moe"]["kind"].get<std::string>());
  EXPECT_EQ(moe.num_experts, d["moe"]["num_experts"].get<int64_t>());
  EXPECT_EQ(moe.top_k, d["moe"]["top_k"].get<int64_t>());
  EXPECT_EQ(moe.capacity_factor, d["moe"]["capacity_factor"].get<double>());
}

// A change goes through the JSON and is checked against the schema; the fields follow it.
TEST(Config, WithChangesTheJsonAndTheFieldsTogether) {
  const auto base = ewa::parse_config(ewa::default_config(), "defaults");
  const auto c = base.with({{"model.depth", 4}, {"moe.kind", "dense"}, {"name", "x"}});
  EXPECT_EQ(c.model.depth, 4);
  EXPECT_EQ(c.json["model"]["depth"], 4);
  EXPECT_EQ(c.name, "x");
  EXPECT_TRUE(c.moe.blocks.empty());
  EXPECT_EQ(base.with({{"moe.kind", "rup"}, {"model.depth", 4}}).moe.blocks, (std::vector<int64_t>{1, 3}));
  EXPECT_NE(error_of([&] { base.with({{"model.depht", 4}}); }).find("unknown key 'model.depht'"), std::string::npos);
  EXPECT_NE(error_of([&] { base.with({{"moe.kind", "sparse"}}); }).find("'moe.kind'"), std::string::npos);
}

// Enum-like keys are compared in the code only with values the schema allows: a literal that is
// not one of a key's choices (a typo, a renamed value) would silently never match.
TEST(Config, EveryComparedValueOfAnEnumKeyIsOneOfItsChoices) {
  // A Config's key (cfg.data.pipeline == "...") and a DataConfig's own fields, which the data
  // library compares (cfg.pipeline == "..."): both name the key and the literal.
  const std::regex compare(R"(\b(?:cfg|cfg_|c|config|base)\.(model|moe|ewa|data|optim|train|eval|pretrain|finetune)\.([a-z_]+) ?[!=]= ?\"([^\"]*)\")");
  const std::regex data_compare(R"(\b(?:cfg|cfg_|d)\.(dataset|variant|pipeline) ?[!=]= ?\"([^\"]*)\")");
  int checked = 0;
  auto check = [&](const std::filesystem::path& file, const std::string& key, const std::string& value) {
    for (const auto& f : ewa::config_schema())
      if (f.key == key && !f.choices.empty()) {
        ++checked;
        EXPECT_NE(std::find(f.choices.begin(), f.choices.end(), value), f.choices.end())
            << file << ": " << key << " compared with \"" << value << "\", not one of its choices";
      }
  };
  for (const char* folder : {"src", "apps", "datasets", "bench"})
    for (const auto& e : std::filesystem::recursive_directory_iterator(std::string(EWA_SOURCE_DIR) + "/" + folder)) {
      const auto ext = e.path().extension();
      if (ext != ".cpp" && ext != ".h") continue;
      std::ifstream in(e.path());
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      for (std::sregex_iterator it(text.begin(), text.end(), compare), end; it != end; ++it)
        check(e.path(), (*it)[1].str() + "." + (*it)[2].str(), (*it)[3]);
      for (std::sregex_iterator it(text.begin(), text.end(), data_compare), end; it != end; ++it)
        check(e.path(), "data." + (*it)[1].str(), (*it)[2]);
    }
  EXPECT_GT(checked, 20);  // the scan finds the comparisons (data.pipeline, data.variant, optim.schedule, ...)
}

TEST(Config, ShippedConfigsAreValid) {
  for (const auto& entry : std::filesystem::directory_iterator(std::string(EWA_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".json") continue;
    EXPECT_NO_THROW(ewa::parse_config(ewa::load_config_file(entry.path().string()), entry.path().string())) << entry.path();
  }
}

TEST(Config, ReferenceListsEveryKey) {
  const auto md = ewa::config_reference_markdown();
  for (const auto& f : ewa::config_schema()) EXPECT_NE(md.find("`" + f.key + "`"), std::string::npos) << f.key;
}

}  // namespace

namespace {
TEST(Config, DocsConfigReferenceIsCurrent) {
  std::ifstream in(std::string(EWA_SOURCE_DIR) + "/docs/config.md");
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(doc.find(ewa::config_reference_markdown()), std::string::npos)
      << "docs/config.md is stale: paste the output of `ewa config` into it";
}
}  // namespace
