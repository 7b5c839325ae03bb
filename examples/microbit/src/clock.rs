//! Milliseconds since boot, counted by TIMER0's compare interrupt (the nRF51 has no SysTick).
//! The sessions never read a clock: the host reads this one and decides about time itself.
//!
//! TIMER0 (0x4000_8000, interrupt 8) runs as a timer at 1 MHz (prescaler 4 of the 16 MHz
//! clock); its compare register 0 at 1,000 raises the event each millisecond and a shortcut
//! clears the count, so the interrupt only counts.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::mmio::{Reg, enable_irq};

const TIMER0: usize = 0x4000_8000;
/// TIMER0's interrupt line.
pub const TIMER0_IRQ: u32 = 8;

const TASKS_START: Reg = Reg::at(TIMER0, 0x000);
const EVENTS_COMPARE0: Reg = Reg::at(TIMER0, 0x140);
const SHORTS: Reg = Reg::at(TIMER0, 0x200);
const INTENSET: Reg = Reg::at(TIMER0, 0x304);
const MODE: Reg = Reg::at(TIMER0, 0x504);
const BITMODE: Reg = Reg::at(TIMER0, 0x508);
const PRESCALER: Reg = Reg::at(TIMER0, 0x510);
const CC0: Reg = Reg::at(TIMER0, 0x540);

/// SHORTS: COMPARE[0] clears the count.
const SHORT_COMPARE0_CLEAR: u32 = 1 << 0;
/// INTENSET: COMPARE[0].
const INT_COMPARE0: u32 = 1 << 16;

/// Written only by the interrupt (Cortex-M0 has no atomic read-modify-write; a load and a
/// store are enough with one writer).
static MILLIS: AtomicU32 = AtomicU32::new(0);

/// Starts the millisecond tick. Call once, at boot.
pub fn start() {
    MODE.write(0);
    BITMODE.write(0); // 16 bits: 1,000 fits
    PRESCALER.write(4); // 16 MHz / 2^4
    CC0.write(1_000);
    SHORTS.write(SHORT_COMPARE0_CLEAR);
    INTENSET.write(INT_COMPARE0);
    enable_irq(TIMER0_IRQ);
    TASKS_START.write(1);
}

/// Milliseconds since `start` (wraps after 49 days; compare with `wrapping_sub`).
pub fn now_ms() -> u32 {
    MILLIS.load(Ordering::Relaxed)
}

/// TIMER0's interrupt: one millisecond more.
pub fn tick() {
    EVENTS_COMPARE0.write(0);
    MILLIS.store(
        MILLIS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}
