/* The console byte log (see console.h): a ring buffer under one mutex. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "vmm/console.h"

struct kevd_console {
	pthread_mutex_t lock;  /* protects buf contents and total */
	unsigned char *buf;
	size_t cap;
	uint64_t total;        /* bytes ever written; byte k lives at buf[k % cap] */
	int mirror_fd;         /* borrowed; -1 for none */
};

int kevd_console_new(size_t capacity, int mirror_fd, struct kevd_console **out, struct kevd_error *err)
{
	struct kevd_console *c;

	if (capacity == 0)
		return kevd_error_set(err, EINVAL, "console: capacity must be at least one byte");
	c = calloc(1, sizeof(*c));
	if (!c || !(c->buf = malloc(capacity))) {
		free(c);
		return kevd_error_sys(err, ENOMEM, "console: %zu bytes", capacity);
	}
	c->cap = capacity;
	c->mirror_fd = mirror_fd;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

void kevd_console_free(struct kevd_console *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c->buf);
	free(c);
}

void kevd_console_put(struct kevd_console *c, const void *bytes, size_t n)
{
	const unsigned char *b = bytes;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++)
		c->buf[(c->total + i) % c->cap] = b[i];
	c->total += n;
	pthread_mutex_unlock(&c->lock);
	if (c->mirror_fd >= 0) {
		size_t done = 0;

		/* Best effort: a closed terminal must not stop the guest. */
		while (done < n) {
			ssize_t w = KEVD_RETRY_EINTR(write(c->mirror_fd, b + done, n - done));

			if (w <= 0)
				break;
			done += (size_t)w;
		}
	}
}

void kevd_console_restore(struct kevd_console *c, uint64_t total, const void *bytes, size_t n)
{
	const unsigned char *b = bytes;

	if (n > total)
		n = (size_t)total;
	if (n > c->cap) {
		b += n - c->cap;
		n = c->cap;
	}
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++)
		c->buf[(total - n + i) % c->cap] = b[i];
	c->total = total;
	pthread_mutex_unlock(&c->lock);
}

size_t kevd_console_read(struct kevd_console *c, uint64_t offset, void *buf, size_t len,
			 uint64_t *start, uint64_t *end)
{
	unsigned char *out = buf;
	uint64_t oldest;
	size_t n = 0;

	pthread_mutex_lock(&c->lock);
	oldest = c->total > c->cap ? c->total - c->cap : 0;
	if (offset < oldest)
		offset = oldest;
	if (offset > c->total)
		offset = c->total;
	while (n < len && offset + n < c->total) {
		out[n] = c->buf[(offset + n) % c->cap];
		n++;
	}
	if (start)
		*start = offset;
	if (end)
		*end = c->total;
	pthread_mutex_unlock(&c->lock);
	return n;
}

uint64_t kevd_console_total(struct kevd_console *c)
{
	uint64_t t;

	pthread_mutex_lock(&c->lock);
	t = c->total;
	pthread_mutex_unlock(&c->lock);
	return t;
}
