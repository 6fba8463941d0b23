/*
 * Fault injection for tests.  Built with --enable-fault-injection, a site
 * named in $KEVD_FAULT_INJECT ("site=N[,site=N...]") fails its N-th call
 * (counting from 1), or with "site=N+" that call and every later one (a
 * fault that stays: a retry meets it too), with the errno the site
 * chooses; otherwise, and always
 * in a normal build, kevd_fault() is a constant false the compiler drops.
 *
 * Sites: uffd_copy (the pager's UFFDIO_COPY), uffd_register
 * (UFFDIO_REGISTER), kvm_run (KVM_RUN), kvm_create_vcpu (KVM_CREATE_VCPU),
 * kvm_create_vm (KVM_CREATE_VM interrupted: EINTR, which is retried),
 * image_read (reading a page from the image, for a fault or the
 * working-set prefetch), state_alloc (a new page
 * state word: the table answers as if out of memory), cache_memfd (the
 * memfd of a new shared image: EMFILE), kvm_memslot
 * (KVM_SET_USER_MEMORY_REGION: ENOMEM), metrics_render (a /metrics
 * render out of memory).
 */
#ifndef KEVD_FAULT_H
#define KEVD_FAULT_H

#include <stdbool.h>

#ifdef KEVD_FAULT_INJECTION
bool kevd_fault(const char *site);
#else
static inline bool kevd_fault(const char *site)
{
	(void)site;
	return false;
}
#endif

#endif
