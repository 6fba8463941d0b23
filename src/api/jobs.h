/*
 * Work off the event loop: a queue of jobs, a few worker threads that run
 * them, and an eventfd through which the loop hears that jobs are done
 * (the way memcached hands connections to its threads).  A job's run()
 * runs on a worker and may block (KVM, the pager, files); its done() runs
 * afterwards on the loop thread, where it answers and touches the
 * server's state.  The loop never waits for a job.
 */
#ifndef KEVD_JOBS_H
#define KEVD_JOBS_H

#include <event2/event.h>

#include "common/error.h"

/* Most of a job's time is spent waiting in the kernel (KVM tearing down or
 * setting up a VM's memory, a vCPU thread scheduled to exit), not on a
 * CPU: measured on 2 cores, deletes of running VMs by 4 clients went from
 * 44/s with 2 workers to 127/s with 8 (docs/reliability.md). */
#define KEVD_JOBS_DEFAULT_WORKERS 8

struct kevd_jobs;

struct kevd_job {
	void (*run)(struct kevd_job *job);   /* on a worker */
	void (*done)(struct kevd_job *job);  /* then on the loop thread; may free the job */
	struct kevd_job *next;               /* the queues' link; the pool's */
};

int kevd_jobs_new(struct event_base *base, unsigned workers, struct kevd_jobs **out, struct kevd_error *err);
/* Queues JOB (loop thread). */
void kevd_jobs_submit(struct kevd_jobs *j, struct kevd_job *job);
/* Jobs submitted and not yet done. */
unsigned kevd_jobs_pending(const struct kevd_jobs *j);
/* Runs every job submitted so far to its end and calls their done()
 * (loop thread; blocks): at shutdown, so that no job is lost. */
void kevd_jobs_drain(struct kevd_jobs *j);
/* Drains, then joins the workers and frees the pool. */
void kevd_jobs_free(struct kevd_jobs *j);

#endif
