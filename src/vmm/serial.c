/* A polled-output 16550 (see serial.h). */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "vmm/serial.h"

#define REG_DATA 0      /* THR/RBR, or DLL with DLAB */
#define REG_IER 1       /* or DLM with DLAB */
#define REG_IIR 2       /* FCR on write */
#define REG_LCR 3
#define REG_MCR 4
#define REG_LSR 5
#define REG_MSR 6
#define REG_SCR 7
#define LCR_DLAB 0x80
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define IIR_NONE 0x01
#define MSR_DCD_DSR_CTS 0xb0
#define MCR_LOOP 0x10
#define MCR_OUT2 0x08   /* on PCs, gates the UART's interrupt onto the bus */
#define IER_THRI 0x02
#define IIR_THRI 0x02

struct kevd_serial {
	pthread_mutex_t lock;  /* protects the registers, thre_pending and level */
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thre_pending;     /* transmitter-empty interrupt not yet acknowledged */
	int level;             /* last level given to irq */
	kevd_serial_irq_fn irq;
	void *irq_arg;
	struct kevd_console *console;  /* borrowed */
};

/* Under the lock.  An edge-triggered ISA line needs a low-high transition
 * for each new interrupt, hence PULSE. */
static void update_irq(struct kevd_serial *s, bool pulse)
{
	int want = s->thre_pending && (s->ier & IER_THRI) && (s->mcr & MCR_OUT2);

	if (!s->irq)
		return;
	if (pulse && want && s->level) {
		s->irq(s->irq_arg, 0);
		s->level = 0;
	}
	if (want != s->level) {
		s->irq(s->irq_arg, want);
		s->level = want;
	}
}

void kevd_serial_set_irq(struct kevd_serial *s, kevd_serial_irq_fn fn, void *arg)
{
	pthread_mutex_lock(&s->lock);
	s->irq = fn;
	s->irq_arg = arg;
	pthread_mutex_unlock(&s->lock);
}

struct kevd_serial *kevd_serial_new(struct kevd_console *console)
{
	struct kevd_serial *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	s->console = console;
	s->dll = 12;  /* 9600 baud, as firmware leaves it */
	return s;
}

void kevd_serial_free(struct kevd_serial *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void kevd_serial_io(struct kevd_serial *s, uint16_t port, bool write, uint8_t *data, unsigned size)
{
	unsigned reg = (unsigned)(port - KEVD_SERIAL_BASE);
	uint8_t v = data[0];

	if (size != 1) {
		/* Wider accesses are not meaningful on a byte-wide UART. */
		if (!write)
			for (unsigned i = 0; i < size; i++)
				data[i] = 0xff;
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (write) {
		switch (reg) {
		case REG_DATA:
			if (s->lcr & LCR_DLAB) {
				s->dll = v;
				break;
			}
			if (!(s->mcr & MCR_LOOP))
				kevd_console_put(s->console, &v, 1);
			/* Sent at once: the holding register is empty again. */
			s->thre_pending = true;
			update_irq(s, true);
			break;
		case REG_IER:
			if (s->lcr & LCR_DLAB) {
				s->dlm = v;
				break;
			}
			if ((v & IER_THRI) && !(s->ier & IER_THRI))
				s->thre_pending = true;  /* enabling it with THR empty interrupts */
			s->ier = v & 0x0f;
			update_irq(s, false);
			break;
		case REG_IIR: s->fcr = v; break;
		case REG_LCR: s->lcr = v; break;
		case REG_MCR:
			s->mcr = v & 0x1f;
			update_irq(s, false);
			break;
		case REG_SCR: s->scr = v; break;
		default: break;  /* LSR and MSR are read-only */
		}
	} else {
		switch (reg) {
		case REG_DATA: v = s->lcr & LCR_DLAB ? s->dll : 0; break;
		case REG_IER: v = s->lcr & LCR_DLAB ? s->dlm : s->ier; break;
		case REG_IIR:
			if (s->thre_pending && (s->ier & IER_THRI)) {
				v = IIR_THRI;
				s->thre_pending = false;  /* reading the source acknowledges it */
				update_irq(s, false);
			} else {
				v = IIR_NONE;
			}
			v |= s->fcr & 1 ? 0xc0 : 0;
			break;
		case REG_LCR: v = s->lcr; break;
		case REG_MCR: v = s->mcr; break;
		case REG_LSR: v = LSR_THRE | LSR_TEMT; break;
		case REG_MSR: v = MSR_DCD_DSR_CTS; break;
		case REG_SCR: v = s->scr; break;
		default: v = 0xff; break;
		}
		data[0] = v;
	}
	pthread_mutex_unlock(&s->lock);
}
