// The packed kernels on another CPU (built for it, run under qemu-user): reads the cases that
// benchmarks/cross_kernels.py wrote, runs llmtui_gemv (threads off and on) and llmtui_dequantize
// on each, and writes their outputs beside them for the script to compare with this machine's.
//
// A case file: int32 qtype, int64 M, K, N, then M*K float32 activations, then the N rows of blocks.

#include <cstdint>
#include <cstdio>
#include <vector>

extern "C" {
int llmtui_gemv(int qtype, const float* x, int64_t M, int64_t K, const uint8_t* w, int64_t N, float* out, int64_t ldo);
int llmtui_dequantize(int qtype, const uint8_t* w, int64_t K, const int64_t* rows, int64_t R, float* out);
}

static bool run(const char* in_path, const char* out_path) {
    FILE* in = std::fopen(in_path, "rb");
    if (!in) return false;
    int32_t qtype;
    int64_t M, K, N;
    bool ok = std::fread(&qtype, 4, 1, in) == 1 && std::fread(&M, 8, 1, in) == 1 && std::fread(&K, 8, 1, in) == 1 &&
              std::fread(&N, 8, 1, in) == 1;
    std::vector<float> x(M * K);
    ok = ok && std::fread(x.data(), 4, x.size(), in) == x.size();
    std::vector<uint8_t> w;
    uint8_t buffer[4096];
    size_t n;
    while (ok && (n = std::fread(buffer, 1, sizeof buffer, in)) > 0) w.insert(w.end(), buffer, buffer + n);
    std::fclose(in);
    if (!ok) return false;
    std::vector<float> product(M * N), weights(N * K);
    std::vector<int64_t> rows(N);
    for (int64_t r = 0; r < N; ++r) rows[r] = r;
    if (llmtui_gemv(qtype, x.data(), M, K, w.data(), N, product.data(), N) != 0) return false;
    if (llmtui_dequantize(qtype, w.data(), K, rows.data(), N, weights.data()) != 0) return false;
    FILE* out = std::fopen(out_path, "wb");
    if (!out) return false;
    std::fwrite(product.data(), 4, product.size(), out);
    std::fwrite(weights.data(), 4, weights.size(), out);
    std::fclose(out);
    return true;
}

int main(int argc, char** argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!run(argv[i], argv[i + 1])) {
            std::fprintf(stderr, "failed on %s\n", argv[i]);
            return 1;
        }
    }
    return 0;
}
