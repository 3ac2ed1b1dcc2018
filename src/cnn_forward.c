/* neardup — workspaces and the forward pass. Convolutions go through
 * OpenBLAS sgemm (1x1 stride-1 directly on the activations, others through
 * im2col over a chunk of images); depthwise ones use a direct loop. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "cnn_impl.h"

/* im2col buffer cap per workspace (floats): bounds memory and keeps the
 * column matrix of a tile (several whole images, or a band of output rows
 * of one image) in L2 while sgemm packs it. It grows to one output row of
 * the widest layer if that is larger. */
#ifndef ND_CNN_COL_CAP
#define ND_CNN_COL_CAP (256 << 10) /* 1 MiB: with the packed panels, within a 2 MiB L2 */
#endif
#define COL_CAP ((size_t)ND_CNN_COL_CAP)

/* A batch runs as micro-batches whose largest activation fits in this
 * many bytes (measured on benchnet: 2 images of 512 KiB beat 16 at once). */
#ifndef ND_CNN_MICRO_BYTES
#define ND_CNN_MICRO_BYTES (1 << 20)
#endif
#define MICRO_BYTES ((size_t)ND_CNN_MICRO_BYTES)

int nd_cnn_init(nd_error *err)
{
	return nd__blas_init(err);
}

const char *nd_cnn_blas_core(void)
{
	return nd__blas_core();
}

int nd_workspace_create(const nd_model *m, int max_batch, nd_workspace **out, nd_error *err)
{
	nd_workspace *ws = NULL;
	size_t arena, col, bytes;
	int rc, micro;
	*out = NULL;
	if (!m || max_batch < 1 || max_batch > ND_MODEL_MAX_BATCH)
		return nd_error_set(err, ND_EINVAL, "workspace: batch size %d not in 1..%d", max_batch,
				    ND_MODEL_MAX_BATCH);
	rc = nd__blas_init(err);
	if (rc)
		return rc;
	/* batches run as micro-batches of as many images as keep the largest
	 * activation within MICRO_BYTES (a layer's input and output in L2);
	 * the arena holds one micro-batch */
	size_t mi = MICRO_BYTES / (m->act_max * sizeof(float) + 1);
	micro = mi < 1 ? 1 : mi > (size_t)max_batch ? max_batch : (int)mi;
	if (nd_mul_size(m->arena_per_image, (size_t)micro, &arena) ||
	    nd_mul_size(arena, sizeof(float), &bytes))
		return nd_error_set(err, ND_EOVERFLOW, "workspace: %d images of %zu floats", micro,
				    m->arena_per_image);
	if (arena > (size_t)0x7fffffff) /* BLAS dimensions are int */
		return nd_error_set(err, ND_ELIMIT, "workspace: %d images of %zu floats is too large",
				    micro, m->arena_per_image);
	/* the im2col buffer: COL_CAP floats, less when the model needs less,
	 * more when one output row of some layer needs more */
	col = 0;
	if (m->col_max) {
		size_t need;
		if (nd_mul_size(m->col_max, (size_t)micro, &need))
			need = SIZE_MAX;
		col = need < COL_CAP ? need : COL_CAP;
		if (col < m->col_row_max)
			col = m->col_row_max;
	}
	ws = calloc(1, sizeof *ws);
	if (!ws)
		return nd_error_set(err, ND_ENOMEM, "workspace: out of memory");
	ws->model = m;
	ws->max_batch = max_batch;
	ws->micro = micro;
	ws->col_cap = col;
	if (posix_memalign((void **)&ws->arena, 64, bytes ? bytes : 64) ||
	    (col && posix_memalign((void **)&ws->col, 64, col * sizeof(float))) ||
	    (m->dw_scratch && posix_memalign((void **)&ws->dw_pad, 64, m->dw_scratch * sizeof(float)))) {
		rc = nd_error_set(err, ND_ENOMEM, "workspace: out of memory for %zu bytes",
				  bytes + (col + m->dw_scratch) * sizeof(float));
		goto fail;
	}
	ws->bytes = bytes + (col + m->dw_scratch) * sizeof(float);
	*out = ws;
	return 0;
fail:
	nd_workspace_free(ws);
	return rc;
}

void nd_workspace_free(nd_workspace *ws)
{
	if (!ws)
		return;
	free(ws->arena);
	free(ws->col);
	free(ws->dw_pad);
	free(ws);
}

size_t nd_workspace_bytes(const nd_workspace *ws)
{
	return ws->bytes;
}

/* out [oc][n][oh][ow] = conv(in [ic][n][h][w]) for layer L, plus bias, act */
static void conv_forward(const nd_layer *L, nd_workspace *ws, const float *in, int n, float *out)
{
	const int *p = L->p;
	int oc = p[0], kh = p[1], kw = p[2], sh = p[3], sw = p[4], ph = p[5], pw = p[6];
	int dh = p[7], dw = p[8], g = p[9];
	int ic = L->ic, h = L->ih, w = L->iw, oh = L->h, ow = L->w_;
	int cg = ic / g, kg = oc / g, kk = kh * kw;
	size_t ohw = (size_t)oh * ow, hw = (size_t)h * w;

	if (cg == 1 && g > 1) {
		nd__cnn_depthwise(in, ic, n, h, w, L->w, L->b, oc, kh, kw, sh, sw, ph, pw, dh, dw, oh,
				  ow, L->act, ws->dw_pad, out);
		return;
	}
	if (!L->col_per_image) {
		/* 1x1, stride 1, no padding: a plain product on the activations,
		 * in column tiles whose input and output stay in L2; bias and
		 * activation applied to each tile while it is there */
		int ld = (int)((size_t)n * hw);
		size_t t = ws->col_cap / (size_t)(cg + kg);
		int tile = t < 512 ? 512 : (t > (size_t)ld ? ld : (int)(t & ~(size_t)15));
		for (int c0 = 0; c0 < ld; c0 += tile) {
			int cols = ld - c0 < tile ? ld - c0 : tile;
			for (int gi = 0; gi < g; gi++) {
				float *o = out + (size_t)gi * kg * ld + c0;
				nd__blas_sgemm(kg, cols, cg, 1.0f, L->w + (size_t)gi * kg * cg, cg,
					       in + (size_t)gi * cg * ld + c0, ld, 0.0f, o, ld);
				nd__cnn_bias_act(o, (size_t)kg, (size_t)cols, (size_t)ld,
						 L->b ? L->b + (size_t)gi * kg : NULL, L->act);
			}
		}
	} else {
		/* im2col over tiles of whole images, or of row bands of one image
		 * when an image's columns exceed the buffer; one sgemm per tile
		 * and group, written in place into out (ldc = n*oh*ow). */
		size_t per_img = (size_t)ic * kk * ohw, per_row = (size_t)ic * kk * ow;
		int ldc = (int)((size_t)n * ohw);
		ND_ASSERT(per_row <= ws->col_cap);
		int imgs = per_img <= ws->col_cap ? (int)(ws->col_cap / per_img) : 1;
		int rows = per_img <= ws->col_cap ? oh : (int)(ws->col_cap / per_row);
		for (int j0 = 0; j0 < n; j0 += imgs) {
			int nb = n - j0 < imgs ? n - j0 : imgs;
			for (int oy0 = 0; oy0 < oh; oy0 += rows) {
				int noy = oh - oy0 < rows ? oh - oy0 : rows;
				int cols = nb * noy * ow;
				nd__cnn_im2col(in + (size_t)j0 * hw, ic, (size_t)n * hw, nb, h, w, kh, kw,
					       sh, sw, ph, pw, dh, dw, oy0, noy, ow, ws->col);
				for (int gi = 0; gi < g; gi++) {
					float *o = out + (size_t)gi * kg * ldc + (size_t)j0 * ohw +
						   (size_t)oy0 * ow;
					nd__blas_sgemm(kg, cols, cg * kk, 1.0f,
						       L->w + (size_t)gi * kg * cg * kk, cg * kk,
						       ws->col + (size_t)gi * cg * kk * cols, cols, 0.0f, o,
						       ldc);
					nd__cnn_bias_act(o, (size_t)kg, (size_t)cols, (size_t)ldc,
							 L->b ? L->b + (size_t)gi * kg : NULL, L->act);
				}
			}
		}
	}
}

static inline double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The forward pass of n images at once (n <= ws->micro). */
static void forward_batch(const nd_model *m, nd_workspace *ws, const float *in, int n, float *out)
{
	float *arena = ws->arena;
	size_t hw = (size_t)m->in_h * m->in_w;

	/* [n][3][H][W] -> [3][n][H][W] */
	float *x0 = arena + m->input_off * (size_t)n;
	for (int c = 0; c < m->in_c; c++)
		for (int j = 0; j < n; j++)
			memcpy(x0 + ((size_t)c * n + j) * hw, in + ((size_t)j * m->in_c + c) * hw,
			       hw * sizeof(float));

	for (int i = 0; i < m->nlayers; i++) {
		const nd_layer *L = &m->layers[i];
		double t0 = ws->prof_ns ? now_ns() : 0;
		const float *a = arena + (L->in0 < 0 ? m->input_off : m->layers[L->in0].out_off) * (size_t)n;
		float *y = arena + L->out_off * (size_t)n;
		size_t ihw = (size_t)L->ih * L->iw, len = (size_t)L->c * n * L->h * L->w_;
		switch (L->op) {
		case NDM_OP_CONV:
			conv_forward(L, ws, a, n, y);
			break;
		case NDM_OP_LINEAR:
			/* y [out][n] = W [out][in] * a [in][n] */
			nd__blas_sgemm(L->c, n, L->ic, 1.0f, L->w, L->ic, a, n, 0.0f, y, n);
			nd__cnn_bias_act(y, (size_t)L->c, (size_t)n, (size_t)n, L->b, L->act);
			break;
		case NDM_OP_AFFINE:
			nd__cnn_affine(a, L->c, n, (int)ihw, L->w, L->b, L->act, y);
			break;
		case NDM_OP_ACT:
			memcpy(y, a, len * sizeof(float));
			nd__cnn_act(y, len, L->act);
			break;
		case NDM_OP_MAXPOOL:
		case NDM_OP_AVGPOOL:
			nd__cnn_pool(a, L->c, n, L->ih, L->iw, L->p[0], L->p[1], L->p[2], L->p[3], L->p[4],
				     L->p[5], L->op == NDM_OP_MAXPOOL, L->p[6], L->h, L->w_, y);
			nd__cnn_act(y, len, L->act);
			break;
		case NDM_OP_GAP:
			nd__cnn_gap(a, L->c, n, (int)ihw, y);
			nd__cnn_act(y, len, L->act);
			break;
		case NDM_OP_GEM:
			nd__cnn_gem(a, L->c, n, (int)ihw, L->f[0], L->f[1], y);
			nd__cnn_act(y, len, L->act);
			break;
		case NDM_OP_ADD: {
			const float *b = arena +
					 (L->in1 < 0 ? m->input_off : m->layers[L->in1].out_off) * (size_t)n;
			nd__cnn_add(a, b, len, L->act, y);
			break;
		}
		case NDM_OP_FLATTEN:
			nd__cnn_flatten(a, L->ic, n, (int)ihw, y);
			nd__cnn_act(y, len, L->act);
			break;
		case NDM_OP_L2NORM:
			nd__cnn_l2norm(a, L->c, n, L->f[0], y);
			nd__cnn_act(y, len, L->act);
			break;
		default:
			ND_ASSERT(!"unknown op after validation");
		}
		if (ws->prof_ns)
			ws->prof_ns[i] += now_ns() - t0;
	}

	/* [D][n] -> [n][D] */
	const float *e = arena + m->layers[m->output_layer].out_off * (size_t)n;
	int d = m->embed_dim;
	for (int j = 0; j < n; j++)
		for (int k = 0; k < d; k++)
			out[(size_t)j * d + k] = e[(size_t)k * n + j];
}

int nd_model_forward(const nd_model *m, nd_workspace *ws, const float *in, int n, float *out,
		     nd_error *err)
{
	if (!m || !ws || !in || !out)
		return nd_error_set(err, ND_EINVAL, "forward: NULL argument");
	if (ws->model != m)
		return nd_error_set(err, ND_EINVAL, "forward: workspace made for another model");
	if (n < 1 || n > ws->max_batch)
		return nd_error_set(err, ND_EINVAL, "forward: batch of %d images, workspace holds 1..%d",
				    n, ws->max_batch);
	/* in micro-batches whose activations stay in cache (see MICRO_BYTES) */
	size_t per_in = (size_t)m->in_c * m->in_h * m->in_w;
	for (int j = 0; j < n; j += ws->micro) {
		int nb = n - j < ws->micro ? n - j : ws->micro;
		forward_batch(m, ws, in + (size_t)j * per_in, nb, out + (size_t)j * m->embed_dim);
	}
	return 0;
}
