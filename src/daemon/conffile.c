/*
 * The daemon's configuration (see conffile.h).  The table `keys` below is the
 * only place a key is described: its section and name, how its text is
 * parsed and range-checked, where it is stored, its default (also text, so
 * the defaults go through the same parser as the file) and one line of
 * documentation.  Loading, setting, validating and dumping all walk it.
 *
 * inih (as Debian builds it) gives the handler no line number, so the file
 * is read through our own line reader, which counts lines, rejects lines
 * too long for inih's fixed buffer (inih would silently split them) and
 * checks section headers as they go by (inih reports a section only when a
 * key follows it).
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/cleanup.h"
#include "daemon/conffile.h"
#include "daemon/confvalue.h"

enum key_type {
	KT_PATH,    /* absolute path */
	KT_MODE,    /* octal permission bits, 0..0777 */
	KT_UINT,    /* decimal number in min..max */
	KT_SIZE,    /* bytes, optionally with a K/M/G suffix, in min..max */
	KT_LEVEL,   /* log level name */
	KT_LISTEN,  /* ADDR:PORT */
};

struct key_def {
	struct kevd_config_key pub;
	enum key_type type;
	bool optional;          /* strings only: an empty value unsets */
	size_t offset, size;    /* of the field in struct kevd_config */
	uint64_t min, max;      /* KT_UINT, KT_SIZE */
};

#define FIELD(f) offsetof(struct kevd_config, f), sizeof(((struct kevd_config *)0)->f)

static const struct key_def keys[] = {
	{ { "api", "socket", "/run/kevd/kevd.sock", "Unix socket of the HTTP API (absolute path)" },
	  KT_PATH, false, FIELD(socket_path), 0, 0 },
	{ { "api", "socket_mode", "0660", "permissions of the API socket, octal, at most 0777" },
	  KT_MODE, false, FIELD(socket_mode), 0, 0777 },
	{ { "api", "listen", "", "optional TCP listener, ADDR:PORT with an IPv4 or [IPv6] address; empty: none" },
	  KT_LISTEN, true, FIELD(listen), 0, 0 },
	{ { "api", "token_file", "", "file with the bearer token the TCP listener requires (required with listen)" },
	  KT_PATH, true, FIELD(token_file), 0, 0 },
	{ { "api", "max_body_bytes", "65536", "largest request body accepted, 1K..16M (K, M, G suffixes allowed)" },
	  KT_SIZE, false, FIELD(max_body_bytes), KIB, 16 * MIB },
	{ { "api", "request_timeout", "30", "seconds a connection may stay idle before it is closed, 1..3600" },
	  KT_UINT, false, FIELD(request_timeout_s), 1, 3600 },
	{ { "api", "max_connections", "256", "connections each listener serves at once, 1..65536; more are answered 503 and closed" },
	  KT_UINT, false, FIELD(max_connections), 1, 65536 },
	{ { "paths", "image_dir", "/var/lib/kevd/images", "directory kernel images are taken from" },
	  KT_PATH, false, FIELD(image_dir), 0, 0 },
	{ { "paths", "state_dir", "/var/lib/kevd", "directory for state kept across restarts" },
	  KT_PATH, false, FIELD(state_dir), 0, 0 },
	{ { "paths", "runtime_dir", "/run/kevd", "directory for runtime files" },
	  KT_PATH, false, FIELD(runtime_dir), 0, 0 },
	{ { "limits", "max_vms", "64", "most VMs at once, 1..4096" },
	  KT_UINT, false, FIELD(max_vms), 1, 4096 },
	{ { "limits", "max_vcpus", "16", "most vCPUs per VM, 1..64" },
	  KT_UINT, false, FIELD(max_vcpus), 1, 64 },
	{ { "limits", "vcpu_nice", "10", "nice of the vCPU threads, 0..19: guests yield to the pager and the API" },
	  KT_UINT, false, FIELD(vcpu_nice), 0, 19 },
	{ { "limits", "boot_slots_per_cpu", "1", "VMs per CPU of kevd's whose first boot_slot_ms run at once, the others wait in line, 0..64 (0: no limit)" },
	  KT_UINT, false, FIELD(boot_slots_per_cpu), 0, 64 },
	{ { "limits", "boot_slot_ms", "30", "ms at most a VM holds its boot slot, which it gives back sooner when the guest first idles, 1..60000" },
	  KT_UINT, false, FIELD(boot_slot_ms), 1, 60000 },
	{ { "limits", "max_memory_mib", "4096", "most guest RAM per VM in MiB, 1..1048576" },
	  KT_UINT, false, FIELD(max_memory_mib), 1, 1048576 },
	{ { "limits", "max_total_memory_mib", "16384", "most guest RAM of all VMs together in MiB, 1..16777216 (at least max_memory_mib)" },
	  KT_UINT, false, FIELD(max_total_memory_mib), 1, 16777216 },
	{ { "limits", "console_bytes", "1048576", "console output kept per VM, 4K..256M (K, M, G suffixes allowed)" },
	  KT_SIZE, false, FIELD(console_bytes), 4 * KIB, 256 * MIB },
	{ { "pager", "handler_threads", "1", "userfaultfd handler threads per VM, 1..64" },
	  KT_UINT, false, FIELD(pager_threads), 1, 64 },
	{ { "pager", "window_pages", "16", "pages loaded around each fault, 1..512 (1: no fault-around)" },
	  KT_UINT, false, FIELD(window_pages), 1, 512 },
	{ { "pager", "window_max_pages", "256", "largest fault-around window, reached by doubling while faults are sequential, 1..512 (at least window_pages)" },
	  KT_UINT, false, FIELD(window_max_pages), 1, 512 },
	{ { "pager", "cache_keep_s", "60", "seconds a shared image no VM uses is kept for the next VM, 0..86400" },
	  KT_UINT, false, FIELD(cache_keep_s), 0, 86400 },
	{ { "pager", "cache_max_mib", "1024", "most MiB the shared images no VM uses keep, 0..1048576" },
	  KT_UINT, false, FIELD(cache_max_mib), 0, 1048576 },
	{ { "snapshot", "record_ms", "1000", "ms of guest run time whose pages a first restore of a snapshot or first boot of a kernel records for the next ones to prefetch, 0..3600000 (0: off)" },
	  KT_UINT, false, FIELD(record_ms), 0, 3600000 },
	{ { "snapshot", "spare_vms", "2", "spare VMs (a KVM VM with its guest RAM registered) kept ready for the next restores of the snapshots' sizes, 0..64 (0: none)" },
	  KT_UINT, false, FIELD(spare_vms), 0, 64 },
	{ { "log", "level", "info", "least severe messages logged: error, warn, info or debug" },
	  KT_LEVEL, false, FIELD(log_level), 0, 0 },
	{ { "metrics", "listen", "", "optional TCP listener serving only /metrics and /v1/health, without a token; ADDR:PORT; empty: none" },
	  KT_LISTEN, true, FIELD(metrics_listen), 0, 0 },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = { "api", "paths", "limits", "pager", "snapshot", "log", "metrics" };
#define SECTION_LIST "api, paths, limits, pager, snapshot, log, metrics"

static const char *const level_names[] = { "error", "warn", "info", "debug" };

const struct kevd_config_key *kevd_config_key_at(size_t i)
{
	return i < NKEYS ? &keys[i].pub : NULL;
}

static bool is_section(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (strlen(sections[i]) == len && !memcmp(sections[i], s, len))
			return true;
	return false;
}

static const struct key_def *find_key(const char *section, const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].pub.section, section) && !strcmp(keys[i].pub.key, key))
			return &keys[i];
	return NULL;
}

static void *field(struct kevd_config *c, const struct key_def *k)
{
	return (char *)c + k->offset;
}

static const void *cfield(const struct kevd_config *c, const struct key_def *k)
{
	return (const char *)c + k->offset;
}

/* The numeric fields are unsigned, size_t or uint64_t; the table's ranges
 * keep every value within the narrowest of them. */
static void store_uint(void *p, size_t size, uint64_t v)
{
	if (size == sizeof(uint32_t)) {
		uint32_t v32 = (uint32_t)v;
		memcpy(p, &v32, sizeof(v32));
	} else {
		memcpy(p, &v, sizeof(v));
	}
}

static uint64_t load_uint(const void *p, size_t size)
{
	if (size == sizeof(uint32_t)) {
		uint32_t v32;
		memcpy(&v32, p, sizeof(v32));
		return v32;
	}
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

_Static_assert(sizeof(unsigned) == sizeof(uint32_t), "unsigned fields are stored as uint32_t");
_Static_assert(sizeof(size_t) == sizeof(uint64_t), "size_t fields are stored as uint64_t");

static int set_string(char **dst, const char *value, bool unset, const char *where, struct kevd_error *err)
{
	char *s = NULL;

	if (!unset) {
		s = strdup(value);
		if (!s)
			return kevd_error_sys(err, ENOMEM, "%s", where);
	}
	free(*dst);
	*dst = s;
	return 0;
}

/* Parses VALUE as key K and stores it in C; C is untouched on failure.
 * WHERE starts every message ("file:line: [section] key" or an option). */
static int set_value(struct kevd_config *c, const struct key_def *k, const char *value,
		     const char *where, struct kevd_error *err)
{
	void *p = field(c, k);
	const char *rest;
	uint64_t v;
	char lo[32], hi[32];
	int level, r;

	switch (k->type) {
	case KT_PATH:
		if (k->optional && !*value)
			return set_string(p, value, true, where, err);
		if (*value != '/')
			return kevd_error_set(err, EINVAL, "%s: '%s' is not an absolute path", where, value);
		/* kevd_config_dump() writes "key = value": it must load back. */
		if (strlen(k->pub.key) + 3 + strlen(value) > INI_MAX_LINE - 2)
			return kevd_error_set(err, ENAMETOOLONG, "%s: path of %zu bytes is longer than %zu", where,
					      strlen(value), (size_t)(INI_MAX_LINE - 2 - 3) - strlen(k->pub.key));
		if (strpbrk(value, "\n\r") || strstr(value, " ;") || strstr(value, "\t;") ||
		    value[strlen(value) - 1] == ' ' || value[strlen(value) - 1] == '\t')
			return kevd_error_set(err, EINVAL, "%s: '%s' cannot be written to a configuration file "
					      "(a line break, a blank before ';', or a trailing blank)", where, value);
		return set_string(p, value, false, where, err);
	case KT_LISTEN:
		if (k->optional && !*value)
			return set_string(p, value, true, where, err);
		r = kevd_config_listen_addr(value, NULL, NULL, err);
		if (r < 0)
			return kevd_error_prefix(err, "%s", where);
		return set_string(p, value, false, where, err);
	case KT_MODE:
		if (!kevd_confvalue_digits(value, 8, &v, &rest) || *rest || v > k->max)
			return kevd_error_set(err, EINVAL, "%s: '%s' is not an octal mode in 0..0%llo",
					      where, value, (unsigned long long)k->max);
		store_uint(p, k->size, v);
		return 0;
	case KT_UINT:
		if (!kevd_confvalue_digits(value, 10, &v, &rest) || *rest || v < k->min || v > k->max)
			return kevd_error_set(err, EINVAL, "%s: '%s' is not a number in %llu..%llu",
					      where, value, (unsigned long long)k->min, (unsigned long long)k->max);
		store_uint(p, k->size, v);
		return 0;
	case KT_SIZE:
		if (kevd_confvalue_size(value, &v) < 0 || v < k->min || v > k->max) {
			kevd_confvalue_format_size(lo, sizeof(lo), k->min);
			kevd_confvalue_format_size(hi, sizeof(hi), k->max);
			return kevd_error_set(err, EINVAL, "%s: '%s' is not a size in %s..%s (bytes, or with a K, M or G suffix)",
					      where, value, lo, hi);
		}
		store_uint(p, k->size, v);
		return 0;
	case KT_LEVEL:
		level = kevd_log_parse_level(value);
		if (level < 0)
			return kevd_error_set(err, EINVAL, "%s: '%s' is not one of error, warn, info, debug",
					      where, value);
		*(enum kevd_log_level *)p = (enum kevd_log_level)level;
		return 0;
	}
	return kevd_error_set(err, EINVAL, "%s: key of unknown type", where);
}

void kevd_config_init(struct kevd_config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NKEYS; i++) {
		/* The defaults are checked by the tests; only ENOMEM can fail here. */
		(void)set_value(c, &keys[i], keys[i].pub.def, keys[i].pub.key, NULL);
	}
}

static bool is_string(const struct key_def *k)
{
	return k->type == KT_PATH || k->type == KT_LISTEN;
}

void kevd_config_free(struct kevd_config *c)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (is_string(&keys[i])) {
			char **s = field(c, &keys[i]);

			free(*s);
			*s = NULL;
		}
	}
}

/* A deep copy, so that a failed load leaves the caller's config as it was. */
static int copy_config(struct kevd_config *dst, const struct kevd_config *src)
{
	*dst = *src;
	for (size_t i = 0; i < NKEYS; i++) {
		if (is_string(&keys[i])) {
			char **s = field(dst, &keys[i]);

			*s = NULL;
		}
	}
	for (size_t i = 0; i < NKEYS; i++) {
		const char *const *from = cfield(src, &keys[i]);
		char **to = field(dst, &keys[i]);

		if (!is_string(&keys[i]) || !*from)
			continue;
		*to = strdup(*from);
		if (!*to) {
			kevd_config_free(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

int kevd_config_set(struct kevd_config *c, const char *section, const char *key,
		    const char *value, const char *origin, struct kevd_error *err)
{
	const struct key_def *k = find_key(section, key);
	char where[256];

	if (origin)
		snprintf(where, sizeof(where), "%s", origin);
	else
		snprintf(where, sizeof(where), "[%s] %s", section, key);
	if (!k)
		return kevd_error_set(err, ENOENT, "%s: no configuration key [%s] %s", where, section, key);
	return set_value(c, k, value, where, err);
}

struct load_state {
	FILE *f;
	const char *path;
	struct kevd_config *cfg;
	struct kevd_error *err;
	unsigned line;              /* of the line last read */
	unsigned seen[NKEYS];       /* line each key was set on; 0 = not yet */
	bool indented;              /* the line last read starts with a blank */
	bool failed;                /* err is set; stop */
	int read_errno;
	char last_section[64], last_key[64];
};

/* inih's reader callback: one line per call, so st->line is the line the
 * handler is called for. */
static char *read_line(char *buf, int size, void *user)
{
	struct load_state *st = user;
	const char *s;
	size_t n;

	if (st->failed)
		return NULL;
	errno = 0;
	if (!fgets(buf, size, st->f)) {
		if (ferror(st->f))
			st->read_errno = errno ? errno : EIO;
		return NULL;
	}
	st->line++;
	n = strlen(buf);
	if (n > 0 && buf[n - 1] != '\n') {
		int ch = getc(st->f);

		/* The buffer is full with more to come: inih would take the rest
		 * of the line for a line of its own. */
		if (ch != EOF && ch != '\n') {
			kevd_error_set(st->err, EINVAL, "%s:%u: line is longer than %d characters",
				       st->path, st->line, size - 2);
			st->failed = true;
			return NULL;
		}
	}
	st->indented = buf[0] == ' ' || buf[0] == '\t';
	s = buf + strspn(buf, " \t");
	if (*s == '[') {
		const char *close = strchr(s, ']');

		/* A header without ']' is left to inih, which calls it a syntax error. */
		if (close && !is_section(s + 1, (size_t)(close - s - 1))) {
			kevd_error_set(st->err, EINVAL, "%s:%u: unknown section [%.*s] (known: " SECTION_LIST ")",
				       st->path, st->line, (int)(close - s - 1), s + 1);
			st->failed = true;
			return NULL;
		}
	}
	return buf;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct load_state *st = user;
	const struct key_def *k;
	char where[512];
	size_t idx;

	if (st->failed)
		return 0;
	st->failed = true;
	if (!*section) {
		kevd_error_set(st->err, EINVAL, "%s:%u: %s: key outside any section", st->path, st->line, name);
		return 0;
	}
	/* inih joins an indented line to the key before it (multi-line
	 * values); no key here takes one, so say what happened. */
	if (st->indented && !strcmp(section, st->last_section) && !strcmp(name, st->last_key)) {
		kevd_error_set(st->err, EINVAL, "%s:%u: indented line continues the value of [%s] %s; values are one line",
			       st->path, st->line, section, name);
		return 0;
	}
	k = find_key(section, name);
	if (!k) {
		kevd_error_set(st->err, EINVAL, "%s:%u: [%s] %s: unknown key", st->path, st->line, section, name);
		return 0;
	}
	idx = (size_t)(k - keys);
	if (st->seen[idx]) {
		kevd_error_set(st->err, EINVAL, "%s:%u: [%s] %s: duplicate key (first set on line %u)",
			       st->path, st->line, section, name, st->seen[idx]);
		return 0;
	}
	st->seen[idx] = st->line;
	snprintf(where, sizeof(where), "%s:%u: [%s] %s", st->path, st->line, section, name);
	if (set_value(st->cfg, k, value, where, st->err) < 0)
		return 0;
	/* Known keys, so both fit. */
	snprintf(st->last_section, sizeof(st->last_section), "%s", section);
	snprintf(st->last_key, sizeof(st->last_key), "%s", name);
	st->failed = false;
	return 1;
}

int kevd_config_load(struct kevd_config *c, const char *path, struct kevd_error *err)
{
	cleanup_fclose FILE *f = NULL;
	struct kevd_config tmp;
	struct load_state st;
	struct stat sb;
	int r;

	f = fopen(path, "re");
	if (!f)
		return kevd_error_sys(err, errno, "config file '%s'", path);
	if (fstat(fileno(f), &sb) < 0)
		return kevd_error_sys(err, errno, "config file '%s'", path);
	if (S_ISDIR(sb.st_mode))
		return kevd_error_set(err, EISDIR, "config file '%s': is a directory", path);
	if (copy_config(&tmp, c) < 0)
		return kevd_error_sys(err, ENOMEM, "config file '%s'", path);
	memset(&st, 0, sizeof(st));
	st.f = f;
	st.path = path;
	st.cfg = &tmp;
	st.err = err;
	r = ini_parse_stream(read_line, &st, on_key, &st);
	/* inih reports the first bad line; ours stop the parse at theirs, so
	 * whichever error comes first in the file is the one reported. */
	if (st.failed && (r <= 0 || (unsigned)r >= st.line)) {
		kevd_config_free(&tmp);
		return -(err && err->errnum ? err->errnum : EINVAL);
	}
	if (r > 0) {
		kevd_config_free(&tmp);
		return kevd_error_set(err, EINVAL, "%s:%d: syntax error: expected '[section]' or 'key = value'", path, r);
	}
	if (st.read_errno) {
		kevd_config_free(&tmp);
		return kevd_error_sys(err, st.read_errno, "config file '%s': reading line %u", path, st.line + 1);
	}
	if (r < 0) {
		kevd_config_free(&tmp);
		return kevd_error_sys(err, ENOMEM, "config file '%s'", path);
	}
	kevd_config_free(c);
	*c = tmp;
	return 0;
}

int kevd_config_validate(const struct kevd_config *c, struct kevd_error *err)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];
		const void *p = cfield(c, k);
		const char *s;
		uint64_t v;

		switch (k->type) {
		case KT_PATH:
		case KT_LISTEN:
			s = *(const char *const *)p;
			if (!s && !k->optional)
				return kevd_error_set(err, EINVAL, "[%s] %s: not set", k->pub.section, k->pub.key);
			if (s && k->type == KT_PATH && *s != '/')
				return kevd_error_set(err, EINVAL, "[%s] %s: '%s' is not an absolute path",
						      k->pub.section, k->pub.key, s);
			if (s && k->type == KT_LISTEN && kevd_config_listen_addr(s, NULL, NULL, err) < 0)
				return kevd_error_prefix(err, "[%s] %s", k->pub.section, k->pub.key);
			break;
		case KT_MODE:
		case KT_UINT:
		case KT_SIZE:
			v = load_uint(p, k->size);
			if (v < k->min || v > k->max)
				return kevd_error_set(err, ERANGE, "[%s] %s: %llu is outside %llu..%llu",
						      k->pub.section, k->pub.key, (unsigned long long)v,
						      (unsigned long long)k->min, (unsigned long long)k->max);
			break;
		case KT_LEVEL:
			if ((unsigned)*(const enum kevd_log_level *)p > KEVD_LOG_DEBUG)
				return kevd_error_set(err, ERANGE, "[%s] %s: not a log level", k->pub.section, k->pub.key);
			break;
		}
	}
	if (c->socket_path && strlen(c->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return kevd_error_set(err, ENAMETOOLONG, "[api] socket: '%s' is longer than the %zu bytes a Unix socket path may have",
				      c->socket_path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (c->max_total_memory_mib < c->max_memory_mib)
		return kevd_error_set(err, EINVAL, "[limits] max_total_memory_mib (%llu) is less than [limits] max_memory_mib (%llu)",
				      (unsigned long long)c->max_total_memory_mib, (unsigned long long)c->max_memory_mib);
	if (c->listen && !c->token_file)
		return kevd_error_set(err, EINVAL, "[api] listen is set but [api] token_file is not: the TCP listener requires a bearer token");
	return 0;
}

void kevd_config_dump(const struct kevd_config *c, FILE *f)
{
	const char *section = NULL;

	fprintf(f, "# kevd configuration in effect\n");
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];
		const void *p = cfield(c, k);
		const char *s;

		if (!section || strcmp(section, k->pub.section)) {
			section = k->pub.section;
			fprintf(f, "\n[%s]\n", section);
		}
		fprintf(f, "# %s\n", k->pub.desc);
		switch (k->type) {
		case KT_PATH:
		case KT_LISTEN:
			s = *(const char *const *)p;
			if (s)
				fprintf(f, "%s = %s\n", k->pub.key, s);
			else
				fprintf(f, "%s =\n", k->pub.key);
			break;
		case KT_MODE:
			fprintf(f, "%s = 0%03llo\n", k->pub.key, (unsigned long long)load_uint(p, k->size));
			break;
		case KT_UINT:
		case KT_SIZE:
			fprintf(f, "%s = %llu\n", k->pub.key, (unsigned long long)load_uint(p, k->size));
			break;
		case KT_LEVEL:
			fprintf(f, "%s = %s\n", k->pub.key,
				level_names[(unsigned)*(const enum kevd_log_level *)p <= KEVD_LOG_DEBUG
					    ? *(const enum kevd_log_level *)p : KEVD_LOG_INFO]);
			break;
		}
	}
}
