/*
 * A 16550-style UART at COM1 (vmm/platform.h), enough for polled output:
 * transmitted bytes go to the VM's console, the line status always says
 * "ready", the other registers keep what the guest wrote.  In a VM with an
 * in-kernel irqchip (SIPI mode) it raises the transmitter-empty interrupt
 * on IRQ 4 the way Linux's 8250 driver expects after early boot; without
 * one it is purely polled.  Every vCPU thread may call it at once.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/platform.h"
#include "vmm/vm_internal.h"

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

struct serial {
	pthread_mutex_t lock;  /* protects the registers, thre_pending and level */
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thre_pending;     /* transmitter-empty interrupt not yet acknowledged */
	int level;             /* last level given to the interrupt line */
	struct kevd_vm *irq_vm;        /* borrowed; NULL = no interrupt line */
	struct kevd_console *console;  /* borrowed */
};

/* Under the lock.  An edge-triggered ISA line needs a low-high transition
 * for each new interrupt, hence PULSE. */
static void update_irq(struct serial *s, bool pulse)
{
	int want = s->thre_pending && (s->ier & IER_THRI) && (s->mcr & MCR_OUT2);

	if (!s->irq_vm)
		return;
	if (pulse && want && s->level) {
		kevd_vm_irq_line(s->irq_vm, KEVD_PLAT_COM1_IRQ, 0);
		s->level = 0;
	}
	if (want != s->level) {
		kevd_vm_irq_line(s->irq_vm, KEVD_PLAT_COM1_IRQ, want);
		s->level = want;
	}
}

/* Under the lock. */
static void serial_write(struct serial *s, unsigned reg, uint8_t v)
{
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
}

/* Under the lock. */
static uint8_t serial_read(struct serial *s, unsigned reg)
{
	uint8_t v;

	switch (reg) {
	case REG_DATA: return s->lcr & LCR_DLAB ? s->dll : 0;
	case REG_IER: return s->lcr & LCR_DLAB ? s->dlm : s->ier;
	case REG_IIR:
		if (s->thre_pending && (s->ier & IER_THRI)) {
			v = IIR_THRI;
			s->thre_pending = false;  /* reading the source acknowledges it */
			update_irq(s, false);
		} else {
			v = IIR_NONE;
		}
		return v | (s->fcr & 1 ? 0xc0 : 0);
	case REG_LCR: return s->lcr;
	case REG_MCR: return s->mcr;
	case REG_LSR: return LSR_THRE | LSR_TEMT;
	case REG_MSR: return MSR_DCD_DSR_CTS;
	case REG_SCR: return s->scr;
	default: return 0xff;
	}
}

static void serial_io(void *opaque, const struct kevd_io *io)
{
	struct serial *s = opaque;

	if (io->size != 1) {
		/* Wider accesses are not meaningful on a byte-wide UART. */
		if (!io->write)
			memset(io->data, 0xff, io->size);
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (io->write)
		serial_write(s, (unsigned)io->offset, io->data[0]);
	else
		io->data[0] = serial_read(s, (unsigned)io->offset);
	pthread_mutex_unlock(&s->lock);
}

static int serial_create(struct kevd_vm *vm, void **state, struct kevd_error *err)
{
	struct serial *s = calloc(1, sizeof(*s));

	if (!s)
		return kevd_error_sys(err, ENOMEM, "vm '%s': serial port", vm->name);
	pthread_mutex_init(&s->lock, NULL);
	s->console = vm->console;
	s->dll = 12;  /* 9600 baud, as firmware leaves it */
	s->irq_vm = vm->sipi ? vm : NULL;
	*state = s;
	if (kevd_iobus_register(vm->iobus, KEVD_IO_PIO, KEVD_PLAT_COM1_PORT, KEVD_PLAT_COM1_PORTS, "serial",
				serial_io, s, err) < 0)
		return kevd_error_prefix(err, "vm '%s'", vm->name);
	return 0;
}

static void serial_free(struct kevd_vm *vm, void *state)
{
	struct serial *s = state;

	(void)vm;
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* The registers as the guest left them, in a fixed layout. */
struct serial_saved {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr, thre_pending;
	int32_t level;
};

static int serial_save(struct kevd_vm *vm, void *state, struct kevd_blob *out, struct kevd_error *err)
{
	struct serial *s = state;
	struct serial_saved v;

	(void)vm;
	(void)err;
	pthread_mutex_lock(&s->lock);
	v = (struct serial_saved){ s->ier, s->lcr, s->mcr, s->scr, s->dll, s->dlm, s->fcr, s->thre_pending, s->level };
	pthread_mutex_unlock(&s->lock);
	kevd_blob_put(out, 1, &v, sizeof(v));
	return 0;
}

static int serial_load(struct kevd_vm *vm, void *state, const void *data, size_t len, struct kevd_error *err)
{
	struct kevd_blob_reader rd;
	struct serial *s = state;
	struct serial_saved v;
	const void *p;
	uint32_t tag;
	size_t n;

	(void)vm;
	kevd_blob_reader_init(&rd, data, len);
	if (kevd_blob_next(&rd, &tag, &p, &n) != 1 || tag != 1 || n != sizeof(v))
		return kevd_error_set(err, EBADMSG, "malformed serial port record");
	memcpy(&v, p, sizeof(v));
	pthread_mutex_lock(&s->lock);
	s->ier = v.ier, s->lcr = v.lcr, s->mcr = v.mcr, s->scr = v.scr, s->dll = v.dll, s->dlm = v.dlm;
	s->fcr = v.fcr;
	s->thre_pending = v.thre_pending;
	/* The line's level is the interrupt controller's, restored with it. */
	s->level = v.level;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

const struct kevd_vm_part kevd_dev_serial = {
	.name = "serial", .create = serial_create, .free = serial_free, .save = serial_save, .load = serial_load,
};
