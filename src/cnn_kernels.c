/* neardup — the non-GEMM kernels of the forward pass. Tensors are CNHW:
 * [C][N][H][W], so one channel of all N images is contiguous.
 *
 * The loops are written for the auto-vectoriser (unit-stride inner loops,
 * restrict pointers, no calls); the file is compiled at -O3 so that GCC
 * vectorises them at the project's -O2 (see the pragma). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include <math.h>
#include <string.h>

#include "cnn_impl.h"

static inline float act1(float x, int act)
{
	switch (act) {
	case NDM_ACT_RELU:
		return x > 0.0f ? x : 0.0f;
	case NDM_ACT_RELU6:
		return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
	case NDM_ACT_HARDSWISH: {
		float t = x + 3.0f;
		t = t < 0.0f ? 0.0f : (t > 6.0f ? 6.0f : t);
		return x * t * (1.0f / 6.0f);
	}
	case NDM_ACT_SILU:
		return x / (1.0f + expf(-x));
	default:
		return x;
	}
}

/* x: [len], in place */
void nd__cnn_act(float *restrict x, size_t len, int act)
{
	switch (act) {
	case NDM_ACT_NONE:
		return;
	case NDM_ACT_RELU:
		for (size_t i = 0; i < len; i++)
			x[i] = x[i] > 0.0f ? x[i] : 0.0f;
		return;
	case NDM_ACT_RELU6:
		for (size_t i = 0; i < len; i++) {
			float v = x[i] > 0.0f ? x[i] : 0.0f;
			x[i] = v < 6.0f ? v : 6.0f;
		}
		return;
	case NDM_ACT_HARDSWISH:
		for (size_t i = 0; i < len; i++) {
			float t = x[i] + 3.0f;
			t = t > 0.0f ? t : 0.0f;
			t = t < 6.0f ? t : 6.0f;
			x[i] = x[i] * t * (1.0f / 6.0f);
		}
		return;
	default:
		for (size_t i = 0; i < len; i++)
			x[i] = act1(x[i], act);
	}
}

/* x: [rows][cols] with row stride ld, x[r][:] += bias[r] (bias may be
 * NULL), then act */
void nd__cnn_bias_act(float *restrict x, size_t rows, size_t cols, size_t ld,
		      const float *restrict bias, int act)
{
	for (size_t r = 0; r < rows; r++) {
		float *row = x + r * ld;
		if (bias) {
			float b = bias[r];
			for (size_t i = 0; i < cols; i++)
				row[i] += b;
		}
		nd__cnn_act(row, cols, act);
	}
}

/* in: channel c of image j at in + c*cstride + j*h*w, [h][w];
 * col: [c][kh][kw] rows of nb*noy*ow floats: for each image j < nb, output
 * rows oy0 .. oy0+noy-1 (a band of the output, or all of it). */
void nd__cnn_im2col(const float *restrict in, int c, size_t cstride, int nb, int h, int w,
		    int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
		    int oy0, int noy, int ow, float *restrict col)
{
	size_t hw = (size_t)h * w, rowlen = (size_t)nb * noy * ow;
	if (sh == 1 && sw == 1 && dh == 1 && ow == w) {
		/* stride 1, output as wide as the input ('same' padding, the
		 * common 3x3 case): for each tap the band is one contiguous run
		 * of the input shifted by xoff, then its edge columns zeroed */
		for (int ci = 0; ci < c; ci++)
			for (int ki = 0; ki < kh; ki++)
				for (int kj = 0; kj < kw; kj++) {
					float *dst = col + ((size_t)(ci * kh + ki) * kw + kj) * rowlen;
					int xoff = kj * dw - pw;
					int y0 = ph - ki > oy0 ? ph - ki : oy0; /* first oy with iy >= 0 */
					int y1 = h + ph - ki < oy0 + noy ? h + ph - ki : oy0 + noy;
					if (y1 < y0)
						y1 = y0;
					for (int j = 0; j < nb; j++, dst += (size_t)noy * ow) {
						const float *src = in + ci * cstride + (size_t)j * hw;
						size_t a = (size_t)(y0 - oy0) * ow, b = (size_t)(y1 - oy0) * ow;
						for (size_t i = 0; i < a; i++)
							dst[i] = 0.0f;
						/* dst[i] = src[(y0 - ph + ki) * w + xoff + (i - a)] for
						 * i in [a, b), clipped to the plane */
						long s0 = (long)(y0 - ph + ki) * w + xoff;
						size_t lo = a, hi = b;
						if (s0 < 0)
							lo += (size_t)(-s0);
						if (s0 + (long)(b - a) > (long)hw)
							hi -= (size_t)(s0 + (long)(b - a) - (long)hw);
						for (size_t i = a; i < lo && i < b; i++)
							dst[i] = 0.0f;
						if (hi > lo)
							memcpy(dst + lo, src + s0 + (long)(lo - a), (hi - lo) * sizeof(float));
						for (size_t i = hi > lo ? hi : lo; i < b; i++)
							dst[i] = 0.0f;
						for (size_t i = b; i < (size_t)noy * ow; i++)
							dst[i] = 0.0f;
						/* columns whose input x = ox + xoff is outside [0, w) */
						if (xoff != 0)
							for (int oy = y0; oy < y1; oy++) {
								float *d = dst + (size_t)(oy - oy0) * ow;
								if (xoff < 0)
									for (int ox = 0; ox < -xoff && ox < ow; ox++)
										d[ox] = 0.0f;
								else
									for (int ox = ow - xoff > 0 ? ow - xoff : 0; ox < ow; ox++)
										d[ox] = 0.0f;
							}
					}
				}
		return;
	}
	for (int ci = 0; ci < c; ci++)
		for (int ki = 0; ki < kh; ki++)
			for (int kj = 0; kj < kw; kj++) {
				float *dst = col + ((size_t)(ci * kh + ki) * kw + kj) * rowlen;
				int xoff = kj * dw - pw;
				/* ox range with 0 <= ox*sw + xoff < w */
				int lo = xoff >= 0 ? 0 : (-xoff + sw - 1) / sw;
				int hi = w - 1 - xoff < 0 ? 0 : (w - 1 - xoff) / sw + 1;
				if (hi > ow)
					hi = ow;
				if (lo > hi)
					lo = hi;
				for (int j = 0; j < nb; j++) {
					const float *src = in + ci * cstride + (size_t)j * hw;
					for (int oy = oy0; oy < oy0 + noy; oy++, dst += ow) {
						int iy = oy * sh - ph + ki * dh;
						if (iy < 0 || iy >= h) {
							for (int ox = 0; ox < ow; ox++)
								dst[ox] = 0.0f;
							continue;
						}
						const float *s = src + (size_t)iy * w;
						for (int ox = 0; ox < lo; ox++)
							dst[ox] = 0.0f;
						if (sw == 1)
							for (int ox = lo; ox < hi; ox++)
								dst[ox] = s[ox + xoff];
						else if (sw == 2)
							for (int ox = lo; ox < hi; ox++)
								dst[ox] = s[2 * ox + xoff];
						else
							for (int ox = lo; ox < hi; ox++)
								dst[ox] = s[ox * sw + xoff];
						for (int ox = hi; ox < ow; ox++)
							dst[ox] = 0.0f;
					}
				}
			}
}

/* 8 floats as a GCC vector (AVX with -march=x86-64-v3, else SSE pairs):
 * unaligned loads and stores, and a load of 8 floats at stride 2 that reads
 * p[0..14] only (two overlapping loads, then the even elements). */
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));
/* macros, not functions: a function passing v8 by value has a different
 * ABI with and without AVX (-Wpsabi) */
#define ld8(p) (*(const v8u *)(const void *)(p))
#define st8(p, v) (*(v8u *)(void *)(p) = (v))
#if defined(__clang__)
#define ld8_even(p) __builtin_shufflevector(ld8(p), ld8((p) + 7), 0, 2, 4, 6, 9, 11, 13, 15)
#else
typedef int v8i __attribute__((vector_size(32)));
#define ld8_even(p) __builtin_shuffle(ld8(p), ld8((p) + 7), (v8i){ 0, 2, 4, 6, 9, 11, 13, 15 })
#endif

/* One output plane of a depthwise convolution on an input that is already
 * padded (hp x wp, zeros around), stride SW (1 and 2 are instantiated with
 * a constant): dst[oy][ox] = b + sum over taps wk[ki][kj] *
 * src[oy*sh + ki*dh][ox*SW + kj*dw]. Eight columns at a time with all taps
 * accumulated in registers (one store per output; the last chunk of a row
 * overlaps the one before), narrow planes and other strides one by one. */
static inline __attribute__((always_inline)) void
dw_plane(const float *restrict src, int wp, const float *restrict wk, float b, int kh, int kw,
	 int sh, const int SW, int dh, int dw, int oh, int ow, float *restrict dst)
{
	for (int oy = 0; oy < oh; oy++) {
		float *d = dst + (size_t)oy * ow;
		const float *rows = src + (size_t)oy * sh * wp;
		int ox = 0;
		for (; SW <= 2 && ow >= 8 && ox < ow; ox += 8) {
			if (ox + 8 > ow)
				ox = ow - 8;
			v8 acc = { b, b, b, b, b, b, b, b };
			for (int ki = 0; ki < kh; ki++) {
				const float *sp = rows + (size_t)ki * dh * wp + (size_t)ox * SW;
				for (int kj = 0; kj < kw; kj++) {
					float wv = wk[ki * kw + kj];
					v8 wvv = { wv, wv, wv, wv, wv, wv, wv, wv };
					acc += wvv * (SW == 1 ? ld8(sp + kj * dw) : ld8_even(sp + kj * dw));
				}
			}
			st8(d + ox, acc);
		}
		for (; ox < ow; ox++) {
			float acc = b;
			for (int ki = 0; ki < kh; ki++)
				for (int kj = 0; kj < kw; kj++)
					acc += wk[ki * kw + kj] *
					       rows[(size_t)ki * dh * wp + (size_t)ox * SW + (size_t)kj * dw];
			d[ox] = acc;
		}
	}
}

/* Floats of scratch nd__cnn_depthwise needs: one zero-padded input plane plus
 * slack for the last vector load. */
size_t nd__cnn_depthwise_scratch(int h, int w, int ph, int pw)
{
	return (size_t)(h + 2 * ph) * (size_t)(w + 2 * pw) + 16;
}

/* Depthwise (groups == ic, oc = ic * mult) convolution, direct.
 * in: [ic][n][h][w], wt: [oc][1][kh][kw], bias: [oc] or NULL,
 * out: [oc][n][oh][ow]. Output channel k reads input channel k / mult.
 * pad: nd__cnn_depthwise_scratch() floats for a zero-padded copy of an input
 * plane (not touched when ph = pw = 0). */
void nd__cnn_depthwise(const float *restrict in, int ic, int n, int h, int w,
		       const float *restrict wt, const float *restrict bias, int oc, int kh, int kw,
		       int sh, int sw, int ph, int pw, int dh, int dw, int oh, int ow,
		       int act, float *restrict pad, float *restrict out)
{
	int mult = oc / ic, wp = w + 2 * pw, hp = h + 2 * ph;
	size_t hw = (size_t)h * w, ohw = (size_t)oh * ow;
	if (ph || pw)
		memset(pad, 0, nd__cnn_depthwise_scratch(h, w, ph, pw) * sizeof(float));
	for (int ci = 0; ci < ic; ci++)
		for (int j = 0; j < n; j++) {
			const float *src = in + ((size_t)ci * n + j) * hw;
			if (ph || pw) { /* the border stays zero from the memset */
				for (int y = 0; y < h; y++)
					memcpy(pad + (size_t)(y + ph) * wp + pw, src + (size_t)y * w,
					       (size_t)w * sizeof(float));
				src = pad;
			}
			(void)hp;
			for (int m = 0; m < mult; m++) {
				int k = ci * mult + m;
				const float *wk = wt + (size_t)k * kh * kw;
				float b = bias ? bias[k] : 0.0f;
				float *dst = out + ((size_t)k * n + j) * ohw;
				if (sw == 1)
					dw_plane(src, wp, wk, b, kh, kw, sh, 1, dh, dw, oh, ow, dst);
				else if (sw == 2)
					dw_plane(src, wp, wk, b, kh, kw, sh, 2, dh, dw, oh, ow, dst);
				else
					dw_plane(src, wp, wk, b, kh, kw, sh, sw, dh, dw, oh, ow, dst);
				nd__cnn_act(dst, ohw, act);
			}
		}
}

/* Max or average pooling. in: [c][n][h][w], out: [c][n][oh][ow].
 * Padding counts as -inf for max; for average it counts in the divisor when
 * count_pad (PyTorch's count_include_pad), else only inside pixels do. */
void nd__cnn_pool(const float *restrict in, int c, int n, int h, int w, int kh, int kw,
		  int sh, int sw, int ph, int pw, int is_max, int count_pad,
		  int oh, int ow, float *restrict out)
{
	size_t hw = (size_t)h * w, ohw = (size_t)oh * ow;
	for (size_t p = 0; p < (size_t)c * n; p++) {
		const float *src = in + p * hw;
		float *dst = out + p * ohw;
		for (int oy = 0; oy < oh; oy++) {
			int y0 = oy * sh - ph, y1 = y0 + kh;
			int ya = y0 < 0 ? 0 : y0, yb = y1 > h ? h : y1;
			for (int ox = 0; ox < ow; ox++) {
				int x0 = ox * sw - pw, x1 = x0 + kw;
				int xa = x0 < 0 ? 0 : x0, xb = x1 > w ? w : x1;
				float acc = is_max ? -INFINITY : 0.0f;
				for (int y = ya; y < yb; y++)
					for (int x = xa; x < xb; x++) {
						float v = src[(size_t)y * w + x];
						if (is_max)
							acc = v > acc ? v : acc;
						else
							acc += v;
					}
				if (!is_max) {
					int cnt = count_pad ? kh * kw : (yb - ya) * (xb - xa);
					acc = cnt > 0 ? acc / (float)cnt : 0.0f;
				}
				dst[(size_t)oy * ow + ox] = acc;
			}
		}
	}
}

/* Global average pool. in: [c][n][hw], out: [c][n] */
void nd__cnn_gap(const float *restrict in, int c, int n, int hw, float *restrict out)
{
	for (size_t p = 0; p < (size_t)c * n; p++) {
		const float *s = in + p * (size_t)hw;
		float acc = 0.0f;
		for (int i = 0; i < hw; i++)
			acc += s[i];
		out[p] = acc / (float)hw;
	}
}

/* Generalised mean: (mean(max(x, eps)^p))^(1/p). in: [c][n][hw], out: [c][n] */
void nd__cnn_gem(const float *restrict in, int c, int n, int hw, float p, float eps,
		 float *restrict out)
{
	for (size_t q = 0; q < (size_t)c * n; q++) {
		const float *s = in + q * (size_t)hw;
		float acc = 0.0f;
		if (p == 3.0f) {
			for (int i = 0; i < hw; i++) {
				float v = s[i] > eps ? s[i] : eps;
				acc += v * v * v;
			}
			out[q] = cbrtf(acc / (float)hw);
		} else {
			for (int i = 0; i < hw; i++) {
				float v = s[i] > eps ? s[i] : eps;
				acc += powf(v, p);
			}
			out[q] = powf(acc / (float)hw, 1.0f / p);
		}
	}
}

/* Per-channel affine + act. in, out: [c][n][hw]; scale, shift: [c] */
void nd__cnn_affine(const float *restrict in, int c, int n, int hw, const float *restrict scale,
		    const float *restrict shift, int act, float *restrict out)
{
	size_t plane = (size_t)n * hw;
	for (int k = 0; k < c; k++) {
		const float *s = in + (size_t)k * plane;
		float *d = out + (size_t)k * plane;
		float a = scale[k], b = shift[k];
		for (size_t i = 0; i < plane; i++)
			d[i] = s[i] * a + b;
		nd__cnn_act(d, plane, act);
	}
}

/* out = act(a + b), all [len] */
void nd__cnn_add(const float *restrict a, const float *restrict b, size_t len, int act,
		 float *restrict out)
{
	for (size_t i = 0; i < len; i++)
		out[i] = a[i] + b[i];
	nd__cnn_act(out, len, act);
}

/* in: [c][n][hw] -> out: [c*hw][n] (feature c*hw + i of image j) */
void nd__cnn_flatten(const float *restrict in, int c, int n, int hw, float *restrict out)
{
	for (int k = 0; k < c; k++)
		for (int j = 0; j < n; j++) {
			const float *s = in + ((size_t)k * n + j) * hw;
			for (int i = 0; i < hw; i++)
				out[((size_t)k * hw + i) * n + j] = s[i];
		}
}

/* x / max(||x||, eps) per image. in, out: [d][n] */
void nd__cnn_l2norm(const float *restrict in, int d, int n, float eps, float *restrict out)
{
	for (int j = 0; j < n; j++) {
		double ss = 0.0;
		for (int i = 0; i < d; i++) {
			float v = in[(size_t)i * n + j];
			ss += (double)v * v;
		}
		double nrm = sqrt(ss);
		float inv = (float)(1.0 / (nrm > eps ? nrm : (double)eps));
		if (!(nrm > 0) && !(eps > 0))
			inv = 0.0f;
		for (int i = 0; i < d; i++)
			out[(size_t)i * n + j] = in[(size_t)i * n + j] * inv;
	}
}
