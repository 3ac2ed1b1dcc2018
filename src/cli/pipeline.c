/* neardup CLI — the ingest pipeline (see pipeline.h). */
#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "embed.h"
#include "progress.h"
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
	const struct ingest_opts *opts;
	struct ingest_counts *c;

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
	unsigned long emitted; /* results handed to the writer (progress) */
};

static void count(struct pipe *p, unsigned long *field)
{
	__atomic_fetch_add(field, 1, __ATOMIC_RELAXED);
	(void)p;
}

static unsigned long load(const unsigned long *field)
{
	return __atomic_load_n(field, __ATOMIC_RELAXED);
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

/* ": 2 text, 1 video, 1 link or special file" for the summary line, or "" */
static void ignored_kinds(const struct ingest_counts *c, char *buf, size_t n)
{
	size_t at = 0;
	buf[0] = 0;
	for (int k = 0; k <= ND_KIND_COUNT; k++) {
		unsigned long v = k < ND_KIND_COUNT ? c->not_image_kind[k] : c->ignored;
		const char *name = k < ND_KIND_COUNT ? nd_file_kind_name((nd_file_kind)k)
						     : "link or special file";
		if (v == 0 || at >= n)
			continue;
		int w = snprintf(buf + at, n - at, "%s %lu %s", at ? "," : ":", v, name);
		at += w > 0 ? (size_t)w : 0;
	}
}

static void fail_file(struct pipe *p, const char *what, const char *path, const char *why)
{
	cli_err_path(what, path, why);
	count(p, &p->c->failed);
}

/* ---- queues ---- */

/* Called by the walk; name: see struct job. Returns -1 when the run stops. */
static int push_job(struct pipe *p, const char *path, const char *name, int is_root)
{
	char *copy = strdup(path), *ncopy = name ? strdup(name) : NULL;
	if (!copy || (name && !ncopy)) {
		free(copy);
		free(ncopy);
		fail_file(p, "cannot queue", path, "out of memory");
		return 0;
	}
	pthread_mutex_lock(&p->mu);
	while (p->jn == JOB_QUEUE && !p->stop && !cli_signal) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->job_space, &p->mu, &ts);
	}
	if (p->stop || cli_signal) {
		pthread_mutex_unlock(&p->mu);
		free(copy);
		free(ncopy);
		return -1;
	}
	struct job *j = &p->jobs[(p->jhead + p->jn) % JOB_QUEUE];
	j->path = copy;
	j->name = ncopy;
	j->is_root = is_root;
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
		fail_file(p, "cannot add", path, "out of memory");
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
static void table_fail(struct pipe *p, struct entry *ent, const char *what, const char *why)
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
	int rc = embedder_run(&w->e, &err);
	for (int i = 0; i < w->e.n; i++) {
		struct pending *pd = &w->pend[i];
		if (rc) {
			fail_file(p, "cannot embed", pd->path, err.msg);
			table_fail(p, pd->ent, "cannot embed", err.msg);
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
	if (file_read(j->path, !j->is_root, &fd, &err)) {
		fail_file(p, "cannot read", j->path, err.msg);
		return;
	}
	if (nd_image_sniff(fd.data, fd.len) == ND_FMT_UNKNOWN) {
		if (!j->is_root && nd_image_format_from_name(j->path) == ND_FMT_UNKNOWN) {
			nd_file_kind k = nd_file_kind_of(fd.data, fd.len);
			count(p, &p->c->not_image);
			count(p, &p->c->not_image_kind[k]);
			if (p->opts->verbose)
				cli_err_path("ignored", j->path, nd_file_kind_name(k));
		} else
			fail_file(p, "cannot decode", j->path,
				  fd.len == 0 ? "empty file" : "not a supported image format");
		file_data_free(&fd);
		return;
	}
	const struct finfo fi = finfo_of(&fd.st);
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
			file_data_free(&fd);
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
		file_data_free(&fd);
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
				    stat(pathbuf, &st) == 0 && st.st_dev == fd.st.st_dev &&
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
			file_data_free(&fd);
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
		fail_file(p, "cannot add", j->path, "out of memory");
		file_data_free(&fd);
		return;
	}

	struct pending *pd = &w->pend[w->e.n];
	if (embedder_add(&w->e, fd.data, fd.len, &pd->w, &pd->h, &err)) {
		fail_file(p, "cannot decode", j->path, err.msg);
		table_fail(p, ent, "cannot decode", err.msg);
		file_data_free(&fd);
		return;
	}
	file_data_free(&fd);
	pd->path = strdup(name);
	pd->fi = fi;
	memcpy(pd->hash, fd.hash, 16);
	pd->ent = ent;
	if (!pd->path) { /* drop the slot again */
		w->e.n--;
		fail_file(p, "cannot add", j->path, "out of memory");
		table_fail(p, ent, "cannot add", "out of memory");
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
		if (p->stop || cli_signal || p->jn == 0) {
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
	struct ingest_counts *c = p->c;
	unsigned long done = load(&c->unchanged) + load(&c->same_file) + load(&p->emitted) +
			     load(&c->not_image) + load(&c->failed);
	progress_update(done, load(&c->walked), final_total);
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
		char q[1024];
		cli_msg("cannot write to index '%s': %s", cli_quote(p->index_dir, q, sizeof(q)),
			err.msg[0] ? err.msg : nd_strerror(rc));
		pthread_mutex_lock(&p->mu);
		p->fatal = 1;
		p->stop = 1;
		pthread_cond_broadcast(&p->job_avail);
		pthread_cond_broadcast(&p->job_space);
		pthread_mutex_unlock(&p->mu);
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
					first = cli_now();
				batch[n++] = r;
			}
		}
		int done = p->rn == 0 && p->workers_left == 0;
		int walk_done = p->walk_done;
		pthread_mutex_unlock(&p->mu);
		writer_progress(p, walk_done);
		if (n > 0 && (n == COMMIT_BATCH || done || p->fatal || cli_now() - first >= COMMIT_SECONDS)) {
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

int (*pipeline_take_hook)(const char *path, const struct stat *st);

static int on_file(const char *path, const struct stat *st, int is_root, void *ctx)
{
	struct pipe *p = ctx;
	if (cli_signal || p->stop)
		return 1;
	if (pipeline_take_hook && !pipeline_take_hook(path, st))
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
		fail_file(p, "cannot add", path, "path too long");
		return 0;
	}
	return push_job(p, path, name, is_root) ? 1 : 0;
}

static void on_skip(const char *path, const char *reason, void *ctx)
{
	fail_file(ctx, "cannot read", path, reason);
}

int pipeline_ingest(nd_index *ix, const char *index_dir, const nd_model *m, char *const *paths,
		    int npaths, const struct ingest_opts *o, struct ingest_counts *c)
{
	memset(c, 0, sizeof(*c));
	double t0 = cli_now();
	struct pipe *p = calloc(1, sizeof(*p));
	if (!p) {
		cli_msg("out of memory");
		return EXIT_FATAL;
	}
	nd_model_info mi;
	nd_model_get_info(m, &mi);
	p->ix = ix;
	p->index_dir = index_dir;
	p->model = m;
	p->dim = mi.embed_dim;
	p->opts = o;
	p->c = c;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->tmu, NULL);
	pthread_cond_init(&p->job_avail, NULL);
	pthread_cond_init(&p->job_space, NULL);
	pthread_cond_init(&p->res_avail, NULL);
	pthread_cond_init(&p->res_space, NULL);

	int status = EXIT_ALL_GOOD;
	int nw = o->jobs;
	struct worker *ws = calloc((size_t)nw, sizeof(*ws));
	if (!ws) {
		cli_msg("out of memory");
		status = EXIT_FATAL;
		goto done;
	}
	/* workspaces before any thread starts (the first one loads OpenBLAS) */
	for (int i = 0; i < nw; i++) {
		nd_error err;
		ws[i].p = p;
		ws[i].vec = malloc(sizeof(float) * (size_t)p->dim);
		if (!ws[i].vec || embedder_init(&ws[i].e, m, CNN_BATCH, &err)) {
			cli_msg("cannot set up the CNN: %s", ws[i].vec ? err.msg : "out of memory");
			status = EXIT_FATAL;
			goto free_workers;
		}
	}

	progress_start(o->quiet);
	/* the walk (this thread) takes the signals; the others never do */
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
		cli_msg("cannot start threads: %s", strerror(errno));
		status = EXIT_FATAL;
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		p->workers_left -= nw - started;
		pthread_cond_broadcast(&p->job_avail);
		pthread_mutex_unlock(&p->mu);
	} else {
		struct walk_callbacks cb = { on_file, on_skip, p };
		struct walk_stats wst;
		if (walk_paths(paths, npaths, &cb, &wst) < 0) {
			cli_msg("cannot walk: %s", strerror(errno));
			status = EXIT_FATAL;
		}
		for (int k = 0; k < WALK_IGNORED_KINDS; k++)
			c->ignored += wst.ignored[k];
	}
	pthread_mutex_lock(&p->mu);
	p->walk_done = 1;
	if (cli_signal) { /* drop what is queued; finish the batches in hand */
		p->stop = 1;
		for (; p->jn > 0; p->jn--) {
			free(p->jobs[p->jhead].path);
			free(p->jobs[p->jhead].name);
			p->jhead = (p->jhead + 1) % JOB_QUEUE;
		}
	}
	pthread_cond_broadcast(&p->job_avail);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < started; i++)
		pthread_join(ws[i].thread, NULL);
	if (writer_started) {
		pthread_join(writer, NULL);
	}
	/* jobs left behind after a fatal stop */
	for (; p->jn > 0; p->jn--) {
		free(p->jobs[p->jhead].path);
		free(p->jobs[p->jhead].name);
		p->jhead = (p->jhead + 1) % JOB_QUEUE;
	}
	progress_end();
	if (p->fatal)
		status = EXIT_FATAL;
	c->signal = cli_signal;
	c->seconds = cli_now() - t0;
	if (status == EXIT_ALL_GOOD && c->failed)
		status = EXIT_SKIPPED;
	if (!o->quiet) {
		double rate = c->seconds > 0 ? (c->embedded + c->exact) / c->seconds : 0;
		char same[96] = "", lost[96] = "", why[256];
		if (c->same_file)
			snprintf(same, sizeof(same), ", %lu already indexed under another name", c->same_file);
		if (c->uncommitted)
			snprintf(lost, sizeof(lost), "; %lu read but not added: the index could not be written",
				 c->uncommitted);
		ignored_kinds(c, why, sizeof(why));
		cli_msg("%lu files: %lu embedded, %lu exact duplicates, %lu unchanged%s, %lu failed, "
			"%lu ignored%s in %.1f s (%.1f images/s)%s%s",
			c->walked, c->embedded, c->exact, c->unchanged, same, c->failed,
			c->not_image + c->ignored, why, c->seconds, rate, lost,
			c->signal ? "; interrupted, run again to resume" : "");
	}
free_workers:
	for (int i = 0; i < nw; i++) {
		embedder_free(&ws[i].e);
		free(ws[i].vec);
		for (int k = 0; k < CNN_BATCH; k++)
			free(ws[i].pend[k].path);
	}
	free(ws);
done:
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->tmu);
	pthread_cond_destroy(&p->job_avail);
	pthread_cond_destroy(&p->job_space);
	pthread_cond_destroy(&p->res_avail);
	pthread_cond_destroy(&p->res_space);
	free(p->seen.slot);
	free(p);
	return status;
}
