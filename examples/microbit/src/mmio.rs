//! Volatile access to the nRF51's peripheral registers, the firmware's only way to touch them.

/// A 32-bit peripheral register at `base + offset`.
#[derive(Clone, Copy)]
pub struct Reg(usize);

impl Reg {
    /// The register at `base + offset`. Every caller names a register of the nRF51822's
    /// memory map (a peripheral's base and one of its word-aligned offsets).
    pub const fn at(base: usize, offset: usize) -> Reg {
        Reg(base + offset)
    }

    /// Reads the register.
    pub fn read(self) -> u32 {
        // SAFETY: `Reg`s are built only from the nRF51's peripheral addresses (`at`'s
        // contract), which are word-aligned device registers, always mapped; reading one has
        // no effect on memory Rust owns.
        unsafe { core::ptr::read_volatile(self.0 as *const u32) }
    }

    /// Writes the register.
    pub fn write(self, value: u32) {
        // SAFETY: as in `read`: a mapped, word-aligned device register, outside Rust's memory.
        unsafe { core::ptr::write_volatile(self.0 as *mut u32, value) }
    }
}

/// The NVIC's interrupt set-enable register (interrupts 0 to 31: all of the nRF51's).
const NVIC_ISER: Reg = Reg::at(0xE000_E100, 0);

/// Enables external interrupt `irq` in the NVIC.
pub fn enable_irq(irq: u32) {
    NVIC_ISER.write(1 << irq);
}

/// Masks interrupts, runs `f`, unmasks them (a pending one is taken right after).
pub fn masked<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: `cpsid i` only sets PRIMASK; it touches no memory.
    unsafe { core::arch::asm!("cpsid i", options(nomem, nostack, preserves_flags)) };
    let r = f();
    // SAFETY: `cpsie i` only clears PRIMASK; the handlers held off run now.
    unsafe { core::arch::asm!("cpsie i", options(nomem, nostack, preserves_flags)) };
    r
}

/// Waits for an interrupt (with interrupts masked, a pending one still ends the wait).
pub fn wfi() {
    // SAFETY: `wfi` only stalls the core until an interrupt is pending; it touches no memory.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack, preserves_flags)) };
}
