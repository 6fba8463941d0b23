/*
 * The snapshot store (snapshots.h).  A snapshot is written into a hidden
 * temporary directory beside the others, every file and the directory
 * fsynced, then renamed into place without replacing anything: a reader
 * (or a restart after a crash) sees a snapshot whole or not at all, and
 * leftover temporary directories are removed when the store opens.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/request.h"
#include "api/snapshots.h"
#include "common/cleanup.h"
#include "common/hash.h"
#include "common/log.h"

#define TMP_PREFIX ".tmp-"
#define MAX_SMALL_FILE (256u << 20)   /* state and page list: far beyond any real VM's */

struct kevd_snapstore {
	int dirfd;      /* owned */
	char *path;     /* owned */
	unsigned seq;   /* atomic: temporary names */
};

/* Removes a directory of the store and what is in it (a snapshot, or what
 * is left of one).  kevd makes no subdirectories there, but directories
 * someone put inside go too, this deep at most (a deeper tree stays, and
 * the warning says so); a mount inside is never entered. */
#define REMOVE_DEPTH 16

static int remove_tree(int parent, const char *name, unsigned depth)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat ps, cs;
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return -errno;
	/* A mount inside a snapshot (a bind mount to look at something) is
	 * not the snapshot's: never emptied, and the delete leaves it. */
	if (fstat(parent, &ps) < 0 || fstat(fd, &cs) < 0 || ps.st_dev != cs.st_dev) {
		close(fd);
		return -EXDEV;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		/* A symbolic link is unlinked, never followed. */
		if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno == EISDIR && depth < REMOVE_DEPTH)
			remove_tree(dirfd(d), de->d_name, depth + 1);
	}
	closedir(d);
	return unlinkat(parent, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int remove_dir(int parent, const char *name)
{
	return remove_tree(parent, name, 0);
}

int kevd_snapstore_new(const char *path, struct kevd_snapstore **out, struct kevd_error *err)
{
	struct kevd_snapstore *st;
	DIR *d;
	int fd;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return kevd_error_sys(err, errno, "snapshot directory '%s'", path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return kevd_error_sys(err, errno, "snapshot directory '%s'", path);
	st = calloc(1, sizeof(*st));
	if (!st || !(st->path = strdup(path))) {
		free(st);
		close(fd);
		return kevd_error_sys(err, ENOMEM, "snapshot directory '%s'", path);
	}
	st->dirfd = fd;
	/* A snapshot cut short by a crash: never renamed, never seen. */
	if ((d = fdopendir(dup(fd))) != NULL) {
		struct dirent *de;

		while ((de = readdir(d)) != NULL)
			if (!strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) && remove_dir(fd, de->d_name) == 0)
				kevd_info("snapshots: removed '%s', left unfinished", de->d_name);
		closedir(d);
	}
	*out = st;
	return 0;
}

void kevd_snapstore_free(struct kevd_snapstore *st)
{
	if (!st)
		return;
	close(st->dirfd);
	free(st->path);
	free(st);
}

const char *kevd_snapstore_path(const struct kevd_snapstore *st)
{
	return st->path;
}

static int check_name(const char *name, struct kevd_error *err)
{
	if (!name || !kevd_request_valid_name(name))
		return kevd_error_set(err, EINVAL,
				      "a snapshot name is 1..%d characters of A-Z a-z 0-9 . _ -, not starting with . or -",
				      KEVD_REQUEST_NAME_MAX);
	return 0;
}

static char *hex64(uint64_t v, char buf[19])
{
	snprintf(buf, 19, "0x%016" PRIx64, v);
	return buf;
}

static json_t *identity_json(const struct kevd_image_identity *id)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "dev", (json_int_t)id->dev, "ino",
			 (json_int_t)id->ino, "size", (json_int_t)id->size, "mtime_ns", (json_int_t)id->mtime_ns,
			 "ctime_ns", (json_int_t)id->ctime_ns, "initrd_dev", (json_int_t)id->flat_dev, "initrd_ino",
			 (json_int_t)id->flat_ino, "initrd_size", (json_int_t)id->flat_size, "initrd_gpa",
			 (json_int_t)id->flat_gpa, "initrd_mtime_ns", (json_int_t)id->flat_mtime_ns,
			 "initrd_ctime_ns", (json_int_t)id->flat_ctime_ns);
}

static int identity_parse(json_t *o, struct kevd_image_identity *id)
{
	json_int_t v[11];

	if (json_unpack(o, "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "dev", &v[0], "ino", &v[1], "size",
			&v[2], "mtime_ns", &v[3], "ctime_ns", &v[4], "initrd_dev", &v[5], "initrd_ino", &v[6],
			"initrd_size", &v[7], "initrd_gpa", &v[8], "initrd_mtime_ns", &v[9], "initrd_ctime_ns",
			&v[10]) < 0)
		return -1;
	*id = (struct kevd_image_identity){
		.dev = (uint64_t)v[0], .ino = (uint64_t)v[1], .size = (uint64_t)v[2], .mtime_ns = v[3],
		.ctime_ns = v[4], .flat_dev = (uint64_t)v[5], .flat_ino = (uint64_t)v[6],
		.flat_size = (uint64_t)v[7], .flat_gpa = (uint64_t)v[8], .flat_mtime_ns = v[9],
		.flat_ctime_ns = v[10],
	};
	return 0;
}

static json_t *manifest_new(const char *name, struct kevd_vm *vm, const struct kevd_vm_snapshot_result *res)
{
	const struct kevd_vm_config *c = kevd_vm_config(vm);
	struct kevd_image_identity id;
	char h1[19], h2[19], ts[32];
	time_t now = time(NULL);
	struct tm tm;
	uint64_t bytes = c->memory_mib << 20;
	uint64_t end = bytes > KEVD_MMIO_HOLE_START ? KEVD_MMIO_HOLE_END + (bytes - KEVD_MMIO_HOLE_START) : bytes;

	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	kevd_vm_kernel_identity(vm, &id);
	return json_pack("{s:i,s:s,s:s,s:s,s:s,"
			 "s:{s:s,s:s?,s:s?,s:I,s:i,s:s,s:s,s:b},s:o,"
			 "s:{s:I,s:I,s:I,s:I},"
			 "s:{s:{s:I,s:s},s:{s:I,s:s}}}",
			 "format", KEVD_SNAPSHOT_FORMAT, "kevd_version", PACKAGE_VERSION, "name", name,
			 "created_at", ts, "from_vm", kevd_vm_name(vm),
			 "vm", "kernel", c->kernel, "initrd", c->initrd, "cmdline", c->cmdline,
			 "memory_mib", (json_int_t)c->memory_mib, "vcpus", (int)c->vcpus,
			 "boot_protocol", kevd_vm_protocol(vm) == KEVD_BOOT_PVH ? "pvh" : "multiboot2",
			 "paging", c->eager ? "eager" : c->private_pages ? "lazy-private" : "lazy",
			 "pc", kevd_vm_is_pc(vm),
			 "kernel_identity", identity_json(&id),
			 "memory", "file_bytes", (json_int_t)end, "pages", (json_int_t)res->pages,
			 "image_pages_left", (json_int_t)res->image_pages_left,
			 "zero_pages_left", (json_int_t)res->zero_pages_left,
			 "files", KEVD_SNAPSHOT_STATE_FILE, "bytes", (json_int_t)res->state_bytes, "hash",
			 hex64(res->state_hash, h1), KEVD_SNAPSHOT_PAGES_FILE, "bytes",
			 (json_int_t)(res->pages * sizeof(struct kevd_image_page)), "hash", hex64(res->pages_hash, h2));
}

/* What GET shows of a manifest: all of it but the identity and hashes. */
static json_t *summary(json_t *m)
{
	json_t *o = json_deep_copy(m);
	const char *name = json_string_value(json_object_get(m, "name"));

	if (!o)
		return NULL;
	json_object_del(o, "kernel_identity");
	json_object_del(o, "files");
	json_object_set_new(o, "links", json_pack("{s:s++}", "self", "/v1/snapshots/", name ? name : "", ""));
	return o;
}

static int write_manifest(int fd, json_t *m, struct kevd_error *err)
{
	cleanup_free char *s = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
	size_t len, done = 0;

	if (!s)
		return kevd_error_sys(err, ENOMEM, "snapshot manifest");
	len = strlen(s);
	while (done < len) {
		ssize_t n = KEVD_RETRY_EINTR(write(fd, s + done, len - done));

		if (n < 0)
			return kevd_error_sys(err, errno, "writing the snapshot's manifest");
		done += (size_t)n;
	}
	if (fsync(fd) < 0)
		return kevd_error_sys(err, errno, "writing the snapshot's manifest");
	return 0;
}

int kevd_snapstore_take(struct kevd_snapstore *st, const char *name, struct kevd_vm *vm, json_t **info,
			struct kevd_error *err)
{
	struct kevd_vm_snapshot_result res;
	cleanup_close int dfd = -1, mfd = -1;
	cleanup_json json_t *m = NULL;
	char tmp[128];
	struct stat sb;
	int r;

	if ((r = check_name(name, err)) < 0)
		return r;
	if (fstatat(st->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return kevd_error_set(err, EEXIST, "a snapshot named '%s' exists", name);
	snprintf(tmp, sizeof(tmp), TMP_PREFIX "%s-%d-%u", name, (int)getpid(),
		 __atomic_add_fetch(&st->seq, 1, __ATOMIC_RELAXED));
	if (mkdirat(st->dirfd, tmp, 0700) < 0)
		return kevd_error_sys(err, errno, "snapshot '%s': creating '%s/%s'", name, st->path, tmp);
	dfd = openat(st->dirfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		r = kevd_error_sys(err, errno, "snapshot '%s'", name);
		goto fail;
	}
	if ((r = kevd_vm_snapshot_write(vm, dfd, &res, err)) < 0)
		goto fail;
	/* What a restore would refuse to read is not kept. */
	if (res.pages > MAX_SMALL_FILE / sizeof(struct kevd_image_page)) {
		r = kevd_error_set(err, EFBIG, "%llu pages to keep, more than a restore reads (%zu)",
				   (unsigned long long)res.pages, (size_t)(MAX_SMALL_FILE / sizeof(struct kevd_image_page)));
		goto fail;
	}
	m = manifest_new(name, vm, &res);
	if (!m) {
		r = kevd_error_sys(err, ENOMEM, "snapshot '%s': manifest", name);
		goto fail;
	}
	/* In whole microseconds: a double of ns / 1e6 prints 17 digits. */
	json_object_set_new(m, "write_ms", json_real((double)(res.write_ns / 1000) / 1000.0));
	mfd = openat(dfd, KEVD_SNAPSHOT_MANIFEST, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (mfd < 0) {
		r = kevd_error_sys(err, errno, "snapshot '%s': manifest", name);
		goto fail;
	}
	if ((r = write_manifest(mfd, m, err)) < 0)
		goto fail;
	if (fsync(dfd) < 0) {
		r = kevd_error_sys(err, errno, "snapshot '%s'", name);
		goto fail;
	}
	/* Never over another: two takes of one name race here, one wins. */
	if (renameat2(st->dirfd, tmp, st->dirfd, name, RENAME_NOREPLACE) < 0) {
		r = errno == EEXIST ? kevd_error_set(err, EEXIST, "a snapshot named '%s' exists", name)
				    : kevd_error_sys(err, errno, "snapshot '%s': renaming it into place", name);
		goto fail;
	}
	fsync(st->dirfd);
	*info = summary(m);
	return 0;
fail:
	remove_dir(st->dirfd, tmp);
	if (r != -EEXIST)
		kevd_error_prefix(err, "snapshot '%s' not taken", name);
	return r;
}

/* Reads the whole of NAME in the snapshot directory DFD (at most MAX
 * bytes, exactly WANT unless WANT is SIZE_MAX). */
static int read_small(struct kevd_snapstore *st, const char *snap, int dfd, const char *name, size_t want,
		      void **out, size_t *len, struct kevd_error *err)
{
	/* O_NONBLOCK: a FIFO put here must not hang the worker. */
	cleanup_close int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	cleanup_free unsigned char *buf = NULL;
	struct stat sb;
	size_t done = 0;

	if (fd < 0)
		return kevd_error_set(err, EBADMSG, "snapshot '%s': '%s/%s/%s' is missing (%s)", snap, st->path, snap,
				      name, strerror(errno));
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > MAX_SMALL_FILE)
		return kevd_error_set(err, EBADMSG, "snapshot '%s': '%s/%s/%s' is not a file kevd wrote", snap,
				      st->path, snap, name);
	if (want != SIZE_MAX && (uint64_t)sb.st_size != want)
		return kevd_error_set(err, EBADMSG, "snapshot '%s': '%s/%s/%s' has %lld bytes, the manifest says %zu (truncated or corrupted)",
				      snap, st->path, snap, name, (long long)sb.st_size, want);
	buf = malloc((size_t)sb.st_size + 1);
	if (!buf)
		return kevd_error_sys(err, ENOMEM, "snapshot '%s'", snap);
	while (done < (size_t)sb.st_size) {
		ssize_t n = KEVD_RETRY_EINTR(read(fd, buf + done, (size_t)sb.st_size - done));

		if (n <= 0)
			return kevd_error_set(err, EBADMSG, "snapshot '%s': reading '%s/%s/%s': %s", snap, st->path,
					      snap, name, n < 0 ? strerror(errno) : "it shrank");
		done += (size_t)n;
	}
	buf[done] = 0;
	*out = kevd_steal_ptr(&buf);
	*len = done;
	return 0;
}

static int read_manifest(struct kevd_snapstore *st, const char *name, int dfd, json_t **out,
			 struct kevd_error *err)
{
	cleanup_free void *buf = NULL;
	json_error_t je;
	json_int_t fmt;
	size_t len;
	json_t *m;
	int r = read_small(st, name, dfd, KEVD_SNAPSHOT_MANIFEST, SIZE_MAX, &buf, &len, err);

	if (r < 0)
		return r;
	m = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!m || !json_is_object(m)) {
		json_decref(m);
		return kevd_error_set(err, EBADMSG, "snapshot '%s': '%s/%s/" KEVD_SNAPSHOT_MANIFEST "' is not a kevd manifest (%s)",
				      name, st->path, name, m ? "not an object" : je.text);
	}
	if (json_unpack(m, "{s:I}", "format", &fmt) < 0 || fmt != KEVD_SNAPSHOT_FORMAT) {
		bool unknown = json_is_integer(json_object_get(m, "format"));  /* read before M is freed */

		json_decref(m);
		return kevd_error_set(err, EBADMSG, "snapshot '%s': '%s/%s/" KEVD_SNAPSHOT_MANIFEST "': format %s, this kevd reads format %d",
				      name, st->path, name, unknown ? "unknown" : "missing", KEVD_SNAPSHOT_FORMAT);
	}
	*out = m;
	return 0;
}

static int open_snapshot(struct kevd_snapstore *st, const char *name, struct kevd_error *err)
{
	int fd, r;

	if ((r = check_name(name, err)) < 0)
		return r;
	fd = openat(st->dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && (errno == ENOTDIR || errno == ELOOP))
		return kevd_error_set(err, ENOENT, "no snapshot '%s' ('%s/%s' is not a snapshot directory)", name,
				      st->path, name);
	if (fd < 0)
		return errno == ENOENT ? kevd_error_set(err, ENOENT, "no snapshot '%s'", name)
				       : kevd_error_sys(err, errno, "snapshot '%s'", name);
	return fd;
}

static int check_hash(struct kevd_snapstore *st, const char *name, const char *file, const void *p, size_t len,
		      const char *want, struct kevd_error *err)
{
	char h[19];

	if (strcmp(hex64(kevd_hash64(p, len), h), want))
		return kevd_error_set(err, EBADMSG, "snapshot '%s': '%s/%s/%s' does not match its checksum (corrupted)",
				      name, st->path, name, file);
	return 0;
}

void kevd_snapshot_free(struct kevd_snapshot *s)
{
	if (!s)
		return;
	json_decref(s->manifest);
	if (s->memory_fd >= 0)
		close(s->memory_fd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->memory_path);
	free(s->pages);
	free(s->state);
	free(s);
}

/* The fields of a manifest that kevd reads back (the rest it only shows). */
struct fields {
	const char *kernel, *shash, *phash, *proto;
	json_int_t sbytes, pbytes, fbytes, mem, vcpus, npages;
	json_t *idj, *initrd, *cmdline, *pc, *paging;
	struct kevd_image_identity kernel_id;
};

/* Checks manifest M of snapshot directory NAME: every field a restore
 * reads, each of its type and in its range, and the name it gives itself
 * (when SAME_NAME).  The list, GET and a restore answer alike for a
 * manifest that fails here (a fault_message, 422). */
static int check_fields(struct kevd_snapstore *st, const char *name, json_t *m, bool same_name, struct fields *f,
			struct kevd_error *err)
{
	const char *self = json_string_value(json_object_get(m, "name"));

	*f = (struct fields){ 0 };
	if (!self || (same_name && strcmp(self, name)))
		return kevd_error_set(err, EBADMSG, "snapshot '%s': its manifest names it '%s'", name,
				      self ? self : "(nothing)");
	if (json_unpack(m, "{s:{s:s,s?o,s?o,s:I,s:I,s:s,s?o,s?o},s:o,s:{s:I,s:I},s:{s:{s:I,s:s},s:{s:I,s:s}}}",
			"vm", "kernel", &f->kernel, "initrd", &f->initrd, "cmdline", &f->cmdline, "memory_mib", &f->mem,
			"vcpus", &f->vcpus, "boot_protocol", &f->proto, "pc", &f->pc, "paging", &f->paging,
			"kernel_identity", &f->idj, "memory", "file_bytes", &f->fbytes, "pages", &f->npages,
			"files", KEVD_SNAPSHOT_STATE_FILE, "bytes", &f->sbytes, "hash", &f->shash,
			KEVD_SNAPSHOT_PAGES_FILE, "bytes", &f->pbytes, "hash", &f->phash) < 0 ||
	    identity_parse(f->idj, &f->kernel_id) < 0 || f->mem < 2 || f->vcpus < 1 || f->vcpus > KEVD_VM_MAX_VCPUS ||
	    f->sbytes < 0 || f->npages < 0 || f->npages > (json_int_t)(MAX_SMALL_FILE / sizeof(struct kevd_image_page)) ||
	    f->pbytes != f->npages * (json_int_t)sizeof(struct kevd_image_page) || f->mem > (json_int_t)(1u << 20) ||
	    f->fbytes < 0 || !*f->kernel || (strcmp(f->proto, "pvh") && strcmp(f->proto, "multiboot2")) ||
	    (f->initrd && !json_is_null(f->initrd) && (!json_is_string(f->initrd) || !*json_string_value(f->initrd))) ||
	    (f->cmdline && !json_is_null(f->cmdline) && !json_is_string(f->cmdline)) ||
	    (f->pc && !json_is_boolean(f->pc)) ||
	    (f->paging && (!json_is_string(f->paging) || (strcmp(json_string_value(f->paging), "lazy") &&
							  strcmp(json_string_value(f->paging), "lazy-private") &&
							  strcmp(json_string_value(f->paging), "eager")))))
		return kevd_error_set(err, EBADMSG, "snapshot '%s': '%s/%s/" KEVD_SNAPSHOT_MANIFEST "' lacks or garbles a field kevd needs",
				      name, st->path, name);
	return 0;
}

/* The files of snapshot directory NAME under ST->path (DFD); the
 * manifest must call it NAME too when SAME_NAME. */
static int load_files(struct kevd_snapstore *st, const char *name, struct kevd_snapshot *s, int dfd, bool same_name,
		      struct kevd_error *err)
{
	struct fields f;
	struct stat sb;
	void *pages;
	size_t len;
	int r;

	if ((r = check_fields(st, name, s->manifest, same_name, &f, err)) < 0)
		return r;
	s->kernel = f.kernel;
	s->kernel_id = f.kernel_id;
	s->initrd = json_string_value(f.initrd);  /* NULL for null: none */
	s->pc = json_is_true(f.pc);  /* a manifest written before kevd wrote it: false (a guess, for spares only) */
	s->cmdline = json_string_value(f.cmdline);
	s->memory_mib = (uint64_t)f.mem;
	s->vcpus = (unsigned)f.vcpus;
	s->protocol = !strcmp(f.proto, "pvh") ? KEVD_BOOT_PVH : KEVD_BOOT_MULTIBOOT2;
	if ((r = read_small(st, name, dfd, KEVD_SNAPSHOT_STATE_FILE, (size_t)f.sbytes, &s->state, &s->state_len, err)) < 0 ||
	    (r = check_hash(st, name, KEVD_SNAPSHOT_STATE_FILE, s->state, s->state_len, f.shash, err)) < 0)
		return r;
	if ((r = read_small(st, name, dfd, KEVD_SNAPSHOT_PAGES_FILE, (size_t)f.pbytes, &pages, &len, err)) < 0)
		return r;
	s->pages = pages;
	s->npages = (size_t)f.npages;
	if ((r = check_hash(st, name, KEVD_SNAPSHOT_PAGES_FILE, pages, len, f.phash, err)) < 0)
		return r;
	if (asprintf(&s->memory_path, "%s/%s/" KEVD_SNAPSHOT_MEMORY_FILE, st->path, name) < 0) {
		s->memory_path = NULL;
		return kevd_error_sys(err, ENOMEM, "snapshot '%s'", name);
	}
	s->memory_fd = openat(dfd, KEVD_SNAPSHOT_MEMORY_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (s->memory_fd < 0)
		return kevd_error_set(err, EBADMSG, "snapshot '%s': '%s' is missing (%s)", name, s->memory_path,
				      strerror(errno));
	if (fstat(s->memory_fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		return kevd_error_set(err, EBADMSG, "snapshot '%s': '%s' is not a file kevd wrote", name, s->memory_path);
	if (sb.st_size != f.fbytes)
		return kevd_error_set(err, EBADMSG, "snapshot '%s': '%s' has %lld bytes, the manifest says %lld (truncated or corrupted)",
				      name, s->memory_path, (long long)sb.st_size, (long long)f.fbytes);
	return 0;
}

/* Reads and checks the snapshot directory NAME under ST->path (DFD); its
 * manifest must call it NAME too when SAME_NAME. */
static int load_at(struct kevd_snapstore *st, const char *name, int dfd, bool same_name, struct kevd_snapshot **out,
		   struct kevd_error *err)
{
	struct kevd_snapshot *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return kevd_error_sys(err, ENOMEM, "snapshot '%s'", name);
	s->memory_fd = -1;
	s->dirfd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	if ((r = read_manifest(st, name, dfd, &s->manifest, err)) == 0) {
		s->name = json_string_value(json_object_get(s->manifest, "name"));
		r = load_files(st, name, s, dfd, same_name, err);
	}
	if (r < 0) {
		kevd_snapshot_free(s);
		return r;
	}
	*out = s;
	return 0;
}

int kevd_snapstore_load(struct kevd_snapstore *st, const char *name, struct kevd_snapshot **out,
			struct kevd_error *err)
{
	cleanup_close int dfd = open_snapshot(st, name, err);

	if (dfd < 0)
		return dfd;
	return load_at(st, name, dfd, true, out, err);
}

/* PATH as its parent and its last component, both in *BUF (owned), so
 * that messages name a file PARENT/NAME/FILE as the user named the
 * directory: "./NAME" for a PATH without a slash, and "." or ".." by the
 * real path. */
static int split_path(const char *path, char **buf, const char **name)
{
	size_t len = strlen(path);
	char *b, *slash;

	while (len > 1 && path[len - 1] == '/')
		len--;
	b = malloc(len + 3);
	if (!b)
		return -1;
	snprintf(b, len + 3, "%s%.*s", memchr(path, '/', len) ? "" : "./", (int)len, path);
	slash = strrchr(b, '/');
	if (!slash[1] || !strcmp(slash + 1, ".") || !strcmp(slash + 1, "..")) {
		free(b);
		b = realpath(path, NULL);
		if (!b)
			return -1;
		slash = strrchr(b, '/');
	}
	*slash = '\0';
	*name = slash + 1;
	*buf = b;
	return 0;
}

int kevd_snapshot_load_dir(const char *path, struct kevd_snapshot **out, struct kevd_error *err)
{
	cleanup_close int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cleanup_free char *parent = NULL;
	struct kevd_snapstore st = { .dirfd = -1 };
	const char *name;

	if (dfd < 0)
		return kevd_error_sys(err, errno, "snapshot directory '%s'", path);
	if (split_path(path, &parent, &name) < 0)
		return kevd_error_sys(err, errno ? errno : ENOMEM, "snapshot directory '%s'", path);
	st.path = parent;
	return load_at(&st, name, dfd, false, out, err);
}

int kevd_snapstore_info(struct kevd_snapstore *st, const char *name, json_t **out, struct kevd_error *err)
{
	cleanup_close int dfd = open_snapshot(st, name, err);
	json_t *m;
	int r;

	if (dfd < 0)
		return dfd;
	if ((r = read_manifest(st, name, dfd, &m, err)) < 0)
		return r;
	{
		struct fields f;

		if ((r = check_fields(st, name, m, true, &f, err)) < 0) {
			json_decref(m);
			return r;
		}
	}
	*out = summary(m);
	json_decref(m);
	return *out ? 0 : kevd_error_sys(err, ENOMEM, "snapshot '%s'", name);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int kevd_snapstore_list(struct kevd_snapstore *st, json_t **out, struct kevd_error *err)
{
	json_t *arr = json_array();
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d;
	/* A descriptor of its own, not a dup: a dup shares the directory
	 * offset, and two lists on two workers would read each other's
	 * entries away. */
	int fd = openat(st->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || !arr || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		json_decref(arr);
		return kevd_error_sys(err, errno ? errno : ENOMEM, "snapshot directory '%s'", st->path);
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		char **nn;

		if (de->d_name[0] == '.' || !kevd_request_valid_name(de->d_name))
			continue;
		nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn || !(nn[n] = strdup(de->d_name))) {
			names = nn ? nn : names;
			break;
		}
		names = nn;
		n++;
	}
	closedir(d);
	if (n)  /* qsort() wants a list, even of none */
		qsort(names, n, sizeof(*names), cmp_name);
	for (size_t i = 0; i < n; i++) {
		struct kevd_error e = KEVD_ERROR_INIT;
		json_t *o;

		/* One unreadable snapshot does not hide the others. */
		if (kevd_snapstore_info(st, names[i], &o, &e) < 0)
			o = json_pack("{s:s,s:s}", "name", names[i], "fault_message", e.msg);
		json_array_append_new(arr, o);
		free(names[i]);
	}
	free(names);
	*out = arr;
	return 0;
}

int kevd_snapstore_delete(struct kevd_snapstore *st, const char *name, struct kevd_error *err)
{
	char tmp[128];
	struct stat sb;
	int r;

	if ((r = check_name(name, err)) < 0)
		return r;
	if (fstatat(st->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? kevd_error_set(err, ENOENT, "no snapshot '%s'", name)
				       : kevd_error_sys(err, errno, "snapshot '%s'", name);
	/* Not a directory (a symlink, a file someone put here): it goes too. */
	if (!S_ISDIR(sb.st_mode)) {
		if (unlinkat(st->dirfd, name, 0) < 0)
			return kevd_error_sys(err, errno, "snapshot '%s': removing '%s/%s'", name, st->path, name);
		return 0;
	}
	/* Out of sight at once, under a name a restart removes: a restore
	 * never sees half of it, and a crash halfway leaves no wreck. */
	snprintf(tmp, sizeof(tmp), TMP_PREFIX "del-%s-%d-%u", name, (int)getpid(),
		 __atomic_add_fetch(&st->seq, 1, __ATOMIC_RELAXED));
	if (renameat(st->dirfd, name, st->dirfd, tmp) < 0)
		return kevd_error_sys(err, errno, "snapshot '%s': removing '%s/%s'", name, st->path, name);
	fsync(st->dirfd);
	r = remove_dir(st->dirfd, tmp);
	if (r < 0)
		kevd_warn("snapshots: '%s/%s' (snapshot '%s', deleted) is left: %s", st->path, tmp, name, strerror(-r));
	return 0;
}
