/* neardup CLI — file -> hash -> decode -> prep -> batched forward. */
#include "embed.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "cli.h"

int embedder_init(struct embedder *e, const nd_model *m, int batch, nd_error *err)
{
	memset(e, 0, sizeof(*e));
	e->model = m;
	e->cap = batch;
	nd_model_get_info(m, &e->info);
	e->prep.width = e->info.input_w;
	e->prep.height = e->info.input_h;
	memcpy(e->prep.mean, e->info.mean, sizeof(e->prep.mean));
	memcpy(e->prep.std, e->info.std, sizeof(e->prep.std));
	nd_image_opts_init(&e->iopts);
	e->iopts.min_width = e->info.input_w;
	e->iopts.min_height = e->info.input_h;
	size_t per_in = (size_t)3 * e->info.input_w * e->info.input_h, nin, nout;
	if (nd_mul_size(per_in, (size_t)batch, &nin) || nd_mul_size(nin, sizeof(float), &nin) ||
	    nd_mul_size((size_t)e->info.embed_dim * sizeof(float), (size_t)batch, &nout))
		return nd_error_set(err, ND_EOVERFLOW, "batch too large");
	int rc = nd_workspace_create(m, batch, &e->ws, err);
	if (rc)
		goto fail;
	e->scratch = malloc(nd_prep_scratch_size(&e->prep));
	e->in = malloc(nin);
	e->out = malloc(nout);
	if (!e->scratch || !e->in || !e->out) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for a batch of %d images", batch);
		goto fail;
	}
	return 0;
fail:
	embedder_free(e);
	return rc;
}

void embedder_free(struct embedder *e)
{
	nd_workspace_free(e->ws);
	free(e->scratch);
	free(e->in);
	free(e->out);
	memset(e, 0, sizeof(*e));
}

int file_read(const char *path, int nofollow, struct file_data *fd, nd_error *err)
{
	memset(fd, 0, sizeof(*fd));
	/* O_NONBLOCK: a FIFO swapped in since the walk must not block us */
	int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
	if (f < 0) {
		if (errno == ELOOP && nofollow)
			return nd_error_set(err, ND_EIO, "is a symbolic link now");
		return nd_error_set(err, ND_EIO, "%s", strerror(errno));
	}
	int rc = 0;
	if (fstat(f, &fd->st) != 0) {
		rc = nd_error_set(err, ND_EIO, "%s", strerror(errno));
		goto done;
	}
	if (S_ISDIR(fd->st.st_mode)) {
		rc = nd_error_set(err, ND_EINVAL, "is a directory");
		goto done;
	}
	if (!S_ISREG(fd->st.st_mode)) {
		rc = nd_error_set(err, ND_EINVAL, "not a regular file");
		goto done;
	}
	if ((uint64_t)fd->st.st_size > CLI_MAX_FILE_BYTES) {
		rc = nd_error_set(err, ND_ELIMIT, "file too large (%lld bytes, limit %zu MiB)",
				  (long long)fd->st.st_size, CLI_MAX_FILE_BYTES >> 20);
		goto done;
	}
	size_t cap = (size_t)fd->st.st_size + 1; /* +1: notice growth while reading */
	fd->data = malloc(cap);
	if (!fd->data) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory reading %zu bytes", cap);
		goto done;
	}
	size_t got = 0;
	while (got < cap) {
		ssize_t r = read(f, fd->data + got, cap - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = nd_error_set(err, ND_EIO, "%s", strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got != (size_t)fd->st.st_size) {
		rc = nd_error_set(err, ND_EIO, "file changed while being read");
		goto done;
	}
	fd->len = got;
	XXH128_canonical_t canon;
	XXH128_canonicalFromHash(&canon, XXH3_128bits(fd->data, fd->len));
	memcpy(fd->hash, canon.digest, 16);
done:
	close(f);
	if (rc)
		file_data_free(fd);
	return rc;
}

void file_data_free(struct file_data *fd)
{
	free(fd->data);
	fd->data = NULL;
	fd->len = 0;
}

int embedder_add(struct embedder *e, const void *data, size_t len, uint32_t *w, uint32_t *h,
		 nd_error *err)
{
	ND_ASSERT(e->n < e->cap);
	nd_image img = { 0 };
	nd_image_info ii;
	int rc = nd_image_decode_mem(data, len, &e->iopts, &img, &ii, err);
	if (rc)
		return rc;
	size_t per = (size_t)3 * e->prep.width * e->prep.height;
	rc = nd_prep_image(&img, &e->prep, e->in + per * (size_t)e->n, e->scratch, err);
	if (rc == 0) {
		int swap = ii.orientation >= 5 && ii.orientation <= 8;
		*w = (uint32_t)(swap ? ii.height : ii.width);
		*h = (uint32_t)(swap ? ii.width : ii.height);
		e->n++;
	}
	nd_image_free(&img);
	return rc;
}

int embedder_run(struct embedder *e, nd_error *err)
{
	if (e->n == 0)
		return 0;
	return nd_model_forward(e->model, e->ws, e->in, e->n, e->out, err);
}
