/*
 * The job pool (see jobs.h).  Two queues under one mutex: todo (loop ->
 * workers, signalled by a condition variable) and done (workers -> loop,
 * signalled by an eventfd the loop watches).  Jobs are run in the order
 * they were submitted, by whichever worker is free.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "api/jobs.h"
#include "common/log.h"

struct queue {
	struct kevd_job *head, *tail;
};

struct kevd_jobs {
	pthread_mutex_t lock;      /* protects todo, done, stopping, pending */
	pthread_cond_t work;       /* todo gained a job, or stopping */
	pthread_cond_t finished;   /* done gained a job (for the drain) */
	struct queue todo, done;
	bool stopping;
	unsigned pending;          /* submitted and not yet through done(); loop thread writes, under lock */
	unsigned nworkers;
	pthread_t *workers;        /* owned: joined in kevd_jobs_free */
	int efd;                   /* owned eventfd: done is not empty */
	struct event *ev;          /* owned */
};

static void push(struct queue *q, struct kevd_job *job)
{
	job->next = NULL;
	if (q->tail)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
}

static struct kevd_job *pop_all(struct queue *q)
{
	struct kevd_job *all = q->head;

	q->head = q->tail = NULL;
	return all;
}

static void *worker_main(void *arg)
{
	struct kevd_jobs *j = arg;
	uint64_t one = 1;

	for (;;) {
		struct kevd_job *job;

		pthread_mutex_lock(&j->lock);
		while (!j->todo.head && !j->stopping)
			pthread_cond_wait(&j->work, &j->lock);
		job = j->todo.head;
		if (!job) {
			pthread_mutex_unlock(&j->lock);
			return NULL;
		}
		j->todo.head = job->next;
		if (!j->todo.head)
			j->todo.tail = NULL;
		pthread_mutex_unlock(&j->lock);
		job->run(job);
		pthread_mutex_lock(&j->lock);
		push(&j->done, job);
		pthread_cond_broadcast(&j->finished);
		pthread_mutex_unlock(&j->lock);
		/* Fails only when the counter would overflow: already readable. */
		if (write(j->efd, &one, sizeof(one)) < 0) {
		}
	}
}

/* Calls done() of every finished job, in the order they finished. */
static void complete(struct kevd_jobs *j)
{
	struct kevd_job *job;

	pthread_mutex_lock(&j->lock);
	job = pop_all(&j->done);
	pthread_mutex_unlock(&j->lock);
	while (job) {
		struct kevd_job *next = job->next;

		pthread_mutex_lock(&j->lock);
		j->pending--;
		pthread_mutex_unlock(&j->lock);
		job->done(job);
		job = next;
	}
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: another wake-up read it; the queue is what counts */
	}
	complete(arg);
}

int kevd_jobs_new(struct event_base *base, unsigned workers, struct kevd_jobs **out, struct kevd_error *err)
{
	struct kevd_jobs *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return kevd_error_sys(err, ENOMEM, "api: job pool");
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->work, NULL);
	pthread_cond_init(&j->finished, NULL);
	j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	j->workers = calloc(workers ? workers : 1, sizeof(*j->workers));
	if (j->efd < 0 || !j->workers) {
		r = kevd_error_sys(err, j->efd < 0 ? errno : ENOMEM, "api: job pool");
		goto fail;
	}
	j->ev = event_new(base, j->efd, EV_READ | EV_PERSIST, on_done, j);
	if (!j->ev || event_add(j->ev, NULL) < 0) {
		r = kevd_error_set(err, ENOMEM, "api: job pool: event_new");
		goto fail;
	}
	for (; j->nworkers < (workers ? workers : 1); j->nworkers++) {
		char name[16];

		r = pthread_create(&j->workers[j->nworkers], NULL, worker_main, j);
		if (r) {
			r = kevd_error_sys(err, r, "api: starting job worker %u", j->nworkers);
			goto fail;
		}
		snprintf(name, sizeof(name), "api-worker-%u", j->nworkers % 100);
		pthread_setname_np(j->workers[j->nworkers], name);
	}
	*out = j;
	return 0;
fail:
	kevd_jobs_free(j);
	return r;
}

void kevd_jobs_submit(struct kevd_jobs *j, struct kevd_job *job)
{
	pthread_mutex_lock(&j->lock);
	j->pending++;
	push(&j->todo, job);
	pthread_cond_signal(&j->work);
	pthread_mutex_unlock(&j->lock);
}

unsigned kevd_jobs_pending(const struct kevd_jobs *j)
{
	unsigned n;

	pthread_mutex_lock((pthread_mutex_t *)&j->lock);
	n = j->pending;
	pthread_mutex_unlock((pthread_mutex_t *)&j->lock);
	return n;
}

void kevd_jobs_drain(struct kevd_jobs *j)
{
	for (;;) {
		bool idle;

		complete(j);
		pthread_mutex_lock(&j->lock);
		idle = j->pending == 0;
		while (!idle && !j->done.head)
			pthread_cond_wait(&j->finished, &j->lock);
		pthread_mutex_unlock(&j->lock);
		if (idle)
			return;
	}
}

void kevd_jobs_free(struct kevd_jobs *j)
{
	if (!j)
		return;
	if (j->nworkers)
		kevd_jobs_drain(j);
	pthread_mutex_lock(&j->lock);
	j->stopping = true;
	pthread_cond_broadcast(&j->work);
	pthread_mutex_unlock(&j->lock);
	for (unsigned i = 0; i < j->nworkers; i++)
		pthread_join(j->workers[i], NULL);
	if (j->ev)
		event_free(j->ev);
	if (j->efd >= 0)
		close(j->efd);
	free(j->workers);
	pthread_cond_destroy(&j->finished);
	pthread_cond_destroy(&j->work);
	pthread_mutex_destroy(&j->lock);
	free(j);
}
