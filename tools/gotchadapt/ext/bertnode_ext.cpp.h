// Included at the end of gotch's torch_api.cpp by tools/gotchadapt: torch_api.h defines
// a variable, so a second translation unit including it would not link.
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <cmath>
#include <cstdlib>
#include <dlfcn.h>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
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
void bn_set_tf32(bool on) {
  PROTECT(at::globalContext().setAllowTF32CuBLAS(on); at::globalContext().setAllowTF32CuDNN(on);)
}
bool bn_tf32() { return at::globalContext().allowTF32CuBLAS(); }
int bn_torch_version() { return TORCH_VERSION_MAJOR * 100 + TORCH_VERSION_MINOR; }

void bn_fused_adamw(tensor *params, tensor *grads, tensor *exp_avgs, tensor *exp_avg_sqs,
                    tensor *steps, int n, double lr, double beta1, double beta2,
                    double weight_decay, double eps) {
#if TORCH_VERSION_MAJOR >= 2
  try {
    std::vector<at::Tensor> p(n), g(n), m(n), v(n), st(n);
    for (int i = 0; i < n; i++) {
      p[i] = *params[i];
      g[i] = *grads[i];
      m[i] = *exp_avgs[i];
      v[i] = *exp_avg_sqs[i];
      st[i] = *steps[i];
    }
    at::_fused_adamw_(p, g, m, v, at::TensorList(), st, lr, beta1, beta2, weight_decay, eps,
                      /*amsgrad=*/false, /*maximize=*/false);
  } catch (const std::exception &e) {
    torch_last_err = strdup(e.what());
  }
#else
  torch_last_err = strdup("fused AdamW needs libtorch 2.0 or later");
#endif
}

// What the hooks and the waiter share. Hooks hold it too, so a hook that outlives the
// watch (its node kept alive elsewhere) writes to live memory.
struct bn_grad_state {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> counts;
  int prefix = 0; // params[0..prefix) have run their hooks since arm
  bool armed = false;
};

struct bn_grad_watch {
  std::shared_ptr<bn_grad_state> st;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
};

struct bn_grad_hook : torch::autograd::FunctionPostHook {
  std::shared_ptr<bn_grad_state> st;
  int i;
  bn_grad_hook(std::shared_ptr<bn_grad_state> st, int i) : st(std::move(st)), i(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list &outputs,
                                            const torch::autograd::variable_list &) override {
    std::lock_guard<std::mutex> lock(st->mu);
    int n = st->counts.size();
    if (st->counts[i]++ == 0 && i == st->prefix) {
      while (st->prefix < n && st->counts[st->prefix] > 0) st->prefix++;
      st->cv.notify_all();
    }
    return outputs;
  }
};

bn_grad_watch *bn_grad_watch_new(tensor *params, int n) {
  try {
    auto w = std::make_unique<bn_grad_watch>();
    w->st = std::make_shared<bn_grad_state>();
    w->st->counts.assign(n, 0);
    for (int i = 0; i < n; i++) {
      auto acc = torch::autograd::impl::grad_accumulator(*params[i]);
      if (!acc) throw std::invalid_argument("bn_grad_watch_new: parameter " + std::to_string(i) + " does not require grad");
      acc->add_post_hook(std::make_unique<bn_grad_hook>(w->st, i));
      w->accumulators.push_back(std::move(acc));
    }
    return w.release();
  } catch (const std::exception &e) {
    torch_last_err = strdup(e.what());
  }
  return nullptr;
}

void bn_grad_watch_arm(bn_grad_watch *w) {
  std::lock_guard<std::mutex> lock(w->st->mu);
  std::fill(w->st->counts.begin(), w->st->counts.end(), 0);
  w->st->prefix = 0;
  w->st->armed = true;
}

int bn_grad_watch_wait(bn_grad_watch *w, int after) {
  auto &st = *w->st;
  std::unique_lock<std::mutex> lock(st.mu);
  st.cv.wait(lock, [&] { return !st.armed || st.prefix > after; });
  return st.prefix > after ? st.prefix : -1;
}

void bn_grad_watch_disarm(bn_grad_watch *w) {
  std::lock_guard<std::mutex> lock(w->st->mu);
  w->st->armed = false;
  w->st->cv.notify_all();
}

void bn_grad_watch_counts(bn_grad_watch *w, int *out) {
  std::lock_guard<std::mutex> lock(w->st->mu);
  std::copy(w->st->counts.begin(), w->st->counts.end(), out);
}

void bn_grad_watch_free(bn_grad_watch *w) { delete w; }

struct bn_qlinear {
  c10::IValue packed; // the engine's LinearPackedParamsBase
  bool reduce_range;
  bool steady; // shape the input for oneDNN 2's primitive cache (bn_steady_linear)
};

#if TORCH_VERSION_MAJOR < 2
// libtorch 1.x's onednn engine (oneDNN 2) makes a new primitive for every input shape
// and quantization range it has not seen, and its cache of them (1,024) evicts by a scan
// of all of them: served inputs, each of new rows and a new range, paid both on nearly
// every call, and base served 1.4x slower than in float32 (one 768 x 3072 layer on
// 25-64 rows: 2.0 ms a call, against 0.32 for a repeated input). So the op sees a few
// shapes and ranges: the input goes in chunks of at most 256 rows, each padded to a
// multiple of 16 rows, one of them holding the ends of the whole input's range rounded
// out to powers of two, which the op's min and max then are (each activation keeps at
// least half of int8's resolution). The padding's output rows are dropped. Chunks of 256
// ran within 5% of one call on 1,024 rows, 128 within 10%. libtorch 2.6's oneDNN 3
// showed no such cost: there the op gets its input as it is.
//
// The primitives are per layer too (its weights' scales are theirs): 16 row counts and a
// few ranges for each of base's 72 layers overflowed the cache's 1,024 (3,250 seen in a
// served minute), and batches of 4 texts ran no faster than texts one by one. So each
// layer reserves room for 64 (unless $ONEDNN_PRIMITIVE_CACHE_CAPACITY says otherwise):
// base then served batched 1.5x its unbatched rate, at the same peak memory.
static void bn_steady_reserve() {
  static std::atomic<int> layers{0};
  static auto get = reinterpret_cast<int (*)(int *)>(dlsym(RTLD_DEFAULT, "dnnl_get_primitive_cache_capacity"));
  static auto set = reinterpret_cast<int (*)(int)>(dlsym(RTLD_DEFAULT, "dnnl_set_primitive_cache_capacity"));
  int want = ++layers * 64, have = 0;
  if (std::getenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY") || std::getenv("DNNL_PRIMITIVE_CACHE_CAPACITY") || !get || !set) return;
  if (get(&have) == 0 && have < want) set(want);
}

static double bn_octave(double v) { return v > 0 ? std::exp2(std::ceil(std::log2(v))) : 0; }

static at::Tensor bn_steady_linear(const c10::OperatorHandle &op, bn_qlinear *q, const at::Tensor &x) {
  const int64_t chunk = 256, align = 16;
  int64_t m = x.size(0), k = x.size(1);
  auto mm = at::aminmax(x);
  float lo = -bn_octave(-std::get<0>(mm).item<double>()), hi = bn_octave(std::get<1>(mm).item<double>());
  int64_t extra = k > 1 ? 1 : 2; // rows holding the range
  std::vector<at::Tensor> outs;
  for (int64_t r = 0; r < m; r += chunk - extra) {
    int64_t n = std::min(chunk - extra, m - r), rows = (n + extra + align - 1) / align * align;
    auto in = at::empty({rows, k}, x.options());
    in.narrow(0, 0, n).copy_(x.narrow(0, r, n));
    in.narrow(0, n, rows - n).zero_();
    float *p = in.data_ptr<float>() + n * k;
    p[0] = hi;
    p[1] = lo; // the next row's first when k is 1
    torch::jit::Stack s{in, q->packed, q->reduce_range};
    op.callBoxed(&s);
    outs.push_back(s[0].toTensor().narrow(0, 0, n));
  }
  return outs.size() == 1 ? outs[0] : at::cat(outs);
}
#endif

// Engines by preference, as QEngine's values (X86, 4, is libtorch 2.0's): fbgemm's
// kernels, which x86 runs, before onednn's. QNNPACK is for ARM: on x86 its dynamic
// linear ran 2x slower than float32.
const char *bn_qengine() {
  try {
    auto &ctx = at::globalContext();
    const std::pair<int, const char *> engines[] = {{4, "x86"}, {1, "fbgemm"}, {3, "onednn"}};
    for (auto [want, name] : engines) {
      for (auto e : ctx.supportedQEngines()) {
        if (static_cast<int>(e) == want) {
          if (ctx.qEngine() != e) ctx.setQEngine(e);
          return name;
        }
      }
    }
  } catch (const std::exception &e) {
    torch_last_err = strdup(e.what());
  }
  return "";
}

bn_qlinear *bn_qlinear_new(tensor weight, tensor bias) {
  try {
    const at::Tensor &w = *weight;
    // torch's per-channel symmetric observer for qint8: scale max|w| / 127.5, at least
    // float32's epsilon, zero point 0.
    auto scale = (w.abs().amax(1) / 127.5).clamp_min(1.1920928955078125e-07).to(at::kDouble);
    auto zero = at::zeros({w.size(0)}, at::kLong);
    auto qw = at::quantize_per_channel(w, scale, zero, 0, at::kQInt8);
    auto op = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_prepack", "");
    torch::jit::Stack s{qw, c10::optional<at::Tensor>(*bias)};
    op.callBoxed(&s);
    auto e = at::globalContext().qEngine();
    // fbgemm's int8 kernels sum pairs of products in int16 on CPUs without VNNI:
    // activations in 7 bits keep them from saturating, as torch's observers do there.
    bool reduce = static_cast<int>(e) == 4 || e == at::QEngine::FBGEMM;
    bool steady = TORCH_VERSION_MAJOR < 2 && e == at::QEngine::ONEDNN;
#if TORCH_VERSION_MAJOR < 2
    if (steady) bn_steady_reserve();
#endif
    return new bn_qlinear{s[0], reduce, steady};
  } catch (const std::exception &e) {
    torch_last_err = strdup(e.what());
  }
  return nullptr;
}

void bn_qlinear_forward(bn_qlinear *q, tensor x, tensor *out) {
  try {
    static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_dynamic", "");
#if TORCH_VERSION_MAJOR < 2
    if (q->steady) {
      auto sizes = x->sizes().vec();
      auto y = bn_steady_linear(op, q, x->reshape({-1, sizes.back()}).contiguous());
      sizes.back() = y.size(1);
      out[0] = new torch::Tensor(y.view(sizes));
      return;
    }
#endif
    torch::jit::Stack s{*x, q->packed, q->reduce_range};
    op.callBoxed(&s);
    out[0] = new torch::Tensor(s[0].toTensor());
  } catch (const std::exception &e) {
    torch_last_err = strdup(e.what());
  }
}

void bn_qlinear_free(bn_qlinear *q) { delete q; }
