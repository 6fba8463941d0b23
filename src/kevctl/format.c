/*
 * Tables and numbers for people (see format.h).  The histogram's bars are
 * scaled to the fullest bucket so the shape shows whatever the counts are,
 * and every non-empty bucket gets at least one '#' so no load disappears.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kevctl/format.h"

#define BAR_WIDTH 50

int kevctl_table_init(struct kevctl_table *t, size_t ncols, const char *const *header)
{
	memset(t, 0, sizeof(*t));
	if (ncols == 0 || ncols > KEVCTL_TABLE_COLS)
		return -EINVAL;
	t->ncols = ncols;
	return kevctl_table_add(t, header);
}

int kevctl_table_add(struct kevctl_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		char **grown = realloc(t->cells, cap * t->ncols * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		t->cells = grown;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		t->cells[t->nrows * t->ncols + i] = strdup(cells[i] ? cells[i] : "");
		if (!t->cells[t->nrows * t->ncols + i]) {
			while (i--)
				free(t->cells[t->nrows * t->ncols + i]);
			return -ENOMEM;
		}
	}
	t->nrows++;
	return 0;
}

void kevctl_table_print(const struct kevctl_table *t, FILE *f)
{
	size_t width[KEVCTL_TABLE_COLS] = { 0 };

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = strlen(t->cells[r * t->ncols + c]);

			if (w > width[c])
				width[c] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];

			if (c + 1 == t->ncols)
				fprintf(f, "%s\n", cell);
			else
				fprintf(f, "%-*s  ", (int)width[c], cell);
		}
	}
}

void kevctl_table_free(struct kevctl_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

void kevctl_format_ns(char *buf, size_t size, const json_t *ns)
{
	double v;

	if (!json_is_integer(ns)) {
		snprintf(buf, size, "-");
		return;
	}
	v = (double)json_integer_value(ns);
	if (v < 1e3)
		snprintf(buf, size, "%.0f ns", v);
	else if (v < 1e6)
		snprintf(buf, size, "%.1f us", v / 1e3);
	else if (v < 1e9)
		snprintf(buf, size, "%.1f ms", v / 1e6);
	else
		snprintf(buf, size, "%.2f s", v / 1e9);
}

void kevctl_format_age(char *buf, size_t size, const char *created_at)
{
	struct tm tm = { 0 };
	const char *end = created_at ? strptime(created_at, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
	long long age;

	if (!end || *end) {
		snprintf(buf, size, "?");
		return;
	}
	age = (long long)(time(NULL) - timegm(&tm));
	if (age < 0)
		age = 0;
	if (age < 120)
		snprintf(buf, size, "%llds", age);
	else if (age < 2 * 3600)
		snprintf(buf, size, "%lldm", age / 60);
	else if (age < 2 * 86400)
		snprintf(buf, size, "%lldh", age / 3600);
	else
		snprintf(buf, size, "%lldd", age / 86400);
}

static void bucket_label(char *buf, size_t size, const json_t *le_us)
{
	if (!json_is_integer(le_us))
		snprintf(buf, size, "larger");
	else if (json_integer_value(le_us) >= 1000000)
		snprintf(buf, size, "<= %" JSON_INTEGER_FORMAT " s", json_integer_value(le_us) / 1000000);
	else if (json_integer_value(le_us) >= 1000)
		snprintf(buf, size, "<= %" JSON_INTEGER_FORMAT " ms", json_integer_value(le_us) / 1000);
	else
		snprintf(buf, size, "<= %" JSON_INTEGER_FORMAT " us", json_integer_value(le_us));
}

void kevctl_format_histogram(FILE *f, const json_t *histogram)
{
	size_t n = json_array_size(histogram), first = n, last = 0;
	json_int_t max = 0;

	for (size_t i = 0; i < n; i++) {
		json_int_t count = json_integer_value(json_object_get(json_array_get(histogram, i), "count"));

		if (count > 0) {
			first = i < first ? i : first;
			last = i;
			max = count > max ? count : max;
		}
	}
	if (first == n) {
		fprintf(f, "  (no loads yet)\n");
		return;
	}
	for (size_t i = first; i <= last; i++) {
		const json_t *b = json_array_get(histogram, i);
		json_int_t count = json_integer_value(json_object_get(b, "count"));
		int bar = (int)(count * BAR_WIDTH / max);
		char label[32];

		if (count > 0 && bar == 0)
			bar = 1;
		bucket_label(label, sizeof(label), json_object_get(b, "le_us"));
		fprintf(f, "  %10s %8" JSON_INTEGER_FORMAT " %.*s\n", label, count, bar,
			"##################################################");
	}
}

void kevctl_escape(char *out, size_t size, const char *s)
{
	size_t n = 0;

	for (; *s && n + 5 <= size; s++) {
		unsigned char c = (unsigned char)*s;

		/* C0, DEL, and C1 (U+0080..U+009F, UTF-8 C2 80..C2 9F: some
		 * terminals act on those too, CSI among them). */
		if (c == 0xc2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9f) {
			if (n + 9 > size)
				break;
			n += (size_t)snprintf(out + n, size - n, "\\xc2\\x%02x", (unsigned char)s[1]);
			s++;
		} else if (c < 0x20 || c == 0x7f) {
			n += (size_t)snprintf(out + n, size - n, "\\x%02x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
}

const char *kevctl_str(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	const char *s = json_string_value(v);
	size_t len;
	char *esc;

	if (!s)
		return "";
	if (!s[strcspn(s, "\001\002\003\004\005\006\007\010\011\012\013\014\015\016\017\020\021\022\023\024\025"
			  "\026\027\030\031\032\033\034\035\036\037\177\302")])
		return s;
	/* Control bytes (an escape sequence a VM's creator put in its
	 * cmdline, say) would reach the terminal of whoever reads it: they
	 * are shown escaped, and the answer holds the escaped text from now
	 * on, so the pointer stays valid as long as the answer does (a --json
	 * print, of the answer as it came, happens before any rendering). */
	len = json_string_length(v);
	esc = malloc(len * 4 + 1);
	if (!esc)
		return "?";
	kevctl_escape(esc, len * 4 + 1, s);
	if (json_object_set_new((json_t *)o, key, json_string(esc)) < 0) {
		free(esc);
		return "?";
	}
	free(esc);
	s = json_string_value(json_object_get(o, key));
	return s ? s : "?";
}
