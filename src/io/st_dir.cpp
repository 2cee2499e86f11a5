#include "io/st_dir.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "io/files.h"

namespace moe {

TensorDir TensorDir::open(const std::string& dir) {
  TensorDir d;
  d.dir_ = dir;
  const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  if (path_exists(index)) {
    d.source_ = index;
    nlohmann::json j = nlohmann::json::parse(file_read(index), nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw std::runtime_error(index + ": expected a JSON object with a \"weight_map\" object");
    std::map<std::string, size_t> file_ids;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos)
        throw std::runtime_error(index + ": weight_map entry '" + name + "' must name a file in the directory");
      auto [it, fresh] = file_ids.emplace(file.get<std::string>(), d.files_.size());
      if (fresh) d.files_.push_back(SafeTensorsFile::open(dir + "/" + file.get<std::string>()));
      d.where_[name] = it->second;
    }
    for (size_t f = 0; f < d.files_.size(); f++)
      for (const STEntry& e : d.files_[f].tensors()) {
        auto it = d.where_.find(e.name);
        if (it == d.where_.end() || it->second != f)
          throw std::runtime_error(d.files_[f].path() + ": tensor '" + e.name + "' is not mapped to this file by " +
                                   index);
      }
    for (auto& [name, f] : d.where_)
      if (!d.files_[f].find(name))
        throw std::runtime_error(d.files_[f].path() + ": tensor '" + name + "' listed in " + index + " is missing");
  } else if (path_exists(single)) {
    d.source_ = single;
    d.files_.push_back(SafeTensorsFile::open(single));
    for (const STEntry& e : d.files_[0].tensors()) d.where_[e.name] = 0;
  } else {
    throw std::runtime_error(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  return d;
}

const STEntry* TensorDir::find(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? nullptr : files_[it->second].find(name);
}

const STEntry& TensorDir::at(const std::string& name, const std::string& why) const {
  const STEntry* e = find(name);
  if (!e) throw std::runtime_error(source_ + ": missing tensor '" + name + "' (" + why + ")");
  return *e;
}

const SafeTensorsFile& TensorDir::file_of(const std::string& name) const { return files_[where_.at(name)]; }

std::vector<std::string> TensorDir::names() const {
  std::vector<std::string> v;
  for (auto& [n, f] : where_) v.push_back(n);
  return v;
}

}  // namespace moe
