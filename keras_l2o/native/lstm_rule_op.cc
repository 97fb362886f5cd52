// One step of the coordinatewise LSTM rule (keras_l2o/rules/lstm.py) as one CPU kernel.
//
// The reference, `LSTMRule.apply`, is a chain of TensorFlow ops: the
// preprocessing, then per layer a concat, a [n, in + H] x [in + H, 4H] matmul,
// a bias add, a split and ten elementwise ops, each streaming [n, 4H] or
// [n, H] tensors through memory. This kernel computes the same function for a
// block of four coordinates at a time, with every intermediate in registers
// or L1:
//
// * hidden units in vector lanes: a coordinate's 4H gate pre-activations fill
//   Z = 4H / 16 AVX-512 registers, so the state rows [n, H] are read and
//   written as they lie in memory (no transposes);
// * the gate columns are reordered once per call so that register z holds 16
//   units of one gate (i, f, g, o); when H % 16 == 4 the last register holds
//   the 4 remaining units of all four gates, and the block's four such
//   registers are regrouped (a 4 x 4 transpose of 128-bit lanes) so that the
//   cell runs on full registers;
// * the matmul keeps 4 coordinates x Z registers of accumulators, loads each
//   kernel row once per block and broadcasts the inputs; it sums over k in
//   order with fused multiply-adds, then adds the bias;
// * sigmoid and tanh come from one exp (a polynomial and vscalefps; tanh through
//   expm1, so tiny arguments keep their relative precision) and a
//   Newton-refined reciprocal instead of a division: within a few float ulp
//   of TensorFlow's (tests/native/test_native_lstm.py measures it).
//   The log of the preprocessing is Eigen's, the one TensorFlow's Log uses.
//
// The result differs from the reference by rounding only: the file is
// compiled with -ffp-contract=off, so that every product and sum of the cell
// is rounded where the reference rounds it.
//
// Two ops share the kernel: KerasL2OLstmRuleApply, functional ((grad, state)
// -> (update, new state)), and KerasL2OLstmRuleResourceApply, which takes the
// optimizer's variables and writes the new state over the old and
// var + learning_rate * update over var. In place, each block reads its rows
// before writing them; the step allocates nothing and streams the state once
// (the functional op's fresh outputs cost page faults and a second stream).
//
// Supported: float32, H in {4, 16, 20} (the paper's 20), any number of layers
// >= 1 with at most 64 inputs per layer, the three preprocessings. The Python
// side (keras_l2o/native/lstm_rule.py) checks this and otherwise leaves the
// step to the reference path. Built by keras_l2o/native/build.py.

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "lstm_math.h"

#if !defined(__AVX512F__)
#error "lstm_rule_op.cc needs AVX-512 (build.py compiles it with -march=native)"
#endif

namespace keras_l2o {
namespace {

using ::tensorflow::OpInputList;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::OpOutputList;
using ::tensorflow::Tensor;
using ::tensorflow::errors::InvalidArgument;

constexpr int kBlock = 4;      // coordinates per block of the matmul
constexpr int kMaxInput = 64;  // inputs per layer (in + H) the kernel supports

enum Preprocessing { kLogSign = 0, kLogSignClamped = 1, kNone = 2 };

// A layer's weights with the gate columns reordered for the register layout.
struct Layer {
  int inputs;                 // in + H: rows of the kernel
  std::vector<float> kernel;  // [inputs, regs * 16], reordered
  std::vector<float> bias;    // [regs * 16], reordered
};

// The column of the reordered layout that holds gate `gate` of unit `unit`.
int ReorderedColumn(int hidden, int gate, int unit) {
  const int heads = hidden / 16;  // full registers per gate
  if (unit < heads * 16) return (gate * heads + unit / 16) * 16 + unit % 16;
  return (4 * heads) * 16 + gate * 4 + (unit - heads * 16);
}

Layer Reorder(const float* kernel, const float* bias, int inputs, int hidden, int regs) {
  Layer layer;
  layer.inputs = inputs;
  layer.kernel.assign(static_cast<size_t>(inputs) * regs * 16, 0.0f);
  layer.bias.assign(regs * 16, 0.0f);
  for (int gate = 0; gate < 4; ++gate) {
    for (int unit = 0; unit < hidden; ++unit) {
      const int src = gate * hidden + unit, dst = ReorderedColumn(hidden, gate, unit);
      for (int k = 0; k < inputs; ++k) layer.kernel[k * regs * 16 + dst] = kernel[k * 4 * hidden + src];
      layer.bias[dst] = bias[src];
    }
  }
  return layer;
}

struct Params {
  int hidden, regs, num_layers, input_size;
  Preprocessing preprocessing;
  float constant, output_scale;
  float exp_constant, exp_minus_constant;  // exp(p) and exp(-p), rounded to float
  std::vector<Layer> layers;
  const float* out_kernel;  // [H]
  float out_bias;
  // Where the step goes: `update` gets the rule's output, or, when `var` is
  // set, var += learning_rate * output in place (rounded as the optimizer's
  // `assign_add(learning_rate * update)` rounds it).
  float* update = nullptr;
  float* var = nullptr;
  float learning_rate = 1.0f;
};

// The input features of NB coordinates, written to x[cc][0..input_size).
template <int NB>
inline void Features(const Params& p, const float* g, float (*x)[kMaxInput]) {
  if (p.preprocessing == kNone) {
    for (int cc = 0; cc < NB; ++cc) x[cc][0] = g[cc];
    return;
  }
  const __m128 grad = _mm_maskz_loadu_ps(static_cast<__mmask8>((1u << NB) - 1), g);
  const __m128 abs = _mm_andnot_ps(_mm_set1_ps(-0.0f), grad);
  const __m128 one = _mm_set1_ps(1.0f), minus_one = _mm_set1_ps(-1.0f);
  const __m128 constant = _mm_set1_ps(p.constant);
  const __m128 scaled = _mm_mul_ps(_mm_set1_ps(p.exp_constant), grad);
  __m128 first, second;
  if (p.preprocessing == kLogSign) {
    // (log|g| / p, sign g) if |g| >= exp(-p), else (-1, exp(p) g): features.log_and_sign_paper.
    const __mmask8 big = _mm_cmp_ps_mask(abs, _mm_set1_ps(p.exp_minus_constant), _CMP_GE_OQ);
    const __m128 safe = _mm_mask_mov_ps(one, big, abs);
    const __m128 sign = _mm_sub_ps(_mm_and_ps(_mm_cmpgt_ps(grad, _mm_setzero_ps()), one),
                                   _mm_and_ps(_mm_cmplt_ps(grad, _mm_setzero_ps()), one));
    first = _mm_mask_mov_ps(minus_one, big, _mm_div_ps(Eigen::internal::plog(safe), constant));
    second = _mm_mask_mov_ps(scaled, big, sign);
  } else {
    // (max(log(|g| + 1e-10) / k, -1), clip(exp(k) g, -1, 1)): features.log_and_sign_clamped.
    const __m128 log = Eigen::internal::plog(_mm_add_ps(abs, _mm_set1_ps(1e-10f)));
    first = _mm_max_ps(_mm_div_ps(log, constant), minus_one);
    second = _mm_min_ps(_mm_max_ps(scaled, minus_one), one);
  }
  alignas(16) float a[4], b[4];
  _mm_store_ps(a, first);
  _mm_store_ps(b, second);
  for (int cc = 0; cc < NB; ++cc) {
    x[cc][0] = a[cc];
    x[cc][1] = b[cc];
  }
}

// c_new = sigmoid(f) c + sigmoid(i) tanh(g), h_new = sigmoid(o) tanh(c_new), each
// product and the sum rounded separately, as the reference computes them.
inline void Cell(__m512 i, __m512 f, __m512 g, __m512 o, __m512 c, __m512* c_new, __m512* h_new) {
  *c_new = _mm512_add_ps(_mm512_mul_ps(Sigmoid(f), c), _mm512_mul_ps(Sigmoid(i), Tanh(g)));
  *h_new = _mm512_mul_ps(Sigmoid(o), Tanh(*c_new));
}

// One layer for NB coordinates: x[cc] are the inputs (in + H floats, the
// previous hidden state last); c_in, c_out and h_out point at the block's
// first row of the state tensors ([n, H] rows).
template <int Z, int NB>
inline void LayerStep(const Layer& layer, int hidden, const float (*x)[kMaxInput], const float* c_in,
                      float* c_out, float* h_out) {
  __m512 acc[NB][Z];
  for (int cc = 0; cc < NB; ++cc)
    for (int z = 0; z < Z; ++z) acc[cc][z] = _mm512_setzero_ps();
  const float* w = layer.kernel.data();
  for (int k = 0; k < layer.inputs; ++k, w += Z * 16) {
    __m512 wk[Z];
    for (int z = 0; z < Z; ++z) wk[z] = _mm512_loadu_ps(w + z * 16);
    for (int cc = 0; cc < NB; ++cc) {
      const __m512 xk = _mm512_set1_ps(x[cc][k]);
      for (int z = 0; z < Z; ++z) acc[cc][z] = _mm512_fmadd_ps(xk, wk[z], acc[cc][z]);
    }
  }
  for (int cc = 0; cc < NB; ++cc)
    for (int z = 0; z < Z; ++z) acc[cc][z] = _mm512_add_ps(acc[cc][z], _mm512_loadu_ps(&layer.bias[z * 16]));
  const int heads = hidden / 16;
  for (int cc = 0; cc < NB; ++cc) {
    for (int u = 0; u < heads; ++u) {
      __m512 c_new, h_new;
      Cell(acc[cc][u], acc[cc][heads + u], acc[cc][2 * heads + u], acc[cc][3 * heads + u],
           _mm512_loadu_ps(c_in + cc * hidden + 16 * u), &c_new, &h_new);
      _mm512_storeu_ps(c_out + cc * hidden + 16 * u, c_new);
      _mm512_storeu_ps(h_out + cc * hidden + 16 * u, h_new);
    }
  }
  if (hidden % 16 == 0) return;
  // The last register of each coordinate holds units 16 * heads + 0..3 of the
  // gates i, f, g, o in its four 128-bit lanes. Regroup the block's registers
  // so that each holds one gate for all (up to 4) coordinates, then run the
  // cell once for the block.
  __m512 t[4];
  for (int cc = 0; cc < 4; ++cc) t[cc] = cc < NB ? acc[cc][Z - 1] : _mm512_setzero_ps();
  const __m512 if01 = _mm512_shuffle_f32x4(t[0], t[1], 0x44), go01 = _mm512_shuffle_f32x4(t[0], t[1], 0xEE);
  const __m512 if23 = _mm512_shuffle_f32x4(t[2], t[3], 0x44), go23 = _mm512_shuffle_f32x4(t[2], t[3], 0xEE);
  const __m512 i = _mm512_shuffle_f32x4(if01, if23, 0x88), f = _mm512_shuffle_f32x4(if01, if23, 0xDD);
  const __m512 g = _mm512_shuffle_f32x4(go01, go23, 0x88), o = _mm512_shuffle_f32x4(go01, go23, 0xDD);
  const int offset = 16 * heads;
  __m512 c = _mm512_setzero_ps();
  for (int cc = 0; cc < NB; ++cc) c = _mm512_insertf32x4(c, _mm_loadu_ps(c_in + cc * hidden + offset), cc);
  __m512 c_new, h_new;
  Cell(i, f, g, o, c, &c_new, &h_new);
  alignas(64) float cs[16], hs[16];
  _mm512_store_ps(cs, c_new);
  _mm512_store_ps(hs, h_new);
  for (int cc = 0; cc < NB; ++cc) {
    _mm_storeu_ps(c_out + cc * hidden + offset, _mm_load_ps(cs + 4 * cc));
    _mm_storeu_ps(h_out + cc * hidden + offset, _mm_load_ps(hs + 4 * cc));
  }
}

// Every layer and the output for the NB coordinates from `first` on.
template <int Z, int NB>
void BlockStep(const Params& p, int64_t first, const float* grad, const std::vector<const float*>& state,
               const std::vector<float*>& new_state) {
  const int hidden = p.hidden;
  float x[NB][kMaxInput];
  Features<NB>(p, grad + first, x);
  int in = p.input_size;
  for (int l = 0; l < p.num_layers; ++l) {
    const float* h_old = state[2 * l] + first * hidden;
    for (int cc = 0; cc < NB; ++cc) std::memcpy(&x[cc][in], h_old + cc * hidden, hidden * sizeof(float));
    float* h_new = new_state[2 * l] + first * hidden;
    LayerStep<Z, NB>(p.layers[l], hidden, x, state[2 * l + 1] + first * hidden,
                     new_state[2 * l + 1] + first * hidden, h_new);
    for (int cc = 0; cc < NB; ++cc) std::memcpy(&x[cc][0], h_new + cc * hidden, hidden * sizeof(float));
    in = hidden;
  }
  // The output layer: the top hidden state dotted with the output kernel, 16 units at a time.
  for (int cc = 0; cc < NB; ++cc) {
    __m512 sum = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= hidden; k += 16)
      sum = _mm512_fmadd_ps(_mm512_loadu_ps(&x[cc][k]), _mm512_loadu_ps(p.out_kernel + k), sum);
    if (k < hidden) {
      const __mmask16 rest = static_cast<__mmask16>((1u << (hidden - k)) - 1);
      sum = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(rest, &x[cc][k]), _mm512_maskz_loadu_ps(rest, p.out_kernel + k),
                            sum);
    }
    const float out = (_mm512_reduce_add_ps(sum) + p.out_bias) * p.output_scale;
    if (p.var != nullptr) {
      const float delta = p.learning_rate * out;
      p.var[first + cc] += delta;
    } else {
      p.update[first + cc] = out;
    }
  }
}

template <int Z>
void Run(const Params& p, int64_t begin, int64_t end, const float* grad, const std::vector<const float*>& state,
         const std::vector<float*>& new_state) {
  int64_t c = begin;
  for (; c + kBlock <= end; c += kBlock) BlockStep<Z, kBlock>(p, c, grad, state, new_state);
  for (; c < end; ++c) BlockStep<Z, 1>(p, c, grad, state, new_state);
}

// The step of n coordinates, split over the device's thread pool. Each block
// reads its rows of `state` before writing the same rows of `new_state`, so
// the two may be the same buffers (the in-place op).
void RunAll(OpKernelContext* ctx, const Params& p, int64_t n, const float* grad,
            const std::vector<const float*>& state, const std::vector<float*>& new_state) {
  auto work = [&](int64_t begin, int64_t end) {
    switch (p.regs) {
      case 1: Run<1>(p, begin, end, grad, state, new_state); break;
      case 4: Run<4>(p, begin, end, grad, state, new_state); break;
      default: Run<5>(p, begin, end, grad, state, new_state);
    }
  };
  // Cycles per coordinate, for the thread pool's sharding.
  const int64_t cost = 300LL * p.num_layers;
  ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(n, cost, work);
}

// Attributes, meta-parameters and checks shared by both ops.
class LstmRuleOpBase : public OpKernel {
 public:
  explicit LstmRuleOpBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string preprocessing;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("preprocessing", &preprocessing));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("preprocess_constant", &constant_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("output_scale", &output_scale_));
    if (preprocessing == "log_sign") {
      preprocessing_ = kLogSign;
    } else if (preprocessing == "log_sign_clamped") {
      preprocessing_ = kLogSignClamped;
    } else if (preprocessing == "none") {
      preprocessing_ = kNone;
    } else {
      ctx->CtxFailure(InvalidArgument("preprocessing must be one of log_sign, log_sign_clamped, none; received: ",
                                      preprocessing));
    }
  }

 protected:
  // Reads the meta-parameters (inputs "kernels", "biases", "out_kernel",
  // "out_bias") into `p` and checks them against `num_state` state tensors.
  absl::Status ReadParams(OpKernelContext* ctx, int num_state, Params* p) {
    OpInputList kernels, biases;
    TF_RETURN_IF_ERROR(ctx->input_list("kernels", &kernels));
    TF_RETURN_IF_ERROR(ctx->input_list("biases", &biases));
    const Tensor* out_kernel;
    const Tensor* out_bias;
    TF_RETURN_IF_ERROR(ctx->input("out_kernel", &out_kernel));
    TF_RETURN_IF_ERROR(ctx->input("out_bias", &out_bias));
    p->num_layers = kernels.size();
    if (num_state != 2 * p->num_layers) {
      return InvalidArgument("expected 2 state tensors per layer: received ", num_state, " state tensors for ",
                             p->num_layers, " layers");
    }
    p->hidden = static_cast<int>(out_kernel->NumElements());
    const int hidden = p->hidden;
    if (hidden != 4 && hidden != 16 && hidden != 20) {
      return InvalidArgument("the hidden size must be 4, 16 or 20; received ", hidden);
    }
    if (out_bias->NumElements() != 1) {
      return InvalidArgument("out_bias must have one entry; received ", out_bias->shape().DebugString());
    }
    p->regs = 4 * (hidden / 16) + (hidden % 16 ? 1 : 0);
    p->input_size = preprocessing_ == kNone ? 1 : 2;
    p->preprocessing = preprocessing_;
    p->constant = constant_;
    p->output_scale = output_scale_;
    p->exp_constant = static_cast<float>(std::exp(static_cast<double>(constant_)));
    p->exp_minus_constant = static_cast<float>(std::exp(-static_cast<double>(constant_)));
    p->out_kernel = out_kernel->flat<float>().data();
    p->out_bias = out_bias->flat<float>()(0);
    int in = p->input_size;
    for (int l = 0; l < p->num_layers; ++l) {
      const int inputs = in + hidden;
      if (inputs > kMaxInput || kernels[l].NumElements() != inputs * 4 * hidden ||
          biases[l].NumElements() != 4 * hidden) {
        return InvalidArgument("layer ", l + 1, ": kernel ", kernels[l].shape().DebugString(), " and bias ",
                               biases[l].shape().DebugString(), " do not match [", inputs, ", ", 4 * hidden,
                               "] and [", 4 * hidden, "]");
      }
      p->layers.push_back(
          Reorder(kernels[l].flat<float>().data(), biases[l].flat<float>().data(), inputs, hidden, p->regs));
      in = hidden;
    }
    return absl::OkStatus();
  }

  static absl::Status CheckState(const Tensor& state, int index, int64_t n, int hidden) {
    if (state.dtype() != ::tensorflow::DT_FLOAT || state.NumElements() != n * hidden) {
      return InvalidArgument("state tensor ", index, " has shape ", state.shape().DebugString(), " and dtype ",
                             ::tensorflow::DataTypeString(state.dtype()), "; expected float32 with ", n, " x ",
                             hidden, " entries");
    }
    return absl::OkStatus();
  }

 private:
  Preprocessing preprocessing_;
  float constant_, output_scale_;
};

// Functional: (grad, state) -> (update, new_state).
class LstmRuleApplyOp : public LstmRuleOpBase {
 public:
  using LstmRuleOpBase::LstmRuleOpBase;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    OpInputList state;
    OP_REQUIRES_OK(ctx, ctx->input_list("state", &state));
    Params p;
    OP_REQUIRES_OK(ctx, ReadParams(ctx, state.size(), &p));
    const int64_t n = grad.NumElements();
    for (int l = 0; l < state.size(); ++l) OP_REQUIRES_OK(ctx, CheckState(state[l], l, n, p.hidden));

    Tensor* update = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, grad.shape(), &update));
    p.update = update->flat<float>().data();
    OpOutputList new_state;
    OP_REQUIRES_OK(ctx, ctx->output_list("new_state", &new_state));
    std::vector<const float*> state_ptr;
    std::vector<float*> new_state_ptr;
    for (int l = 0; l < state.size(); ++l) {
      Tensor* out = nullptr;
      OP_REQUIRES_OK(ctx, new_state.allocate(l, state[l].shape(), &out));
      state_ptr.push_back(state[l].flat<float>().data());
      new_state_ptr.push_back(out->flat<float>().data());
    }
    RunAll(ctx, p, n, grad.flat<float>().data(), state_ptr, new_state_ptr);
  }
};

// In place on resource variables: state <- new_state, var <- var + learning_rate * update.
// Like TensorFlow's own training ops, a buffer that something else still
// holds (a tensor read from the variable earlier) is not overwritten: the
// variable gets a fresh buffer instead, which the kernel fills.
class LstmRuleResourceApplyOp : public LstmRuleOpBase {
 public:
  explicit LstmRuleResourceApplyOp(OpKernelConstruction* ctx) : LstmRuleOpBase(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_state", &num_state_));
  }

  void Compute(OpKernelContext* ctx) override {
    const int num_state = num_state_;
    std::vector<::tensorflow::core::RefCountPtr<::tensorflow::Var>> vars(1 + num_state);
    for (int i = 0; i <= num_state; ++i) {
      OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, i), &vars[i]));
    }
    const Tensor& grad = ctx->input(1 + num_state);
    const Tensor& learning_rate = ctx->input(2 + num_state);
    OP_REQUIRES(ctx, learning_rate.NumElements() == 1,
                InvalidArgument("learning_rate must be a scalar; received ", learning_rate.shape().DebugString()));
    Params p;
    OP_REQUIRES_OK(ctx, ReadParams(ctx, num_state, &p));
    const int64_t n = grad.NumElements();

    // Lock every variable, in address order (as TensorFlow's training ops do) so that two steps cannot deadlock.
    std::vector<::tensorflow::mutex*> mutexes;
    for (auto& v : vars) mutexes.push_back(v->mu());
    std::sort(mutexes.begin(), mutexes.end());
    mutexes.erase(std::unique(mutexes.begin(), mutexes.end()), mutexes.end());
    for (auto* mu : mutexes) mu->lock();
    struct Unlock {
      std::vector<::tensorflow::mutex*>* mutexes;
      ~Unlock() {
        for (auto* mu : *mutexes) mu->unlock();
      }
    } unlock{&mutexes};

    std::vector<Tensor*> tensors;
    for (int i = 0; i <= num_state; ++i) {
      Tensor* t = vars[i]->tensor();
      OP_REQUIRES(ctx, vars[i]->is_initialized && t->IsInitialized(),
                  InvalidArgument("variable ", i, " is not initialized"));
      tensors.push_back(t);
    }
    OP_REQUIRES(ctx, tensors[0]->dtype() == ::tensorflow::DT_FLOAT && tensors[0]->NumElements() == n,
                InvalidArgument("the variable has shape ", tensors[0]->shape().DebugString(), " and dtype ",
                                ::tensorflow::DataTypeString(tensors[0]->dtype()), "; expected float32 with ", n,
                                " entries (the gradient's)"));
    for (int l = 0; l < num_state; ++l) OP_REQUIRES_OK(ctx, CheckState(*tensors[1 + l], l, n, p.hidden));

    // Buffers shared with a reader get replaced by fresh ones.
    std::vector<const float*> state_ptr;
    std::vector<float*> new_state_ptr;
    std::vector<std::pair<int, Tensor>> replaced;
    for (int i = 0; i <= num_state; ++i) {
      Tensor* t = tensors[i];
      float* out = nullptr;
      if (t->RefCountIsOne() && !vars[i]->copy_on_read_mode.load()) {
        out = t->flat<float>().data();
      } else {
        Tensor fresh;
        OP_REQUIRES_OK(ctx, ctx->allocate_temp(::tensorflow::DT_FLOAT, t->shape(), &fresh));
        if (i == 0) fresh.flat<float>() = t->flat<float>();  // the variable is updated, not overwritten
        out = fresh.flat<float>().data();
        replaced.emplace_back(i, fresh);
      }
      if (i == 0) {
        p.var = out;
      } else {
        state_ptr.push_back(t->flat<float>().data());
        new_state_ptr.push_back(out);
      }
    }
    p.learning_rate = learning_rate.flat<float>()(0);
    RunAll(ctx, p, n, grad.flat<float>().data(), state_ptr, new_state_ptr);
    for (auto& [i, fresh] : replaced) *vars[i]->tensor() = fresh;
  }

 private:
  int num_state_;
};

}  // namespace

REGISTER_OP("KerasL2OLstmRuleApply")
    .Input("grad: float")
    .Input("state: num_state * float")
    .Input("kernels: num_layers * float")
    .Input("biases: num_layers * float")
    .Input("out_kernel: float")
    .Input("out_bias: float")
    .Output("update: float")
    .Output("new_state: num_state * float")
    .Attr("num_state: int >= 2")
    .Attr("num_layers: int >= 1")
    .Attr("preprocessing: string")
    .Attr("preprocess_constant: float")
    .Attr("output_scale: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      int num_state;
      TF_RETURN_IF_ERROR(c->GetAttr("num_state", &num_state));
      for (int i = 0; i < num_state; ++i) c->set_output(1 + i, c->input(1 + i));
      return absl::OkStatus();
    })
    .Doc("One step of keras_l2o's coordinatewise LSTM rule (keras_l2o/native/lstm_rule_op.cc).");

REGISTER_KERNEL_BUILDER(Name("KerasL2OLstmRuleApply").Device(::tensorflow::DEVICE_CPU), LstmRuleApplyOp);

REGISTER_OP("KerasL2OLstmRuleResourceApply")
    .Input("var: resource")
    .Input("state: num_state * resource")
    .Input("grad: float")
    .Input("learning_rate: float")
    .Input("kernels: num_layers * float")
    .Input("biases: num_layers * float")
    .Input("out_kernel: float")
    .Input("out_bias: float")
    .Attr("num_state: int >= 2")
    .Attr("num_layers: int >= 1")
    .Attr("preprocessing: string")
    .Attr("preprocess_constant: float")
    .Attr("output_scale: float")
    .SetIsStateful()
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("keras_l2o's lstm rule step in place: var += learning_rate * update, state <- new state.");

REGISTER_KERNEL_BUILDER(Name("KerasL2OLstmRuleResourceApply").Device(::tensorflow::DEVICE_CPU),
                        LstmRuleResourceApplyOp);

}  // namespace keras_l2o
