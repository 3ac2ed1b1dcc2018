/* neardup — adding files and buffers to a collection: the ingest pipeline.
 *
 *   walk (calling thread) -> job queue -> N workers -> result queue -> writer
 *
 * The walk (walk.c: physical, sorted) skips files whose path, size and mtime
 * are already indexed, and files (device, inode) seen before in this run or
 * indexed unchanged under another name: one file is one image, under the
 * name it was first indexed by (a changed one is read here and stored
 * there). Buffers skip the walk and go straight to the queue. Each worker
 * reads a file once into memory (at most ND_MAX_FILE_BYTES), hashes it
 * (XXH3-128), and either copies the vector of a byte-identical image
 * (already indexed, or being embedded right now by some worker: then it
 * waits for that one's result, without blocking) or decodes it from memory
 * at the smallest size the model needs, prepares it and runs the CNN in
 * batches of 16 with its own workspace. One writer thread adds the results
 * to the index in transactions of up to 256 images (at least every 2
 * seconds), so an interrupted run keeps what it did.
 *
 * Cancellation (*cancel non-zero) stops the walk; queued inputs are
 * dropped, batches being embedded are finished and committed. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "collection_impl.h"
#include "readfile.h"
#include "walk.h"

#define JOB_QUEUE 256     /* files queued for the workers */
#define RESULT_QUEUE 1024 /* results queued for the writer */
#define CNN_BATCH 16      /* images per forward pass */
#define COMMIT_BATCH 256  /* images per index transaction */
#define COMMIT_SECONDS 2.0

/* What a record says of its file besides the content: from the fstat of
 * the read that was kept. */
struct finfo {
	uint64_t size;
	int64_t mtime_ns;
	uint64_t dev, ino;
};

/* ---- byte-identical files being embedded now (hash -> state) ---- */

struct follower {
	struct follower *next;
	char *path;
	struct finfo fi;
};

enum { ENT_PENDING, ENT_DONE };

/* An image's perceptual hash (neardup/phash.h) and originality record
 * (neardup/origin.h), when known: what is stored beside its vector. */
struct phash {
	int has;
	uint64_t v;
	int has_origin;
	nd_origin origin;
};

struct entry {
	struct entry *next;
	uint8_t hash[16];
	int state;
	uint32_t w, h;
	float *vec;              /* ENT_DONE: a copy, until the writer committed it */
	struct phash ph;         /* ENT_DONE: its perceptual hash */
	struct follower *followers; /* ENT_PENDING: identical files waiting */
};

#define TABLE_BUCKETS 1024
#define RESULT_SAME_FILE 2
#define HASH_IDS 16 /* indexed files with one content hash looked at for a second name */

struct job {
	char *path;      /* the file as walked */
	char *name;      /* the path to store it under (its first-indexed name), NULL: path */
	int is_root;
	const nd_buffer *buf; /* an image in memory (path: its name), or NULL */
};

struct result {
	nd_record rec;
	char *path;      /* owned */
	float *vec;      /* owned */
	struct phash ph;
	struct entry *owner; /* the table entry to drop once committed, or NULL */
	int exact;       /* how it is counted once committed: 0 embedded, 1 exact (a byte-identical
			  * file's vector), RESULT_SAME_FILE (an indexed file found under a new name) */
};

/* The (device, inode) pairs the walk has seen in this run: a file reached
 * twice (two spellings, a hard link, a directory named twice) is queued once.
 * Open addressing; used by the walk's thread only. */
struct idset {
	uint64_t (*slot)[2]; /* {dev, ino + 1}: ino + 1 == 0 marks an empty slot */
	size_t cap, n;       /* cap: a power of two */
};

struct pipe {
	nd_index *ix;
	const char *index_dir;
	const nd_model *model;
	int dim;
	const nd_add_options *opts;
	nd_add_counts *c;
	nd_error err;    /* what stopped the run (fatal) */
	pthread_mutex_t ev_mu; /* one callback at a time */

	pthread_mutex_t mu;
	pthread_cond_t job_avail, job_space, res_avail, res_space;
	struct job jobs[JOB_QUEUE];
	size_t jhead, jn;
	struct result *res[RESULT_QUEUE];
	size_t rhead, rn;
	int walk_done;   /* no more jobs will come */
	int stop;        /* interrupted or fatal: drop queued jobs */
	int workers_left;
	int fatal;

	pthread_mutex_t tmu; /* the table */
	struct entry *table[TABLE_BUCKETS];

	struct idset seen;   /* the walk's */
	uint64_t emitted;      /* results handed to the writer (progress) */
};

static void count(struct pipe *p, uint64_t *field)
{
	__atomic_fetch_add(field, 1, __ATOMIC_RELAXED);
	(void)p;
}

static uint64_t load(const uint64_t *field)
{
	return __atomic_load_n(field, __ATOMIC_RELAXED);
}

static int cancelled(const struct pipe *p)
{
	return p->opts->cancel && *p->opts->cancel;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void event(struct pipe *p, const char *path, nd_add_event ev, const char *detail)
{
	if (!p->opts->on_event)
		return;
	pthread_mutex_lock(&p->ev_mu);
	p->opts->on_event(p->opts->ctx, path, ev, detail);
	pthread_mutex_unlock(&p->ev_mu);
}

/* The first fatal error wins; the run stops. */
static void fatal(struct pipe *p, int code, const char *fmt, const char *a, const char *b)
{
	pthread_mutex_lock(&p->mu);
	if (!p->fatal) {
		if (b)
			nd_error_set(&p->err, code, fmt, a, b);
		else
			nd_error_set(&p->err, code, fmt, a);
	}
	p->fatal = 1;
	p->stop = 1;
	pthread_cond_broadcast(&p->job_avail);
	pthread_cond_broadcast(&p->job_space);
	pthread_mutex_unlock(&p->mu);
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static struct finfo finfo_of(const struct stat *st)
{
	return (struct finfo){ (uint64_t)st->st_size, mtime_ns(st), (uint64_t)st->st_dev,
			       (uint64_t)st->st_ino };
}

/* Adds (dev, ino) to the set: 1 when it was new, 0 when it was there, -1
 * when out of memory. */
static int idset_add(struct idset *s, uint64_t dev, uint64_t ino)
{
	if (2 * (s->n + 1) > s->cap) {
		size_t nc = s->cap ? 2 * s->cap : 1024;
		uint64_t(*ns)[2] = calloc(nc, sizeof(*ns));
		if (!ns)
			return -1;
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->slot[i][1])
				continue;
			size_t h = (size_t)((s->slot[i][0] * 0x9E3779B97F4A7C15ull) ^ s->slot[i][1]) & (nc - 1);
			while (ns[h][1])
				h = (h + 1) & (nc - 1);
			memcpy(ns[h], s->slot[i], sizeof(ns[h]));
		}
		free(s->slot);
		s->slot = ns;
		s->cap = nc;
	}
	uint64_t key1 = ino + 1;
	size_t h = (size_t)((dev * 0x9E3779B97F4A7C15ull) ^ key1) & (s->cap - 1);
	while (s->slot[h][1]) {
		if (s->slot[h][0] == dev && s->slot[h][1] == key1)
			return 0;
		h = (h + 1) & (s->cap - 1);
	}
	s->slot[h][0] = dev;
	s->slot[h][1] = key1;
	s->n++;
	return 1;
}

static void fail_file(struct pipe *p, nd_add_event what, const char *path, const char *why)
{
	event(p, path, what, why);
	count(p, &p->c->failed);
}

/* ---- queues ---- */

/* Called by the walk; name: see struct job. Returns -1 when the run stops. */
static int push_job(struct pipe *p, const char *path, const char *name, int is_root,
		    const nd_buffer *buf)
{
	char *copy = strdup(path), *ncopy = name ? strdup(name) : NULL;
	if (!copy || (name && !ncopy)) {
		free(copy);
		free(ncopy);
		fail_file(p, ND_ADD_ADD_FAILED, path, "out of memory");
		return 0;
	}
	pthread_mutex_lock(&p->mu);
	while (p->jn == JOB_QUEUE && !p->stop && !cancelled(p)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->job_space, &p->mu, &ts);
	}
	if (p->stop || cancelled(p)) {
		pthread_mutex_unlock(&p->mu);
		free(copy);
		free(ncopy);
		return -1;
	}
	struct job *j = &p->jobs[(p->jhead + p->jn) % JOB_QUEUE];
	j->path = copy;
	j->name = ncopy;
	j->is_root = is_root;
	j->buf = buf;
	p->jn++;
	pthread_cond_signal(&p->job_avail);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

static void push_result(struct pipe *p, struct result *r)
{
	pthread_mutex_lock(&p->mu);
	while (p->rn == RESULT_QUEUE)
		pthread_cond_wait(&p->res_space, &p->mu);
	p->res[(p->rhead + p->rn) % RESULT_QUEUE] = r;
	p->rn++;
	pthread_cond_signal(&p->res_avail);
	pthread_mutex_unlock(&p->mu);
}

static void free_result(struct result *r)
{
	if (!r)
		return;
	free(r->path);
	free(r->vec);
	free(r);
}

/* A result for path with a copy of vec. */
static struct result *make_result(struct pipe *p, const char *path, struct finfo fi,
				  const uint8_t hash[16], uint32_t w, uint32_t h, const float *vec,
				  struct phash ph)
{
	struct result *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->path = strdup(path);
	r->vec = malloc(sizeof(float) * (size_t)p->dim);
	if (!r->path || !r->vec) {
		free_result(r);
		return NULL;
	}
	memcpy(r->vec, vec, sizeof(float) * (size_t)p->dim);
	r->ph = ph;
	r->rec.path = r->path;
	r->rec.path_len = strlen(r->path);
	r->rec.size = fi.size;
	r->rec.mtime_ns = fi.mtime_ns;
	r->rec.dev = fi.dev;
	r->rec.ino = fi.ino;
	r->rec.width = w;
	r->rec.height = h;
	memcpy(r->rec.hash, hash, 16);
	return r;
}

/* Hands a result to the writer; it is counted (embedded or exact) once
 * committed. */
static int emit(struct pipe *p, const char *path, struct finfo fi, const uint8_t hash[16], uint32_t w,
		uint32_t h, const float *vec, struct phash ph, struct entry *owner, int exact)
{
	struct result *r = make_result(p, path, fi, hash, w, h, vec, ph);
	if (!r) {
		fail_file(p, ND_ADD_ADD_FAILED, path, "out of memory");
		return -1;
	}
	r->owner = owner;
	r->exact = exact;
	count(p, &p->emitted);
	push_result(p, r);
	return 0;
}

/* ---- the table of contents being embedded ---- */

static struct entry **bucket(struct pipe *p, const uint8_t hash[16])
{
	uint32_t b;
	memcpy(&b, hash, sizeof(b));
	return &p->table[b % TABLE_BUCKETS];
}

static struct entry *table_find(struct pipe *p, const uint8_t hash[16])
{
	for (struct entry *e = *bucket(p, hash); e; e = e->next)
		if (!memcmp(e->hash, hash, 16))
			return e;
	return NULL;
}

/* With tmu held. */
static void table_unlink(struct pipe *p, struct entry *ent)
{
	for (struct entry **pp = bucket(p, ent->hash); *pp; pp = &(*pp)->next)
		if (*pp == ent) {
			*pp = ent->next;
			return;
		}
	ND_ASSERT(!"entry not in the table");
}

static void free_followers(struct follower *f)
{
	while (f) {
		struct follower *n = f->next;
		free(f->path);
		free(f);
		f = n;
	}
}

/* The owner of ent failed: its followers hold the same bytes and fail the
 * same way. */
static void table_fail(struct pipe *p, struct entry *ent, nd_add_event what, const char *why)
{
	pthread_mutex_lock(&p->tmu);
	table_unlink(p, ent);
	pthread_mutex_unlock(&p->tmu);
	for (struct follower *f = ent->followers; f; f = f->next)
		fail_file(p, what, f->path, why);
	free_followers(ent->followers);
	free(ent->vec);
	free(ent);
}

/* The owner of ent has its vector: followers become exact duplicates.
 * Returns 1 when ent stays in the table (until the writer commits the
 * owner's result), 0 when it was released (no memory for a copy). */
static int table_done(struct pipe *p, struct entry *ent, const float *vec, struct phash ph, uint32_t w,
		      uint32_t h)
{
	float *copy = malloc(sizeof(float) * (size_t)p->dim);
	uint8_t hash[16];
	memcpy(hash, ent->hash, 16);
	pthread_mutex_lock(&p->tmu);
	struct follower *f = ent->followers;
	ent->followers = NULL;
	ent->w = w;
	ent->h = h;
	if (copy) {
		memcpy(copy, vec, sizeof(float) * (size_t)p->dim);
		ent->vec = copy;
		ent->ph = ph;
		ent->state = ENT_DONE;
	} else {
		/* later identical files are then embedded again: correct, slower */
		table_unlink(p, ent);
	}
	pthread_mutex_unlock(&p->tmu);
	if (!copy)
		free(ent);
	for (struct follower *x = f; x; x = x->next)
		emit(p, x->path, x->fi, hash, w, h, vec, ph, NULL, 1);
	free_followers(f);
	return copy != NULL;
}

/* ---- workers ---- */

struct pending {
	char *path;      /* the name stored */
	struct finfo fi;
	uint8_t hash[16];
	uint32_t w, h;
	struct entry *ent;
};

struct worker {
	struct pipe *p;
	pthread_t thread;
	struct embedder e;
	struct pending pend[CNN_BATCH];
	float *vec; /* [dim] scratch */
};

static void flush(struct worker *w)
{
	struct pipe *p = w->p;
	if (w->e.n == 0)
		return;
	nd_error err;
	int rc = nd__embed_run(&w->e, &err);
	for (int i = 0; i < w->e.n; i++) {
		struct pending *pd = &w->pend[i];
		if (rc) {
			fail_file(p, ND_ADD_EMBED_FAILED, pd->path, err.msg);
			table_fail(p, pd->ent, ND_ADD_EMBED_FAILED, err.msg);
		} else {
			const float *v = w->e.out + (size_t)i * (size_t)p->dim;
			struct phash ph = { 1, w->e.phash[i], 1, w->e.origin[i] };
			int kept = table_done(p, pd->ent, v, ph, pd->w, pd->h);
			emit(p, pd->path, pd->fi, pd->hash, pd->w, pd->h, v, ph,
			     kept ? pd->ent : NULL, 0);
		}
		free(pd->path);
		pd->path = NULL;
	}
	w->e.n = 0;
}

static void process(struct worker *w, const struct job *j)
{
	struct pipe *p = w->p;
	struct file_data fd;
	nd_error err;
	struct finfo fi;
	if (j->buf) { /* borrowed: not freed by nd__readfile_free below */
		memset(&fd, 0, sizeof(fd));
		fd.data = (uint8_t *)j->buf->data;
		fd.len = j->buf->len;
		XXH128_canonical_t canon;
		XXH128_canonicalFromHash(&canon, XXH3_128bits(fd.data, fd.len));
		memcpy(fd.hash, canon.digest, 16);
		fi = (struct finfo){ (uint64_t)fd.len, j->buf->mtime_ns, 0, 0 };
	} else if (nd__readfile_read(j->path, !j->is_root, &fd, &err)) {
		fail_file(p, ND_ADD_READ_FAILED, j->path, err.msg);
		return;
	} else {
		fi = finfo_of(&fd.st);
	}
	if (nd_image_sniff(fd.data, fd.len) == ND_FMT_UNKNOWN) {
		if (!j->is_root && nd_image_format_from_name(j->path) == ND_FMT_UNKNOWN) {
			nd_file_kind k = nd_file_kind_of(fd.data, fd.len);
			count(p, &p->c->not_image);
			count(p, &p->c->not_image_kind[k]);
			event(p, j->path, ND_ADD_IGNORED, nd_file_kind_name(k));
		} else
			fail_file(p, ND_ADD_DECODE_FAILED, j->path,
				  fd.len == 0 ? (j->buf ? "empty buffer" : "empty file")
					      : "not a supported image format");
		if (!j->buf)
			if (!j->buf)
			nd__readfile_free(&fd);
		return;
	}
	const char *name = j->name ? j->name : j->path;

	/* byte-identical to something embedded now or already indexed? */
	pthread_mutex_lock(&p->tmu);
	struct entry *ent = table_find(p, fd.hash);
	if (ent && ent->state == ENT_PENDING) {
		struct follower *f = calloc(1, sizeof(*f));
		char *copy = strdup(name);
		if (f && copy) {
			f->path = copy;
			f->fi = fi;
			f->next = ent->followers;
			ent->followers = f;
			pthread_mutex_unlock(&p->tmu);
			if (!j->buf)
				nd__readfile_free(&fd);
			return;
		}
		free(f);
		free(copy);
		ent = NULL; /* out of memory: reported below */
	} else if (ent) { /* ENT_DONE */
		uint32_t ew = ent->w, eh = ent->h;
		struct phash ph = ent->ph;
		memcpy(w->vec, ent->vec, sizeof(float) * (size_t)p->dim);
		pthread_mutex_unlock(&p->tmu);
		emit(p, name, fi, fd.hash, ew, eh, w->vec, ph, NULL, 1);
		if (!j->buf)
			nd__readfile_free(&fd);
		return;
	} else {
		uint32_t ids[HASH_IDS], id = 0;
		size_t n = 0;
		nd_record rec;
		char pathbuf[ND_PATH_MAX + 1];
		int kind = 1;
		/* under tmu: a commit + unlink by the writer cannot slip between
		 * the table lookup and this one */
		struct phash ph;
		if (nd_index_lookup_hash(p->ix, fd.hash, ids, HASH_IDS, &n, NULL) == 0 && n > 0) {
			id = ids[0];
			/* an image stored before file identities, of this very file
			 * under another name: stored again under that name, now with
			 * its identity */
			for (size_t k = 0; k < n && k < HASH_IDS; k++) {
				struct stat st;
				if (nd_index_get_record(p->ix, ids[k], &rec, pathbuf, sizeof(pathbuf), NULL) == 0 &&
				    !nd_record_has_identity(&rec) && strcmp(pathbuf, name) != 0 &&
				    !j->buf && stat(pathbuf, &st) == 0 && st.st_dev == fd.st.st_dev &&
				    st.st_ino == fd.st.st_ino) {
					id = ids[k];
					name = pathbuf;
					kind = RESULT_SAME_FILE;
					break;
				}
			}
		}
		if (id && nd_index_get_vector(p->ix, id, w->vec, NULL) == 0 &&
		    nd_index_get_phash(p->ix, id, &ph.has, &ph.v, NULL) == 0 &&
		    nd_index_get_origin(p->ix, id, &ph.has_origin, &ph.origin, NULL) == 0 &&
		    nd_index_get_record(p->ix, id, &rec, pathbuf, sizeof(pathbuf), NULL) == 0) {
			pthread_mutex_unlock(&p->tmu);
			emit(p, name, fi, fd.hash, rec.width, rec.height, w->vec, ph, NULL, kind);
			if (!j->buf)
				nd__readfile_free(&fd);
			return;
		}
		ent = calloc(1, sizeof(*ent));
		if (ent) {
			memcpy(ent->hash, fd.hash, 16);
			ent->state = ENT_PENDING;
			struct entry **b = bucket(p, fd.hash);
			ent->next = *b;
			*b = ent;
		}
	}
	pthread_mutex_unlock(&p->tmu);
	if (!ent) {
		fail_file(p, ND_ADD_ADD_FAILED, j->path, "out of memory");
		if (!j->buf)
			nd__readfile_free(&fd);
		return;
	}

	struct pending *pd = &w->pend[w->e.n];
	if (nd__embed_add(&w->e, fd.data, fd.len, &pd->w, &pd->h, &err)) {
		fail_file(p, ND_ADD_DECODE_FAILED, j->path, err.msg);
		table_fail(p, ent, ND_ADD_DECODE_FAILED, err.msg);
		if (!j->buf)
			nd__readfile_free(&fd);
		return;
	}
	if (!j->buf)
		nd__readfile_free(&fd);
	pd->path = strdup(name);
	pd->fi = fi;
	memcpy(pd->hash, fd.hash, 16);
	pd->ent = ent;
	if (!pd->path) { /* drop the slot again */
		w->e.n--;
		fail_file(p, ND_ADD_ADD_FAILED, j->path, "out of memory");
		table_fail(p, ent, ND_ADD_ADD_FAILED, "out of memory");
		return;
	}
	if (w->e.n == w->e.cap)
		flush(w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pipe *p = w->p;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (p->jn == 0 && !p->walk_done && !p->stop) {
			if (w->e.n > 0) { /* nothing to do right now: run what we have */
				pthread_mutex_unlock(&p->mu);
				flush(w);
				pthread_mutex_lock(&p->mu);
				continue;
			}
			pthread_cond_wait(&p->job_avail, &p->mu);
		}
		if (p->stop || cancelled(p) || p->jn == 0) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		struct job j = p->jobs[p->jhead];
		p->jhead = (p->jhead + 1) % JOB_QUEUE;
		p->jn--;
		pthread_cond_signal(&p->job_space);
		pthread_mutex_unlock(&p->mu);
		process(w, &j);
		free(j.path);
		free(j.name);
	}
	flush(w);
	pthread_mutex_lock(&p->mu);
	p->workers_left--;
	pthread_cond_broadcast(&p->res_avail);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- the writer ---- */

static void writer_progress(struct pipe *p, int final_total)
{
	nd_add_counts *c = p->c;
	uint64_t done = load(&c->unchanged) + load(&c->same_file) + load(&p->emitted) +
			load(&c->not_image) + load(&c->failed);
	if (p->opts->on_progress) {
		pthread_mutex_lock(&p->ev_mu);
		p->opts->on_progress(p->opts->ctx, done, load(&c->walked), final_total);
		pthread_mutex_unlock(&p->ev_mu);
	}
}

static int commit(struct pipe *p, struct result **batch, size_t n)
{
	nd_index_item *items = calloc(n, sizeof(*items));
	nd_error err;
	nd_error_clear(&err);
	int rc;
	if (!items) {
		rc = nd_error_set(&err, ND_ENOMEM, "out of memory");
	} else {
		for (size_t i = 0; i < n; i++) {
			items[i].vec = batch[i]->vec;
			items[i].rec = batch[i]->rec;
			items[i].has_phash = batch[i]->ph.has;
			items[i].phash = batch[i]->ph.v;
			items[i].origin = batch[i]->ph.has_origin ? &batch[i]->ph.origin : NULL;
		}
		rc = nd_index_add(p->ix, items, n, NULL, &err);
	}
	free(items);
	if (rc) {
		fatal(p, rc, "cannot write to index '%s': %s", p->index_dir,
		      err.msg[0] ? err.msg : nd_strerror(rc));
		p->c->uncommitted += n;
	} else {
		p->c->committed += n;
		for (size_t i = 0; i < n; i++)
			count(p, batch[i]->exact == RESULT_SAME_FILE ? &p->c->same_file
				 : batch[i]->exact ? &p->c->exact : &p->c->embedded);
	}
	/* committed (or lost): the index answers for these hashes from now on */
	pthread_mutex_lock(&p->tmu);
	for (size_t i = 0; i < n; i++) {
		struct entry *ent = batch[i]->owner;
		if (ent) {
			table_unlink(p, ent);
			free(ent->vec);
			free(ent);
		}
	}
	pthread_mutex_unlock(&p->tmu);
	for (size_t i = 0; i < n; i++)
		free_result(batch[i]);
	return rc;
}

static void *writer_main(void *arg)
{
	struct pipe *p = arg;
	struct result *batch[COMMIT_BATCH];
	size_t n = 0;
	double first = 0;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		if (p->rn == 0 && p->workers_left > 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 250 * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&p->res_avail, &p->mu, &ts);
		}
		while (p->rn > 0 && n < COMMIT_BATCH) {
			struct result *r = p->res[p->rhead];
			p->rhead = (p->rhead + 1) % RESULT_QUEUE;
			p->rn--;
			pthread_cond_signal(&p->res_space);
			if (p->fatal) {
				/* nothing more is written; let table entries go */
				batch[n++] = r;
				continue;
			}
			/* one path once per transaction: the later result wins */
			size_t k;
			for (k = 0; k < n; k++)
				if (!strcmp(batch[k]->path, r->path))
					break;
			if (k < n) {
				struct result *old = batch[k];
				if (old->owner && !r->owner) {
					/* keep the owner so its table entry is released */
					r->owner = old->owner;
				} else if (old->owner) {
					/* both own entries: release the old one now */
					pthread_mutex_lock(&p->tmu);
					table_unlink(p, old->owner);
					pthread_mutex_unlock(&p->tmu);
					free(old->owner->vec);
					free(old->owner);
				}
				old->owner = NULL;
				free_result(old);
				batch[k] = r;
			} else {
				if (n == 0)
					first = now();
				batch[n++] = r;
			}
		}
		int done = p->rn == 0 && p->workers_left == 0;
		int walk_done = p->walk_done;
		pthread_mutex_unlock(&p->mu);
		writer_progress(p, walk_done);
		if (n > 0 && (n == COMMIT_BATCH || done || p->fatal || now() - first >= COMMIT_SECONDS)) {
			if (p->fatal) {
				pthread_mutex_lock(&p->tmu);
				for (size_t i = 0; i < n; i++)
					if (batch[i]->owner) {
						table_unlink(p, batch[i]->owner);
						free(batch[i]->owner->vec);
						free(batch[i]->owner);
					}
				pthread_mutex_unlock(&p->tmu);
				for (size_t i = 0; i < n; i++)
					free_result(batch[i]);
				p->c->uncommitted += n;
			} else {
				commit(p, batch, n);
			}
			n = 0;
		}
		if (done && n == 0)
			break;
	}
	return NULL;
}

/* ---- the walk ---- */

static int on_file(const char *path, const struct stat *st, int is_root, void *ctx)
{
	struct pipe *p = ctx;
	if (cancelled(p) || p->stop)
		return 1;
	if (p->opts->take &&
	    !p->opts->take(p->opts->take_ctx, path, (uint64_t)st->st_dev, (uint64_t)st->st_ino))
		return 0;
	count(p, &p->c->walked);
	uint32_t id;
	nd_record rec;
	char pathbuf[ND_PATH_MAX + 1];
	const struct finfo fi = finfo_of(st);
	int fresh = idset_add(&p->seen, fi.dev, fi.ino);
	/* indexed under this path and unchanged (the inode is compared when
	 * known: a file replaced by a copy with the old size and mtime, as
	 * rsync -a leaves it, is another file) */
	if (nd_index_lookup_path(p->ix, path, &id, NULL) == 0 &&
	    nd_index_get_record(p->ix, id, &rec, pathbuf, sizeof(pathbuf), NULL) == 0 &&
	    rec.size == fi.size && rec.mtime_ns == fi.mtime_ns &&
	    (!nd_record_has_identity(&rec) || rec.ino == fi.ino)) {
		count(p, &p->c->unchanged);
		return 0;
	}
	/* the same file again in this run: under another name, or named twice */
	if (fresh == 0) {
		count(p, &p->c->same_file);
		return 0;
	}
	/* indexed under another path: one file, one image, under the name it
	 * was first indexed by */
	const char *name = NULL;
	if (nd_index_lookup_file(p->ix, fi.dev, fi.ino, &id, NULL) == 0 &&
	    nd_index_get_record(p->ix, id, &rec, pathbuf, sizeof(pathbuf), NULL) == 0 &&
	    strcmp(pathbuf, path) != 0) {
		if (rec.size == fi.size && rec.mtime_ns == fi.mtime_ns) {
			count(p, &p->c->same_file);
			return 0;
		}
		name = pathbuf; /* changed: read it here, store it there */
	}
	if (strlen(path) > ND_PATH_MAX) {
		fail_file(p, ND_ADD_ADD_FAILED, path, "path too long");
		return 0;
	}
	return push_job(p, path, name, is_root, NULL) ? 1 : 0;
}

static void on_skip(const char *path, const char *reason, void *ctx)
{
	fail_file(ctx, ND_ADD_READ_FAILED, path, reason);
}

const char *nd_add_event_text(nd_add_event ev)
{
	static const char *const text[ND_ADD_EVENT_COUNT] = {
		[ND_ADD_READ_FAILED] = "cannot read",   [ND_ADD_DECODE_FAILED] = "cannot decode",
		[ND_ADD_EMBED_FAILED] = "cannot embed", [ND_ADD_ADD_FAILED] = "cannot add",
		[ND_ADD_IGNORED] = "ignored",
	};
	return (unsigned)ev < ND_ADD_EVENT_COUNT ? text[ev] : "?";
}

void nd_add_options_init(nd_add_options *o)
{
	memset(o, 0, sizeof(*o));
}

static int default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/* The inputs: files and directories to walk, or buffers. */
struct source {
	const char *const *paths;
	const nd_buffer *bufs;
	size_t n;
};

static void drop_jobs(struct pipe *p)
{
	for (; p->jn > 0; p->jn--) {
		free(p->jobs[p->jhead].path);
		free(p->jobs[p->jhead].name);
		p->jhead = (p->jhead + 1) % JOB_QUEUE;
	}
}

static int run(nd_collection *coll, const struct source *src, const nd_add_options *o,
	       nd_add_counts *c, nd_error *err)
{
	nd_add_options defo;
	nd_add_counts tmpc;
	nd_error tmpe;
	if (!o) {
		nd_add_options_init(&defo);
		o = &defo;
	}
	if (!c)
		c = &tmpc;
	if (!err)
		err = &tmpe;
	memset(c, 0, sizeof(*c));
	nd_error_clear(err);
	int rc = nd__collection_writable(coll, err);
	if (rc)
		return rc;
	double t0 = now();
	struct pipe *p = calloc(1, sizeof(*p));
	if (!p)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	p->ix = coll->ix;
	p->index_dir = coll->dir;
	p->model = coll->model;
	p->dim = (int)coll->dim;
	p->opts = o;
	p->c = c;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->tmu, NULL);
	pthread_mutex_init(&p->ev_mu, NULL);
	pthread_cond_init(&p->job_avail, NULL);
	pthread_cond_init(&p->job_space, NULL);
	pthread_cond_init(&p->res_avail, NULL);
	pthread_cond_init(&p->res_space, NULL);

	int nw = o->threads > 0 ? (o->threads > 256 ? 256 : o->threads) : default_threads();
	struct worker *ws = calloc((size_t)nw, sizeof(*ws));
	if (!ws) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	/* workspaces before any thread starts (the first one loads OpenBLAS) */
	for (int i = 0; i < nw; i++) {
		nd_error e;
		ws[i].p = p;
		ws[i].vec = malloc(sizeof(float) * (size_t)p->dim);
		if (!ws[i].vec) {
			rc = nd_error_set(err, ND_ENOMEM, "cannot set up the CNN: out of memory");
			goto free_workers;
		}
		if ((rc = nd__embed_init(&ws[i].e, coll->model, CNN_BATCH, &e))) {
			nd_error_set(err, rc, "cannot set up the CNN: %s", e.msg);
			goto free_workers;
		}
	}

	/* the caller's thread takes the signals; the library's never do */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	pthread_t writer;
	int started = 0, writer_started = 0;
	p->workers_left = nw;
	for (; started < nw; started++)
		if (pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]))
			break;
	if (started > 0)
		writer_started = pthread_create(&writer, NULL, writer_main, p) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (started < nw || !writer_started) {
		fatal(p, ND_EIO, "cannot start threads: %s", strerror(errno), NULL);
		pthread_mutex_lock(&p->mu);
		p->workers_left -= nw - started;
		pthread_mutex_unlock(&p->mu);
	} else if (src->paths) {
		struct walk_callbacks cb = { on_file, on_skip, p };
		struct walk_stats wst;
		if (nd__walk_paths((char *const *)src->paths, (int)src->n, &cb, &wst) < 0)
			fatal(p, ND_EIO, "cannot walk: %s", strerror(errno), NULL);
		for (int k = 0; k < WALK_IGNORED_KINDS; k++)
			c->ignored += wst.ignored[k];
	} else {
		for (size_t i = 0; i < src->n && !cancelled(p) && !p->stop; i++) {
			const nd_buffer *b = &src->bufs[i];
			count(p, &c->walked);
			if (!b->name || !*b->name || strlen(b->name) > ND_PATH_MAX)
				fail_file(p, ND_ADD_ADD_FAILED, b->name ? b->name : "",
					  b->name && *b->name ? "name too long" : "no name given");
			else if (!b->data && b->len)
				fail_file(p, ND_ADD_READ_FAILED, b->name, "no data given");
			else if (push_job(p, b->name, NULL, 1, b))
				break;
		}
	}
	pthread_mutex_lock(&p->mu);
	p->walk_done = 1;
	if (cancelled(p)) { /* drop what is queued; finish the batches in hand */
		p->stop = 1;
		drop_jobs(p);
	}
	pthread_cond_broadcast(&p->job_avail);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < started; i++)
		pthread_join(ws[i].thread, NULL);
	if (writer_started)
		pthread_join(writer, NULL);
	drop_jobs(p); /* left behind after a fatal stop */
	c->cancelled = cancelled(p);
	c->seconds = now() - t0;
	if (p->fatal) {
		*err = p->err;
		rc = p->err.code ? p->err.code : ND_EINTERNAL;
	}
free_workers:
	for (int i = 0; i < nw; i++) {
		if (ws[i].e.model)
			nd__embed_free(&ws[i].e);
		free(ws[i].vec);
		for (int k = 0; k < CNN_BATCH; k++)
			free(ws[i].pend[k].path);
	}
	free(ws);
done:
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->tmu);
	pthread_mutex_destroy(&p->ev_mu);
	pthread_cond_destroy(&p->job_avail);
	pthread_cond_destroy(&p->job_space);
	pthread_cond_destroy(&p->res_avail);
	pthread_cond_destroy(&p->res_space);
	free(p->seen.slot);
	free(p);
	return rc;
}

int nd_collection_add_paths(nd_collection *c, const char *const *paths, size_t n,
			    const nd_add_options *o, nd_add_counts *counts, nd_error *err)
{
	struct source src = { paths, NULL, n };
	return run(c, &src, o, counts, err);
}

int nd_collection_add_buffers(nd_collection *c, const nd_buffer *bufs, size_t n,
			      const nd_add_options *o, nd_add_counts *counts, nd_error *err)
{
	struct source src = { NULL, bufs, n };
	return run(c, &src, o, counts, err);
}
