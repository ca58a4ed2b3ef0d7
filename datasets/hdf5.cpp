// datasets/hdf5.h with the HDF5 C++ API (compiled when ewa is built with HDF5).
#include "datasets/hdf5.h"

#include <filesystem>

#include <H5Cpp.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"

namespace ewa::datasets {
namespace fs = std::filesystem;

bool built_with_hdf5() { return true; }

H5Clouds read_h5_clouds(const std::string& path) {
  if (!fs::exists(path)) fail(path + ": cannot open file");
  H5::Exception::dontPrint();
  H5Clouds out;
  try {
    H5::H5File file(path, H5F_ACC_RDONLY);
    auto read_dataset = [&](const char* name) -> std::pair<H5::DataSet, std::vector<hsize_t>> {
      if (!file.nameExists(name)) fail(path + ": missing dataset '" + std::string(name) + "'");
      H5::DataSet ds = file.openDataSet(name);
      H5::DataSpace space = ds.getSpace();
      std::vector<hsize_t> dims(static_cast<size_t>(space.getSimpleExtentNdims()));
      space.getSimpleExtentDims(dims.data());
      return {ds, dims};
    };
    auto [data, ddims] = read_dataset("data");
    if (ddims.size() != 3 || ddims[2] < 3 || ddims[0] == 0 || ddims[1] == 0) {
      std::string shape;
      for (auto d : ddims) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      fail(path + ": dataset 'data' has shape [" + shape + "], expected [N, P, 3] (or more channels) with N, P > 0");
    }
    // Dimensions must fit the file (deflate expands at most kMaxInflation:1) before anything is allocated.
    const uint64_t file_bytes = bytes_on_disk(path);
    const long double claimed = (long double)ddims[0] * (long double)ddims[1] * (long double)ddims[2] * 4.0L;
    if (claimed > (long double)file_bytes * kMaxInflation + (1 << 20))
      fail(path + ": dataset 'data' claims [" + std::to_string(ddims[0]) + ", " + std::to_string(ddims[1]) + ", " +
           std::to_string(ddims[2]) + "] floats but the file has only " + std::to_string(file_bytes) +
           " bytes: truncated or corrupt");
    out.points = torch::empty({int64_t(ddims[0]), int64_t(ddims[1]), int64_t(ddims[2])}, torch::kFloat);
    data.read(out.points.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);
    auto [label, ldims] = read_dataset("label");
    if (!((ldims.size() == 1) || (ldims.size() == 2 && ldims[1] == 1)) || ldims[0] != ddims[0])
      fail(path + ": dataset 'label' must be [N] or [N, 1] with N = " + std::to_string(ddims[0]) + " (the clouds in 'data')");
    out.labels = torch::empty({int64_t(ldims[0])}, torch::kLong);
    label.read(out.labels.data_ptr<int64_t>(), H5::PredType::NATIVE_INT64);
    if (file.nameExists("pid")) {
      auto [pid, pdims] = read_dataset("pid");
      if (pdims.size() != 2 || pdims[0] != ddims[0] || pdims[1] != ddims[1])
        fail(path + ": dataset 'pid' must be [N, P] = [" + std::to_string(ddims[0]) + ", " + std::to_string(ddims[1]) +
             "] (a part label per point of 'data')");
      out.parts = torch::empty({int64_t(pdims[0]), int64_t(pdims[1])}, torch::kLong);
      pid.read(out.parts.data_ptr<int64_t>(), H5::PredType::NATIVE_INT64);
      if (out.parts.numel() > 0 && out.parts.min().item<int64_t>() < 0) fail(path + ": dataset 'pid' has negative part labels");
    }
  } catch (const H5::Exception& e) {
    fail(path + ": not a readable HDF5 file (truncated or corrupt): " + e.getDetailMsg());
  }
  if (!torch::isfinite(out.points).all().item<bool>()) fail(path + ": dataset 'data' contains NaN or infinite coordinates");
  if (out.labels.numel() > 0 && out.labels.min().item<int64_t>() < 0) fail(path + ": dataset 'label' has negative labels");
  return out;
}

void write_h5_clouds(const std::string& path, const torch::Tensor& points, const torch::Tensor& labels,
                     const torch::Tensor& parts) {
  H5::Exception::dontPrint();
  auto p = points.to(torch::kFloat).contiguous();
  auto l = labels.to(torch::kUInt8).contiguous();
  write_atomically(path, [&](const std::string& tmp) {
    try {
      H5::H5File file(tmp, H5F_ACC_TRUNC);
      hsize_t ddims[3] = {hsize_t(p.size(0)), hsize_t(p.size(1)), hsize_t(p.size(2))};
      H5::DataSpace dspace(3, ddims);
      file.createDataSet("data", H5::PredType::IEEE_F32LE, dspace).write(p.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);
      hsize_t ldims[2] = {hsize_t(l.size(0)), 1};
      H5::DataSpace lspace(2, ldims);
      file.createDataSet("label", H5::PredType::STD_U8LE, lspace).write(l.data_ptr<uint8_t>(), H5::PredType::NATIVE_UINT8);
      if (parts.defined()) {
        auto pid = parts.to(torch::kUInt8).contiguous();
        hsize_t pdims[2] = {hsize_t(pid.size(0)), hsize_t(pid.size(1))};
        H5::DataSpace pspace(2, pdims);
        file.createDataSet("pid", H5::PredType::STD_U8LE, pspace).write(pid.data_ptr<uint8_t>(), H5::PredType::NATIVE_UINT8);
      }
    } catch (const H5::Exception& e) {
      throw std::runtime_error(e.getDetailMsg());
    }
  });
}

}  // namespace ewa::datasets
