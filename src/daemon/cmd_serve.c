/*
 * `kevd serve` (also plain `kevd`): the daemon.  Configuration from the
 * file, then command-line flags on top; one libevent loop owns the API;
 * signals arrive as libevent events: SIGTERM/SIGINT stop every VM and
 * exit 0, SIGHUP re-reads the configuration (limits, token, image
 * directory, log level).
 * Readiness and status go to systemd through $NOTIFY_SOCKET.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/server.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "daemon/commands.h"
#include "daemon/conffile.h"
#include "daemon/notify.h"
#include "vmm/bootgate.h"

#define DEFAULT_CONFIG KEVD_SYSCONFDIR "/kevd/kevd.conf"
#define MAX_OVERRIDES 16

struct override {
	const char *section, *key, *value, *origin;
};

struct daemon {
	const char *config_path;       /* NULL: the default, which may be absent */
	struct override ov[MAX_OVERRIDES];
	size_t nov;
	struct kevd_config cfg;
	char *token;                   /* owned: the TCP listener's token */
	/* Owned copies of what the listeners were bound to at start: they
	 * change only on restart, whatever later reloads put in cfg. */
	char *bound_socket, *bound_listen, *bound_metrics;
	struct {
		size_t max_body_bytes;
		unsigned request_timeout_s, max_connections, socket_mode;
	} bound_api;                   /* the [api] limits the listeners were made with */
	struct event_base *base;       /* owned */
	struct kevd_server *srv;       /* owned */
	struct event *sig_term, *sig_int, *sig_hup, *watchdog;  /* owned */
	bool stopping;                 /* SIGTERM or SIGINT came: the server is shut down */
};

static const char usage_text[] =
	"usage: kevd [serve] [--config FILE] [--socket PATH] [--image-dir DIR] [--state-dir DIR]\n"
	"                    [--runtime-dir DIR] [--listen ADDR:PORT] [--token-file FILE]\n"
	"                    [--metrics-listen ADDR:PORT] [--log-level LEVEL] [--check-config]\n";

/* File then overrides, then the cross-field checks. */
static int load_config(struct daemon *d, struct kevd_config *c, struct kevd_error *err)
{
	const char *path = d->config_path ? d->config_path : DEFAULT_CONFIG;
	int r;

	kevd_config_init(c);
	if (d->config_path || access(path, F_OK) == 0) {
		r = kevd_config_load(c, path, err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < d->nov; i++) {
		r = kevd_config_set(c, d->ov[i].section, d->ov[i].key, d->ov[i].value, d->ov[i].origin, err);
		if (r < 0)
			return r;
	}
	return kevd_config_validate(c, err);
}

static int read_token(const char *path, char **out, struct kevd_error *err)
{
	cleanup_fclose FILE *f = fopen(path, "re");
	char buf[512];
	size_t n;
	struct stat st;

	*out = NULL;
	if (!f)
		return kevd_error_sys(err, errno, "token file '%s'", path);
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077))
		kevd_warn("token file '%s' is readable by group or others", path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n < 16)
		return kevd_error_set(err, EINVAL, "token file '%s': the token must be at least 16 characters", path);
	*out = strdup(buf);
	return *out ? 0 : kevd_error_sys(err, ENOMEM, "token");
}

/* PER_CPU for every CPU this process may run on. */
static unsigned boot_slots(unsigned per_cpu)
{
	cpu_set_t set;
	long n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n < 1)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	n *= per_cpu;
	return n > KEVD_BOOTGATE_MAX_SLOTS ? KEVD_BOOTGATE_MAX_SLOTS : (unsigned)n;
}

static int settings_from(const struct kevd_config *c, const char *token, struct kevd_server_settings *s,
			 struct kevd_error *err)
{
	*s = (struct kevd_server_settings){
		.socket_path = c->socket_path, .socket_mode = c->socket_mode, .listen = c->listen,
		.token = token, .image_dir = c->image_dir, .max_body_bytes = c->max_body_bytes,
		.request_timeout_s = c->request_timeout_s, .max_connections = c->max_connections, .max_vms = c->max_vms, .max_vcpus = c->max_vcpus,
		.vcpu_nice = c->vcpu_nice, .boot_slots = boot_slots(c->boot_slots_per_cpu),
		.boot_slot_ms = c->boot_slot_ms,
		.max_memory_mib = c->max_memory_mib, .max_total_memory_mib = c->max_total_memory_mib,
		.console_bytes = c->console_bytes, .pager_threads = c->pager_threads,
		.window_pages = c->window_pages, .window_max_pages = c->window_max_pages,
		.cache_keep_s = c->cache_keep_s, .cache_max_mib = c->cache_max_mib, .record_ms = c->record_ms,
		.spare_vms = c->spare_vms,
	};
	static char snapshot_dir[4096], workingset_dir[4096];

	s->metrics_listen = c->metrics_listen;
	/* Read at start only (kevd_server_update keeps the first). */
	if (c->state_dir && snprintf(snapshot_dir, sizeof(snapshot_dir), "%s/snapshots", c->state_dir) <
				    (int)sizeof(snapshot_dir))
		s->snapshot_dir = snapshot_dir;
	if (c->state_dir && snprintf(workingset_dir, sizeof(workingset_dir), "%s/workingsets", c->state_dir) <
				    (int)sizeof(workingset_dir))
		s->workingset_dir = workingset_dir;
	if (c->listen && kevd_config_listen_addr(c->listen, &s->listen_addr, &s->listen_len, err) < 0)
		return -EINVAL;
	if (c->metrics_listen && kevd_config_listen_addr(c->metrics_listen, &s->metrics_addr, &s->metrics_len, err) < 0)
		return -EINVAL;
	return 0;
}

/* Whether two optional strings (NULL = unset) say the same. */
static bool same(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static void on_change(void *arg, struct kevd_server *srv)
{
	(void)arg;
	kevd_notifyf("STATUS=%u VMs, %u running", kevd_server_vm_count(srv), kevd_server_running_count(srv));
}

/* After the shutdown the loop runs this much longer, so that the answers of
 * the work it finished (a snapshot written, a VM created) leave their
 * connections before they are closed. */
#define SHUTDOWN_FLUSH_MS 250

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	const struct timeval flush = { 0, SHUTDOWN_FLUSH_MS * 1000 };

	(void)what;
	/* A second signal during the flush: out at once. */
	if (d->stopping) {
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = true;
	kevd_info("%s: stopping every VM and exiting", strsignal((int)sig));
	kevd_notify("STOPPING=1\nSTATUS=stopping VMs");
	kevd_server_shutdown(d->srv);
	event_base_loopexit(d->base, &flush);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_server_settings s;
	struct kevd_config c;
	char *token = NULL;

	(void)sig;
	(void)what;
	if (d->stopping)
		return;  /* nothing is left to reload into */
	kevd_notify("RELOADING=1");
	if (load_config(d, &c, &err) < 0 || (c.token_file && read_token(c.token_file, &token, &err) < 0)) {
		kevd_err("reload failed, keeping the running configuration: %s", err.msg);
		goto keep;
	}
	if (d->bound_listen && !token) {
		/* The TCP listener stays bound until restart; it keeps its token.
		 * Refused before anything is applied. */
		kevd_err("reload refused: the TCP listener on %s is bound and the new configuration has no token_file",
			 d->bound_listen);
		goto keep;
	}
	if (settings_from(&c, token, &s, &err) < 0 || kevd_server_update(d->srv, &s, &err) < 0) {
		kevd_err("reload failed, keeping the running configuration: %s", err.msg);
		goto keep;
	}
	if (!same(c.socket_path, d->bound_socket) || !same(c.listen, d->bound_listen) ||
	    !same(c.metrics_listen, d->bound_metrics))
		kevd_warn("reload: the API socket and the listeners change only on restart");
	/* Applied to each listener when it was made (libevent's own limits):
	 * compared with what the listeners hold, not with the last reload. */
	if (c.max_body_bytes != d->bound_api.max_body_bytes || c.request_timeout_s != d->bound_api.request_timeout_s ||
	    c.max_connections != d->bound_api.max_connections || c.socket_mode != d->bound_api.socket_mode)
		kevd_warn("reload: [api] max_body_bytes, request_timeout, max_connections and socket_mode change only on "
			  "restart");
	kevd_log_set_level(c.log_level);
	kevd_config_free(&d->cfg);
	d->cfg = c;
	free(d->token);
	d->token = token;
	kevd_info("configuration reloaded");
	kevd_notify("READY=1");
	return;
keep:
	free(token);
	kevd_config_free(&c);
	kevd_notify("READY=1");
}

/* libevent's own messages, through kevd's log and its rate limit: a
 * message libevent repeats in a loop would otherwise go straight to stderr
 * each time. */
static void on_libevent_log(int severity, const char *msg)
{
	switch (severity) {
	case EVENT_LOG_ERR: kevd_err("libevent: %s", msg); break;
	case EVENT_LOG_WARN: kevd_warn("libevent: %s", msg); break;
	case EVENT_LOG_MSG: kevd_info("libevent: %s", msg); break;
	default: kevd_debug("libevent: %s", msg); break;
	}
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	kevd_notify("WATCHDOG=1");
}

static int mkdir_parent(const char *path)
{
	char dir[4096];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int run_daemon(struct daemon *d)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_server_settings s;
	uint64_t wd_usec;
	int rc = 1;

	signal(SIGPIPE, SIG_IGN);
	event_set_log_callback(on_libevent_log);
	if (d->cfg.token_file && read_token(d->cfg.token_file, &d->token, &err) < 0)
		goto fail;
	if (settings_from(&d->cfg, d->token, &s, &err) < 0)
		goto fail;
	if (mkdir_parent(d->cfg.socket_path) < 0) {
		kevd_error_sys(&err, errno, "creating the directory of '%s'", d->cfg.socket_path);
		goto fail;
	}
	d->base = event_base_new();
	if (!d->base) {
		kevd_error_set(&err, ENOMEM, "event_base_new");
		goto fail;
	}
	if (kevd_server_new(d->base, &s, on_change, d, &d->srv, &err) < 0)
		goto fail;
	if (!(d->bound_socket = strdup(d->cfg.socket_path)) ||
	    (d->cfg.listen && !(d->bound_listen = strdup(d->cfg.listen))) ||
	    (d->cfg.metrics_listen && !(d->bound_metrics = strdup(d->cfg.metrics_listen)))) {
		kevd_error_sys(&err, ENOMEM, "daemon");
		goto fail;
	}
	d->bound_api.max_body_bytes = d->cfg.max_body_bytes;
	d->bound_api.request_timeout_s = d->cfg.request_timeout_s;
	d->bound_api.max_connections = d->cfg.max_connections;
	d->bound_api.socket_mode = d->cfg.socket_mode;
	d->sig_term = evsignal_new(d->base, SIGTERM, on_stop_signal, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_stop_signal, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, on_hup, d);
	if (!d->sig_term || !d->sig_int || !d->sig_hup || event_add(d->sig_term, NULL) || event_add(d->sig_int, NULL) ||
	    event_add(d->sig_hup, NULL)) {
		kevd_error_set(&err, ENOMEM, "signal events");
		goto fail;
	}
	wd_usec = kevd_notify_watchdog_usec();
	if (wd_usec) {
		struct timeval tv = { (time_t)(wd_usec / 2 / 1000000), (suseconds_t)(wd_usec / 2 % 1000000) };

		d->watchdog = event_new(d->base, -1, EV_PERSIST, on_watchdog, d);
		if (!d->watchdog || event_add(d->watchdog, &tv)) {
			kevd_error_set(&err, ENOMEM, "watchdog timer");
			goto fail;
		}
	}
	kevd_info("listening on %s%s%s%s%s", d->cfg.socket_path, d->cfg.listen ? " and " : "",
		  d->cfg.listen ? d->cfg.listen : "", d->cfg.metrics_listen ? ", metrics on " : "",
		  d->cfg.metrics_listen ? d->cfg.metrics_listen : "");
	kevd_notify("READY=1\nSTATUS=0 VMs, 0 running");
	event_base_dispatch(d->base);
	rc = 0;
	goto out;
fail:
	kevd_err("%s", err.msg);
out:
	kevd_server_free(d->srv);
	if (d->watchdog)
		event_free(d->watchdog);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	if (d->base)
		event_base_free(d->base);
	free(d->token);
	free(d->bound_socket);
	free(d->bound_listen);
	free(d->bound_metrics);
	return rc;
}

int kevd_cmd_serve(int argc, char **argv)
{
	enum { O_CONFIG = 1, O_SOCKET, O_IMAGES, O_STATE, O_RUNTIME, O_LISTEN, O_TOKEN, O_METRICS, O_LOG, O_CHECK,
	       O_HELP };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, O_CONFIG },
		{ "socket", required_argument, NULL, O_SOCKET },
		{ "image-dir", required_argument, NULL, O_IMAGES },
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "runtime-dir", required_argument, NULL, O_RUNTIME },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "token-file", required_argument, NULL, O_TOKEN },
		{ "metrics-listen", required_argument, NULL, O_METRICS },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "check-config", no_argument, NULL, O_CHECK },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	static struct daemon d;
	struct kevd_error err = KEVD_ERROR_INIT;
	bool check = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		struct override o = { 0 };

		switch (c) {
		case O_CONFIG: d.config_path = optarg; continue;
		case O_SOCKET: o = (struct override){ "api", "socket", optarg, "--socket" }; break;
		case O_IMAGES: o = (struct override){ "paths", "image_dir", optarg, "--image-dir" }; break;
		case O_STATE: o = (struct override){ "paths", "state_dir", optarg, "--state-dir" }; break;
		case O_RUNTIME: o = (struct override){ "paths", "runtime_dir", optarg, "--runtime-dir" }; break;
		case O_LISTEN: o = (struct override){ "api", "listen", optarg, "--listen" }; break;
		case O_TOKEN: o = (struct override){ "api", "token_file", optarg, "--token-file" }; break;
		case O_METRICS: o = (struct override){ "metrics", "listen", optarg, "--metrics-listen" }; break;
		case O_LOG: o = (struct override){ "log", "level", optarg, "--log-level" }; break;
		case O_CHECK: check = true; continue;
		case O_HELP: fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
		if (d.nov == MAX_OVERRIDES) {
			fprintf(stderr, "kevd: too many options\n");
			return 2;
		}
		d.ov[d.nov++] = o;
	}
	if (optind != argc) {
		fprintf(stderr, "kevd: unexpected argument '%s'\n%s", argv[optind], usage_text);
		return 2;
	}
	if (load_config(&d, &d.cfg, &err) < 0) {
		fprintf(stderr, "kevd: %s\n", err.msg);
		kevd_config_free(&d.cfg);
		return 1;
	}
	if (check) {
		kevd_config_dump(&d.cfg, stdout);
		kevd_config_free(&d.cfg);
		return 0;
	}
	kevd_log_set_level(d.cfg.log_level);
	rc = run_daemon(&d);
	kevd_config_free(&d.cfg);
	return rc;
}
