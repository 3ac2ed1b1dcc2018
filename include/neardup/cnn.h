/* neardup — the CNN embedding engine: model files (.ndm), their loader and
 * validator, and the forward pass on OpenBLAS.
 *
 *   nd_model *m; nd_workspace *ws; nd_error err;
 *   nd_model_load("models/neardup.ndm", &m, &err);          // once
 *   nd_workspace_create(m, 16, &ws, &err);                  // once per thread
 *   nd_model_forward(m, ws, in, n, out, &err);              // per batch
 *   nd_workspace_free(ws); nd_model_free(m);
 *
 * Layout: the input is n images, each a [3][H][W] float tensor normalised as
 * (pixel/255 - mean[c]) / std[c] (H, W, mean, std from nd_model_info); the
 * output is n embeddings of D floats, L2-normalised by the model itself.
 *
 * Threads: a loaded nd_model is read-only and may be shared by any number of
 * threads; each thread needs its own nd_workspace (all activation memory of
 * a forward pass lives there, sized at creation: no allocation per image).
 * OpenBLAS runs single-threaded (openblas_set_num_threads(1)): parallelism
 * comes from the caller's worker threads, one batch each. That keeps every
 * core busy without synchronisation per layer and avoids OpenBLAS's threads
 * fighting ours (small late layers do not split well across BLAS threads).
 *
 * OpenBLAS kernels: Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) chooses its
 * kernel set when it is loaded and does not recognise some AVX-512 CPUs (it
 * falls back to Prescott or Haswell kernels), although its SkylakeX sgemm is
 * faster on them (bench/results/cnn.md). OPENBLAS_CORETYPE is only read
 * while the core is chosen, so the set-up (src/blas.c) runs once
 * (pthread_once) at nd_cnn_init or at the first nd_workspace_create,
 * whichever comes first; nothing happens when the library is loaded:
 *  - if OpenBLAS is not in the process yet, it is dlopen()ed with
 *    OPENBLAS_CORETYPE=SkylakeX (and OPENBLAS_NUM_THREADS=1 if unset) set
 *    just around the call, when the CPU and OS support AVX-512 F/DQ/BW/VL
 *    and the user has not set OPENBLAS_CORETYPE;
 *  - if it is already loaded (a program linking -lopenblas, like neardup
 *    itself) and chose a pre-AVX-512 core, its core selection is re-run the
 *    same way through gotoblas_dynamic_quit()/gotoblas_dynamic_init(), the
 *    exported functions its own constructor uses.
 * The environment is restored afterwards; a user's OPENBLAS_CORETYPE always
 * wins; no re-exec. nd_cnn_blas_core() says which core is in use. The set-up
 * calls setenv, which is not thread-safe: make that first call (nd_cnn_init,
 * or the first nd_workspace_create) before the program starts threads. After
 * it, OpenBLAS is single-threaded for the whole process
 * (openblas_set_num_threads(1)); modules calling cblas_*
 * directly get the same kernels and the same single thread. */
#ifndef NEARDUP_CNN_H
#define NEARDUP_CNN_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nd_model nd_model;
typedef struct nd_workspace nd_workspace;

/* Limits the loader enforces on any model file (absurd sizes are refused). */
#define ND_MODEL_MAX_FILE (1ull << 31)   /* bytes */
#define ND_MODEL_MAX_LAYERS 4096
#define ND_MODEL_MAX_TENSORS 8192
#define ND_MODEL_MAX_INPUT_HW 2048
#define ND_MODEL_MAX_BATCH 4096

typedef struct nd_model_info {
	const char *name;       /* NUL-terminated, owned by the model, valid until nd_model_free */
	int input_w, input_h;   /* the input tensor is [3][input_h][input_w] */
	float mean[3], std[3];  /* normalisation, RGB order, on pixel/255 */
	int embed_dim;          /* D: floats per output embedding */
	uint64_t checksum;      /* XXH3-64 of the whole file (its trailer); the index stores it */
	int layer_count;
	double flops;           /* floating-point operations per image (2 per multiply-add) */
	size_t weight_bytes;    /* bytes of weight data */
	size_t background_count;/* vectors in the optional background set (0: none) */
} nd_model_info;

/* Reads and validates the model file at path. On success *out owns the
 * model (free with nd_model_free). On failure returns ND_EIO (cannot read),
 * ND_EFORMAT (bad magic), ND_EVERSION, ND_ECORRUPT (truncated, bad checksum,
 * inconsistent shapes), ND_ELIMIT (absurd sizes), ND_EUNSUPPORTED (a required
 * section or layer this build does not know) or ND_ENOMEM, and err->msg
 * names the file: "model 'PATH': truncated file (1234 of 5678 bytes)". */
int nd_model_load(const char *path, nd_model **out, nd_error *err);

/* The same from a memory buffer (copied; the caller keeps buf). label names
 * the source in error messages (may be NULL). */
int nd_model_load_mem(const void *buf, size_t len, const char *label,
		      nd_model **out, nd_error *err);

void nd_model_free(nd_model *m);

/* Fills *info. Strings stay valid until nd_model_free. */
void nd_model_get_info(const nd_model *m, nd_model_info *info);

/* The optional background set: count vectors of dim IEEE half floats
 * (little-endian bit patterns), row-major [count][dim], owned by the model
 * (valid until nd_model_free). Returns ND_ENOTFOUND when the file has none. */
int nd_model_background(const nd_model *m, const uint16_t **vecs,
			size_t *count, int *dim);

/* The calibration of the similarity stored with the background set (the
 * optional CALIB section, models/FORMAT.md): the statistic of an embedding x
 * is b(x) = the mean of the k highest cosines of x to the background vectors
 * (ND_CALIB_MEAN_TOPK) or the k-th highest (ND_CALIB_KTH); the calibrated
 * similarity of a and b is cos(a, b) - beta * (b(a) + b(b)) / 2 + offset.
 * src/calib.c (neardup/calib.h) computes both. */
enum nd_calib_stat { ND_CALIB_MEAN_TOPK = 1, ND_CALIB_KTH = 2 };
typedef struct nd_model_calib {
	int stat;               /* enum nd_calib_stat */
	int k;                  /* 1..background count */
	float beta, offset;
	/* score fusion with the perceptual hash (neardup/calib.h):
	 * + phash_weight * max(0, phash_bits - Hamming distance); 0: none */
	float phash_weight, phash_bits;
} nd_model_calib;

/* Fills *c; ND_ENOTFOUND (and *c zeroed) when the file has no calibration. */
int nd_model_calibration(const nd_model *m, nd_model_calib *c);

/* A per-thread workspace for batches of up to max_batch images (1..4096).
 * Internally a batch runs as micro-batches sized so that one layer's
 * activations stay in L2 (2 images at 128x128 for a 32-channel stem), and
 * the workspace holds one micro-batch: a large max_batch costs no memory.
 * Sets up OpenBLAS on first use (see above): ND_EUNSUPPORTED if it cannot. */
int nd_workspace_create(const nd_model *m, int max_batch, nd_workspace **out,
			nd_error *err);
void nd_workspace_free(nd_workspace *ws);

/* Bytes of activation memory the workspace holds. */
size_t nd_workspace_bytes(const nd_workspace *ws);

/* Runs the model on n images (1 <= n <= max_batch of ws).
 * in:  [n][3][H][W] float, normalised (see top of file)
 * out: [n][D] float, written by the call
 * ws must have been created for m and must not be used by another thread at
 * the same time. Allocates nothing. Returns ND_EINVAL on bad arguments. */
int nd_model_forward(const nd_model *m, nd_workspace *ws, const float *in,
		     int n, float *out, nd_error *err);

/* Sets OpenBLAS up now (see the top of this file): optional, as the first
 * nd_workspace_create does it too; call it before starting threads. 0, or
 * ND_EUNSUPPORTED with a message when no BLAS library can be loaded (then
 * every later call returns the same). */
int nd_cnn_init(nd_error *err);

/* The OpenBLAS core in use ("SkylakeX", "Haswell", ...), or "unknown" when
 * the BLAS library does not say, or NULL before OpenBLAS has been set up. */
const char *nd_cnn_blas_core(void);

#ifdef __cplusplus
}
#endif
#endif
