/* neardup CLI — the terminal: stderr's lock, the messages, the progress
 * bar or lines, and the clock they share. Below every other CLI file: it
 * calls only output.c's escaping. */
#include "term.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "output.h"

pthread_mutex_t cli_stderr_lock = PTHREAD_MUTEX_INITIALIZER;

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- messages ---- */

void cli_msg(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* whatever a message quotes (paths come through cli_quote), the
	 * terminal gets no raw control character */
	char safe[4 * sizeof(buf)];
	size_t o = 0;
	for (const unsigned char *c = (const unsigned char *)buf; *c && o + 5 < sizeof(safe); c++) {
		if (*c < 0x20 || *c == 0x7f)
			o += (size_t)snprintf(safe + o, sizeof(safe) - o, "\\x%02x", *c);
		else
			safe[o++] = (char)*c;
	}
	safe[o] = 0;
	pthread_mutex_lock(&cli_stderr_lock);
	progress_erase_locked();
	fprintf(stderr, "neardup: %s\n", safe);
	fflush(stderr);
	pthread_mutex_unlock(&cli_stderr_lock);
}

const char *cli_quote(const char *path, char *buf, size_t cap)
{
	out_escape(path, buf, cap);
	return buf;
}

void cli_err_path(const char *what, const char *path, const char *why)
{
	char q[1024];
	cli_msg("%s '%s': %s", what, cli_quote(path, q, sizeof(q)), why);
}

/* ---- progress ---- */

static struct {
	int on, tty, visible;
	double t0, last;
} pg;

void progress_start(int quiet)
{
	pg.on = !quiet;
	pg.tty = isatty(STDERR_FILENO);
	pg.visible = 0;
	pg.t0 = pg.last = cli_now();
}

void progress_erase_locked(void)
{
	if (pg.visible) {
		fputs("\r\033[K", stderr);
		pg.visible = 0;
	}
}

static void fmt_eta(char *buf, size_t cap, double s)
{
	long t = (long)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

void progress_update(unsigned long done, unsigned long total, int total_final)
{
	if (!pg.on)
		return;
	double now = cli_now();
	if (now - pg.last < (pg.tty ? 0.2 : 10.0))
		return;
	pg.last = now;
	double el = now - pg.t0;
	double rate = el > 0 ? done / el : 0;
	char eta[32] = "";
	if (total_final && rate > 0 && total >= done)
		fmt_eta(eta, sizeof(eta), (total - done) / rate);
	pthread_mutex_lock(&cli_stderr_lock);
	if (pg.tty) {
		char bar[31];
		int fill = total ? (int)(30.0 * done / total) : 0;
		if (fill > 30)
			fill = 30;
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
		bar[30] = 0;
		fprintf(stderr, "\r\033[K[%s] %lu/%lu%s files  %.1f files/s%s%s", bar, done, total,
			total_final ? "" : "+", rate, eta[0] ? "  ETA " : "", eta);
		pg.visible = 1;
	} else {
		fprintf(stderr, "neardup: %lu of %lu%s files done, %.1f files/s%s%s\n", done, total,
			total_final ? "" : "+", rate, eta[0] ? ", ETA " : "", eta);
	}
	fflush(stderr);
	pthread_mutex_unlock(&cli_stderr_lock);
}

void progress_end(void)
{
	pthread_mutex_lock(&cli_stderr_lock);
	progress_erase_locked();
	fflush(stderr);
	pthread_mutex_unlock(&cli_stderr_lock);
	pg.on = 0;
}
