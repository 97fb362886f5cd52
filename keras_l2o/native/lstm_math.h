// Vectorised exp, sigmoid and tanh for keras_l2o's native LSTM kernels
// (lstm_rule_op.cc, lstm_cells_op.cc): 16 floats per AVX-512 register, a few
// float ulp from TensorFlow's (tests/native/test_native_lstm.py measures it).

#ifndef KERAS_L2O_NATIVE_LSTM_MATH_H_
#define KERAS_L2O_NATIVE_LSTM_MATH_H_

#include <immintrin.h>

namespace keras_l2o {

// exp(-x) for x in [-88, 88] as 2^n (1 + q): -x = n ln 2 + r with |r| <= ln(2) / 2,
// and q = exp(r) - 1 by a polynomial without constant term (exp(r) by a degree-6
// polynomial fitted on that interval: relative error 1.7e-8 with its float32
// coefficients). q keeps its relative precision for tiny r, which expm1 needs.
// The polynomial is evaluated at s = -r, with the odd coefficients negated,
// which spares negating x.
inline __m512 ReducedExpOfMinus(__m512 x, __m512* n) {
  *n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(-1.44269504088896341f)),
                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln 2 in two parts, the first with 9 significant bits so that n * ln2_hi is exact.
  __m512 s = _mm512_fmadd_ps(*n, _mm512_set1_ps(0.693359375f), x);
  s = _mm512_fmadd_ps(*n, _mm512_set1_ps(-2.12194440e-4f), s);
  __m512 p = _mm512_set1_ps(0.0013836845755577087f);
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-0.008374815806746483f));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(0.04166822507977486f));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-0.16666419804096222f));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(0.49999991059303284f));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-1.0f));
  return _mm512_mul_ps(p, s);  // q
}

// sigmoid(x) = 1 / (1 + exp(-x)), with a reciprocal refined by one Newton step
// instead of a division. x is clamped to [-80, 88] first, so that the
// reciprocal stays a normal number: below x = -80 the result is 1.8e-35
// instead of exp(x), an absolute error below 2e-35. NaN stays NaN (max and
// min return their second operand when one is NaN).
inline __m512 Sigmoid(__m512 x) {
  const __m512 clamped = _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(_mm512_set1_ps(-80.0f), x));
  __m512 n;
  const __m512 q = ReducedExpOfMinus(clamped, &n);
  const __m512 y = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_scalef_ps(_mm512_add_ps(q, _mm512_set1_ps(1.0f)), n));
  const __m512 r = _mm512_rcp14_ps(y);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(y, r, _mm512_set1_ps(2.0f)));
}

// tanh(x) = e / (e + 2) with e = exp(2x) - 1 = 2^n q + (2^n - 1), exact for n = 0
// (|x| < ln(2) / 4), so that tiny |x| keeps its relative precision; a
// Newton-refined reciprocal again. x is clamped to [-10, 10], where tanh is
// +-1 in float32. NaN stays NaN.
inline __m512 Tanh(__m512 x) {
  const __m512 clamped = _mm512_min_ps(_mm512_set1_ps(10.0f), _mm512_max_ps(_mm512_set1_ps(-10.0f), x));
  __m512 n;
  const __m512 q = ReducedExpOfMinus(_mm512_mul_ps(clamped, _mm512_set1_ps(-2.0f)), &n);
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = _mm512_add_ps(_mm512_scalef_ps(q, n), _mm512_sub_ps(_mm512_scalef_ps(one, n), one));
  const __m512 d = _mm512_add_ps(e, _mm512_set1_ps(2.0f));
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(e, _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f))));
}

}  // namespace keras_l2o

#endif  // KERAS_L2O_NATIVE_LSTM_MATH_H_
