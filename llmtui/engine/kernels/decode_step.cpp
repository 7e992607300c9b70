// One decoding step (one token) of a pre-norm Llama-style model in one call: for every layer,
// RMSNorm, the stacked q/k/v product, RoPE on queries and keys, the KV cache write, attention
// over the cache, the output product and residual, RMSNorm, gate/up, SiLU(gate) * up, down and
// residual. Torch runs about 140 small operations a layer for this; here they are loops over a
// few hundred floats in scratch memory the caller owns, so a step allocates nothing.
//
// One OpenMP parallel region runs the whole token: each thread takes a fixed share of every
// product's rows (packed.cpp's llmtui_gemv_span) and of the attention heads, and the threads meet
// five times a layer (`meet`: spin, then sleep, the spin budget the caller's). A region per product
// (about 120 a token) woke the second thread through a futex each time under
// OMP_WAIT_POLICY=PASSIVE, which cost what it gained. The small
// serial parts need no barrier of their own: each thread norms the whole stream into its own
// buffer (a few hundred floats), adds its own rows of a product to the stream, ropes the heads it
// attends with, and reads the new position's key from that rope rather than from the cache, which
// the group's first head writes.
//
// Every operation is float32, as the torch path computes it (RoPE bit for bit; norms, dot
// products and softmax differ only in the order of additions), so probabilities stay within
// float rounding of float32 dequantized weights; the thread count changes no result (every row
// and head is computed by the same code, whoever runs it). Built with packed.cpp into one
// library (native.py); llmtui/engine/model/decode_step.py calls it and decides when it applies.

#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

extern "C" int llmtui_gemv_span(int qtype, const float* x, int64_t M, int64_t K, const uint8_t* w, int64_t begin,
                                int64_t end, float* out, int64_t ldo);

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

// Thread t's share [begin, end) of n items split among nt threads, cut at multiples of `grain`
// (16 rows: one thread's outputs never share a cache line with another's).
struct Span {
    int64_t begin, end;
};
Span share(int64_t n, int t, int nt, int64_t grain = 1) {
    const int64_t units = (n + grain - 1) / grain;
    const int64_t b = units * t / nt * grain, e = units * (t + 1) / nt * grain;
    return {b < n ? b : n, e < n ? e : n};
}

// Rows [lo, hi) of the stacked matrix m times x (K), on this thread: out[r] for r in [lo, hi).
void matvec_rows(const LlmtuiMatrix& m, const float* x, int64_t K, float* out, int64_t lo, int64_t hi) {
    int64_t first = 0;
    for (int p = 0; p < m.n_parts && first < hi; ++p) {
        const int64_t last = first + m.rows[p];
        const int64_t b = lo > first ? lo : first, e = hi < last ? hi : last;
        if (b < e) llmtui_gemv_span(m.qtype[p], x, 1, K, m.data[p], b - first, e - first, out + first, 0);
        first = last;
    }
    if (m.bias)
        for (int64_t i = lo; i < hi; ++i) out[i] += m.bias[i];
}

// Every part's block type is one the kernels know (checked once, before the threads start: a
// thread never leaves the region early, which would strand the others at a barrier).
bool known_types(const LlmtuiMatrix& m) {
    for (int p = 0; p < m.n_parts; ++p)
        if (llmtui_gemv_span(m.qtype[p], nullptr, 1, 0, nullptr, 0, 0, nullptr, 0) != 0) return false;
    return true;
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

// y (hd) = softmax(q k^T * scale) v for one query head over positions first..pos: keys and values
// before pos from the cache (its kv group's rows), the one at pos given (k_now, v_now). s: room floats.
void attend_head(const LlmtuiDims& d, const float* q, const float* keys, const float* values, const float* k_now,
                 const float* v_now, int64_t first, int64_t pos, float* s, float* y) {
    const int64_t hd = d.head_dim, n = pos + 1 - first;
    float top = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
        s[j] = dot(q, j + first == pos ? k_now : keys + j * hd, hd) * d.scale;
        top = s[j] > top ? s[j] : top;
    }
    float total = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
        s[j] = std::exp(s[j] - top);
        total += s[j];
    }
    std::memset(y, 0, hd * sizeof(float));
    for (int64_t j = 0; j < n; ++j) {
        const float p = s[j] / total;
        const float* v = j + first == pos ? v_now : values + j * hd;
        for (int64_t i = 0; i < hd; ++i) y[i] += p * v[i];
    }
}

// Where the threads meet between the parts of a step (five times a layer). A thread that
// arrives first spins for up to `spin_us` microseconds, then sleeps (a futex on Linux,
// yielding elsewhere) until the last one arrives. Spinning is what an idle machine wants
// (a meeting every ~50 microseconds; waking a sleeper costs about that much), sleeping what
// a busy one wants (a spinning thread takes the core its partner waits for); the caller
// picks the budget from the steps' timings (thread_tuner.py), which OMP_WAIT_POLICY, read
// once at start, cannot do.
struct Meeting {
    alignas(64) std::atomic<int> arrived{0};
    alignas(64) std::atomic<int> round{0};
    std::atomic<int> sleepers{0};
};

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

void sleep_while(std::atomic<int>& word, int value) {
#ifdef __linux__
    // returns at once if the word no longer holds value (the kernel compares): no lost wake-up
    syscall(SYS_futex, reinterpret_cast<int*>(&word), FUTEX_WAIT_PRIVATE, value, nullptr, nullptr, 0);
#else
    (void)word, (void)value;
    std::this_thread::yield();
#endif
}

void wake_all(std::atomic<int>& word) {
#ifdef __linux__
    syscall(SYS_futex, reinterpret_cast<int*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
    (void)word;
#endif
}

void meet(Meeting& m, int nt, int64_t spin_us) {
    if (nt == 1) return;
    const int round = m.round.load(std::memory_order_acquire);
    if (m.arrived.fetch_add(1, std::memory_order_acq_rel) == nt - 1) {  // the last to arrive lets all go
        m.arrived.store(0, std::memory_order_relaxed);
        m.round.store(round + 1, std::memory_order_seq_cst);
        if (m.sleepers.load(std::memory_order_seq_cst) > 0) wake_all(m.round);
        return;
    }
    if (spin_us > 0) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
        for (int i = 1;; ++i) {
            if (m.round.load(std::memory_order_acquire) != round) return;
            relax();
            if (i % 64 == 0 && std::chrono::steady_clock::now() > until) break;
        }
    }
    m.sleepers.fetch_add(1, std::memory_order_seq_cst);  // seen by the last arriver, or it sees the new round
    while (m.round.load(std::memory_order_seq_cst) == round) sleep_while(m.round, round);
    m.sleepers.fetch_sub(1, std::memory_order_seq_cst);
}

// Which thread of its parallel region the caller is, and how many there are (0 of 1 without OpenMP).
inline void this_thread(int& t, int& nt) {
#ifdef _OPENMP
    t = omp_get_thread_num();
    nt = omp_get_num_threads();
#else
    t = 0, nt = 1;
#endif
}

// Floats of scratch shared by the threads, and each thread's own.
int64_t shared_floats(const LlmtuiDims& d) {
    return d.d_model + (d.n_head + 2 * d.n_kv_head) * d.head_dim + d.n_head * d.head_dim + 3 * d.d_ff +
           d.n_head * d.room;
}
int64_t own_floats(const LlmtuiDims& d) { return d.d_model + 2 * d.head_dim; }

}  // namespace

extern "C" {

// Floats of scratch memory one step needs with up to `threads` threads.
int64_t llmtui_decode_scratch(const LlmtuiDims* d, int64_t threads) {
    return shared_floats(*d) + (threads > 1 ? threads : 1) * own_floats(*d);
}

// x (d_model): the residual stream of the token at position `pos`, updated in place through every
// layer; each layer's keys and values are written at `pos` of its cache. cos/sin (rotary_dim) are
// the position's angles, local_* those of sliding-window layers. final_norm (nullptr: none) is the
// model's last RMSNorm, written from the final stream into `normed` (D), ready for the unembedding.
// Runs on OpenMP's thread count
// (torch.set_num_threads), at most as many threads as the scratch (scratch_floats) has room for.
// 0 on success.
int llmtui_decode_step(const LlmtuiDims* dims, const LlmtuiLayer* layers, int64_t n_layer, float* x, const float* cos,
                       const float* sin, const float* local_cos, const float* local_sin, int64_t pos, const float* final_norm,
                       float* normed, float* scratch, int64_t scratch_floats, int64_t spin_us, int64_t threads_asked) {
    const LlmtuiDims& d = *dims;
    const int64_t D = d.d_model, hd = d.head_dim, nq = d.n_head, nkv = d.n_kv_head, ff = d.d_ff;
    if (d.rotary_dim > 512 || d.rotary_dim > hd || nq % nkv || pos >= d.room || pos < 0) return -3;
    for (int64_t l = 0; l < n_layer; ++l) {
        const LlmtuiLayer& L = layers[l];
        if (!known_types(L.qkv) || !known_types(L.o) || !known_types(L.gate_up) || !known_types(L.down)) return -2;
    }
    int64_t fit = (scratch_floats - shared_floats(d)) / own_floats(d);
    if (fit < 1) return -3;
    int64_t threads = threads_asked;  // the caller's choice (thread_tuner.py): no global thread count changes
    if (threads < 1) {
        threads = 1;
#ifdef _OPENMP
        threads = omp_get_max_threads();
#endif
    }
    threads = fit < threads ? fit : threads;
    float* out = scratch;                  // D: the o and down products, added to the stream row by row
    float* qkv = out + D;                  // (nq + 2 nkv) hd
    float* y = qkv + (nq + 2 * nkv) * hd;  // nq hd: attention's output
    float* gu = y + nq * hd;               // 2 d_ff: gate then up
    float* act = gu + 2 * ff;              // d_ff
    float* scores = act + ff;              // nq room
    float* own = scores + nq * d.room;     // per thread: D (the normed stream), hd (a query), hd (the new key)
    const int64_t n_rep = nq / nkv;
    Meeting meeting;
#pragma omp parallel num_threads(static_cast<int>(threads)) if (threads > 1)
    {
        int t = 0, nt = 1;
        this_thread(t, nt);
        float* h = own + t * own_floats(d);
        float* q_now = h + D;
        float* k_now = q_now + hd;
        const Span rows = share(D, t, nt, 16), heads = share(nq, t, nt), units = share(ff, t, nt, 16);
        for (int64_t l = 0; l < n_layer; ++l) {
            const LlmtuiLayer& L = layers[l];
            const float* c = L.window ? local_cos : cos;
            const float* s = L.window ? local_sin : sin;
            rms_norm(x, L.attn_norm, D, d.eps, h);  // every thread, into its own buffer
            const int64_t n_qkv = (nq + 2 * nkv) * hd;
            const Span qkv_rows = share(n_qkv, t, nt, 16);
            matvec_rows(L.qkv, h, D, qkv, qkv_rows.begin, qkv_rows.end);
            meet(meeting, nt, spin_us);
            const int64_t first = L.window && pos + 1 > L.window ? pos + 1 - L.window : 0;
            for (int64_t head = heads.begin; head < heads.end; ++head) {
                const int64_t g = head / n_rep;
                std::memcpy(q_now, qkv + head * hd, hd * sizeof(float));
                std::memcpy(k_now, qkv + (nq + g) * hd, hd * sizeof(float));
                rope(q_now, c, s, d.rotary_dim);
                rope(k_now, c, s, d.rotary_dim);
                const float* v_now = qkv + (nq + nkv + g) * hd;
                float* keys = L.k_cache + g * d.room * hd;
                float* values = L.v_cache + g * d.room * hd;
                if (head % n_rep == 0) {  // the group's first head (one thread) writes its cache row
                    std::memcpy(keys + pos * hd, k_now, hd * sizeof(float));
                    std::memcpy(values + pos * hd, v_now, hd * sizeof(float));
                }
                attend_head(d, q_now, keys + first * hd, values + first * hd, k_now, v_now, first, pos,
                            scores + head * d.room, y + head * hd);
            }
            meet(meeting, nt, spin_us);
            matvec_rows(L.o, y, nq * hd, out, rows.begin, rows.end);
            for (int64_t i = rows.begin; i < rows.end; ++i) x[i] += out[i];
            meet(meeting, nt, spin_us);
            rms_norm(x, L.mlp_norm, D, d.eps, h);
            // gate row i and up row i on one thread, which then has both halves of act[i]
            matvec_rows(L.gate_up, h, D, gu, units.begin, units.end);
            matvec_rows(L.gate_up, h, D, gu, ff + units.begin, ff + units.end);
            for (int64_t i = units.begin; i < units.end; ++i) {
                const float g = gu[i];
                act[i] = g / (1.0f + std::exp(-g)) * gu[ff + i];
            }
            meet(meeting, nt, spin_us);
            matvec_rows(L.down, act, ff, out, rows.begin, rows.end);
            for (int64_t i = rows.begin; i < rows.end; ++i) x[i] += out[i];
            meet(meeting, nt, spin_us);
        }
    }
    if (final_norm) rms_norm(x, final_norm, D, d.eps, normed);
    return 0;
}

// The unembedding of one vector (logits[n] = row n of w . x, n < N) on `threads` threads: the
// decoding step's own count, not OpenMP's (which torch's set_num_threads would have to change).
int llmtui_unembed(int qtype, const float* x, int64_t K, const uint8_t* w, int64_t N, float* out, int64_t threads) {
    int rc = llmtui_gemv_span(qtype, nullptr, 1, 0, nullptr, 0, 0, nullptr, 0);  // a known block type?
    if (rc != 0) return rc;
#pragma omp parallel num_threads(static_cast<int>(threads)) if (threads > 1)
    {
        int t = 0, nt = 1;
        this_thread(t, nt);
        const Span rows = share(N, t, nt, 16);
        llmtui_gemv_span(qtype, x, 1, K, w, rows.begin, rows.end, out, 0);
    }
    return 0;
}

}  // extern "C"
