/// A digest of a node's durable state that does not depend on the order in
/// which its parts are visited: each entity (device, firmware, asset tree,
/// task, execution, skipped device) is written as one canonical text, hashed
/// with SHA-256, and the hashes are added up modulo 2^256. Actors sum their
/// own entities; the node adds the sums. Volatile state (online, pushes in
/// flight) is left out.
#pragma once

#include "events/asset_tree.hpp"
#include "events/task.hpp"
#include "events/values.hpp"

#include <array>
#include <cstdint>
#include <string>

namespace fota {

struct world;

/// A sum of entity hashes, and how many entities of each kind it holds.
class digest_sum {
public:
  // -- adding entities --------------------------------------------------------

  void add(const device_state& x);
  void add(const firmware_record& x);
  void add(const asset_tree& x);
  /// The task, its executions and its skipped devices.
  void add(const task_state& x);

  /// Adds another sum.
  void add(const digest_sum& other);

  // -- result -----------------------------------------------------------------

  /// The digest of everything added, after log sequence `last`.
  state_digest finish(sequence_number last) const;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, digest_sum& x) {
    return f(x.words_, x.devices_, x.firmware_, x.tasks_, x.executions_);
  }

private:
  void add_text(const std::string& text);

  /// Little-endian 64-bit words of the sum.
  std::array<uint64_t, 4> words_{};
  uint64_t devices_ = 0;
  uint64_t firmware_ = 0;
  uint64_t tasks_ = 0;
  uint64_t executions_ = 0;
};

/// The digest of a replayed world.
state_digest digest(const world& w);

} // namespace fota
