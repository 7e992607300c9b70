// Matrix-vector products with GGUF-packed weights, exactly as float32 dequantized weights give.
//
// Dequantizing (the unpack functions) uses the same float32 operations, in the same order, as
// gguf.quants.dequantize (numpy: one rounding per multiply and per add), so the values are
// bit-identical to the float32 tensors of the dequantizing loader. Compiled with
// -ffp-contract=off so the compiler never fuses an unpacking multiply and add into one FMA
// (which would round once, not twice). The products (the Dot types) never build the float
// weights: they multiply the blocks' integer codes by x and apply each block's scales once per
// sub-block, which changes only where float32 rounds, as a BLAS call's order does (the bound is
// argued above the Dot types); their accumulation uses an explicit FMA where the CPU has one.
//
// Plain C ABI, called through ctypes (llmtui/engine/kernels/native.py); OpenMP threads
// are torch's own (the same libgomp), so torch.set_num_threads applies.

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
#endif

namespace {

#if !defined(__F16C__)
float half_to_float(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
    if (exp == 0) {
        float f = static_cast<float>(mant) * 5.9604644775390625e-08f;  // mant * 2^-24, exact
        std::memcpy(&bits, &f, 4);
        bits |= sign;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}
#endif

float load_half(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
#if defined(__F16C__)
    return _cvtsh_ss(h);  // the same exact conversion, in one instruction
#else
    return half_to_float(h);
#endif
}
// --- vectors of 16 lanes -----------------------------------------------------------
// GCC/clang vector extensions: one register on AVX-512, two on AVX2, four on NEON, and
// plain loops elsewhere, from the same code.

typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));
typedef int8_t i8x16 __attribute__((vector_size(16)));

inline u8x16 load_u8(const uint8_t* p) { u8x16 v; std::memcpy(&v, p, 16); return v; }
inline i8x16 load_i8(const uint8_t* p) { i8x16 v; std::memcpy(&v, p, 16); return v; }
inline f32x16 load_f32(const float* p) { f32x16 v; std::memcpy(&v, p, 64); return v; }
// Bytes to 32-bit lanes: GCC scalarizes __builtin_convertvector of bytes, so x86 gets the instructions.
#if defined(__AVX512F__)
inline i32x16 widen(u8x16 v) { return reinterpret_cast<i32x16>(_mm512_cvtepu8_epi32(reinterpret_cast<__m128i>(v))); }
inline i32x16 widen(i8x16 v) { return reinterpret_cast<i32x16>(_mm512_cvtepi8_epi32(reinterpret_cast<__m128i>(v))); }
#elif defined(__AVX2__)
inline i32x16 join(__m256i lo, __m256i hi) {
    i32x16 r;
    std::memcpy(&r, &lo, 32);
    std::memcpy(reinterpret_cast<char*>(&r) + 32, &hi, 32);
    return r;
}
inline i32x16 widen(u8x16 v) {
    const __m128i b = reinterpret_cast<__m128i>(v);
    return join(_mm256_cvtepu8_epi32(b), _mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)));
}
inline i32x16 widen(i8x16 v) {
    const __m128i b = reinterpret_cast<__m128i>(v);
    return join(_mm256_cvtepi8_epi32(b), _mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
}
#else
inline i32x16 widen(u8x16 v) { return __builtin_convertvector(v, i32x16); }
inline i32x16 widen(i8x16 v) { return __builtin_convertvector(v, i32x16); }
#endif
inline f32x16 to_f32(i32x16 v) { return __builtin_convertvector(v, f32x16); }
// f in every lane (not f32x16{} + f: 0 + (-0) is +0, and the sign of a zero is part of the value). x86 gets
// the broadcast instruction: GCC 12 built the lanes one by one, which made Q4_1 products 4x slower.
inline f32x16 splat(float f) {
#if defined(__AVX512F__)
    return reinterpret_cast<f32x16>(_mm512_set1_ps(f));
#elif defined(__AVX__)
    const __m256 half = _mm256_set1_ps(f);
    f32x16 v;
    std::memcpy(&v, &half, 32);
    std::memcpy(reinterpret_cast<char*>(&v) + 32, &half, 32);
    return v;
#else
    f32x16 v;
    for (int l = 0; l < 16; ++l) v[l] = f;
    return v;
#endif
}

// acc + a * b, rounded once where the CPU has FMA (the unpacking never fuses: -ffp-contract=off).
inline f32x16 fma16(f32x16 a, f32x16 b, f32x16 acc) {
#if defined(__AVX512F__)
    return reinterpret_cast<f32x16>(_mm512_fmadd_ps(reinterpret_cast<__m512>(a), reinterpret_cast<__m512>(b),
                                                    reinterpret_cast<__m512>(acc)));
#elif defined(__FMA__) && defined(__AVX__)
    // Two 8-lane FMAs: GCC 12 turned the lane loop below into 16 scalar FMAs and shuffles on AVX2
    // (-march=haswell products ran at 1-2 G weights/s).
    // (__m256 may alias any type; memcpy of halves kept the vectors in memory.)
    const __m256* a2 = reinterpret_cast<const __m256*>(&a);
    const __m256* b2 = reinterpret_cast<const __m256*>(&b);
    const __m256* c2 = reinterpret_cast<const __m256*>(&acc);
    f32x16 r;
    __m256* r2 = reinterpret_cast<__m256*>(&r);
    r2[0] = _mm256_fmadd_ps(a2[0], b2[0], c2[0]);
    r2[1] = _mm256_fmadd_ps(a2[1], b2[1], c2[1]);
    return r;
#elif defined(__FMA__) || defined(__ARM_FEATURE_FMA)
    f32x16 r;
    for (int l = 0; l < 16; ++l) r[l] = __builtin_fmaf(a[l], b[l], acc[l]);
    return r;
#else
    return a * b + acc;
#endif
}

// --- one block to float32, as gguf.quants does: w[i] holds weights 16i..16i+15 -------------

struct Q4_0 {  // d (f16), 16 bytes of nibbles (low: weights 0-15, high: 16-31): w = d * (q - 8)
    static constexpr int size = 32, bytes = 18;
    static void unpack(const uint8_t* b, f32x16* w) {
        const f32x16 d = splat(load_half(b));
        const u8x16 q = load_u8(b + 2);
        w[0] = d * to_f32(widen(u8x16(q & 0x0f)) - 8);
        w[1] = d * to_f32(widen(u8x16(q >> 4)) - 8);
    }
};

struct Q4_1 {  // d, m (f16), 16 bytes of nibbles: w = d * q + m
    static constexpr int size = 32, bytes = 20;
    static void unpack(const uint8_t* b, f32x16* w) {
        const f32x16 d = splat(load_half(b)), m = splat(load_half(b + 2));
        const u8x16 q = load_u8(b + 4);
        w[0] = d * to_f32(widen(u8x16(q & 0x0f))) + m;
        w[1] = d * to_f32(widen(u8x16(q >> 4))) + m;
    }
};

struct Q8_0 {  // d (f16), 32 signed bytes: w = q * d
    static constexpr int size = 32, bytes = 34;
    static void unpack(const uint8_t* b, f32x16* w) {
        const f32x16 d = splat(load_half(b));
        w[0] = to_f32(widen(load_i8(b + 2))) * d;
        w[1] = to_f32(widen(load_i8(b + 18))) * d;
    }
};

struct Q4_K {  // d, dmin (f16), 12 bytes of 6-bit scales and mins, 128 bytes of nibbles
    static constexpr int size = 256, bytes = 144;
    static void unpack(const uint8_t* b, f32x16* w) {
        const float d = load_half(b), dmin = load_half(b + 2);
        const uint8_t* s = b + 4;
        const uint8_t* qs = b + 16;
        for (int j = 0; j < 8; ++j) {  // sub-blocks of 32: low nibbles of 32 bytes, then their high nibbles
            int sc, mn;
            if (j < 4) {
                sc = s[j] & 0x3f;
                mn = s[j + 4] & 0x3f;
            } else {
                sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 2) & 0x30);
                mn = (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30);
            }
            const f32x16 ds = splat(d * static_cast<float>(sc)), dm = splat(dmin * static_cast<float>(mn));
            const uint8_t* q = qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            for (int h = 0; h < 2; ++h) {
                const u8x16 nib = (load_u8(q + 16 * h) >> shift) & 0x0f;
                w[2 * j + h] = ds * to_f32(widen(nib)) - dm;
            }
        }
    }
};

struct Q6_K {  // 128 bytes of low nibbles, 64 of high bit pairs, 16 int8 scales, d (f16)
    static constexpr int size = 256, bytes = 210;
    static void unpack(const uint8_t* b, f32x16* w) {
        const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
        const float d = load_half(b + 208);
        for (int g = 0; g < 16; ++g) {  // weights 16g..16g+15 share scale g
            const int h = g / 8, r = (g % 8) * 16;  // half of the block, offset within it
            const u8x16 lo = (load_u8(b + 64 * h + r % 64) >> (4 * (r / 64))) & 0x0f;
            const u8x16 hi = (load_u8(b + 128 + 32 * h + r % 32) >> (2 * (r / 32))) & 0x03;
            const u8x16 q = lo | u8x16(hi << 4);
            w[g] = splat(d * static_cast<float>(sc[g])) * to_f32(widen(q) - 32);
        }
    }
};

// --- products: the codes times x, each block's scales applied once per sub-block ---------------
//
// A sub-block's weights are w_k = s * q_k + c (Q4_0: s = d, q = nibble - 8, c = 0; Q4_1: s = d,
// c = m; Q8_0: s = d; Q4_K: s = d * sc, c = -dmin * mn), so
// sum_k w_k x_k = s * sum_k q_k x_k + c * sum_k x_k. The codes are small integers, exact in float32,
// so the per-weight multiply and add of unpacking go; the sums of x over each run of 32 (for c)
// are made once per call and shared by all N rows.
// Why this keeps the float32 contract (products within 1e-5 of sum |x w|, tests/engine/test_packed.py):
// s * q_k is the exact weight (gguf.quants rounds it once: a relative 2^-24), each sum of exact
// values rounds like any float32 dot product, and the scaling adds one rounding per sub-block. The
// rounding errors scale with sum |s q x| + |c| sum |x| instead of sum |w x|: a few times more where
// the offset cancels part of s * q (codes spread around it), still far inside 1e-5 (about 2^-24
// times the square root of the number of terms, in practice).

typedef uint8_t u8x32 __attribute__((vector_size(32)));
typedef int8_t i8x32 __attribute__((vector_size(32)));

inline u8x32 load_u8x32(const uint8_t* p) { u8x32 v; std::memcpy(&v, p, 32); return v; }
inline f32x16 codes(u8x16 q) { return to_f32(widen(q)); }
inline f32x16 codes(i8x16 q) { return to_f32(widen(q)); }
inline f32x16 codes_at(const int8_t* q) { return codes(load_i8(reinterpret_cast<const uint8_t*>(q))); }
inline float lane_sum(f32x16 a) {
    float s = 0.0f;
    for (int l = 0; l < 16; ++l) s += a[l];
    return s;
}

// out[i] = x[32 i] + ... + x[32 i + 31], over the n floats of x (n a multiple of 32).
void sums_of_32(const float* x, int64_t n, float* out) {
    for (int64_t i = 0; i < n / 32; ++i) out[i] = lane_sum(load_f32(x + 32 * i) + load_f32(x + 32 * i + 16));
}

// Each Dot type adds one block's products with M rows of x (row m at x + m * K; xs, the sums of
// 32 of row m at xs + m * S) to acc[m] (two accumulators, to hide the FMA latency) and off[m].
template <int M, int slot>
inline void add_32(f32x16 lo, f32x16 hi, f32x16 s, const float* x, int64_t K, f32x16 (&acc)[M][2]) {
    for (int m = 0; m < M; ++m) {
        const float* xm = x + m * K;
        const f32x16 t = fma16(hi, load_f32(xm + 16), lo * load_f32(xm));
        acc[m][slot] = fma16(s, t, acc[m][slot]);
    }
}

struct Q4_0_dot {
    static constexpr int size = 32, bytes = 18;
    static constexpr bool needs_sums = false;
    template <int M, int slot>
    static void block(const uint8_t* b, const float* x, int64_t K, const float*, int64_t, f32x16 (&acc)[M][2],
                      float (&)[M]) {
        const u8x16 q = load_u8(b + 2);
        add_32<M, slot>(codes(i8x16(q & 0x0f) - 8), codes(i8x16(q >> 4) - 8), splat(load_half(b)), x, K, acc);
    }
};

struct Q4_1_dot {
    static constexpr int size = 32, bytes = 20;
    static constexpr bool needs_sums = true;
    template <int M, int slot>
    static void block(const uint8_t* b, const float* x, int64_t K, const float* xs, int64_t S, f32x16 (&acc)[M][2],
                      float (&off)[M]) {
        const u8x16 q = load_u8(b + 4);
        add_32<M, slot>(codes(u8x16(q & 0x0f)), codes(u8x16(q >> 4)), splat(load_half(b)), x, K, acc);
        const float m0 = load_half(b + 2);
        for (int m = 0; m < M; ++m) off[m] += m0 * xs[m * S];
    }
};

struct Q8_0_dot {
    static constexpr int size = 32, bytes = 34;
    static constexpr bool needs_sums = false;
    template <int M, int slot>
    static void block(const uint8_t* b, const float* x, int64_t K, const float*, int64_t, f32x16 (&acc)[M][2],
                      float (&)[M]) {
        add_32<M, slot>(codes(load_i8(b + 2)), codes(load_i8(b + 18)), splat(load_half(b)), x, K, acc);
    }
};

struct Q4_K_dot {
    static constexpr int size = 256, bytes = 144;
    static constexpr bool needs_sums = true;
    template <int M, int slot>
    static void block(const uint8_t* b, const float* x, int64_t K, const float* xs, int64_t S, f32x16 (&acc)[M][2],
                      float (&off)[M]) {
        const float d = load_half(b), dmin = load_half(b + 2);
        const uint8_t* s = b + 4;
        for (int p = 0; p < 4; ++p) {  // 32 bytes: their low nibbles are sub-block 2p, their high ones 2p + 1
            const u8x32 v = load_u8x32(b + 16 + 32 * p);
            const u8x32 nib[2] = {v & 0x0f, v >> 4};
            const auto sub_block = [&](auto half) {  // half: a constant, so acc[m][h] stays a register
                constexpr int h = decltype(half)::value;
                const int j = 2 * p + h;
                int sc, mn;
                if (j < 4) {
                    sc = s[j] & 0x3f;
                    mn = s[j + 4] & 0x3f;
                } else {
                    sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 2) & 0x30);
                    mn = (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30);
                }
                u8x16 lo, hi;
                std::memcpy(&lo, &nib[h], 16);
                std::memcpy(&hi, reinterpret_cast<const uint8_t*>(&nib[h]) + 16, 16);
                add_32<M, h>(codes(lo), codes(hi), splat(d * static_cast<float>(sc)), x + 32 * j, K, acc);
                const float dm = dmin * static_cast<float>(mn);
                for (int m = 0; m < M; ++m) off[m] -= dm * xs[m * S + j];
            };
            sub_block(std::integral_constant<int, 0>());
            sub_block(std::integral_constant<int, 1>());
        }
    }
};

// Q6_K's scale changes every 16 weights, so factoring saves little there: it multiplies float weights
// (bit-identical to gguf.quants') into x, and gains by assembling its 6-bit codes 32 at a time.
struct Q6_K_dot {
    static constexpr int size = 256, bytes = 210;
    static constexpr bool needs_sums = false;
    template <int M, int slot>
    static void block(const uint8_t* b, const float* x, int64_t K, const float*, int64_t, f32x16 (&acc)[M][2],
                      float (&)[M]) {
        const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
        alignas(32) int8_t q[256];  // the codes minus 32, assembled 32 at a time
        for (int h = 0; h < 2; ++h)
            for (int r = 0; r < 4; ++r) {  // weights 128h + 32r + i: low nibble and high bit pair
                const u8x32 lo = (load_u8x32(b + 64 * h + 32 * (r % 2)) >> (4 * (r / 2))) & 0x0f;
                const u8x32 hi = (load_u8x32(b + 128 + 32 * h) >> (2 * r)) & 0x03;
                const i8x32 c = i8x32(lo | u8x32(hi << 4)) - 32;
                std::memcpy(q + 128 * h + 32 * r, &c, 32);
            }
        // The weights themselves, d * sc rounded then times the code (as gguf.quants), shared by the M rows:
        // accumulating into acc directly keeps every vector in registers on AVX2 too.
        const float d = load_half(b + 208);
        for (int g = 0; g < 16; g += 2) {
            const f32x16 w0 = splat(d * static_cast<float>(sc[g])) * codes_at(q + 16 * g);
            const f32x16 w1 = splat(d * static_cast<float>(sc[g + 1])) * codes_at(q + 16 * g + 16);
            for (int m = 0; m < M; ++m) {
                acc[m][0] = fma16(w0, load_f32(x + m * K + 16 * g), acc[m][0]);
                acc[m][1] = fma16(w1, load_f32(x + m * K + 16 * g + 16), acc[m][1]);
            }
        }
    }
};

// out[m * ldo] = sum_k row[k] * x[m * K + k] for m < M: one weight row against M inputs (xs: the sums of
// 32 of each input, where the block type needs them). M is a template parameter so the partial sums
// live in registers. Every product goes through here, whoever splits the rows.
template <typename B, int M>
inline void gemv_row(const float* x, int64_t K, const float* xs, const uint8_t* row, float* out, int64_t ldo) {
    const int64_t nb = K / B::size, S = K / 32;
    f32x16 acc[M][2] = {};
    float off[M] = {};
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {  // blocks in pairs, each with its own accumulators (a constant index)
        B::template block<M, 0>(row + b * B::bytes, x + b * B::size, K, xs + b * (B::size / 32), S, acc, off);
        B::template block<M, 1>(row + (b + 1) * B::bytes, x + (b + 1) * B::size, K, xs + (b + 1) * (B::size / 32),
                                S, acc, off);
    }
    if (b < nb) B::template block<M, 0>(row + b * B::bytes, x + b * B::size, K, xs + b * (B::size / 32), S, acc, off);
    for (int m = 0; m < M; ++m) out[m * ldo] = lane_sum(acc[m][0] + acc[m][1]) + off[m];
}

// out[m * ldo + n] = sum_k W[n, k] * x[m * K + k] for m < M, begin <= n < end: in a parallel region
// of its own (own_region), else on the calling thread alone (a thread of the caller's region, which
// split the rows: decode_step.cpp).
template <typename B, int M>
void gemv(const float* x, int64_t K, const float* xs, const uint8_t* w, int64_t begin, int64_t end, float* out,
          int64_t ldo, bool own_region) {
    const int64_t row_bytes = K / B::size * B::bytes;
    if (own_region) {
#pragma omp parallel for schedule(static)
        for (int64_t n = begin; n < end; ++n) gemv_row<B, M>(x, K, xs, w + n * row_bytes, out + n, ldo);
    } else {
        for (int64_t n = begin; n < end; ++n) gemv_row<B, M>(x, K, xs, w + n * row_bytes, out + n, ldo);
    }
}

// The sums of 32 of x (on the stack, or the heap for long rows), then the product. A caller splitting
// rows among its threads has each thread make its own sums: K floats, nothing next to the rows' work.
template <typename B, int M>
void gemv_with_sums(const float* x, int64_t K, const uint8_t* w, int64_t begin, int64_t end, float* out,
                    int64_t ldo, bool own_region) {
    float sums[M * 512];  // K up to 16384 here; longer rows go to the heap
    std::vector<float> heap;
    float* xs = sums;
    if (B::needs_sums) {
        if (M * K / 32 > M * 512) {
            heap.resize(M * K / 32);
            xs = heap.data();
        }
        sums_of_32(x, M * K, xs);
    }
    gemv<B, M>(x, K, xs, w, begin, end, out, ldo, own_region);
}

template <typename B>
int gemv_rows(const float* x, int64_t M, int64_t K, const uint8_t* w, int64_t begin, int64_t end, float* out,
              int64_t ldo, bool own_region) {
    switch (M) {
        case 1: gemv_with_sums<B, 1>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 2: gemv_with_sums<B, 2>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 3: gemv_with_sums<B, 3>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 4: gemv_with_sums<B, 4>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 5: gemv_with_sums<B, 5>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 6: gemv_with_sums<B, 6>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 7: gemv_with_sums<B, 7>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 8: gemv_with_sums<B, 8>(x, K, w, begin, end, out, ldo, own_region); return 0;
        default: return -1;  // more rows: the caller unpacks and uses BLAS
    }
}

template <typename B>
int gemv_rows(const float* x, int64_t M, int64_t K, const uint8_t* w, int64_t N, float* out, int64_t ldo) {
    return gemv_rows<B>(x, M, K, w, 0, N, out, ldo, true);
}

// out[r, :] = W[rows[r], :] dequantized (rows == nullptr: every row, in order).
template <typename B>
void dequantize(const uint8_t* w, int64_t K, const int64_t* rows, int64_t R, float* out) {
    const int64_t nb = K / B::size, row_bytes = nb * B::bytes;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
        const uint8_t* row = w + (rows ? rows[r] : r) * row_bytes;
        for (int64_t b = 0; b < nb; ++b) {
            f32x16 v[B::size / 16];
            B::unpack(row + b * B::bytes, v);
            std::memcpy(out + r * K + b * B::size, v, sizeof v);
        }
    }
}

// GGML type numbers (gguf.GGMLQuantizationType).
enum : int { T_Q4_0 = 2, T_Q4_1 = 3, T_Q8_0 = 8, T_Q4_K = 12, T_Q6_K = 14 };

}  // namespace

extern "C" {

int llmtui_gemv(int qtype, const float* x, int64_t M, int64_t K, const uint8_t* w, int64_t N, float* out,
                int64_t ldo) {
    switch (qtype) {
        case T_Q4_0: return gemv_rows<Q4_0_dot>(x, M, K, w, N, out, ldo);
        case T_Q4_1: return gemv_rows<Q4_1_dot>(x, M, K, w, N, out, ldo);
        case T_Q8_0: return gemv_rows<Q8_0_dot>(x, M, K, w, N, out, ldo);
        case T_Q4_K: return gemv_rows<Q4_K_dot>(x, M, K, w, N, out, ldo);
        case T_Q6_K: return gemv_rows<Q6_K_dot>(x, M, K, w, N, out, ldo);
        default: return -2;
    }
}

// Rows [begin, end) of llmtui_gemv's product, on the calling thread only (no parallel region): for
// a caller that runs its own region and splits the rows among its threads.
int llmtui_gemv_span(int qtype, const float* x, int64_t M, int64_t K, const uint8_t* w, int64_t begin, int64_t end,
                     float* out, int64_t ldo) {
    switch (qtype) {
        case T_Q4_0: return gemv_rows<Q4_0_dot>(x, M, K, w, begin, end, out, ldo, false);
        case T_Q4_1: return gemv_rows<Q4_1_dot>(x, M, K, w, begin, end, out, ldo, false);
        case T_Q8_0: return gemv_rows<Q8_0_dot>(x, M, K, w, begin, end, out, ldo, false);
        case T_Q4_K: return gemv_rows<Q4_K_dot>(x, M, K, w, begin, end, out, ldo, false);
        case T_Q6_K: return gemv_rows<Q6_K_dot>(x, M, K, w, begin, end, out, ldo, false);
        default: return -2;
    }
}

int llmtui_dequantize(int qtype, const uint8_t* w, int64_t K, const int64_t* rows, int64_t R, float* out) {
    switch (qtype) {
        case T_Q4_0: dequantize<Q4_0>(w, K, rows, R, out); return 0;
        case T_Q4_1: dequantize<Q4_1>(w, K, rows, R, out); return 0;
        case T_Q8_0: dequantize<Q8_0>(w, K, rows, R, out); return 0;
        case T_Q4_K: dequantize<Q4_K>(w, K, rows, R, out); return 0;
        case T_Q6_K: dequantize<Q6_K>(w, K, rows, R, out); return 0;
        default: return -2;
    }
}

}  // extern "C"
