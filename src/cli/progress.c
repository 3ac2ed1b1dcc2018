/* neardup CLI — progress bar / periodic progress lines on stderr. */
#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "cli.h"

pthread_mutex_t cli_stderr_lock = PTHREAD_MUTEX_INITIALIZER;

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
