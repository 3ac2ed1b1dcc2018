/* neardup — adding and removing images: the batched write transactions. */
#include "index_impl.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Removes one image inside a write transaction (pcur, hcur: cursors on the
 * postings and phash databases). Images added earlier in the
 * same batch (id >= batch_first) have no postings yet: they are flagged in
 * dead[id - batch_first] instead. *gone is set when id existed. */
static int remove_one(nd_index *ix, MDB_txn *txn, MDB_cursor *pcur, MDB_cursor *hcur, uint32_t id,
		      nd_meta *m, uint32_t batch_first, uint8_t *dead, float *fbuf, uint32_t *sig,
		      int *gone, nd_error *err)
{
	nd_record r;
	nd_vec_view vv;
	uint8_t pkey[ND_PATH_KEY_MAX], hash[16];
	size_t pklen;
	int rc, mrc;
	*gone = 0;
	rc = nd__index_get_record(ix, txn, id, &r, err);
	if (rc == ND_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	pklen = nd_path_key(r.path, r.path_len, pkey);
	memcpy(hash, r.hash, 16);
	if ((rc = nd__index_inode_del(ix, txn, &r, id, err)))
		return rc;
	/* path entry, if it still points at this id */
	{
		MDB_val k = { pklen, pkey }, v;
		uint32_t pid;
		mrc = mdb_get(txn, ix->st->paths, &k, &v);
		if (mrc == 0 && nd_pathval_decode(v.mv_data, v.mv_size, &pid, NULL) == 0 && pid == id) {
			if ((mrc = mdb_del(txn, ix->st->paths, &k, NULL)))
				return nd__store_err(mrc, err, "deleting a path entry");
		} else if (mrc && mrc != MDB_NOTFOUND) {
			return nd__store_err(mrc, err, "reading a path entry");
		}
	}
	{
		MDB_val k = { 16, hash }, v = { sizeof(id), &id };
		mrc = mdb_del(txn, ix->st->hashes, &k, &v);
		if (mrc && mrc != MDB_NOTFOUND)
			return nd__store_err(mrc, err, "deleting a hash entry");
	}
	rc = nd__index_get_vector(ix, txn, id, &vv, err);
	if (rc && rc != ND_ENOTFOUND)
		return rc;
	if (rc == 0) {
		if (id >= batch_first) {
			dead[id - batch_first] = 1;
		} else {
			nd_vector_dequant(&vv, fbuf);
			nd_lsh_sign(ix->lsh, fbuf, 1, sig);
			for (uint32_t t = 0; t < m->tables; t++)
				if ((rc = nd__store_postings_remove(pcur, t, sig[t], id, m, err)))
					return rc;
			if (vv.has_phash && (rc = nd__index_phash_remove(ix, hcur, id, vv.phash, err)))
				return rc;
		}
		MDB_val k = { sizeof(id), &id };
		if ((mrc = mdb_del(txn, ix->st->vectors, &k, NULL)))
			return nd__store_err(mrc, err, "deleting a vector");
	}
	MDB_val k = { sizeof(id), &id };
	if ((mrc = mdb_del(txn, ix->st->records, &k, NULL)))
		return nd__store_err(mrc, err, "deleting a record");
	m->n_images--;
	*gone = 1;
	return 0;
}

/* ---- add ---- */

struct triple {
	uint64_t tb; /* table << 32 | bucket */
	uint32_t id;
};

struct add_ctx {
	nd_index *ix;
	const nd_index_item *items;
	size_t n;
	uint32_t *ids;
	uint32_t *sigs;      /* [n][L], of the stored (quantised) vectors */
	uint8_t *venc;       /* [n][vlen] encoded vectors (item_vlen bytes each) */
	size_t vlen;         /* the stride: the largest encoding */
	uint32_t *osig;      /* [L] scratch: signatures of a replaced image */
	struct triple *tri;  /* [n*L] */
	uint8_t *dead;       /* [n] */
	uint32_t *idbuf;     /* [n] */
	float *fbuf;         /* [dim] */
	uint8_t *vbuf;       /* encoded vector / record */
	size_t vbuf_cap;
	uint32_t first_id;   /* out: the batch's first id (ids are consecutive) */
};

/* Encoding and signing a batch's vectors, outside the transaction and in
 * parallel: they are most of an add's CPU time (bench/results/index.md). */
struct prep {
	const nd_index_item *items;
	nd_index *ix;
	uint8_t *venc;
	uint32_t *sigs;
	size_t vlen, lo, hi;
	float *fbuf;
	int rc;
	nd_error err;
};

/* An item's hash is stored (vector version 3, and listed in the phash
 * database) when it brings one to a calibrated index. */
static int item_stores_phash(const nd_index *ix, const nd_index_item *it)
{
	return ix->calibrated && it->has_phash;
}

/* ... and its originality record when it brings one too (version 4). */
static int item_stores_origin(const nd_index *ix, const nd_index_item *it)
{
	return item_stores_phash(ix, it) && it->origin;
}

/* The stored size of an item's vector: version 1 on an uncalibrated index,
 * else version 4 when the item brings a perceptual hash and an originality
 * record, version 3 with a hash alone, version 2 with neither. */
static size_t item_vlen(const nd_index *ix, const nd_index_item *it)
{
	uint32_t dim = ix->meta.dim, fmt = ix->meta.vec_format;
	if (item_stores_origin(ix, it))
		return nd_vector_encoded_size_max(dim, fmt);
	if (item_stores_phash(ix, it))
		return nd_vector_encoded_size_max(dim, fmt) - ND_ORIGIN_SIZE;
	return nd_vector_encoded_size_stat(dim, fmt, ix->calibrated);
}

static void *prep_worker(void *arg)
{
	struct prep *w = arg;
	uint32_t dim = w->ix->meta.dim, L = w->ix->meta.tables;
	const int cal = w->ix->calibrated;
	for (size_t i = w->lo; i < w->hi && !w->rc; i++) {
		size_t len;
		nd_vec_view vv;
		uint8_t *out = w->venc + i * w->vlen;
		const uint32_t fmt = w->ix->meta.vec_format;
		const nd_index_item *it = &w->items[i];
		if ((w->rc = cal ? nd_vector_encode_stat(it->vec, dim, fmt, 0.0f, out, w->vlen, &len,
							  &w->err)
				 : nd_vector_encode(it->vec, dim, fmt, out, w->vlen, &len, &w->err)) ||
		    (w->rc = nd_vector_decode(out, len, dim, &vv, &w->err)))
			break;
		/* signatures (and the statistic) come from the stored (quantised) vector */
		nd_vector_dequant(&vv, w->fbuf);
		nd_lsh_sign(w->ix->lsh, w->fbuf, 1, w->sigs + i * L);
		if (cal) {
			float st;
			if ((w->rc = w->ix->calib.stat(w->ix->calib.ctx, w->fbuf, 1, &st, &w->err)) ||
			    (w->rc = item_stores_origin(w->ix, it)
					     ? nd_vector_encode_v4(it->vec, dim, fmt, st, it->phash, it->origin,
								   out, w->vlen, &len, &w->err)
				     : item_stores_phash(w->ix, it)
					     ? nd_vector_encode_stat_phash(it->vec, dim, fmt, st, it->phash, out,
									   w->vlen, &len, &w->err)
					     : nd_vector_encode_stat(it->vec, dim, fmt, st, out, w->vlen, &len,
								     &w->err)))
				break;
		}
		ND_ASSERT(len == item_vlen(w->ix, it));
	}
	return NULL;
}

#define ND_ADD_MAX_THREADS 8

void nd__index_run_parallel(void *items, size_t size, unsigned n, void *(*fn)(void *))
{
	pthread_t th[ND_JOIN_MAX_THREADS];
	unsigned started = 0;
	char *base = items;
	ND_ASSERT(n <= ND_JOIN_MAX_THREADS);
	for (unsigned i = 1; i < n; i++) {
		if (pthread_create(&th[i], NULL, fn, base + i * size))
			break;
		started = i;
	}
	fn(base);
	for (unsigned i = 1; i <= started; i++)
		pthread_join(th[i], NULL);
	for (unsigned i = started + 1; i < n; i++) /* threads that could not start */
		fn(base + i * size);
}

static int prep_batch(struct add_ctx *c, nd_error *err)
{
	struct prep w[ND_ADD_MAX_THREADS];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nth = ncpu > 0 ? (size_t)ncpu : 1;
	int rc = 0;
	if (nth > ND_ADD_MAX_THREADS)
		nth = ND_ADD_MAX_THREADS;
	if (nth > c->n / 256 + 1)
		nth = c->n / 256 + 1;
	memset(w, 0, sizeof(w));
	for (size_t i = 0; i < nth; i++) {
		w[i] = (struct prep){ c->items, c->ix, c->venc, c->sigs, c->vlen, c->n * i / nth,
				      c->n * (i + 1) / nth, malloc(c->ix->meta.dim * sizeof(float)), 0, { 0 } };
		if (!w[i].fbuf) {
			rc = nd_error_set(err, ND_ENOMEM, "out of memory for a batch");
			goto done;
		}
	}
	nd__index_run_parallel(w, sizeof(w[0]), (unsigned)nth, prep_worker);
	for (size_t i = 0; i < nth && !rc; i++)
		if (w[i].rc) {
			*err = w[i].err;
			rc = w[i].rc;
		}
done:
	for (size_t i = 0; i < nth; i++)
		free(w[i].fbuf);
	return rc;
}

static int add_txn(MDB_txn *txn, void *vctx, nd_error *err)
{
	struct add_ctx *c = vctx;
	nd_index *ix = c->ix;
	uint32_t L = ix->meta.tables;
	MDB_cursor *pcur = NULL, *hcur = NULL;
	nd_meta m;
	int rc, mrc;

	if ((rc = nd__index_read_meta(ix, txn, &m, err)))
		return rc;
	if ((mrc = mdb_cursor_open(txn, ix->st->postings, &pcur)) ||
	    (mrc = mdb_cursor_open(txn, ix->st->phash, &hcur))) {
		rc = nd__store_err(mrc, err, "opening a cursor");
		goto done;
	}
	uint32_t batch_first = m.next_id;
	c->first_id = batch_first;
	if (!ix->calibrated) /* version-1 vectors from now on */
		m.flags &= ~ND_META_VEC_STAT;
	if ((uint64_t)m.next_id + c->n >= UINT32_MAX) {
		rc = nd_error_set(err, ND_ELIMIT, "image ids exhausted");
		goto done;
	}
	memset(c->dead, 0, c->n);
	for (size_t i = 0; i < c->n; i++) {
		const nd_index_item *it = &c->items[i];
		uint8_t pkey[ND_PATH_KEY_MAX], pval[ND_PATHVAL_SIZE];
		size_t pklen = nd_path_key(it->rec.path, it->rec.path_len, pkey), len;
		MDB_val k = { pklen, pkey }, v;
		uint32_t old, id = m.next_id++;
		int gone;
		/* replace an image with the same path */
		mrc = mdb_get(txn, ix->st->paths, &k, &v);
		if (mrc == 0) {
			if ((rc = nd_pathval_decode(v.mv_data, v.mv_size, &old, err)))
				goto done;
			rc = remove_one(ix, txn, pcur, hcur, old, &m, batch_first, c->dead, c->fbuf,
					c->osig, &gone, err);
			if (rc)
				goto done;
		} else if (mrc != MDB_NOTFOUND) {
			rc = nd__store_err(mrc, err, "reading a path entry");
			goto done;
		}
		/* ... and an image of the same file under another path */
		if (nd_record_has_identity(&it->rec)) {
			rc = nd__index_inode_get(ix, txn, it->rec.dev, it->rec.ino, &old, err);
			if (rc == 0)
				rc = remove_one(ix, txn, pcur, hcur, old, &m, batch_first, c->dead, c->fbuf,
						c->osig, &gone, err);
			if (rc && rc != ND_ENOTFOUND)
				goto done;
			rc = 0;
		}
		/* vector (encoded and signed before the transaction) */
		MDB_val ik = { sizeof(id), &id }, iv = { item_vlen(ix, it), c->venc + i * c->vlen };
		if ((mrc = mdb_put(txn, ix->st->vectors, &ik, &iv, MDB_APPEND))) {
			rc = nd__store_err(mrc, err, "writing a vector");
			goto done;
		}
		if ((rc = nd_record_encode(&it->rec, c->vbuf, c->vbuf_cap, &len, err)))
			goto done;
		iv.mv_size = len;
		iv.mv_data = c->vbuf;
		if ((mrc = mdb_put(txn, ix->st->records, &ik, &iv, MDB_APPEND))) {
			rc = nd__store_err(mrc, err, "writing a record");
			goto done;
		}
		nd_pathval_encode(id, pval);
		v.mv_size = ND_PATHVAL_SIZE;
		v.mv_data = pval;
		if ((mrc = mdb_put(txn, ix->st->paths, &k, &v, 0))) {
			rc = nd__store_err(mrc, err, "writing a path entry");
			goto done;
		}
		MDB_val hk = { 16, (void *)it->rec.hash }, hv = { sizeof(id), &id };
		if ((mrc = mdb_put(txn, ix->st->hashes, &hk, &hv, 0))) {
			rc = nd__store_err(mrc, err, "writing a hash entry");
			goto done;
		}
		if (nd_record_has_identity(&it->rec) && (rc = nd__index_inode_put(ix, txn, &it->rec, id, 0, err)))
			goto done;
		m.n_images++;
		c->idbuf[i] = id;
	}
	/* postings, grouped by bucket in key order: table-major with ids
	 * increasing, then a stable radix sort on the bucket within each table */
	size_t nt = 0;
	for (uint32_t t = 0; t < L; t++) {
		struct triple *tt = c->tri + nt, *tmp = c->tri + (size_t)L * c->n;
		size_t mt = 0;
		for (size_t i = 0; i < c->n; i++)
			if (!c->dead[c->idbuf[i] - batch_first])
				tt[mt++] = (struct triple){ (uint64_t)t << 32 | c->sigs[i * L + t], c->idbuf[i] };
		for (uint32_t shift = 0; shift < ix->meta.bits; shift += 8) {
			size_t cnt[257] = { 0 };
			for (size_t i = 0; i < mt; i++)
				cnt[((uint32_t)tt[i].tb >> shift & 0xFF) + 1]++;
			for (int k = 0; k < 256; k++)
				cnt[k + 1] += cnt[k];
			for (size_t i = 0; i < mt; i++)
				tmp[cnt[(uint32_t)tt[i].tb >> shift & 0xFF]++] = tt[i];
			memcpy(tt, tmp, mt * sizeof(*tt));
		}
		nt += mt;
	}
	for (size_t s = 0; s < nt;) {
		size_t e = s;
		while (e < nt && c->tri[e].tb == c->tri[s].tb) {
			c->idbuf[e - s] = c->tri[e].id; /* idbuf reused: group ids (<= n) */
			e++;
		}
		rc = nd__store_postings_append(pcur, (uint32_t)(c->tri[s].tb >> 32), (uint32_t)c->tri[s].tb,
					       c->idbuf, e - s, &m, err);
		if (rc)
			goto done;
		s = e;
	}
	/* hash postings of the items stored with a hash (version 3); the
	 * triples' memory (n * (L + 1) * 16 bytes) holds their n * 4 keys */
	uint64_t *hkeys = (uint64_t *)c->tri;
	size_t nk = 0;
	for (size_t i = 0; i < c->n; i++) {
		const nd_index_item *it = &c->items[i];
		uint32_t id = c->first_id + (uint32_t)i;
		if (!item_stores_phash(ix, it) || c->dead[i])
			continue;
		for (uint32_t q = 0; q < ND_PHASH_QUARTERS; q++)
			hkeys[nk++] = nd__index_phash_key(q, nd__index_phash_bucket(it->phash, q), id);
	}
	if ((rc = nd__index_phash_append(ix, hcur, hkeys, nk, c->idbuf, err)) ||
	    (rc = nd__index_write_meta(ix, txn, &m, err)) || (rc = nd__index_phash_mark(ix, txn, &m, err)))
		goto done;
	rc = nd__index_inode_mark(ix, txn, &m, err);
done:
	if (pcur)
		mdb_cursor_close(pcur);
	if (hcur)
		mdb_cursor_close(hcur);
	return rc;
}

int nd_index_add(nd_index *ix, const nd_index_item *items, size_t n, uint32_t *ids, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->add(ix, items, n, ids, err);
	struct add_ctx c = { 0 };
	uint32_t L = ix->meta.tables, dim = ix->meta.dim;
	size_t sz;
	int rc = 0;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const nd_record *r = &items[i].rec;
		if (!items[i].vec)
			return nd_error_set(err, ND_EINVAL, "item %zu has no vector", i);
		if (!r->path || r->path_len == 0 || r->path_len > ND_PATH_MAX ||
		    strlen(r->path) != r->path_len)
			return nd_error_set(err, ND_EINVAL, "item %zu: bad path (length %zu)", i, r->path_len);
		double nn = 0;
		for (uint32_t j = 0; j < dim; j++) {
			if (!isfinite(items[i].vec[j]))
				return nd_error_set(err, ND_EINVAL, "item %zu ('%s'): vector component %u not finite",
						    i, r->path, j);
			nn += (double)items[i].vec[j] * items[i].vec[j];
		}
		if (fabs(nn - 1.0) > 1e-2)
			return nd_error_set(err, ND_EINVAL,
					    "item %zu ('%s'): vector not L2-normalised (norm^2 %.4f)", i,
					    r->path, nn);
	}
	/* triples: n * L, plus n for the radix sort's scratch */
	if (nd_mul_size(n, (size_t)L + 1, &sz) || nd_mul_size(sz, sizeof(struct triple), &sz))
		return nd_error_set(err, ND_EOVERFLOW, "batch too large");
	c.ix = ix;
	c.items = items;
	c.n = n;
	c.vlen = nd_vector_encoded_size_max(dim, ix->meta.vec_format);
	size_t vsz;
	if (nd_mul_size(n, c.vlen, &vsz))
		return nd_error_set(err, ND_EOVERFLOW, "batch too large");
	c.sigs = malloc(n * L * sizeof(uint32_t));
	c.osig = malloc(L * sizeof(uint32_t));
	c.venc = malloc(vsz);
	c.tri = malloc(sz);
	c.dead = malloc(n);
	c.idbuf = malloc(n * sizeof(uint32_t));
	c.fbuf = malloc(dim * sizeof(float));
	c.vbuf_cap = nd_vector_encoded_size_max(dim, ND_VEC_F16);
	if (c.vbuf_cap < nd_record_encoded_size(ND_PATH_MAX))
		c.vbuf_cap = nd_record_encoded_size(ND_PATH_MAX);
	c.vbuf = malloc(c.vbuf_cap);
	if (!c.sigs || !c.osig || !c.venc || !c.tri || !c.dead || !c.idbuf || !c.fbuf || !c.vbuf) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for a batch of %zu", n);
		goto done;
	}
	if ((rc = prep_batch(&c, err)))
		goto done;
	rc = nd__store_write(ix->st, add_txn, &c, err);
	if (rc == 0 && ids) {
		/* ids are consecutive from the batch's first id */
		for (size_t i = 0; i < n; i++)
			ids[i] = c.first_id + (uint32_t)i;
	}
done:
	free(c.sigs);
	free(c.osig);
	free(c.venc);
	free(c.tri);
	free(c.dead);
	free(c.idbuf);
	free(c.fbuf);
	free(c.vbuf);
	return rc;
}

/* ---- remove ---- */

struct remove_ctx {
	nd_index *ix;
	const uint32_t *ids;
	size_t n, removed;
	float *fbuf;
	uint32_t *sig;
};

static int remove_txn(MDB_txn *txn, void *vctx, nd_error *err)
{
	struct remove_ctx *c = vctx;
	nd_index *ix = c->ix;
	MDB_cursor *pcur = NULL, *hcur = NULL;
	nd_meta m;
	int rc, mrc, gone;
	c->removed = 0;
	if ((rc = nd__index_read_meta(ix, txn, &m, err)))
		return rc;
	if ((mrc = mdb_cursor_open(txn, ix->st->postings, &pcur)) ||
	    (mrc = mdb_cursor_open(txn, ix->st->phash, &hcur))) {
		rc = nd__store_err(mrc, err, "opening a cursor");
		goto done;
	}
	for (size_t i = 0; i < c->n; i++) {
		rc = remove_one(ix, txn, pcur, hcur, c->ids[i], &m, UINT32_MAX, NULL, c->fbuf, c->sig,
				&gone, err);
		if (rc)
			goto done;
		c->removed += (size_t)gone;
	}
	if ((rc = nd__index_write_meta(ix, txn, &m, err)) == 0 && (rc = nd__index_phash_mark(ix, txn, &m, err)) == 0)
		rc = nd__index_inode_mark(ix, txn, &m, err);
done:
	if (pcur)
		mdb_cursor_close(pcur);
	if (hcur)
		mdb_cursor_close(hcur);
	return rc;
}

int nd_index_remove(nd_index *ix, const uint32_t *ids, size_t n, size_t *removed, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->remove(ix, ids, n, removed, err);
	struct remove_ctx c = { ix, ids, n, 0, NULL, NULL };
	int rc;
	if (removed)
		*removed = 0;
	if (n == 0)
		return 0;
	c.fbuf = malloc(ix->meta.dim * sizeof(float));
	c.sig = malloc(ix->meta.tables * sizeof(uint32_t));
	if (!c.fbuf || !c.sig) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	rc = nd__store_write(ix->st, remove_txn, &c, err);
	if (rc == 0 && removed)
		*removed = c.removed;
done:
	free(c.fbuf);
	free(c.sig);
	return rc;
}
