/* neardup CLI — the action journal: one JSONL file, journal.jsonl in the
 * index directory, to which dedup and undo append what they do.
 *
 * Every action is one entry, written as two lines: a "begin" line, written
 * and fsync-ed before the file is touched, then a "done" or "failed" line
 * with the same run and seq:
 *   {"run": R, "seq": N, "time": T, "state": "begin", "action": A,
 *    "source": P, "dest": P, "info": P, "keep": P, "size": N, "hash": H,
 *    "undoes": R, "undoes_seq": N}
 *   {"run": R, "seq": N, "time": T, "state": "done"}
 *   {"run": R, "seq": N, "time": T, "state": "failed", "error": E}
 * A is delete, move, trash, hardlink (dedup) or undo-move, undo-trash
 * (undo, with undoes / undoes_seq naming the entry undone); dest, info
 * (the .trashinfo file), keep (the kept file), undoes are present when they
 * apply. Paths are absolute; strings are written as output.h's JSON (any
 * path bytes round-trip). H is the XXH3-128 of the file's content in hex. A
 * begin line without an end line is an action interrupted while running. */
#ifndef NEARDUP_CLI_JOURNAL_H
#define NEARDUP_CLI_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "safe_fs.h"

#define JOURNAL_FILE "journal.jsonl"

/* One entry (begin line merged with its end line). */
struct jentry {
	char run[64];
	uint32_t seq;
	char time[40];
	char action[24];
	char state[12];  /* begin (no end line), done, failed */
	char *source, *dest, *info, *keep, *error; /* NULL when absent; owned */
	char undoes[64];
	uint32_t undoes_seq;
	uint64_t size;
	uint8_t hash[16];
	int has_hash;
};

struct journal {
	int fd;
	char run[64];
	uint32_t seq;
};

/* Opens (creating) the journal of index_dir for appending and makes a new
 * run id. */
int journal_open(struct journal *j, const char *index_dir, char *why);
void journal_close(struct journal *j);

/* Appends e's begin line (e->run, seq, time and state are filled here) and
 * fsyncs it; e->seq is set. */
int journal_begin(struct journal *j, struct jentry *e, char *why);
/* Appends the end line of entry seq: ok, or failed with error. */
int journal_end(struct journal *j, uint32_t seq, int ok, const char *error, char *why);

/* Reads every entry of index_dir's journal, in order of their begin lines.
 * *bad counts lines that could not be read. A missing journal gives 0
 * entries. Free with journal_free. */
int journal_read(const char *index_dir, struct jentry **out, size_t *n, size_t *bad, char *why);
void journal_free(struct jentry *e, size_t n);

#endif
