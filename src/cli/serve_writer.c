/* neardup serve — the writer thread: the only one that changes the index.
 *
 * Requests queue a change here and wait. The writer takes everything queued
 * at once and hands each run of adds to the collection in one call (which
 * decodes and embeds them on its threads and commits them together) and
 * each run of removes in one transaction: group commit, so that while one
 * batch is embedded and synced the next gathers. An image is durable before
 * its request is answered, and a burst of writes costs one sync per batch,
 * not one per image. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"
#include "serve_engine.h"

#define WRITER_BATCH 256 /* changes per transaction at most */

struct srv_writer {
	struct srv_engine *eng;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct srv_wop *head, *tail;
	int queued, cap;
	int stopping;
	_Atomic uint64_t generation;
	/* tests: while this file exists the writer takes no batch, so that a
	 * test can fill the queue (NEARDUP_SERVE_TEST_PAUSE) */
	const char *pause_file;
};

int srv_writer_submit(struct srv_writer *w, struct srv_wop *op)
{
	int rc = 0;
	op->done = 0;
	op->next = NULL;
	pthread_mutex_lock(&w->mu);
	if (w->stopping)
		rc = -2;
	else if (w->queued >= w->cap)
		rc = -1;
	else {
		if (w->tail)
			w->tail->next = op;
		else
			w->head = op;
		w->tail = op;
		w->queued++;
		pthread_cond_signal(&w->work);
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int srv_writer_queued(struct srv_writer *w)
{
	pthread_mutex_lock(&w->mu);
	int n = w->queued;
	pthread_mutex_unlock(&w->mu);
	return n;
}

uint64_t srv_writer_generation(struct srv_writer *w)
{
	return atomic_load(&w->generation);
}

/* A run of adds: one call of the collection. */
static void commit_adds(struct srv_writer *w, struct srv_wop **ops, size_t n)
{
	struct srv_add *adds[WRITER_BATCH];
	nd_error err;
	nd_error_clear(&err);
	for (size_t i = 0; i < n; i++)
		adds[i] = ops[i]->add;
	int rc = srv_engine_add(w->eng, adds, n, &err);
	if (rc)
		cli_msg("cannot write to the index: %s", err.msg[0] ? err.msg : nd_strerror(rc));
	int added = 0;
	for (size_t i = 0; i < n; i++) {
		if (adds[i]->rc)
			continue;
		added |= !adds[i]->existed;
		srv_metrics_count(adds[i]->existed ? CNT_IMAGES_EXISTING : CNT_IMAGES_ADDED);
	}
	if (added) {
		atomic_fetch_add(&w->generation, 1);
		srv_metrics_count(CNT_COMMITS);
	}
}

static void commit_removes(struct srv_writer *w, struct srv_wop **ops, size_t n)
{
	uint32_t ids[WRITER_BATCH];
	unsigned char found[WRITER_BATCH];
	nd_error err;
	nd_error_clear(&err);
	for (size_t i = 0; i < n; i++)
		ids[i] = ops[i]->id;
	int rc = srv_engine_remove(w->eng, ids, n, found, &err);
	for (size_t i = 0; i < n; i++) {
		ops[i]->rc = rc;
		ops[i]->found = found[i];
		if (rc)
			snprintf(ops[i]->msg, sizeof(ops[i]->msg), "%s", err.msg[0] ? err.msg : nd_strerror(rc));
		else if (found[i])
			srv_metrics_count(CNT_IMAGES_REMOVED);
	}
	if (rc) {
		cli_msg("cannot write to the index: %s", err.msg[0] ? err.msg : nd_strerror(rc));
		return;
	}
	atomic_fetch_add(&w->generation, 1);
	srv_metrics_count(CNT_COMMITS);
}

static void *writer_main(void *arg)
{
	struct srv_writer *w = arg;
	struct srv_wop *batch[WRITER_BATCH];
	for (;;) {
		pthread_mutex_lock(&w->mu);
		while (!w->head && !w->stopping)
			pthread_cond_wait(&w->work, &w->mu);
		while (w->pause_file && !w->stopping && access(w->pause_file, F_OK) == 0) {
			struct timespec ts = { 0, 10 * 1000000 };
			pthread_mutex_unlock(&w->mu);
			nanosleep(&ts, NULL);
			pthread_mutex_lock(&w->mu);
		}
		if (!w->head) { /* stopping and nothing left */
			pthread_mutex_unlock(&w->mu);
			break;
		}
		size_t n = 0;
		while (w->head && n < WRITER_BATCH) {
			batch[n++] = w->head;
			w->head = w->head->next;
			w->queued--;
		}
		if (!w->head)
			w->tail = NULL;
		pthread_mutex_unlock(&w->mu);

		/* runs of one kind, in the order they came */
		for (size_t i = 0; i < n;) {
			size_t j = i;
			while (j < n && batch[j]->kind == batch[i]->kind)
				j++;
			if (batch[i]->kind == WOP_ADD)
				commit_adds(w, batch + i, j - i);
			else
				commit_removes(w, batch + i, j - i);
			i = j;
		}
		void (*notify[WRITER_BATCH])(void *);
		void *ctx[WRITER_BATCH];
		pthread_mutex_lock(&w->mu);
		for (size_t i = 0; i < n; i++) {
			notify[i] = batch[i]->notify;
			ctx[i] = batch[i]->notify_ctx;
			batch[i]->done = 1; /* from here the op may be freed */
		}
		pthread_cond_broadcast(&w->done);
		pthread_mutex_unlock(&w->mu);
		for (size_t i = 0; i < n; i++)
			if (notify[i])
				notify[i](ctx[i]);
	}
	return NULL;
}

int srv_writer_start(struct srv_writer **out, struct srv_engine *e, int queue)
{
	struct srv_writer *w = calloc(1, sizeof(*w));
	*out = NULL;
	if (!w)
		return ND_ENOMEM;
	w->eng = e;
	w->cap = queue;
	const char *pause = getenv("NEARDUP_SERVE_TEST_PAUSE");
	w->pause_file = pause && *pause ? pause : NULL;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->done, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		free(w);
		return ND_ENOMEM;
	}
	*out = w;
	return 0;
}

void srv_writer_stop(struct srv_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = 1;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->work);
	pthread_cond_destroy(&w->done);
	free(w);
}
