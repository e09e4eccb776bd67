// Included at the end of gotch's torch_api.cpp by tools/gotchadapt: torch_api.h defines
// a variable, so a second translation unit including it would not link.
#include <ATen/Parallel.h>
#include <torch/version.h>
#include "bertnode_ext.h"

static at::Generator bn_generator(int device) {
  if (device < 0) return at::detail::getDefaultCPUGenerator();
  return at::globalContext().defaultGenerator(at::Device(at::kCUDA, device));
}

void bn_set_grad(tensor param, tensor grad) {
  PROTECT(param->mutable_grad() = *grad;)
}

void bn_rng_state(tensor *out, int device) {
  PROTECT(auto gen = bn_generator(device);
          std::lock_guard<std::mutex> lock(gen.mutex());
          out[0] = new torch::Tensor(gen.get_state());)
}

void bn_set_rng_state(tensor state, int device) {
  PROTECT(auto gen = bn_generator(device);
          std::lock_guard<std::mutex> lock(gen.mutex());
          gen.set_state(*state);)
}

void bn_cuda_autocast(int dtype) {
  PROTECT(
    bool on = dtype != 0;
    auto st = dtype == 2 ? at::kBFloat16 : at::kHalf;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, on);
    if (on) at::autocast::set_autocast_dtype(at::kCUDA, st);
#else
    at::autocast::set_enabled(on);
    if (on) at::autocast::set_autocast_gpu_dtype(st);
#endif
    if (!on) at::autocast::clear_cache();
  )
}

void bn_set_num_threads(int n) { PROTECT(at::set_num_threads(n);) }
int bn_num_threads() { return at::get_num_threads(); }
void bn_manual_seed(int64_t seed) { PROTECT(torch::manual_seed(seed);) }
