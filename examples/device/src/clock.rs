//! Milliseconds since boot, counted by the SysTick exception. The sessions never read a clock:
//! the host reads this one and decides about time itself (idle gaps, time-outs, uptime).

use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m_rt::exception;

/// SysTick's control and status, reload value and current value registers.
const SYST_CSR: usize = 0xE000_E010;
const SYST_RVR: usize = 0xE000_E014;
const SYST_CVR: usize = 0xE000_E018;

/// CSR: counter enabled, exception on reaching zero, counting the processor clock.
const CSR_ENABLE: u32 = 1 << 0;
const CSR_TICKINT: u32 = 1 << 1;
const CSR_CLKSOURCE_CPU: u32 = 1 << 2;

/// The mps2-an386's processor clock.
const CPU_HZ: u32 = 25_000_000;

static MILLIS: AtomicU32 = AtomicU32::new(0);

/// Starts the millisecond tick. Call once, at boot.
pub fn start() {
    let writes = [
        (SYST_RVR, CPU_HZ / 1000 - 1),
        (SYST_CVR, 0),
        (SYST_CSR, CSR_ENABLE | CSR_TICKINT | CSR_CLKSOURCE_CPU),
    ];
    for (register, value) in writes {
        // SAFETY: SysTick's registers exist on every Cortex-M4 at these word-aligned addresses;
        // this firmware programs them only here, once, before the tick is used.
        unsafe { ptr::write_volatile(register as *mut u32, value) };
    }
}

/// Milliseconds since `start` (wraps after 49 days; compare with `wrapping_sub`).
pub fn now_ms() -> u32 {
    MILLIS.load(Ordering::Relaxed)
}

/// Waits for the next interrupt (the tick at the latest), to idle without spinning.
pub fn sleep_until_tick() {
    // SAFETY: `wfi` only stalls the core until an exception is pending; it touches no memory.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack, preserves_flags)) };
}

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}
