// Data-parallel training across processes: the collective the trainer needs (sum of gradients over
// ranks), with PyTorch's own c10d process group behind it — Gloo on CPU (Debian's LibTorch has Gloo,
// not NCCL or MPI); a CUDA LibTorch could put NCCL behind the same interface. Ranks come from
// torchrun-style (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT) or Slurm srun (SLURM_NTASKS,
// SLURM_PROCID) environment variables.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace subliminal::train {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // In place: every tensor becomes the sum of its values over the ranks (same shapes, float).
  virtual void allreduce_sum(std::vector<torch::Tensor>& tensors) = 0;
  virtual void barrier() = 0;
  // Small messages through the rendezvous store (rank 0 tells the others what to run next):
  // post sets `key`; wait_for blocks until some rank has posted it (no timeout: a rank may wait
  // through hours of generation) and fails when the store's host (rank 0) is gone.
  virtual void post(const std::string& key, const std::string& value) = 0;
  virtual std::string wait_for(const std::string& key) = 0;
};

// World size and rank from the environment: WORLD_SIZE/RANK, else SLURM_NTASKS/SLURM_PROCID, else 1/0.
std::pair<int, int> world_and_rank_from_env();
// A Gloo process group for world > 1 (rendezvous: a c10d TCPStore at MASTER_ADDR:MASTER_PORT, default
// 127.0.0.1:29500, served by rank 0); nullptr for world 1. ConfigError when this build has no Gloo.
std::unique_ptr<Collective> make_collective_from_env();

}  // namespace subliminal::train
