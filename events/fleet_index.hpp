/// The device directory of a node as scope selection sees it: every device
/// with its product, version, tags and attributes, in registration order,
/// indexed by (product, version), tag and attribute. Selecting a task's
/// scope and matching a device against an increment task's scope are pure
/// functions of it.
#pragma once

#include "events/asset_tree.hpp"
#include "events/error.hpp"
#include "events/task_spec.hpp"
#include "events/values.hpp"

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace fota {

class fleet_index {
public:
  // -- member types -----------------------------------------------------------

  /// A device as scope selection sees it.
  struct entry {
    std::string product;
    std::string key;
    std::string version;
    label_map tags;
    label_map attributes;
  };

  /// The position of a device in registration order.
  using ordinal = uint32_t;

  // -- directory --------------------------------------------------------------

  /// Adds a registered device; returns its ordinal.
  ordinal add(const device_state& d);

  /// Moves a device to its new version, tags and attributes.
  void update(ordinal x, const device_state& d);

  std::optional<ordinal> find(const std::string& product,
                              const std::string& key) const;

  const entry& at(ordinal x) const { return devices_[x]; }

  size_t size() const noexcept { return devices_.size(); }

  // -- scope selection --------------------------------------------------------

  /// The devices in the scope of `spec`, in registration order: those of the
  /// product on a source version that the scope's filter selects. `named`
  /// receives the keys a device-key or asset-tree filter names, for matching
  /// devices that register later. A device key or tree that does not exist
  /// is INVALID_ARGUMENT naming the field.
  expected<std::vector<ordinal>>
  select(const task_spec& spec, const tree_catalog& trees,
         std::unordered_set<std::string>& named) const;

  /// The devices that the scope's filter of `spec` selects and that run
  /// `version` (not in the scope when it is the target): what a preview
  /// reports as already upgraded. Fails as `select` does.
  expected<std::vector<ordinal>>
  select_on_version(const task_spec& spec, const tree_catalog& trees,
                    const std::string& version) const;

private:
  using ordinals = std::set<ordinal>;

  /// The walk behind `select`: the devices of the product that the scope's
  /// filter selects and `candidate(ordinal)` accepts; an ALL scope looks at
  /// the devices on `versions`. Defined and used in the .cpp only.
  template <class Candidate>
  expected<std::vector<ordinal>>
  select_where(const task_spec& spec, const tree_catalog& trees,
               std::unordered_set<std::string>& named,
               const std::vector<std::string>& versions,
               Candidate candidate) const;

  std::vector<entry> devices_;
  /// product + '\0' + device key → ordinal.
  std::unordered_map<std::string, ordinal> directory_;
  /// product + '\0' + version → ordinals.
  std::unordered_map<std::string, ordinals> by_version_;
  /// product + '\0' + key + '\0' + value → ordinals.
  std::unordered_map<std::string, ordinals> by_tag_;
  std::unordered_map<std::string, ordinals> by_attribute_;
};

/// Whether device `e` is in the scope of an increment task with `spec`, whose
/// device-key or asset-tree filter named `named`.
bool in_scope(const task_spec& spec,
              const std::unordered_set<std::string>& named,
              const fleet_index::entry& e);

} // namespace fota
