/*
 * Daemon configuration: the defaults, the sample file (as shipped, and with
 * every commented-out key switched on), each key type's bad values with
 * file:line messages, the file-level errors, kevd_config_set() with its
 * origin, the cross-field checks, and dump -> load round trips.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/conffile.h"
#include "testutil.h"

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Writes TEXT to a new temporary file; its name goes to PATH. */
static void write_tmp(const char *text, char path[static 64])
{
	const char *dir = getenv("TMPDIR");
	FILE *f;
	int fd;

	snprintf(path, 64, "%s/kevd-conf-XXXXXX", dir && strlen(dir) < 40 ? dir : "/tmp");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* Loads TEXT on top of C; the file's name goes to PATH when given. */
static int load_text(struct kevd_config *c, const char *text, struct kevd_error *err, char *path)
{
	char p[64];
	int r;

	write_tmp(text, p);
	r = kevd_config_load(c, p, err);
	unlink(p);
	if (path)
		strcpy(path, p);
	return r;
}

static char *dump_str(const struct kevd_config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	kevd_config_dump(c, f);
	fclose(f);
	return buf;
}

/* Loading TEXT fails with a message that is exactly "PATH:" then WANT. */
static void expect_error(const char *text, const char *want)
{
	struct kevd_config c;
	struct kevd_error err = KEVD_ERROR_INIT;
	char path[64], full[1200];
	char *before, *after;

	kevd_config_init(&c);
	before = dump_str(&c);
	ck_assert_int_lt(load_text(&c, text, &err, path), 0);
	snprintf(full, sizeof(full), "%s:%s", path, want);
	ck_assert_str_eq(err.msg, full);
	ck_assert_int_ne(err.errnum, 0);
	/* A failed load changes nothing. */
	after = dump_str(&c);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	kevd_config_free(&c);
}

START_TEST(defaults)
{
	struct kevd_config c;
	struct kevd_error err = KEVD_ERROR_INIT;

	kevd_config_init(&c);
	ck_assert_str_eq(c.socket_path, "/run/kevd/kevd.sock");
	ck_assert_uint_eq(c.socket_mode, 0660);
	ck_assert_ptr_null(c.listen);
	ck_assert_ptr_null(c.token_file);
	ck_assert_uint_eq(c.max_body_bytes, 65536);
	ck_assert_uint_eq(c.request_timeout_s, 30);
	ck_assert_uint_eq(c.max_connections, 256);
	ck_assert_str_eq(c.image_dir, "/var/lib/kevd/images");
	ck_assert_str_eq(c.state_dir, "/var/lib/kevd");
	ck_assert_str_eq(c.runtime_dir, "/run/kevd");
	ck_assert_uint_eq(c.max_vms, 64);
	ck_assert_uint_eq(c.max_vcpus, 16);
	ck_assert_uint_eq(c.max_memory_mib, 4096);
	ck_assert_uint_eq(c.max_total_memory_mib, 16384);
	ck_assert_uint_eq(c.console_bytes, 1048576);
	ck_assert_uint_eq(c.pager_threads, 1);
	ck_assert_uint_eq(c.window_pages, 16);
	ck_assert_int_eq(c.log_level, KEVD_LOG_INFO);
	if (kevd_config_validate(&c, &err) < 0)
		ck_abort_msg("defaults rejected: %s", err.msg);
	kevd_config_free(&c);
	ck_assert_ptr_null(c.socket_path);
	kevd_config_free(&c);  /* twice is harmless */
}
END_TEST

static char *sample_path(void)
{
	const char *top = getenv("top_srcdir");
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/etc/kevd.conf", top ? top : "."), 0);
	return p;
}

START_TEST(sample_as_shipped)
{
	struct kevd_config c, d;
	struct kevd_error err = KEVD_ERROR_INIT;
	char *path = sample_path(), *a, *b;

	kevd_config_init(&c);
	kevd_config_init(&d);
	if (kevd_config_load(&c, path, &err) < 0)
		ck_abort_msg("sample rejected: %s", err.msg);
	ck_assert_int_eq(kevd_config_validate(&c, &err), 0);
	a = dump_str(&c);
	b = dump_str(&d);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	free(path);
	kevd_config_free(&c);
	kevd_config_free(&d);
}
END_TEST

/* Every key is in the sample as "#key = default" under its section; with
 * those lines switched on the file loads to the defaults.  The docs name
 * every key too. */
START_TEST(sample_covers_every_key)
{
	struct kevd_config c, d;
	struct kevd_error err = KEVD_ERROR_INIT;
	char *path = sample_path(), *text = read_all(path), *on, *a, *b, *docs, *docpath;
	const char *top = getenv("top_srcdir");
	const struct kevd_config_key *k;
	size_t n = 0;

	for (size_t i = 0; (k = kevd_config_key_at(i)); i++) {
		char want[256], section[64];
		const char *at, *sec, *next;

		snprintf(section, sizeof(section), "\n[%s]\n", k->section);
		sec = strstr(text, section);
		ck_assert_msg(sec != NULL, "sample has no section [%s]", k->section);
		snprintf(want, sizeof(want), "\n#%s =%s%s\n", k->key, *k->def ? " " : "", k->def);
		at = strstr(sec, want);
		ck_assert_msg(at != NULL, "sample has no line '#%s = %s' in [%s]", k->key, k->def, k->section);
		/* ...and before the next section. */
		next = strstr(sec + strlen(section), "\n[");
		ck_assert_msg(!next || at < next, "'#%s' is not in section [%s] of the sample", k->key, k->section);
		ck_assert_ptr_nonnull(k->desc);
		n++;
	}
	ck_assert_uint_eq(n, 27);

	/* Switch on every "#key = value" line: a '#' directly before a letter. */
	on = strdup(text);
	for (char *p = on; (p = strstr(p, "\n#")); p++)
		if (p[2] >= 'a' && p[2] <= 'z')
			p[1] = '\n';
	kevd_config_init(&c);
	kevd_config_init(&d);
	if (load_text(&c, on, &err, NULL) < 0)
		ck_abort_msg("sample with every key on rejected: %s", err.msg);
	a = dump_str(&c);
	b = dump_str(&d);
	ck_assert_str_eq(a, b);

	ck_assert_int_ge(asprintf(&docpath, "%s/docs/configuration.md", top ? top : "."), 0);
	docs = read_all(docpath);
	for (size_t i = 0; (k = kevd_config_key_at(i)); i++) {
		char want[128];

		snprintf(want, sizeof(want), "`%s`", k->key);
		ck_assert_msg(strstr(docs, want) != NULL, "docs/configuration.md does not describe %s", want);
	}
	free(docs);
	free(docpath);
	free(a);
	free(b);
	free(on);
	free(text);
	free(path);
	kevd_config_free(&c);
	kevd_config_free(&d);
}
END_TEST

static const char *const every_key =
	"; every key, none at its default\n"
	"[api]\n"
	"socket = /tmp/k.sock\n"
	"socket_mode = 600\n"
	"listen = [::1]:8443\n"
	"token_file = /etc/kevd/token\n"
	"max_body_bytes = 1M\n"
	"request_timeout = 5\n"
	"max_connections = 8\n"
	"[paths]\n"
	"image_dir = /srv/images\n"
	"state_dir = /srv/state\n"
	"runtime_dir = /run/k\n"
	"[limits]\n"
	"max_vms = 4096\n"
	"max_vcpus = 64\n"
	"max_memory_mib = 512\n"
	"max_total_memory_mib = 1024\n"
	"console_bytes = 64K\n"
	"[pager]\n"
	"handler_threads = 4\n"
	"window_pages = 1\n"
	"[snapshot]\n"
	"record_ms = 250\n"
	"spare_vms = 5\n"
	"[log]\n"
	"level = debug\n"
	"[metrics]\n"
	"listen = 127.0.0.1:9464\n";

START_TEST(every_key_set)
{
	struct kevd_config c;
	struct kevd_error err = KEVD_ERROR_INIT;

	kevd_config_init(&c);
	if (load_text(&c, every_key, &err, NULL) < 0)
		ck_abort_msg("rejected: %s", err.msg);
	ck_assert_str_eq(c.socket_path, "/tmp/k.sock");
	ck_assert_uint_eq(c.socket_mode, 0600);
	ck_assert_str_eq(c.listen, "[::1]:8443");
	ck_assert_str_eq(c.token_file, "/etc/kevd/token");
	ck_assert_uint_eq(c.max_body_bytes, 1 << 20);
	ck_assert_uint_eq(c.request_timeout_s, 5);
	ck_assert_uint_eq(c.max_connections, 8);
	ck_assert_str_eq(c.image_dir, "/srv/images");
	ck_assert_str_eq(c.state_dir, "/srv/state");
	ck_assert_str_eq(c.runtime_dir, "/run/k");
	ck_assert_uint_eq(c.max_vms, 4096);
	ck_assert_uint_eq(c.max_vcpus, 64);
	ck_assert_uint_eq(c.max_memory_mib, 512);
	ck_assert_uint_eq(c.max_total_memory_mib, 1024);
	ck_assert_uint_eq(c.console_bytes, 65536);
	ck_assert_uint_eq(c.pager_threads, 4);
	ck_assert_uint_eq(c.window_pages, 1);
	ck_assert_uint_eq(c.record_ms, 250);
	ck_assert_uint_eq(c.spare_vms, 5);
	ck_assert_int_eq(c.log_level, KEVD_LOG_DEBUG);
	ck_assert_str_eq(c.metrics_listen, "127.0.0.1:9464");
	ck_assert_int_eq(kevd_config_validate(&c, &err), 0);
	/* A second file applies on top; an empty value unsets an optional string. */
	if (load_text(&c, "[api]\nlisten =\ntoken_file=\n[limits]\nmax_vms=7\n", &err, NULL) < 0)
		ck_abort_msg("rejected: %s", err.msg);
	ck_assert_ptr_null(c.listen);
	ck_assert_ptr_null(c.token_file);
	ck_assert_uint_eq(c.max_vms, 7);
	ck_assert_uint_eq(c.max_vcpus, 64);
	kevd_config_free(&c);
}
END_TEST

START_TEST(bad_uint)
{
	expect_error("[limits]\nmax_vms = abc\n", "2: [limits] max_vms: 'abc' is not a number in 1..4096");
	expect_error("\n\n[limits]\nmax_vms = 0\n", "4: [limits] max_vms: '0' is not a number in 1..4096");
	expect_error("[limits]\nmax_vms = 4097\n", "2: [limits] max_vms: '4097' is not a number in 1..4096");
	expect_error("[limits]\nmax_vms = -1\n", "2: [limits] max_vms: '-1' is not a number in 1..4096");
	expect_error("[limits]\nmax_vms = +5\n", "2: [limits] max_vms: '+5' is not a number in 1..4096");
	expect_error("[limits]\nmax_vms = 5x\n", "2: [limits] max_vms: '5x' is not a number in 1..4096");
	expect_error("[limits]\nmax_vms = 99999999999999999999999\n",
		     "2: [limits] max_vms: '99999999999999999999999' is not a number in 1..4096");
	expect_error("[limits]\nmax_vcpus = 65\n", "2: [limits] max_vcpus: '65' is not a number in 1..64");
	expect_error("[pager]\nwindow_pages = 513\n", "2: [pager] window_pages: '513' is not a number in 1..512");
	expect_error("[pager]\nhandler_threads = 0\n", "2: [pager] handler_threads: '0' is not a number in 1..64");
	expect_error("[api]\nrequest_timeout =\n", "2: [api] request_timeout: '' is not a number in 1..3600");
	expect_error("[api]\nmax_connections = 0\n", "2: [api] max_connections: '0' is not a number in 1..65536");
	expect_error("[api]\nmax_connections = 65537\n",
		     "2: [api] max_connections: '65537' is not a number in 1..65536");
}
END_TEST

START_TEST(bad_size)
{
	const char *why = "' is not a size in 1K..16M (bytes, or with a K, M or G suffix)";
	char want[256];

	snprintf(want, sizeof(want), "2: [api] max_body_bytes: '1X%s", why);
	expect_error("[api]\nmax_body_bytes = 1X\n", want);
	snprintf(want, sizeof(want), "2: [api] max_body_bytes: '1023%s", why);
	expect_error("[api]\nmax_body_bytes = 1023\n", want);
	snprintf(want, sizeof(want), "2: [api] max_body_bytes: '17M%s", why);
	expect_error("[api]\nmax_body_bytes = 17M\n", want);
	snprintf(want, sizeof(want), "2: [api] max_body_bytes: '1KK%s", why);
	expect_error("[api]\nmax_body_bytes = 1KK\n", want);
	snprintf(want, sizeof(want), "2: [api] max_body_bytes: '18446744073709551615G%s", why);
	expect_error("[api]\nmax_body_bytes = 18446744073709551615G\n", want);
	expect_error("[limits]\nconsole_bytes = 1G\n",
		     "2: [limits] console_bytes: '1G' is not a size in 4K..256M (bytes, or with a K, M or G suffix)");
}
END_TEST

START_TEST(bad_mode)
{
	expect_error("[api]\nsocket_mode = 01000\n", "2: [api] socket_mode: '01000' is not an octal mode in 0..0777");
	expect_error("[api]\nsocket_mode = 0999\n", "2: [api] socket_mode: '0999' is not an octal mode in 0..0777");
	expect_error("[api]\nsocket_mode = rw\n", "2: [api] socket_mode: 'rw' is not an octal mode in 0..0777");
}
END_TEST

START_TEST(bad_level)
{
	expect_error("[log]\nlevel = verbose\n", "2: [log] level: 'verbose' is not one of error, warn, info, debug");
	expect_error("[log]\nlevel = INFO\n", "2: [log] level: 'INFO' is not one of error, warn, info, debug");
}
END_TEST

START_TEST(bad_path)
{
	expect_error("[paths]\nimage_dir = images\n", "2: [paths] image_dir: 'images' is not an absolute path");
	expect_error("[paths]\nstate_dir =\n", "2: [paths] state_dir: '' is not an absolute path");
	expect_error("[api]\ntoken_file = ./token\n", "2: [api] token_file: './token' is not an absolute path");
}
END_TEST

START_TEST(bad_listen)
{
	static const char *const bad[] = {
		"localhost:80", "1.2.3.4", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:80x",
		"::1:80", "[::1]", "[::1]80", "[zz]:80", "[]:80", ":80", "1.2.3:80", "[1.2.3.4]:80",
		"1.2.3.4:-1",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[128], want[256];

		snprintf(text, sizeof(text), "[api]\nlisten = %s\n", bad[i]);
		snprintf(want, sizeof(want), "2: [api] listen: '%s' is not ADDR:PORT (an IPv4 address or a [bracketed] IPv6 address, and a port in 1..65535)",
			 bad[i]);
		expect_error(text, want);
	}
}
END_TEST

START_TEST(listen_addr)
{
	struct sockaddr_storage ss;
	struct kevd_error err = KEVD_ERROR_INIT;
	socklen_t len = 0;

	ck_assert_int_eq(kevd_config_listen_addr("127.0.0.1:8080", &ss, &len, &err), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET);
	ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
	ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
	ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), 0x7f000001);
	ck_assert_int_eq(kevd_config_listen_addr("[::]:65535", &ss, &len, &err), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
	ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 65535);
	ck_assert_int_eq(kevd_config_listen_addr("0.0.0.0:1", NULL, NULL, NULL), 0);
	ck_assert_int_eq(kevd_config_listen_addr("0.0.0.0:1:2", NULL, NULL, &err), -EINVAL);
}
END_TEST

START_TEST(file_errors)
{
	struct kevd_config c;
	struct kevd_error err = KEVD_ERROR_INIT;
	char longline[400];

	expect_error("[limit]\nmax_vms = 3\n", "1: unknown section [limit] (known: api, paths, limits, pager, snapshot, log, metrics)");
	expect_error("[api]\n[nothing]\n", "2: unknown section [nothing] (known: api, paths, limits, pager, snapshot, log, metrics)");
	expect_error("[limits]\nmax_vm = 3\n", "2: [limits] max_vm: unknown key");
	expect_error("[api]\nmax_vms = 3\n", "2: [api] max_vms: unknown key");
	expect_error("max_vms = 3\n", "1: max_vms: key outside any section");
	expect_error("[limits]\nmax_vms = 3\n# again\nmax_vms = 4\n",
		     "4: [limits] max_vms: duplicate key (first set on line 2)");
	/* In another [limits] block it is still the same key. */
	expect_error("[limits]\nmax_vms = 3\n[api]\n[limits]\nmax_vms = 3\n",
		     "5: [limits] max_vms: duplicate key (first set on line 2)");
	expect_error("[paths]\nimage_dir = /a\n  /b\n",
		     "3: indented line continues the value of [paths] image_dir; values are one line");
	expect_error("[api]\nthis line has no equals sign\n",
		     "2: syntax error: expected '[section]' or 'key = value'");
	expect_error("[api\n", "1: syntax error: expected '[section]' or 'key = value'");
	/* The first error in the file wins, whoever finds it. */
	expect_error("[api]\noops\nnokey = 1\n", "2: syntax error: expected '[section]' or 'key = value'");
	expect_error("[api]\nnokey = 1\noops\n", "2: [api] nokey: unknown key");

	memset(longline, 'a', sizeof(longline));
	memcpy(longline, "[paths]\nimage_dir = /", 21);
	strcpy(longline + 300, "\n");
	expect_error(longline, "2: line is longer than 198 characters");

	/* Comments, blank lines, blanks around '=', CRLF, a BOM, inline ';'
	 * comments and no final newline are all fine. */
	kevd_config_init(&c);
	if (load_text(&c, "\xef\xbb\xbf# c\r\n; c\r\n\r\n[limits]\r\n  max_vms=5 ; five\r\nmax_vcpus\t=   3", &err, NULL) < 0)
		ck_abort_msg("rejected: %s", err.msg);
	ck_assert_uint_eq(c.max_vms, 5);
	ck_assert_uint_eq(c.max_vcpus, 3);
	/* An empty file changes nothing. */
	ck_assert_int_eq(load_text(&c, "", &err, NULL), 0);
	ck_assert_uint_eq(c.max_vms, 5);
	kevd_config_free(&c);
}
END_TEST

START_TEST(missing_file)
{
	struct kevd_config c;
	struct kevd_error err = KEVD_ERROR_INIT;
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	kevd_config_init(&c);
	ck_assert_int_eq(kevd_config_load(&c, "/nonexistent/kevd.conf", &err), -ENOENT);
	ck_assert_str_eq(err.msg, "config file '/nonexistent/kevd.conf': No such file or directory");
	ck_assert_int_eq(kevd_config_load(&c, dir, &err), -EISDIR);
	ck_assert_ptr_nonnull(strstr(err.msg, "is a directory"));
	ck_assert_str_eq(c.socket_path, "/run/kevd/kevd.sock");
	kevd_config_free(&c);
}
END_TEST

START_TEST(set_with_origin)
{
	struct kevd_config c;
	struct kevd_error err = KEVD_ERROR_INIT;

	kevd_config_init(&c);
	ck_assert_int_eq(kevd_config_set(&c, "api", "socket", "/tmp/s", "--socket", &err), 0);
	ck_assert_str_eq(c.socket_path, "/tmp/s");
	ck_assert_int_eq(kevd_config_set(&c, "limits", "max_vms", "9", "--max-vms", &err), 0);
	ck_assert_uint_eq(c.max_vms, 9);
	ck_assert_int_eq(kevd_config_set(&c, "limits", "max_vms", "abc", "--max-vms", &err), -EINVAL);
	ck_assert_str_eq(err.msg, "--max-vms: 'abc' is not a number in 1..4096");
	ck_assert_uint_eq(c.max_vms, 9);
	ck_assert_int_eq(kevd_config_set(&c, "api", "socket", "rel", "--socket", &err), -EINVAL);
	ck_assert_str_eq(err.msg, "--socket: 'rel' is not an absolute path");
	ck_assert_str_eq(c.socket_path, "/tmp/s");
	/* A value the dump could not write back (inih reads " ;" as a comment). */
	ck_assert_int_eq(kevd_config_set(&c, "paths", "image_dir", "/a ;b", "--image-dir", &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "cannot be written to a configuration file"));
	{
		char longpath[300];

		memset(longpath, 'x', sizeof(longpath) - 1);
		longpath[0] = '/';
		longpath[sizeof(longpath) - 1] = '\0';
		ck_assert_int_eq(kevd_config_set(&c, "paths", "image_dir", longpath, "--image-dir", &err), -ENAMETOOLONG);
	}
	ck_assert_int_eq(kevd_config_set(&c, "api", "listen", "nope", "--listen", &err), -EINVAL);
	ck_assert_str_eq(err.msg, "--listen: 'nope' is not ADDR:PORT (an IPv4 address or a [bracketed] IPv6 address, and a port in 1..65535)");
	ck_assert_int_eq(kevd_config_set(&c, "log", "level", "loud", NULL, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "[log] level: 'loud' is not one of error, warn, info, debug");
	ck_assert_int_eq(kevd_config_set(&c, "log", "colour", "x", "--colour", &err), -ENOENT);
	ck_assert_str_eq(err.msg, "--colour: no configuration key [log] colour");
	ck_assert_int_eq(kevd_config_set(&c, "api", "listen", "10.0.0.1:9", "--listen", &err), 0);
	ck_assert_str_eq(c.listen, "10.0.0.1:9");
	ck_assert_int_eq(kevd_config_set(&c, "api", "listen", "", "--listen", &err), 0);
	ck_assert_ptr_null(c.listen);
	kevd_config_free(&c);
}
END_TEST

START_TEST(validate_cross)
{
	struct kevd_config c;
	struct kevd_error err = KEVD_ERROR_INIT;
	char longpath[200];

	kevd_config_init(&c);
	ck_assert_int_eq(kevd_config_set(&c, "limits", "max_total_memory_mib", "1024", NULL, &err), 0);
	ck_assert_int_eq(kevd_config_validate(&c, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "[limits] max_total_memory_mib (1024) is less than [limits] max_memory_mib (4096)");
	ck_assert_int_eq(kevd_config_set(&c, "limits", "max_memory_mib", "1024", NULL, &err), 0);
	ck_assert_int_eq(kevd_config_validate(&c, &err), 0);

	ck_assert_int_eq(kevd_config_set(&c, "api", "listen", "127.0.0.1:8080", NULL, &err), 0);
	ck_assert_int_eq(kevd_config_validate(&c, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "[api] listen is set but [api] token_file is not: the TCP listener requires a bearer token");
	ck_assert_int_eq(kevd_config_set(&c, "api", "token_file", "/etc/kevd/token", NULL, &err), 0);
	ck_assert_int_eq(kevd_config_validate(&c, &err), 0);

	/* Fields written directly, past set()'s checks. */
	free(c.listen);
	c.listen = strdup("[::1]");
	ck_assert_int_eq(kevd_config_validate(&c, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "[api] listen: '[::1]' is not ADDR:PORT"));
	free(c.listen);
	c.listen = NULL;
	free(c.state_dir);
	c.state_dir = strdup("var/lib/kevd");
	ck_assert_int_eq(kevd_config_validate(&c, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "[paths] state_dir: 'var/lib/kevd' is not an absolute path");
	free(c.state_dir);
	c.state_dir = NULL;
	ck_assert_int_eq(kevd_config_validate(&c, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "[paths] state_dir: not set");
	c.state_dir = strdup("/s");
	c.max_vms = 0;
	ck_assert_int_eq(kevd_config_validate(&c, &err), -ERANGE);
	ck_assert_str_eq(err.msg, "[limits] max_vms: 0 is outside 1..4096");
	c.max_vms = 1;
	c.socket_mode = 01777;
	ck_assert_int_eq(kevd_config_validate(&c, &err), -ERANGE);
	c.socket_mode = 0600;

	memset(longpath, 'x', sizeof(longpath));
	longpath[0] = '/';
	longpath[108] = '\0';
	ck_assert_int_eq(kevd_config_set(&c, "api", "socket", longpath, NULL, &err), 0);
	ck_assert_int_eq(kevd_config_validate(&c, &err), -ENAMETOOLONG);
	ck_assert_ptr_nonnull(strstr(err.msg, "is longer than the 107 bytes a Unix socket path may have"));
	longpath[107] = '\0';
	ck_assert_int_eq(kevd_config_set(&c, "api", "socket", longpath, NULL, &err), 0);
	ck_assert_int_eq(kevd_config_validate(&c, &err), 0);
	kevd_config_free(&c);
}
END_TEST

static void round_trip(const struct kevd_config *c)
{
	struct kevd_config d;
	struct kevd_error err = KEVD_ERROR_INIT;
	char *a = dump_str(c), *b;

	kevd_config_init(&d);
	/* Start from values unlike any a dump holds, so nothing passes by default. */
	ck_assert_int_eq(kevd_config_set(&d, "limits", "max_vms", "3", NULL, &err), 0);
	ck_assert_int_eq(kevd_config_set(&d, "api", "listen", "1.1.1.1:1", NULL, &err), 0);
	if (load_text(&d, a, &err, NULL) < 0)
		ck_abort_msg("dump rejected: %s\n%s", err.msg, a);
	b = dump_str(&d);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	kevd_config_free(&d);
}

START_TEST(dump_round_trip)
{
	struct kevd_config c;
	struct kevd_error err = KEVD_ERROR_INIT;
	char *text;

	kevd_config_init(&c);
	round_trip(&c);
	if (load_text(&c, every_key, &err, NULL) < 0)
		ck_abort_msg("rejected: %s", err.msg);
	round_trip(&c);
	text = dump_str(&c);
	ck_assert_ptr_nonnull(strstr(text, "\nsocket_mode = 0600\n"));
	ck_assert_ptr_nonnull(strstr(text, "\nlisten = [::1]:8443\n"));
	ck_assert_ptr_nonnull(strstr(text, "\nconsole_bytes = 65536\n"));
	ck_assert_ptr_nonnull(strstr(text, "\nlevel = debug\n"));
	free(text);
	c.socket_mode = 0;
	round_trip(&c);
	kevd_config_free(&c);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, defaults);
	tcase_add_test(tc, sample_as_shipped);
	tcase_add_test(tc, sample_covers_every_key);
	tcase_add_test(tc, every_key_set);
	tcase_add_test(tc, bad_uint);
	tcase_add_test(tc, bad_size);
	tcase_add_test(tc, bad_mode);
	tcase_add_test(tc, bad_level);
	tcase_add_test(tc, bad_path);
	tcase_add_test(tc, bad_listen);
	tcase_add_test(tc, listen_addr);
	tcase_add_test(tc, file_errors);
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, set_with_origin);
	tcase_add_test(tc, validate_cross);
	tcase_add_test(tc, dump_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return kevd_test_run(config_suite());
}
