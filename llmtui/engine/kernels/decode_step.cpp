// One decoding step (one token) of a pre-norm Llama-style model in one call: for every layer,
// RMSNorm, the stacked q/k/v product, RoPE on queries and keys, the KV cache write, attention
// over the cache, the output product and residual, RMSNorm, gate/up, SiLU(gate) * up, down and
// residual. Torch runs about 140 small operations a layer for this; here they are loops over a
// few hundred floats in scratch memory the caller owns, so a step allocates nothing.
//
// Every operation is float32, as the torch path computes it (RoPE bit for bit; norms, dot
// products and softmax differ only in the order of additions), so probabilities stay within
// float rounding of float32 dequantized weights. Matrix products go through packed.cpp's
// llmtui_gemv (weights unpacked in registers). Built with packed.cpp into one library
// (native.py); llmtui/engine/model/decode_step.py calls it and decides when it applies.

#include <cmath>
#include <cstdint>
#include <cstring>

extern "C" int llmtui_gemv(int qtype, const float* x, int64_t M, int64_t K, const uint8_t* w, int64_t N, float* out,
                           int64_t ldo);

extern "C" {

constexpr int MAX_PARTS = 4;  // decode_step.py's MAX_PARTS

// A packed weight: stacked parts of one block type each (q, k, v may differ in a K-quant file).
struct LlmtuiMatrix {
    int32_t n_parts;
    int32_t qtype[MAX_PARTS];
    const uint8_t* data[MAX_PARTS];
    int64_t rows[MAX_PARTS];
    const float* bias;  // nullptr: none
};

struct LlmtuiLayer {
    LlmtuiMatrix qkv, o, gate_up, down;
    const float* attn_norm;
    const float* mlp_norm;
    int64_t window;  // sliding window (0: every cached key)
    float* k_cache;  // (n_kv_head, room, head_dim), written at `pos`
    float* v_cache;
};

struct LlmtuiDims {
    int64_t d_model, n_head, n_kv_head, head_dim, d_ff, rotary_dim, room;
    float eps, scale;
};

}  // extern "C"

namespace {

// sum a[i] * b[i] in 16 independent lanes (the compiler vectorizes them), then the lanes.
float dot(const float* a, const float* b, int64_t n) {
    float acc[16] = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; ++l) acc[l] += a[i + l] * b[i + l];
    for (; i < n; ++i) acc[0] += a[i] * b[i];
    float s = 0.0f;
    for (int l = 0; l < 16; ++l) s += acc[l];
    return s;
}

// out = x / sqrt(mean(x^2) + eps) * w (the mean of squares summed in double: one rounding less).
void rms_norm(const float* x, const float* w, int64_t n, float eps, float* out) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
    const float r = 1.0f / std::sqrt(static_cast<float>(ss / n) + eps);
    for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * r) * w[i];
}

int matvec(const LlmtuiMatrix& m, const float* x, int64_t K, float* out) {
    int64_t row = 0;
    for (int p = 0; p < m.n_parts; ++p) {
        const int rc = llmtui_gemv(m.qtype[p], x, 1, K, m.data[p], m.rows[p], out + row, 0);
        if (rc != 0) return rc;
        row += m.rows[p];
    }
    if (m.bias)
        for (int64_t i = 0; i < row; ++i) out[i] += m.bias[i];
    return 0;
}

// Rotate pairs (i, i + rd/2) of the first rd dims of one head, as transformer.apply_rope does:
// x * cos + rotate_half(x) * sin, two products then a sum (no FMA: -ffp-contract=off).
void rope(float* h, const float* cos, const float* sin, int64_t rd) {
    const int64_t half = rd / 2;
    float rot[512];  // rd <= 512: checked by the caller
    for (int64_t i = 0; i < half; ++i) rot[i] = -h[i + half];
    for (int64_t i = half; i < rd; ++i) rot[i] = h[i - half];
    for (int64_t i = 0; i < rd; ++i) h[i] = h[i] * cos[i] + rot[i] * sin[i];
}

// y (n_head, hd) = softmax(q k^T * scale) v over cached positions first..pos; scores: n_head * room floats.
void attend(const LlmtuiDims& d, const LlmtuiLayer& L, const float* q, int64_t first, int64_t pos, float* scores,
            float* y) {
    const int64_t hd = d.head_dim, n_rep = d.n_head / d.n_kv_head, n = pos + 1 - first;
#pragma omp parallel for schedule(static) if (n * d.n_head * hd > (1 << 17))
    for (int64_t h = 0; h < d.n_head; ++h) {
        const int64_t g = h / n_rep;
        const float* qh = q + h * hd;
        const float* keys = L.k_cache + (g * d.room + first) * hd;
        const float* values = L.v_cache + (g * d.room + first) * hd;
        float* s = scores + h * d.room;
        float top = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
            s[j] = dot(qh, keys + j * hd, hd) * d.scale;
            top = s[j] > top ? s[j] : top;
        }
        float total = 0.0f;
        for (int64_t j = 0; j < n; ++j) {
            s[j] = std::exp(s[j] - top);
            total += s[j];
        }
        float* yh = y + h * hd;
        std::memset(yh, 0, hd * sizeof(float));
        for (int64_t j = 0; j < n; ++j) {
            const float p = s[j] / total;
            const float* v = values + j * hd;
            for (int64_t i = 0; i < hd; ++i) yh[i] += p * v[i];
        }
    }
}

}  // namespace

extern "C" {

// Floats of scratch memory one step needs.
int64_t llmtui_decode_scratch(const LlmtuiDims* d) {
    return d->d_model + (d->n_head + 2 * d->n_kv_head) * d->head_dim + d->n_head * d->head_dim + 3 * d->d_ff +
           d->n_head * d->room;
}

// x (d_model): the residual stream of the token at position `pos`, updated in place through every
// layer; each layer's keys and values are written at `pos` of its cache. cos/sin (rotary_dim) are
// the position's angles, local_* those of sliding-window layers. 0 on success.
int llmtui_decode_step(const LlmtuiDims* dims, const LlmtuiLayer* layers, int64_t n_layer, float* x, const float* cos,
                       const float* sin, const float* local_cos, const float* local_sin, int64_t pos, float* scratch) {
    const LlmtuiDims& d = *dims;
    const int64_t D = d.d_model, hd = d.head_dim, nq = d.n_head, nkv = d.n_kv_head;
    if (d.rotary_dim > 512 || d.rotary_dim > hd || nq % nkv || pos >= d.room) return -3;
    float* h = scratch;                    // D: the normed stream
    float* qkv = h + D;                    // (nq + 2 nkv) hd
    float* y = qkv + (nq + 2 * nkv) * hd;  // nq hd: attention's output
    float* gu = y + nq * hd;               // 2 d_ff: gate then up
    float* act = gu + 2 * d.d_ff;          // d_ff
    float* scores = act + d.d_ff;          // nq room
    for (int64_t l = 0; l < n_layer; ++l) {
        const LlmtuiLayer& L = layers[l];
        const float* c = L.window ? local_cos : cos;
        const float* s = L.window ? local_sin : sin;
        rms_norm(x, L.attn_norm, D, d.eps, h);
        int rc = matvec(L.qkv, h, D, qkv);
        if (rc) return rc;
        for (int64_t i = 0; i < nq + nkv; ++i) rope(qkv + i * hd, c, s, d.rotary_dim);
        const float* k = qkv + nq * hd;
        const float* v = k + nkv * hd;
        for (int64_t g = 0; g < nkv; ++g) {
            std::memcpy(L.k_cache + (g * d.room + pos) * hd, k + g * hd, hd * sizeof(float));
            std::memcpy(L.v_cache + (g * d.room + pos) * hd, v + g * hd, hd * sizeof(float));
        }
        const int64_t first = L.window && pos + 1 > L.window ? pos + 1 - L.window : 0;
        attend(d, L, qkv, first, pos, scores, y);
        if ((rc = matvec(L.o, y, nq * hd, h))) return rc;
        for (int64_t i = 0; i < D; ++i) x[i] += h[i];
        rms_norm(x, L.mlp_norm, D, d.eps, h);
        if ((rc = matvec(L.gate_up, h, D, gu))) return rc;
        for (int64_t i = 0; i < d.d_ff; ++i) {
            const float g = gu[i];
            act[i] = g / (1.0f + std::exp(-g)) * gu[d.d_ff + i];
        }
        if ((rc = matvec(L.down, act, d.d_ff, h))) return rc;
        for (int64_t i = 0; i < D; ++i) x[i] += h[i];
    }
    return 0;
}

}  // extern "C"
