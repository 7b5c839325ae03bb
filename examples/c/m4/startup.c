/* startup.c: reset and fault handling for decode_frames.c on QEMU's mps2-an386 (Cortex-M4F).
 *
 * The vector table puts the stack at the top of RAM and starts reset_handler, which turns on the
 * FPU (the code is built for the hard-float ABI), zeroes .bss, opens newlib's semihosting
 * streams and runs main; exit() hands main's status to QEMU through semihosting, so QEMU exits
 * with it. A fault (a Rust panic traps with `udf`) exits with status 70, so that a failure never
 * leaves QEMU running. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int main(void);
void initialise_monitor_handles(void); /* newlib's rdimon: stdin, stdout, stderr via semihosting */

extern uint32_t __bss_start__[], __bss_end__[], __stack_top[];

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

void reset_handler(void) {
    CPACR |= 0xFu << 20; /* full access to CP10 and CP11, the FPU */
    __asm__ volatile("dsb\n\tisb");
    memset(__bss_start__, 0, (size_t)((char *)__bss_end__ - (char *)__bss_start__));
    initialise_monitor_handles();
    exit(main());
}

static void fault_handler(void) {
    _Exit(70);
}

/* The exception half of the vector table (the board's interrupts are never enabled). */
__attribute__((section(".vectors"), used)) static const uintptr_t vectors[16] = {
    (uintptr_t)__stack_top,
    (uintptr_t)reset_handler,
    (uintptr_t)fault_handler, /* NMI */
    (uintptr_t)fault_handler, /* HardFault */
    (uintptr_t)fault_handler, /* MemManage */
    (uintptr_t)fault_handler, /* BusFault */
    (uintptr_t)fault_handler, /* UsageFault */
};
