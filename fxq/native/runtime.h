// fxq's native simulation runtime: ap_fixed conversions on int64 raw values.
//
// The generated simulation of a QuantizedGraph includes this header. Every function mirrors
// fxq.fixed.requantize (rounding first, on the exact value, then the overflow mode), with the
// shift and the destination type as template constants, so each call compiles to a few
// branch-free instructions that vectorize across the samples of a block.
//
// Compiled with -std=c++20 -fwrapv: signed arithmetic wraps modulo 2^64 and left shifts of
// negative values are defined, as NumPy's int64 arithmetic in the reference kernels.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <immintrin.h>

namespace fxq {

typedef int64_t i64;
typedef __int128 i128;

enum Rounding { TRN, TRN_ZERO, RND, RND_MIN_INF, RND_ZERO, RND_INF, RND_CONV };
enum Overflow { WRAP, SAT, SAT_ZERO, SAT_SYM };

template <int W, bool S> constexpr i64 raw_min() { return S ? (i64)(~uint64_t(0) << (W - 1)) : 0; }
template <int W, bool S> constexpr i64 raw_max() {
    return S ? (i64)((uint64_t(1) << (W - 1)) - 1) : (i64)((uint64_t(1) << W) - 1);
}
// the lowest value overflow mode O leaves in the type (SAT_SYM: the signed minimum is -max)
template <int O, int W, bool S> constexpr i64 lowest() {
    return (O == SAT_SYM && S) ? (raw_min<W, S>() | 1) : raw_min<W, S>();
}
// the range of v for which v * 2^K (K > 0) lies in [lo, hi]: [ceil(lo / 2^K), floor(hi / 2^K)]
template <int K> constexpr i64 shifted_below(i64 lo) { return (i64)(-((-(i128)lo) >> K)); }
template <int K> constexpr i64 shifted_above(i64 hi) { return hi >> K; }

// The conversions hold values in int64 (T = i64, every conversion) or, where the generator
// proved that every value involved fits (a weighted sum's epilogue: K >= 0, widths of at
// most 31 bits), in int32 (T = int32_t): the same results in lanes half as wide, and AVX2
// has no 64-bit arithmetic shift.

// t's overflow mode applied to a rounded integer r (i64 or int32_t)
template <int O, int W, bool S, typename T> inline auto overflow(T r) {
    using Out = std::conditional_t<sizeof(T) == 4, int32_t, i64>;
    using U = std::make_unsigned_t<Out>;
    constexpr int BITS = 8 * sizeof(Out);
    static_assert(W <= BITS, "a type wider than the values it is held in");
    constexpr i64 lo = raw_min<W, S>(), hi = raw_max<W, S>();
    if constexpr (O == WRAP) {
        if constexpr (S) {
            if constexpr (W == BITS) return (Out)r;
            else return (Out)((U)(Out)r << (BITS - W)) >> (BITS - W);
        } else {
            return (Out)((U)(Out)r & (U)hi);
        }
    } else if constexpr (O == SAT) {
        return (Out)(r < (T)lo ? (T)lo : r > (T)hi ? (T)hi : r);
    } else if constexpr (O == SAT_ZERO) {
        return (Out)((r < (T)lo || r > (T)hi) ? (T)0 : r);
    } else {
        constexpr i64 least = lowest<O, W, S>();        // SAT_SYM: the signed minimum is -max
        return (Out)(r < (T)least ? (T)least : r > (T)hi ? (T)hi : r);
    }
}

// v / 2^K (K > 0) rounded by mode R, in v's type (the result is smaller than v)
template <int K, int R, typename T> inline T shifted(T v) {
    const T floor = v >> K;
    if constexpr (R == TRN) {
        return floor;
    } else {
        const T rem = v & ((T(1) << K) - 1);
        constexpr T half = T(1) << (K - 1);
        bool inc;
        if constexpr (R == TRN_ZERO) inc = (v < 0) & (rem != 0);
        else if constexpr (R == RND) inc = rem >= half;
        else if constexpr (R == RND_MIN_INF) inc = rem > half;
        else if constexpr (R == RND_ZERO) inc = (rem > half) | ((rem == half) & (v < 0));
        else if constexpr (R == RND_INF) inc = (rem > half) | ((rem == half) & (v >= 0));
        else inc = (rem > half) | ((rem == half) & ((floor & 1) != 0));
        return floor + (T)inc;
    }
}

// v, an exact integer with K more fractional bits than the destination type (K < 0: fewer),
// converted to it: rounding mode R, overflow mode O, width W, signed S.
template <int K, int R, int O, int W, bool S, typename T = i64> inline T rq(T v) {
    static_assert(K < 63 && K > -63, "shifts of 63 bits or more run in NumPy");
    static_assert(sizeof(T) == 8 || (K >= 0 && K <= 30) || (O == WRAP && K > -32),
                  "int32 values shift right by less than 31, or left into a wrapping type");
    if constexpr (K == 0) {
        return overflow<O, W, S>(v);
    } else if constexpr (K < 0) {
        if constexpr (O == WRAP) {        // (int32: modulo 2^32, which the wrap to W keeps)
            return overflow<O, W, S>((T)((std::make_unsigned_t<T>)v << -K));
        } else {
            // v * 2^-K against the range, compared before the shift (v > floor(hi / 2^-K)
            // exactly when v * 2^-K > hi; below, ceil), so only a value in range, whose
            // shift is exact, is shifted: no 128-bit arithmetic, and the lanes vectorize
            constexpr i64 hi = raw_max<W, S>(), lo = lowest<O, W, S>();
            constexpr i64 above = shifted_above<-K>(hi), below = shifted_below<-K>(lo);
            constexpr i64 high = O == SAT_ZERO ? 0 : hi, low = O == SAT_ZERO ? 0 : lo;
            return v > above ? high : v < below ? low : (i64)((uint64_t)v << -K);
        }
    } else {
        return overflow<O, W, S>(shifted<K, R>(v));
    }
}

// The sides of a type's range whose overflows the range check counts for a tensor
// (QuantizedGraph.counted_sides): the generated code declares them per node as SIDES.
constexpr int BELOW = 1, ABOVE = 2;

// 1 when the rounded value of v (as in rq) lies outside the type on a side of SIDES, i.e.
// when its overflow mode changes it (SAT_SYM: also the signed minimum itself); else 0.
// What the range check counts.
template <int K, int R, int O, int W, bool S, int SIDES, typename T = i64>
inline T outside(T v) {
    constexpr i64 hi = raw_max<W, S>();
    constexpr i64 lo = lowest<O, W, S>();
    if constexpr (SIDES == 0) {
        return 0;
    } else if constexpr (K == 0) {
        return (T)(((SIDES & BELOW) && v < (T)lo) | ((SIDES & ABOVE) && v > (T)hi));
    } else if constexpr (K < 0) {                    // v * 2^-K outside [lo, hi], exactly
        constexpr i64 below = shifted_below<-K>(lo), above = shifted_above<-K>(hi);
        return (T)(((SIDES & BELOW) && v < below) | ((SIDES & ABOVE) && v > above));
    } else {                                         // rounded, no overflow mode, compared
        const T r = shifted<K, R>(v);
        return (T)(((SIDES & BELOW) && r < (T)lo) | ((SIDES & ABOVE) && r > (T)hi));
    }
}

// rq, adding to `count` 1 when the overflow mode changed the value on a side of SIDES
template <int K, int R, int O, int W, bool S, int SIDES, typename T = i64>
inline T rqn(T v, int32_t& count) {
    count += (int32_t)outside<K, R, O, W, S, SIDES, T>(v);
    return rq<K, R, O, W, S, T>(v);
}

// a value known at generation time, adding to `count` 1 when the type could not hold it on a
// side of SIDES (flags 0 or 1: below its range, above it)
template <int SIDES> inline i64 counted(i64 value, int32_t& count, i64 below, i64 above) {
    count += (int32_t)(((SIDES & BELOW) ? below : 0) + ((SIDES & ABOVE) ? above : 0));
    return value;
}

// 2^(64 n) as a double, n >= 0 (exact while representable)
template <int N> constexpr double pow2() {
    if constexpr (N == 0) return 1.0;
    else return 18446744073709551616.0 * pow2<N - 1>();
}

// x * 2^F rounded by mode R to an integer, as a double (exact: below 2^62), as ap_fixed's
// double constructor rounds (fxq.fixed.quantize); 1 when x is finite and x * 2^F below
// 2^62, else 0 (f is then 0: the caller then quantizes in NumPy, which refuses or handles
// those). Flags are i64 and increments doubles, so a loop of these vectorizes (1-byte bools
// would set its lane count).
template <int F, int R> inline i64 rounded(double x, double& f) {
    // x * 2^F: exactly ldexp(x, F) (a product by a power of two, rounded only where the
    // result is subnormal, as ldexp's), without its call
    constexpr double scale = F >= 0 ? double(uint64_t(1) << (F % 64)) * pow2<F / 64>()
                                    : 1.0 / (double(uint64_t(1) << (-F % 64)) * pow2<-F / 64>());
    const double scaled = x * scale;
    const i64 valid = std::fabs(scaled) < 0x1p62;
    const double s = valid ? scaled : 0.0;
    f = std::floor(s);
    if constexpr (R != TRN) {
        const double rem = s - f;                     // exact, in [0, 1)
        const bool neg = f < 0;
        bool inc;
        if constexpr (R == TRN_ZERO) inc = neg & (rem != 0);
        else if constexpr (R == RND) inc = rem >= 0.5;
        else if constexpr (R == RND_MIN_INF) inc = rem > 0.5;
        else if constexpr (R == RND_ZERO) inc = (rem > 0.5) | ((rem == 0.5) & neg);
        else if constexpr (R == RND_INF) inc = (rem > 0.5) | ((rem == 0.5) & !neg);
        else inc = (rem > 0.5) | ((rem == 0.5) & (((i64)f & 1) != 0));
        f += inc ? 1.0 : 0.0;
    }
    return valid;
}

// quantize x to the type (fxq.fixed.quantize), adding to `count` 1 when the overflow mode
// changed the value on a side of SIDES; 1 when x could be quantized here, 0 when the caller
// must (rounded)
template <int F, int R, int O, int W, bool S, int SIDES> inline i64 quantizen(double x, i64& out,
                                                                              i64& count) {
    constexpr i64 hi = raw_max<W, S>();
    constexpr i64 lo = lowest<O, W, S>();
    double f;
    const i64 ok = rounded<F, R>(x, f);
    i64 r;
    if constexpr (O != WRAP && W <= 48) {
        // a saturating type reads only whether the value is below, inside or above its
        // range: clamped to one past each end, the integer is below 2^49 in magnitude and
        // converts exactly by the 1.5 * 2^52 trick (its bits, less the constant's: AVX2
        // has no double -> int64 conversion, and this way the loop vectorizes)
        const double c = std::min(std::max(f, double(lo - 1)), double(hi + 1)) + 0x1.8p52;
        r = std::bit_cast<i64>(c) - std::bit_cast<i64>(0x1.8p52);
    } else {
        r = (i64)f;                              // rounded, unchanged
    }
    count += ok & (((SIDES & BELOW) && r < lo) | ((SIDES & ABOVE) && r > hi));
    out = overflow<O, W, S>(r);                  // the type's value
    return ok;
}

// quantizen for a float32 x and a saturating type of at most 24 bits with F >= 0, in
// float32 lanes (twice as many per vector as double's): x * 2^F is exact in float32 (a
// product by a power of two >= 1; an overflow to infinity is >= 2^62, as in double), and
// every later step is exact there too, so the value, the overflow flag and the validity are
// quantizen's: floor, the remainder's compares (made as compares of s, below), the
// increment (an integer below 2^24 stays exact; one at or beyond it, past the range either
// way, is clamped to one past the range), the clamp's bounds (integers below 2^24) and the
// conversion to int32 of the clamped value.
template <int F, int R, int O, int W, bool S, int SIDES>
inline int32_t quantizen32(float x, int32_t& out, int32_t& count) {
    static_assert(F >= 0 && F <= 62 && W <= 24 && O != WRAP, "quantizen's double path");
    constexpr int32_t hi = (int32_t)raw_max<W, S>();
    constexpr int32_t lo = (int32_t)lowest<O, W, S>();
    constexpr float scale = (float)(uint64_t(1) << F);
    const float scaled = x * scale;
    const int32_t valid = std::fabs(scaled) < 0x1p62f;
    const float s = valid ? scaled : 0.0f;
    float f = std::floor(s);
    if constexpr (R != TRN) {
        // the remainder s - f against 1/2, as s against f + 1/2: float32's s - f is not
        // exact (-0.49999997 + 1), f + 1/2 is below 2^23; from 2^23 on s is an integer
        const bool small = std::fabs(s) < 0x1p23f, neg = f < 0;
        const bool above = small & (s > f + 0.5f), tie = small & (s == f + 0.5f);
        bool inc;
        if constexpr (R == TRN_ZERO) inc = neg & (s != f);
        else if constexpr (R == RND) inc = above | tie;
        else if constexpr (R == RND_MIN_INF) inc = above;
        else if constexpr (R == RND_ZERO) inc = above | (tie & neg);
        else if constexpr (R == RND_INF) inc = above | (tie & !neg);
        else inc = above | (tie & (f - 2.0f * std::floor(f * 0.5f) != 0));
        f += inc ? 1.0f : 0.0f;
    }
    const int32_t r = (int32_t)std::min(std::max(f, float(lo - 1)), float(hi + 1));
    count += valid & (((SIDES & BELOW) && r < lo) | ((SIDES & ABOVE) && r > hi));
    out = overflow<O, W, S>(r);
    return valid;
}

// dst[c * ds + r] = src[r * ss + c] for r < rows, c < cols: a block's values moved between
// sample by sample (the caller's arrays) and sample-minor (the arena), 8 x 8 at a time
// with AVX2 (unpacks and lane permutes), the edges element by element
#if defined(__AVX2__)
inline void transpose8(const int32_t* src, int ss, int32_t* dst, int ds) {
    __m256i r[8], t[8], u[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_si256((const __m256i*)(src + i * ss));
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);      // per 128-bit half: the pairs
        t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);  // of rows i, i+1, by column
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);      // columns 0 | 4 of four rows
        u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);  // 1 | 5
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);   // 2 | 6
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);   // 3 | 7
    }
    for (int c = 0; c < 4; ++c) {
        _mm256_storeu_si256((__m256i*)(dst + c * ds), _mm256_permute2x128_si256(u[c], u[c + 4], 0x20));
        _mm256_storeu_si256((__m256i*)(dst + (c + 4) * ds),
                            _mm256_permute2x128_si256(u[c], u[c + 4], 0x31));
    }
}
#endif

inline void transpose(const int32_t* src, int ss, int32_t* dst, int ds, int rows, int cols) {
    int r0 = 0;
#if defined(__AVX2__)
    for (; r0 + 8 <= rows; r0 += 8) {
        int c0 = 0;
        for (; c0 + 8 <= cols; c0 += 8) transpose8(src + r0 * ss + c0, ss, dst + c0 * ds + r0, ds);
        for (; c0 < cols; ++c0)
            for (int r = r0; r < r0 + 8; ++r) dst[c0 * ds + r] = src[r * ss + c0];
    }
#endif
    for (; r0 < rows; ++r0)
        for (int c = 0; c < cols; ++c) dst[c * ds + r0] = src[r0 * ss + c];
}

}  // namespace fxq
