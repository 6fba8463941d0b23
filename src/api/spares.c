/* Spare VMs (see spares.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

#include "api/spares.h"
#include "common/log.h"

#define MAX_MAKING 8  /* shapes asked for at once; more asks wait for the next one */
/* A spare is made this long after it is asked for: the restore that asked
 * has just started its vCPUs, whose way to the guest's first instruction
 * should not share the cores with the making of the next VM. */
#define MAKE_DELAY_MS 20

struct ready {
	struct kevd_vm_spare *spare;  /* owned */
	struct ready *next;           /* newer */
};

struct make_job {
	struct kevd_job job;
	struct kevd_spares *sp;
	struct kevd_spare_shape shape;
};

struct kevd_spares {
	struct kevd_jobs *jobs;       /* borrowed */
	struct event *timer;          /* owned: submits the makings asked for */
	pthread_mutex_t lock;         /* protects oldest, nready, max */
	struct ready *oldest;         /* the ready spares, oldest first */
	unsigned nready;
	unsigned max;
	/* Loop thread only: the shapes asked for, then being made. */
	struct kevd_spare_shape making[MAX_MAKING];
	bool submitted[MAX_MAKING];
	unsigned nmaking;
};

static bool same(const struct kevd_spare_shape *a, const struct kevd_spare_shape *b)
{
	return a->memory_mib == b->memory_mib && a->vcpus == b->vcpus && a->pc == b->pc;
}

static bool fits(const struct kevd_vm_spare *s, const struct kevd_spare_shape *want)
{
	struct kevd_spare_shape have;

	kevd_vm_spare_shape(s, &have.memory_mib, &have.vcpus, &have.pc);
	return same(&have, want);
}

bool kevd_spare_shape_of(const json_t *snapshot, struct kevd_spare_shape *out)
{
	json_t *vm = json_object_get(snapshot, "vm");
	json_int_t m = json_integer_value(json_object_get(vm, "memory_mib"));
	json_int_t v = json_integer_value(json_object_get(vm, "vcpus"));

	if (m <= 0 || v <= 0)
		return false;
	*out = (struct kevd_spare_shape){ (uint64_t)m, (unsigned)v, json_is_true(json_object_get(vm, "pc")) };
	return true;
}

static void make_run(struct kevd_job *job);
static void make_done(struct kevd_job *job);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct kevd_spares *sp = arg;
	unsigned max;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&sp->lock);
	max = sp->max;
	pthread_mutex_unlock(&sp->lock);
	if (!max) {  /* none kept any more (a reload, the shutdown): what was asked goes */
		unsigned kept = 0;

		for (unsigned i = 0; i < sp->nmaking; i++)
			if (sp->submitted[i]) {
				sp->making[kept] = sp->making[i];
				sp->submitted[kept++] = true;
			}
		sp->nmaking = kept;
		return;
	}
	for (unsigned i = 0; i < sp->nmaking; i++) {
		struct timeval again = { 0, MAKE_DELAY_MS * 1000 };
		struct make_job *m;

		if (sp->submitted[i])
			continue;
		if (!(m = calloc(1, sizeof(*m)))) {
			evtimer_add(sp->timer, &again);  /* the rest next time */
			return;
		}
		*m = (struct make_job){
			.job = { .run = make_run, .done = make_done }, .sp = sp, .shape = sp->making[i],
		};
		sp->submitted[i] = true;
		kevd_jobs_submit(sp->jobs, &m->job);
	}
}

int kevd_spares_new(struct event_base *base, struct kevd_jobs *jobs, unsigned max, struct kevd_spares **out,
		    struct kevd_error *err)
{
	struct kevd_spares *sp = calloc(1, sizeof(*sp));

	if (!sp || !(sp->timer = evtimer_new(base, on_timer, sp))) {
		free(sp);
		return kevd_error_sys(err, ENOMEM, "api: spare VMs");
	}
	sp->jobs = jobs;
	sp->max = max;
	pthread_mutex_init(&sp->lock, NULL);
	*out = sp;
	return 0;
}

/* Unlinks the oldest ready spares beyond MAX (under lock); the caller
 * frees the returned list outside it: a VM's teardown is not quick. */
static struct ready *trim_locked(struct kevd_spares *sp)
{
	struct ready *gone = NULL, **tail = &gone;

	while (sp->nready > sp->max) {
		struct ready *r = sp->oldest;

		sp->oldest = r->next;
		sp->nready--;
		r->next = NULL;
		*tail = r;
		tail = &r->next;
	}
	return gone;
}

static void free_list(struct ready *r)
{
	while (r) {
		struct ready *next = r->next;

		kevd_vm_spare_free(r->spare);
		free(r);
		r = next;
	}
}

void kevd_spares_free(struct kevd_spares *sp)
{
	if (!sp)
		return;
	free_list(sp->oldest);
	event_free(sp->timer);
	pthread_mutex_destroy(&sp->lock);
	free(sp);
}

struct free_job {
	struct kevd_job job;
	struct ready *gone;           /* owned */
};

static void free_run(struct kevd_job *job)
{
	free_list(((struct free_job *)job)->gone);
}

static void free_done(struct kevd_job *job)
{
	free(job);
}

/* The spares beyond the new most go at once, on a worker (a VM's teardown
 * is no work for the loop); with no memory for the job, at the next take
 * or at the end. */
void kevd_spares_set_max(struct kevd_spares *sp, unsigned max)
{
	struct free_job *f = calloc(1, sizeof(*f));

	pthread_mutex_lock(&sp->lock);
	sp->max = max;
	if (f)
		f->gone = trim_locked(sp);
	pthread_mutex_unlock(&sp->lock);
	if (f && !f->gone) {
		free(f);
		return;
	}
	if (f) {
		f->job = (struct kevd_job){ .run = free_run, .done = free_done };
		kevd_jobs_submit(sp->jobs, &f->job);
	}
}

static void make_run(struct kevd_job *job)
{
	struct make_job *m = (struct make_job *)job;
	struct kevd_spares *sp = m->sp;
	struct kevd_error err = KEVD_ERROR_INIT;
	struct ready *r = calloc(1, sizeof(*r)), *gone, **pp;

	if (!r || kevd_vm_spare_new(m->shape.memory_mib, m->shape.vcpus, m->shape.pc, &r->spare, &err) < 0) {
		/* Nothing lost: the restore that would have taken it makes its
		 * VM itself. */
		kevd_warn("api: no spare VM of %llu MiB with %u vCPU(s): %s", (unsigned long long)m->shape.memory_mib,
			  m->shape.vcpus, r ? err.msg : "out of memory");
		free(r);
		return;
	}
	pthread_mutex_lock(&sp->lock);
	for (pp = &sp->oldest; *pp; pp = &(*pp)->next)
		;
	*pp = r;
	sp->nready++;
	gone = trim_locked(sp);
	pthread_mutex_unlock(&sp->lock);
	free_list(gone);
}

static void make_done(struct kevd_job *job)
{
	struct make_job *m = (struct make_job *)job;
	struct kevd_spares *sp = m->sp;

	for (unsigned i = 0; i < sp->nmaking; i++)
		if (same(&sp->making[i], &m->shape)) {
			sp->nmaking--;
			sp->making[i] = sp->making[sp->nmaking];
			sp->submitted[i] = sp->submitted[sp->nmaking];
			break;
		}
	free(m);
}

void kevd_spares_want(struct kevd_spares *sp, const struct kevd_spare_shape *shape, bool at_once)
{
	struct timeval delay = { 0, at_once ? 0 : MAKE_DELAY_MS * 1000 };
	bool have = false;

	pthread_mutex_lock(&sp->lock);
	for (struct ready *r = sp->oldest; r && !have; r = r->next)
		have = fits(r->spare, shape);
	have = have || sp->max == 0;
	pthread_mutex_unlock(&sp->lock);
	for (unsigned i = 0; i < sp->nmaking && !have; i++)
		have = same(&sp->making[i], shape);
	if (have || sp->nmaking == MAX_MAKING)
		return;
	sp->submitted[sp->nmaking] = false;
	sp->making[sp->nmaking++] = *shape;
	if (at_once || !evtimer_pending(sp->timer, NULL))
		evtimer_add(sp->timer, &delay);
}

struct kevd_vm_spare *kevd_spares_take(struct kevd_spares *sp, const struct kevd_spare_shape *shape)
{
	struct kevd_vm_spare *s = NULL;
	struct ready **pp, *r = NULL, *gone;

	pthread_mutex_lock(&sp->lock);
	for (pp = &sp->oldest; *pp; pp = &(*pp)->next)
		if (fits((*pp)->spare, shape)) {
			r = *pp;
			*pp = r->next;
			sp->nready--;
			break;
		}
	gone = trim_locked(sp);
	pthread_mutex_unlock(&sp->lock);
	free_list(gone);
	if (r) {
		s = r->spare;
		free(r);
	}
	return s;
}
