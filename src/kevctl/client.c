/*
 * kevctl's transport (see client.h).  One curl easy handle is reused for
 * every request of a command, so a command that makes several requests
 * (ls, run, console -f) keeps one connection.  Answers are collected in
 * memory with a cap: kevd's biggest answers are a console (1 MiB by
 * default) and /metrics, far below it, and a cap keeps a wrong URL from
 * filling the client's memory.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "kevctl/client.h"

#define BODY_MAX (64u << 20)
#define TOKEN_MAX 4096
/* kevd waits up to 10 s for a VM to stop (stop, rm); leave room for that.
 * A snapshot or a restore, which write or read the VM's memory, set their
 * own (kevctl_client.timeout_ms). */
#define CONNECT_TIMEOUT_MS 5000L
#define REQUEST_TIMEOUT_MS 30000L

static int read_token(const char *file, char **out, struct kevd_error *err)
{
	cleanup_close int fd = open(file, O_RDONLY | O_CLOEXEC);
	char buf[TOKEN_MAX + 1];
	ssize_t n;

	if (fd < 0)
		return kevd_error_sys(err, errno, "token file '%s'", file);
	n = KEVD_RETRY_EINTR(read(fd, buf, sizeof(buf)));
	if (n < 0)
		return kevd_error_sys(err, errno, "token file '%s'", file);
	if (n > TOKEN_MAX)
		return kevd_error_set(err, EFBIG, "token file '%s' is larger than %d bytes", file, TOKEN_MAX);
	/* The same rule as kevd's: trailing blanks and newlines are not part of it. */
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		n--;
	buf[n] = '\0';
	if (!n || strpbrk(buf, "\r\n"))
		return kevd_error_set(err, EINVAL, "token file '%s' holds no single-line token", file);
	if (asprintf(out, "Authorization: Bearer %s", buf) < 0)
		return kevd_error_set(err, ENOMEM, "out of memory");
	return 0;
}

int kevctl_client_init(struct kevctl_client *c, const char *socket, const char *url, const char *token_file,
		       struct kevd_error *err)
{
	memset(c, 0, sizeof(*c));
	c->socket = socket;
	c->url = url;
	if (token_file && read_token(token_file, &c->auth_header, err) < 0)
		return -1;
	c->curl = curl_easy_init();
	if (!c->curl)
		return kevd_error_set(err, ENOMEM, "cannot set up libcurl");
	return 0;
}

void kevctl_client_free(struct kevctl_client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->auth_header);
	c->curl = NULL;
	c->auth_header = NULL;
}

const char *kevctl_client_where(const struct kevctl_client *c)
{
	return c->url ? c->url : c->socket;
}

void kevctl_response_free(struct kevctl_response *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct kevctl_response *r = arg;
	size_t n = size * nmemb;
	char *grown;

	if (r->len + n > BODY_MAX)
		return 0;  /* curl reports CURLE_WRITE_ERROR */
	grown = realloc(r->body, r->len + n + 1);
	if (!grown)
		return 0;
	memcpy(grown + r->len, data, n);
	r->body = grown;
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
	static const char name[] = "X-Console-Next-Offset:";
	struct kevctl_response *r = arg;
	size_t n = size * nmemb;

	if (n > sizeof(name) - 1 && !strncasecmp(line, name, sizeof(name) - 1)) {
		char tmp[32];
		size_t m = n - (sizeof(name) - 1) < sizeof(tmp) - 1 ? n - (sizeof(name) - 1) : sizeof(tmp) - 1;

		memcpy(tmp, line + sizeof(name) - 1, m);
		tmp[m] = '\0';
		r->next_offset = strtoll(tmp, NULL, 10);
	}
	return n;
}

/* The one-line message and exit class of a request that got no answer. */
static int transport_error(struct kevctl_client *c, CURLcode rc, struct kevd_error *err)
{
	long os_errno = 0;

	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		if (os_errno)
			kevd_error_sys(err, (int)os_errno, "cannot reach kevd at %s", kevctl_client_where(c));
		else
			kevd_error_set(err, EHOSTUNREACH, "cannot reach kevd at %s: %s", kevctl_client_where(c),
				       curl_easy_strerror(rc));
		return KEVCTL_DOWN;
	case CURLE_OPERATION_TIMEDOUT:
		kevd_error_set(err, ETIMEDOUT, "kevd at %s did not answer within %ld s", kevctl_client_where(c),
			       (c->timeout_ms > 0 ? c->timeout_ms : REQUEST_TIMEOUT_MS) / 1000);
		return KEVCTL_DOWN;
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:  /* the daemon went away in the middle of an answer */
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		kevd_error_set(err, ECONNRESET, "kevd at %s closed the connection: %s", kevctl_client_where(c),
			       curl_easy_strerror(rc));
		return KEVCTL_DOWN;
	default:
		kevd_error_set(err, EIO, "request to kevd at %s failed: %s", kevctl_client_where(c),
			       curl_easy_strerror(rc));
		return KEVCTL_FAIL;
	}
}

/* The exit class and message of a non-2xx answer. */
static int status_error(const struct kevctl_response *r, struct kevd_error *err)
{
	json_t *j = r->body ? json_loads(r->body, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(j, "fault_message"));

	if (msg)
		kevd_error_set(err, EPROTO, "%s", msg);
	else
		kevd_error_set(err, EPROTO, "kevd answered HTTP %ld", r->status);
	json_decref(j);
	return r->status == 404 ? KEVCTL_NOTFOUND : r->status >= 400 ? KEVCTL_REFUSED : KEVCTL_FAIL;
}

static void set_target(struct kevctl_client *c, const char *path, char *url, size_t size)
{
	if (c->url) {
		snprintf(url, size, "%s%s", c->url, path);
		curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, NULL);
	} else {
		/* The host part is ignored by kevd on its socket. */
		snprintf(url, size, "http://localhost%s", path);
		curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	}
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
}

int kevctl_request(struct kevctl_client *c, const char *method, const char *path, json_t *body,
		   struct kevctl_response *r, struct kevd_error *err)
{
	cleanup_free char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct curl_slist *headers = NULL;
	char url[8192];
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	r->next_offset = -1;
	if (body && !text)
		return kevd_error_set(err, ENOMEM, "out of memory"), KEVCTL_FAIL;
	curl_easy_reset(c->curl);
	set_target(c, path, url, sizeof(url));
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms > 0 ? c->timeout_ms : REQUEST_TIMEOUT_MS);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, r);
	if (text) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, text);
	}
	if (c->auth_header)
		headers = curl_slist_append(headers, c->auth_header);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	rc = curl_easy_perform(c->curl);
	curl_slist_free_all(headers);
	if (rc != CURLE_OK) {
		kevctl_response_free(r);
		return transport_error(c, rc, err);
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->status < 200 || r->status > 299)
		return status_error(r, err);
	return KEVCTL_OK;
}

int kevctl_request_json(struct kevctl_client *c, const char *method, const char *path, json_t *body,
			json_t **out, struct kevd_error *err)
{
	struct kevctl_response r;
	json_error_t jerr;
	int rc = kevctl_request(c, method, path, body, &r, err);

	*out = NULL;
	if (rc == KEVCTL_OK) {
		*out = json_loadb(r.body ? r.body : "", r.len, 0, &jerr);
		if (!*out) {
			kevd_error_set(err, EPROTO, "kevd's answer to %s %s is not JSON: %s", method, path, jerr.text);
			rc = KEVCTL_FAIL;
		}
	}
	kevctl_response_free(&r);
	return rc;
}

/* PREFIX, NAME percent-encoded, SUFFIX into BUF; WHAT names NAME in
 * messages ("VM", "snapshot"). */
static int name_path(char *buf, size_t size, const char *prefix, const char *what, const char *name,
		     const char *suffix, struct kevd_error *err)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	if (!name || !*name)
		return kevd_error_set(err, EINVAL, "no %s name given", what), KEVCTL_USAGE;
	n = (size_t)snprintf(buf, size, "%s", prefix);
	/* Names are [A-Za-z0-9._-], but whatever the user typed must not
	 * change the path's shape: anything else is percent-encoded. */
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (n + 4 >= size)
			return kevd_error_set(err, ENAMETOOLONG, "%s name '%.64s...' is too long", what, name),
			       KEVCTL_USAGE;
		if (isalnum(*p) || strchr("._-", *p)) {
			buf[n++] = (char)*p;
		} else {
			buf[n++] = '%';
			buf[n++] = hex[*p >> 4];
			buf[n++] = hex[*p & 15];
		}
	}
	if (n + strlen(suffix) + 1 > size)
		return kevd_error_set(err, ENAMETOOLONG, "%s name '%.64s...' is too long", what, name), KEVCTL_USAGE;
	strcpy(buf + n, suffix);
	return KEVCTL_OK;
}

int kevctl_vm_path(char *buf, size_t size, const char *vm, const char *suffix, struct kevd_error *err)
{
	return name_path(buf, size, "/v1/vms/", "VM", vm, suffix, err);
}

int kevctl_snapshot_path(char *buf, size_t size, const char *name, struct kevd_error *err)
{
	return name_path(buf, size, "/v1/snapshots/", "snapshot", name, "", err);
}
