// Gloo-backed collective (see dist.h).
#include "subliminal/train/dist.h"

#include <cstdlib>

#include "subliminal/model/torch_compat.h"
#include "subliminal/util/error.h"
#include "subliminal/util/log.h"

#ifdef SUBLIMINAL_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace subliminal::train {

static int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    return std::stoi(v);
  } catch (const std::exception&) {
    throw ConfigError(std::string("environment variable ") + name + "=\"" + v + "\" is not an integer");
  }
}

std::pair<int, int> world_and_rank_from_env() {
  int world = env_int("WORLD_SIZE", 0), rank = env_int("RANK", -1);
  if (world <= 0) {
    world = env_int("SLURM_NTASKS", 1);
    rank = env_int("SLURM_PROCID", 0);
  }
  if (rank < 0) rank = 0;
  if (world < 1 || rank >= world)
    throw ConfigError("rank " + std::to_string(rank) + " of world size " + std::to_string(world) + " from the environment is out of range");
  return {world, rank};
}

#ifdef SUBLIMINAL_WITH_GLOO
namespace {
class GlooCollective final : public Collective {
 public:
  GlooCollective(int world, int rank, const std::string& host, int port) : world_(world), rank_(rank) {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = static_cast<size_t>(world);
    so.waitWorkers = true;
    so.timeout = std::chrono::minutes(5);
#if SUBLIMINAL_TORCH_AT_LEAST(2, 4)
    // 2.4 made the libuv server the default; Debian's 2.6 is built without libuv and refuses it.
    // The store carries a few keys per run: the classic server everywhere.
    so.useLibUV = false;
#endif
    store_ = c10::make_intrusive<c10d::TCPStore>(host, so);
    auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::minutes(30));
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host == "localhost" ? "127.0.0.1" : host));
    opts->threads = 2;
    pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, rank, world, opts);
  }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  void allreduce_sum(std::vector<torch::Tensor>& tensors) override {
    if (tensors.empty()) return;
    // One flat buffer: one collective call per step whatever the parameter count.
    std::vector<torch::Tensor> flat_parts;
    for (auto& t : tensors) flat_parts.push_back(t.reshape({-1}).to(torch::kFloat));
    std::vector<torch::Tensor> buf = {torch::cat(flat_parts)};
    try {
      pg_->allreduce(buf)->wait();
    } catch (const std::exception& e) {
      throw Error("data parallel: rank " + std::to_string(rank_) + " lost the other ranks during a gradient all-reduce (" + e.what() + ")",
                  "another rank stopped: its own error says why (a different config, a crash, a preemption)");
    }
    int64_t off = 0;
    for (auto& t : tensors) {
      const int64_t n = t.numel();
      t.copy_(buf[0].narrow(0, off, n).view(t.sizes()));
      off += n;
    }
  }
  void barrier() override { pg_->barrier()->wait(); }
  void post(const std::string& key, const std::string& value) override {
    store_->set(key, std::vector<uint8_t>(value.begin(), value.end()));
  }
  std::string wait_for(const std::string& key) override {
    store_->wait({key}, std::chrono::hours(24 * 365));
    const auto v = store_->get(key);
    return std::string(v.begin(), v.end());
  }

 private:
  int world_, rank_;
  c10::intrusive_ptr<c10d::TCPStore> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
};
}  // namespace
#endif

std::unique_ptr<Collective> make_collective_from_env() {
  const auto [world, rank] = world_and_rank_from_env();
  if (world == 1) return nullptr;
#ifdef SUBLIMINAL_WITH_GLOO
  const char* addr = std::getenv("MASTER_ADDR");
  const std::string host = addr && *addr ? addr : "127.0.0.1";
  const int port = env_int("MASTER_PORT", 29500);
  log::info("dist", "rank {} of {}: Gloo process group via {}:{}", rank, world, host, port);
  return std::make_unique<GlooCollective>(world, rank, host, port);
#else
  throw ConfigError("world size " + std::to_string(world) + " requested, but this build has no Gloo process group",
                    "install libgloo-dev (scripts/setup.sh does) and rebuild");
#endif
}

}  // namespace subliminal::train
