/// The limits on what a request may carry, so that every request and every
/// response fits a frame. `decode()` enforces them at the edge; the README
/// documents them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fota::limits {

/// Product keys, device keys, versions, tag and attribute keys and values,
/// asset tree and node ids, names of tasks and tree nodes (bytes).
inline constexpr size_t key = 128;

/// Firmware and tree descriptions, failure texts, skip reasons (bytes).
inline constexpr size_t text = 1024;

/// Progress texts (bytes).
inline constexpr size_t progress_text = 256;

/// Failure codes (bytes).
inline constexpr size_t failure_code = 64;

/// Firmware URLs (bytes).
inline constexpr size_t url = 2048;

/// Firmware signatures (bytes).
inline constexpr size_t signature = 1024;

/// Tags or attributes in one request, and on one device.
inline constexpr size_t labels = 64;

/// Source versions of a task.
inline constexpr size_t source_versions = 64;

/// Schedule windows of a task.
inline constexpr size_t windows = 48;

/// Device keys in a task's device-key filter.
inline constexpr size_t scope_devices = 10000;

/// Devices in one `RegisterDevices` request (the frame limit bounds it
/// too).
inline constexpr size_t batch_devices = 10000;

/// Nodes selected in one asset tree of a task's filter.
inline constexpr size_t selected_nodes = 1000;

/// Nodes of one asset tree.
inline constexpr size_t tree_nodes = 5000;

/// Execution states in a details filter.
inline constexpr size_t states = 8;

/// The largest `UpgradePush` frame, and `UpgradeOffer` response, that the
/// limits above allow: keys and versions, URL, signature, description and
/// the manifest built from them, each at its limit (a test builds one).
inline constexpr size_t max_push_frame = 7400;

/// The smallest frame limit a node can be given (`--max-frame-size`), so
/// that every push and every offer fits a frame.
inline constexpr size_t min_frame_size = 8192;

static_assert(max_push_frame <= min_frame_size);

/// Items on one page; 0 in a request means `default_page_size`.
inline constexpr uint32_t max_page_size = 1000;
inline constexpr uint32_t default_page_size = 100;

} // namespace fota::limits
