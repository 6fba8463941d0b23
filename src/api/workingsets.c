/*
 * The daemon's working sets (see workingsets.h).
 *
 * The store's mutex protects its list of the lists being recorded: creates
 * plan on workers, the loop tracks, polls and drops.  A list's directory
 * is held open from the plan on, so that a list recorded for a snapshot
 * that is deleted meanwhile cannot land in a new snapshot of the same
 * name: writing into a removed directory fails.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/workingsets.h"
#include "common/cleanup.h"
#include "common/hash.h"
#include "common/log.h"

#define MAX_PAGES (1ull << 28)   /* 1 TiB of guest pages: beyond any VM kevd runs */

struct kevd_wslist {
	struct kevd_job job;                /* the write, once the recording ended; first member */
	struct kevd_wslist *next;           /* the store's list, under its lock */
	struct kevd_wsstore *st;
	int dirfd;                          /* owned */
	dev_t dev;                          /* the directory's: with name, which list this is */
	ino_t ino;
	char *name, *path, *what;           /* owned; path and what for messages */
	struct kevd_pager_recording *rec;   /* owned reference once tracked (loop); NULL while reserved */
	bool writing;                       /* loop: a job writes it */
	int written;                        /* the job's result: 0 or -errno */
	size_t pages;
	struct kevd_error err;
};

struct kevd_wsstore {
	pthread_mutex_t lock;               /* protects lists */
	struct kevd_wslist *lists;          /* reserved or tracked, until written or dropped */
	int dirfd;                          /* owned: the kernels' lists; -1 */
	char *path;                         /* owned: its path, "" without */
};

/* Temporary files of writes a crash cut short: ".NAME.tmp". */
static void remove_leftovers(int dirfd)
{
	int fd = dup(dirfd);
	struct dirent *de;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.' && len > 5 && !strcmp(de->d_name + len - 4, ".tmp"))
			unlinkat(dirfd, de->d_name, 0);
	}
	closedir(d);
}

int kevd_wsstore_new(const char *dir, struct kevd_wsstore **out, struct kevd_error *err)
{
	struct kevd_wsstore *st = calloc(1, sizeof(*st));

	if (!st)
		return kevd_error_sys(err, ENOMEM, "working sets");
	pthread_mutex_init(&st->lock, NULL);
	st->dirfd = -1;
	st->path = strdup(dir ? dir : "");
	if (!st->path) {
		kevd_wsstore_free(st);
		return kevd_error_sys(err, ENOMEM, "working sets");
	}
	if (dir && (mkdir(dir, 0700) == 0 || errno == EEXIST))
		st->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir && st->dirfd < 0)
		kevd_warn("api: working sets of kernel boots are off: '%s': %s", dir, strerror(errno));
	if (st->dirfd >= 0)
		remove_leftovers(st->dirfd);
	*out = st;
	return 0;
}

static void list_free(struct kevd_wslist *l)
{
	if (!l)
		return;
	if (l->dirfd >= 0)
		close(l->dirfd);
	kevd_pager_recording_unref(l->rec);
	free(l->name);
	free(l->path);
	free(l->what);
	free(l);
}

void kevd_wsstore_free(struct kevd_wsstore *st)
{
	if (!st)
		return;
	while (st->lists) {
		struct kevd_wslist *l = st->lists;

		st->lists = l->next;
		list_free(l);
	}
	if (st->dirfd >= 0)
		close(st->dirfd);
	free(st->path);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

int kevd_wsstore_dirfd(const struct kevd_wsstore *st)
{
	return st->dirfd;
}

const char *kevd_wsstore_path(const struct kevd_wsstore *st)
{
	return st->path;
}

/* ---- the file ---- */

int kevd_wsfile_read(int dirfd, const char *name, uint64_t **gfns, size_t *n, struct kevd_error *err)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	cleanup_free unsigned char *buf = NULL;
	struct kevd_workingset_header h;
	size_t done = 0, len;
	struct stat sb;

	if (fd < 0)
		return errno == ENOENT ? kevd_error_set(err, ENOENT, "it does not exist")
				       : kevd_error_set(err, EBADMSG, "%s", strerror(errno));
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size < sizeof(h) ||
	    (uint64_t)sb.st_size > sizeof(h) + MAX_PAGES * 8)
		return kevd_error_set(err, EBADMSG, "not a working set kevd wrote (%lld bytes)", (long long)sb.st_size);
	len = (size_t)sb.st_size;
	buf = malloc(len);
	if (!buf)
		return kevd_error_sys(err, ENOMEM, "reading it");
	while (done < len) {
		ssize_t r = KEVD_RETRY_EINTR(pread(fd, buf + done, len - done, (off_t)done));

		if (r <= 0)
			return kevd_error_set(err, EBADMSG, "reading it: %s", r < 0 ? strerror(errno) : "it shrank");
		done += (size_t)r;
	}
	memcpy(&h, buf, sizeof(h));
	if (memcmp(h.magic, KEVD_WORKINGSET_MAGIC, sizeof(h.magic)) || h.version < KEVD_WORKINGSET_VERSION_MIN ||
	    h.version > KEVD_WORKINGSET_VERSION || h.header_bytes != sizeof(h))
		return kevd_error_set(err, EBADMSG, "not a working set of this kevd's formats %d-%d",
				      KEVD_WORKINGSET_VERSION_MIN, KEVD_WORKINGSET_VERSION);
	if (!h.count || h.count > MAX_PAGES || sizeof(h) + h.count * 8 != len)
		return kevd_error_set(err, EBADMSG, "%zu bytes of pages where its header says %llu pages (truncated or corrupted)",
				      len - sizeof(h), (unsigned long long)h.count);
	if (kevd_hash64(buf + sizeof(h), len - sizeof(h)) != h.hash)
		return kevd_error_set(err, EBADMSG, "it does not match its checksum (corrupted)");
	*gfns = malloc(len - sizeof(h));
	if (!*gfns)
		return kevd_error_sys(err, ENOMEM, "reading it");
	memcpy(*gfns, buf + sizeof(h), len - sizeof(h));
	*n = (size_t)h.count;
	return 0;
}

static int write_all(int fd, const void *p, size_t len, off_t off)
{
	const unsigned char *b = p;
	size_t done = 0;

	while (done < len) {
		ssize_t r = KEVD_RETRY_EINTR(pwrite(fd, b + done, len - done, off + (off_t)done));

		if (r < 0)
			return -errno;
		done += (size_t)r;
	}
	return 0;
}

int kevd_wsfile_write(int dirfd, const char *name, const uint64_t *gfns, size_t n, struct kevd_error *err)
{
	struct kevd_workingset_header h = {
		.version = KEVD_WORKINGSET_VERSION, .header_bytes = sizeof(h), .count = n,
		.hash = kevd_hash64(gfns, n * sizeof(*gfns)),
	};
	char tmp[300];
	int fd, r;

	memcpy(h.magic, KEVD_WORKINGSET_MAGIC, sizeof(h.magic));
	if (snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= (int)sizeof(tmp))
		return kevd_error_set(err, ENAMETOOLONG, "'%s': name too long", name);
	fd = openat(dirfd, tmp, O_CREAT | O_TRUNC | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return kevd_error_sys(err, errno, "creating its temporary '%s'", tmp);
	r = write_all(fd, &h, sizeof(h), 0);
	if (r == 0)
		r = write_all(fd, gfns, n * sizeof(*gfns), sizeof(h));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return kevd_error_sys(err, -r, "writing it");
	}
	fsync(dirfd);
	return 0;
}

/* ---- plans and recordings ---- */

static bool reserved_locked(const struct kevd_wsstore *st, dev_t dev, ino_t ino, const char *name)
{
	for (const struct kevd_wslist *l = st->lists; l; l = l->next)
		if (l->dev == dev && l->ino == ino && !strcmp(l->name, name))
			return true;
	return false;
}

enum kevd_ws_plan kevd_wsstore_plan(struct kevd_wsstore *st, int dirfd, const char *name, const char *path,
				    const char *what, uint64_t **gfns, size_t *n, struct kevd_wslist **list)
{
	struct kevd_error e = KEVD_ERROR_INIT;
	struct kevd_wslist *l;
	struct stat sb;
	int r;

	*gfns = NULL;
	*n = 0;
	*list = NULL;
	if (dirfd < 0 || fstat(dirfd, &sb) < 0)
		return KEVD_WS_NOTHING;
	r = kevd_wsfile_read(dirfd, name, gfns, n, &e);
	if (r == 0)
		return KEVD_WS_PREFETCH;
	if (r != -ENOENT)
		kevd_warn("api: %s: working set '%s' is unusable (%s): not prefetched, recorded anew", what, path, e.msg);
	l = calloc(1, sizeof(*l));
	if (!l)
		return KEVD_WS_NOTHING;
	*l = (struct kevd_wslist){
		.st = st, .dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3), .dev = sb.st_dev, .ino = sb.st_ino,
		.name = strdup(name), .path = strdup(path), .what = strdup(what), .err = KEVD_ERROR_INIT,
	};
	if (l->dirfd < 0 || !l->name || !l->path || !l->what) {
		list_free(l);
		return KEVD_WS_NOTHING;
	}
	/* One recording of a list at a time: the VMs that start meanwhile
	 * take their faults as before the list existed. */
	pthread_mutex_lock(&st->lock);
	if (reserved_locked(st, l->dev, l->ino, l->name)) {
		pthread_mutex_unlock(&st->lock);
		list_free(l);
		return KEVD_WS_NOTHING;
	}
	l->next = st->lists;
	st->lists = l;
	pthread_mutex_unlock(&st->lock);
	*list = l;
	return KEVD_WS_RECORD;
}

void kevd_wsstore_track(struct kevd_wsstore *st, struct kevd_wslist *list, struct kevd_pager_recording *rec)
{
	pthread_mutex_lock(&st->lock);
	list->rec = rec;
	pthread_mutex_unlock(&st->lock);
}

void kevd_wsstore_drop(struct kevd_wsstore *st, struct kevd_wslist *list)
{
	struct kevd_wslist **pp;

	if (!list)
		return;
	pthread_mutex_lock(&st->lock);
	for (pp = &st->lists; *pp && *pp != list; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = list->next;
	pthread_mutex_unlock(&st->lock);
	list_free(list);
}

/* Worker: the list, written. */
static void write_run(struct kevd_job *job)
{
	struct kevd_wslist *l = (struct kevd_wslist *)job;
	cleanup_free uint64_t *gfns = NULL;

	l->written = kevd_pager_recording_pages(l->rec, &gfns, &l->pages);
	if (l->written < 0)
		kevd_error_sys(&l->err, -l->written, "copying it");
	else if (l->pages)
		l->written = kevd_wsfile_write(l->dirfd, l->name, gfns, l->pages, &l->err);
}

/* Loop: said, and let go. */
static void write_done(struct kevd_job *job)
{
	struct kevd_wslist *l = (struct kevd_wslist *)job;

	/* ENOENT: the snapshot was deleted meanwhile, its list with it. */
	if (l->written == -ENOENT)
		kevd_info("api: %s: working set '%s' not written: its directory is gone", l->what, l->path);
	else if (l->written < 0)
		kevd_warn("api: %s: working set '%s' not written: %s", l->what, l->path, l->err.msg);
	else if (l->pages)
		kevd_info("api: %s: working set '%s' of %zu pages recorded", l->what, l->path, l->pages);
	kevd_wsstore_drop(l->st, l);
}

void kevd_wsstore_poll(struct kevd_wsstore *st, struct kevd_jobs *jobs)
{
	pthread_mutex_lock(&st->lock);
	for (struct kevd_wslist *l = st->lists; l; l = l->next) {
		if (!l->rec || l->writing || !kevd_pager_recording_ended(l->rec))
			continue;
		l->writing = true;
		l->job = (struct kevd_job){ .run = write_run, .done = write_done };
		kevd_jobs_submit(jobs, &l->job);
	}
	pthread_mutex_unlock(&st->lock);
}
