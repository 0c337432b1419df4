/* The loops of tinyautograd/kernels.py: layer norm, GELU, softmax along rows and Adam's update,
 * each the formula of the op it serves (functional.LayerNorm, ops.Gelu, tinyformer's Attention,
 * optim.Adam.update), in float32, in one to three passes over its arrays (Adam's in one).
 *
 * Compiled with -O3 -march=native: the compiler turns each loop marked `omp simd` into vector
 * code (8 floats at a time with AVX2), sums included, without -ffast-math. -ffp-contract=off
 * keeps a * b + c as two roundings, as numpy computes it (Adam's update is then the same to the
 * bit as the numpy form's); the exponential's polynomial fuses its multiply-adds by hand.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* e^v as Cephes' expf: 2^k e^r, k = round(v / ln 2), e^r by a polynomial of degree 7, 2^k built
 * from its exponent bits. Relative error below 3e-7 on [-87, 88]; e^88 above, and exactly 0
 * below -87 (numpy's expf gives subnormal numbers down to -104 and 0 past them), -inf included:
 * a key that attention's mask blocks (at -inf) must weigh 0, not e^-87 = 1.6e-38, which a value
 * of 1e38 would turn into an answer. The multiply-adds are fused (fmaf) by hand: half the roundings,
 * and half the latency of a chain that is the loop's whole length. */
INLINE float exp_f32(float x)
{
    float v = x < -87.0f ? -87.0f : x;     /* within range, so that 2^k is a normal number */
    v = v > 88.0f ? 88.0f : v;
    float k = floorf(fmaf(v, 1.4426950408889634f, 0.5f));           /* round(v / ln 2) */
    float r = fmaf(k, 2.12194440e-4f, fmaf(k, -0.693359375f, v));   /* v - k ln 2, in two parts */
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r + 1.0f);                                   /* e^r */
    int32_t bits = ((int32_t)k + 127) << 23;
    float two_to_k;
    memcpy(&two_to_k, &bits, sizeof bits);
    return x < -87.0f ? 0.0f : p * two_to_k;         /* a select: the loops stay vectors */
}

void exp_array(int64_t n, const float *x, float *out)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
        out[i] = exp_f32(x[i]);
}

/* ------------------------------------------------------------------------------------------
 * layer norm over rows of n: functional.LayerNorm's formulas */

/* 1 / sqrt(var + eps) of a row of n centred values c whose sum of squares overflowed (|c| from
 * 1.8e19 on): functional._inverse_rms's scaling by the largest |c|, m, under which nothing
 * overflows, 1 / (m sqrt(mean((c/m)^2) + eps/m^2)). A row holding inf keeps 1/sqrt(inf) = 0. */
static float rescaled_rstd(int64_t n, const float *c, float eps)
{
    float m = 0.0f;
#pragma omp simd reduction(max:m)
    for (int64_t j = 0; j < n; j++) {
        float a = fabsf(c[j]);
        m = a > m ? a : m;
    }
    if (isinf(m))
        return 0.0f;
    float sum = 0.0f;
#pragma omp simd reduction(+:sum)
    for (int64_t j = 0; j < n; j++) {
        float v = c[j] / m;
        sum += v * v;
    }
    return 1.0f / (m * sqrtf(sum / n + eps / m / m));
}

void layer_norm_forward(int64_t rows, int64_t n, const float *x, const float *weight,
                        const float *bias, float eps, float *y, float *x_hat, float *rstd)
{
    /* Three sweeps over the rows (means, variances, then x_hat and y), not one: a row's sums
     * are chains of dependent additions, and short sweeps let the processor work on several
     * rows' chains at once. 17 us against 33 for (384, 128). rstd holds each row's mean, then
     * its sum of squared deviations (n times its variance), then 1 / sqrt(var + eps). x_hat
     * NULL: y alone (no gradient wanted), x_hat's steps done in y, which its last line
     * overwrites. */
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float sum = 0.0f;
#pragma omp simd reduction(+:sum)
        for (int64_t j = 0; j < n; j++)
            sum += xr[j];
        rstd[r] = sum / n;
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *hr = (x_hat ? x_hat : y) + r * n;
        float mean = rstd[r], var = 0.0f;
#pragma omp simd reduction(+:var)
        for (int64_t j = 0; j < n; j++) {
            float c = xr[j] - mean;
            hr[j] = c;
            var += c * c;
        }
        rstd[r] = var;
    }
    for (int64_t r = 0; r < rows; r++) {
        float *hr = (x_hat ? x_hat : y) + r * n, *yr = y + r * n;
        float s = isinf(rstd[r]) ? rescaled_rstd(n, hr, eps)      /* the squares overflowed */
                                 : 1.0f / sqrtf(rstd[r] / n + eps);
        rstd[r] = s;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) {
            float h = hr[j] * s;
            hr[j] = h;
            yr[j] = h * weight[j] + bias[j];
        }
    }
}

void layer_norm_backward(int64_t rows, int64_t n, const float *grad, const float *x_hat,
                         const float *rstd, const float *weight, float *d_x, float *d_weight,
                         float *d_bias)
{
    memset(d_weight, 0, n * sizeof(float));
    memset(d_bias, 0, n * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        const float *gr = grad + r * n, *hr = x_hat + r * n;
        float *dr = d_x + r * n;
        float mean_d = 0.0f, mean_dh = 0.0f;       /* mean(dx_hat), mean(dx_hat * x_hat) */
#pragma omp simd reduction(+:mean_d, mean_dh)
        for (int64_t j = 0; j < n; j++) {
            float g = gr[j], h = hr[j], d = g * weight[j];
            d_weight[j] += g * h;
            d_bias[j] += g;
            mean_d += d;
            mean_dh += d * h;
        }
        mean_d /= n;
        mean_dh /= n;
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            dr[j] = (gr[j] * weight[j] - mean_d - hr[j] * mean_dh) * rstd[r];
    }
}

/* ------------------------------------------------------------------------------------------
 * GELU, ops.Gelu's factored form: e = e^(-2u) (-2u capped at 80), h = 1 / (1 + e),
 * y = x h, dy/dx = h (1 + 2 x du/dx h e); past the cap y and dy/dx are 0, as in ops.Gelu, and
 * above x = 10 dy/dx is 1 (there e is 0, and 2 x du/dx overflows from x = 1.2e13: inf * 0). */

#define GELU_C 0.7978845608028654f                    /* sqrt(2 / pi) */
#define GELU_A 0.044715f
#define GELU_TOP 10.0f                                /* ops._GELU_TOP */

INLINE float gelu_minus_2u(float v)
{
    return v * (-2.0f * GELU_C - 2.0f * GELU_A * GELU_C * v * v);
}

#define BLOCK 1024
const int64_t gelu_block = BLOCK;      /* for the tests: an input longer than a block */

void gelu(int64_t n, const float *x, float *y, float *slope)      /* slope NULL: y alone */
{
    /* Three loops a block of BLOCK numbers, -2u then e^(-2u) kept between them in `e`. As one
     * loop it took more than four times as long (697 us on 196,608 numbers, against 151 as
     * these three loops, and 232 as two): a long chain of dependent operations, and too many
     * live values for the registers. */
    float e[BLOCK];
    for (int64_t start = 0; start < n; start += BLOCK) {
        int64_t m = n - start < BLOCK ? n - start : BLOCK;
        const float *xb = x + start;
        float *yb = y + start, *sb = slope ? slope + start : NULL;
#pragma omp simd
        for (int64_t i = 0; i < m; i++) {
            float minus_2u = gelu_minus_2u(xb[i]);
            e[i] = minus_2u < 80.0f ? minus_2u : 80.0f;
        }
#pragma omp simd
        for (int64_t i = 0; i < m; i++)
            e[i] = exp_f32(e[i]);
        if (!sb) {
#pragma omp simd
            for (int64_t i = 0; i < m; i++) {
                float h = 1.0f / (1.0f + e[i]);
                yb[i] = gelu_minus_2u(xb[i]) > 80.0f ? 0.0f : xb[i] * h;   /* as below */
            }
            continue;
        }
#pragma omp simd
        for (int64_t i = 0; i < m; i++) {
            float v = xb[i], h = 1.0f / (1.0f + e[i]);
            int tail = gelu_minus_2u(v) > 80.0f;                 /* past the cap (loop 1) */
            float two_x_du_dx = v * (2.0f * GELU_C + 6.0f * GELU_A * GELU_C * v * v);
            float dy_dx = h * (1.0f + two_x_du_dx * h * e[i]);
            yb[i] = tail ? 0.0f : v * h;
            sb[i] = tail ? 0.0f : v > GELU_TOP ? 1.0f : dy_dx;
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * attention's softmax, rows of n in place: softmax(scores + added[row % added_rows]), where
 * `added` holds what attention adds to its scores: -inf where the mask blocks a key, plus the
 * bias, if any (0 where neither). Every row has a key not blocked (attention unblocks the rows
 * that block all of theirs, and zeroes their weights after): its largest score is finite.
 *
 * The exponentials in one loop over the whole array, not row by row: a row of the recipe's
 * context is 64 floats, 8 vectors, too short a loop for the processor to overlap the
 * exponential's long chain of dependent operations. 110 us against 152 for (1536, 64). */

void softmax_rows(int64_t rows, int64_t n, float *scores, const float *added,
                  int64_t added_rows)
{
    for (int64_t r = 0; r < rows; r++) {                 /* s = s + added - max(row) */
        float *s = scores + r * n;
        const float *add = added + (r % added_rows) * n;
        float top = -INFINITY;
#pragma omp simd reduction(max:top)
        for (int64_t j = 0; j < n; j++) {
            float v = s[j] + add[j];
            s[j] = v;
            top = v > top ? v : top;
        }
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            s[j] -= top;
    }
    int64_t size = rows * n;
#pragma omp simd
    for (int64_t i = 0; i < size; i++)                   /* e^s */
        scores[i] = exp_f32(scores[i]);
    for (int64_t r = 0; r < rows; r++) {                 /* / sum(row) */
        float *s = scores + r * n;
        float total = 0.0f;
#pragma omp simd reduction(+:total)
        for (int64_t j = 0; j < n; j++)
            total += s[j];
        float inverse = 1.0f / total;
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            s[j] *= inverse;
    }
}

/* d_s = (d_s - rowsum(dO * O)) * p * scale, in place, rows of n */
void softmax_rows_backward(int64_t rows, int64_t n, float *d_s, const float *p,
                           const float *row_sums, float scale)
{
    for (int64_t r = 0; r < rows; r++) {
        float *d = d_s + r * n;
        const float *pr = p + r * n;
        float subtract = row_sums[r];
#pragma omp simd
        for (int64_t j = 0; j < n; j++)
            d[j] = (d[j] - subtract) * pr[j] * scale;
    }
}

/* ------------------------------------------------------------------------------------------
 * Adam and AdamW: optim.Adam.update's operations in its order, one pass over a parameter
 * (decay = 1 for Adam, whose L2 decay is already in g) */

void adam(int64_t n, float *p, const float *g, float *m, float *v, float beta1,
          float one_minus_beta1, float beta2, float one_minus_beta2, float decay,
          float step_size, float bias2_sqrt, float eps)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float mi = m[i] * beta1 + g[i] * one_minus_beta1;
        float vi = v[i] * beta2 + g[i] * one_minus_beta2 * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - mi / (sqrtf(vi) / bias2_sqrt + eps) * step_size;
    }
}
