// Matrix-vector products with GGUF-packed weights, exactly as float32 dequantized weights give.
//
// Each weight is unpacked with the same float32 operations, in the same order, as
// gguf.quants.dequantize (numpy: one rounding per multiply and per add), so the
// values are bit-identical to the float32 tensors of the dequantizing loader. Only the
// order of the dot product's additions differs from a BLAS call: results agree within
// float rounding. Compiled with -ffp-contract=off so the compiler never fuses an
// unpacking multiply and add into one FMA (which would round once, not twice); the dot
// product's accumulation uses an explicit FMA where the CPU has one.
//
// Plain C ABI, called through ctypes (llmtui/engine/kernels/native.py); OpenMP threads
// are torch's own (the same libgomp), so torch.set_num_threads applies.

#include <cstdint>
#include <cstring>
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

// out[m * ldo] = sum_k row[k] * x[m * K + k] for m < M: one weight row against M inputs. M is a
// template parameter so the partial sums (two per input) live in registers. Every product goes
// through here, whoever splits the rows.
template <typename B, int M>
inline void gemv_row(const float* x, int64_t K, const uint8_t* row, float* out, int64_t ldo) {
    constexpr int V = B::size / 16;
    const int64_t nb = K / B::size;
    f32x16 acc[M][2] = {};
    f32x16 v[V];
    for (int64_t b = 0; b < nb; ++b) {
        B::unpack(row + b * B::bytes, v);
        for (int m = 0; m < M; ++m) {
            const float* xb = x + m * K + b * B::size;
            for (int i = 0; i < V; ++i) acc[m][i % 2] = fma16(v[i], load_f32(xb + 16 * i), acc[m][i % 2]);
        }
    }
    for (int m = 0; m < M; ++m) {
        const f32x16 a = acc[m][0] + acc[m][1];
        float s = 0.0f;
        for (int l = 0; l < 16; ++l) s += a[l];
        out[m * ldo] = s;
    }
}

// out[m * ldo + n] = sum_k W[n, k] * x[m * K + k] for m < M, begin <= n < end: in a parallel region
// of its own (own_region), else on the calling thread alone (a thread of the caller's region, which
// split the rows: decode_step.cpp).
template <typename B, int M>
void gemv(const float* x, int64_t K, const uint8_t* w, int64_t begin, int64_t end, float* out, int64_t ldo,
          bool own_region) {
    const int64_t row_bytes = K / B::size * B::bytes;
    if (own_region) {
#pragma omp parallel for schedule(static)
        for (int64_t n = begin; n < end; ++n) gemv_row<B, M>(x, K, w + n * row_bytes, out + n, ldo);
    } else {
        for (int64_t n = begin; n < end; ++n) gemv_row<B, M>(x, K, w + n * row_bytes, out + n, ldo);
    }
}

template <typename B>
int gemv_rows(const float* x, int64_t M, int64_t K, const uint8_t* w, int64_t begin, int64_t end, float* out,
              int64_t ldo, bool own_region) {
    switch (M) {
        case 1: gemv<B, 1>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 2: gemv<B, 2>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 3: gemv<B, 3>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 4: gemv<B, 4>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 5: gemv<B, 5>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 6: gemv<B, 6>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 7: gemv<B, 7>(x, K, w, begin, end, out, ldo, own_region); return 0;
        case 8: gemv<B, 8>(x, K, w, begin, end, out, ldo, own_region); return 0;
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
        case T_Q4_0: return gemv_rows<Q4_0>(x, M, K, w, N, out, ldo);
        case T_Q4_1: return gemv_rows<Q4_1>(x, M, K, w, N, out, ldo);
        case T_Q8_0: return gemv_rows<Q8_0>(x, M, K, w, N, out, ldo);
        case T_Q4_K: return gemv_rows<Q4_K>(x, M, K, w, N, out, ldo);
        case T_Q6_K: return gemv_rows<Q6_K>(x, M, K, w, N, out, ldo);
        default: return -2;
    }
}

// Rows [begin, end) of llmtui_gemv's product, on the calling thread only (no parallel region): for
// a caller that runs its own region and splits the rows among its threads.
int llmtui_gemv_span(int qtype, const float* x, int64_t M, int64_t K, const uint8_t* w, int64_t begin, int64_t end,
                     float* out, int64_t ldo) {
    switch (qtype) {
        case T_Q4_0: return gemv_rows<Q4_0>(x, M, K, w, begin, end, out, ldo, false);
        case T_Q4_1: return gemv_rows<Q4_1>(x, M, K, w, begin, end, out, ldo, false);
        case T_Q8_0: return gemv_rows<Q8_0>(x, M, K, w, begin, end, out, ldo, false);
        case T_Q4_K: return gemv_rows<Q4_K>(x, M, K, w, begin, end, out, ldo, false);
        case T_Q6_K: return gemv_rows<Q6_K>(x, M, K, w, begin, end, out, ldo, false);
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
