//! A polled driver for the CMSDK APB UART of the MPS2 boards (QEMU's `cmsdk-apb-uart`), as
//! `embedded_io` byte streams.
//!
//! Registers, 32 bits each from the base: `DATA` (+0x0), `STATE` (+0x4: bit 0 TX buffer full,
//! bit 1 RX buffer full), `CTRL` (+0x8: bit 0 TX enable, bit 1 RX enable, bit 3 RX interrupt
//! enable), `INTSTATUS`/`INTCLEAR` (+0xC, bit 1 RX), `BAUDDIV` (+0x10, at least 16). Both
//! buffers hold one byte; a received byte waits in `DATA` until it is read, and QEMU hands the
//! UART the next byte of its character device only then, so no byte is ever overrun.
//!
//! The receiver's interrupt only wakes the core: a wait for input sleeps in `wfi` instead of
//! polling `STATE`, which leaves the emulator's I/O thread free to deliver the next byte (polling
//! made uploads several times slower under QEMU). The byte itself is read by the main loop.

use core::convert::Infallible;
use core::ptr;

use embedded_io::{ErrorType, Read, ReadReady, Write};

/// UART0 of the mps2-an385/an386 boards, wired to QEMU's first `-serial`.
pub const UART0_BASE: usize = 0x4000_4000;

const DATA: usize = 0x0;
const STATE: usize = 0x4;
const CTRL: usize = 0x8;
const INTCLEAR: usize = 0xC;
const BAUDDIV: usize = 0x10;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_ENABLE: u32 = 1 << 0;
const CTRL_RX_ENABLE: u32 = 1 << 1;
const CTRL_RX_INTERRUPT: u32 = 1 << 3;
const INT_RX: u32 = 1 << 1;

/// UART0's receive interrupt on the mps2-an385/an386 (external interrupt 0).
pub const UART0_RX_IRQ: u16 = 0;

/// The NVIC's interrupt set-enable register for interrupts 0 to 31.
const NVIC_ISER0: usize = 0xE000_E100;

/// The board's peripheral clock (25 MHz) over 115,200 baud. QEMU does not pace the bytes by it,
/// but it wants a divisor of at least 16.
const BAUDDIV_115200: u32 = 25_000_000 / 115_200;

/// One CMSDK UART, transmitter and receiver enabled.
pub struct Uart {
    base: usize,
}

impl Uart {
    /// Takes the UART at `base` and enables it at 115,200 baud.
    ///
    /// # Safety
    ///
    /// `base` is the base address of a CMSDK APB UART, and no other code uses that UART while
    /// the returned value lives.
    pub unsafe fn new(base: usize) -> Uart {
        let uart = Uart { base };
        uart.write_reg(BAUDDIV, BAUDDIV_115200);
        uart.write_reg(CTRL, CTRL_TX_ENABLE | CTRL_RX_ENABLE | CTRL_RX_INTERRUPT);
        uart
    }

    /// Enables external interrupt `irq` (the receive interrupt of this UART) in the NVIC.
    pub fn enable_rx_interrupt(&self, irq: u16) {
        // SAFETY: the NVIC's set-enable registers exist on every Cortex-M4; writing a 1 bit
        // only enables that interrupt, whose handler (`DefaultHandler`) clears the UART's flag.
        unsafe {
            ptr::write_volatile(
                (NVIC_ISER0 + usize::from(irq / 32) * 4) as *mut u32,
                1 << (irq % 32),
            )
        };
    }

    /// Clears the receive interrupt of the UART at `base` (from its interrupt handler; the byte
    /// stays in `DATA`).
    ///
    /// # Safety
    ///
    /// `base` is the base address of a CMSDK APB UART.
    pub unsafe fn clear_rx_interrupt(base: usize) {
        // SAFETY: the caller vouches for `base`; writing INTCLEAR touches only the flag.
        unsafe { ptr::write_volatile((base + INTCLEAR) as *mut u32, INT_RX) };
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract makes `base` a CMSDK UART that this value owns; `offset` is
        // one of its word-aligned registers, and a volatile read of STATE or DATA has no effect
        // beyond taking the received byte, which only this driver does.
        unsafe { ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_reg`: an owned, word-aligned device register.
        unsafe { ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn rx_full(&self) -> bool {
        self.read_reg(STATE) & STATE_RX_FULL != 0
    }

    fn put(&mut self, byte: u8) {
        while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
        self.write_reg(DATA, u32::from(byte));
    }
}

impl crate::link::WaitForInput for Uart {
    /// Sleeps until a byte is in or another interrupt (the millisecond tick) comes. Interrupts
    /// are masked around the check so that a byte arriving just before `wfi` still wakes it.
    fn wait_for_input(&mut self) {
        // SAFETY: `cpsid i`/`cpsie i` only mask and unmask interrupts, and `wfi` only stalls
        // until one is pending (a masked one wakes it too); none of them touches memory. The
        // handlers that were held off run right after `cpsie i`.
        unsafe { core::arch::asm!("cpsid i", options(nomem, nostack, preserves_flags)) };
        if !self.rx_full() {
            // SAFETY: as above.
            unsafe { core::arch::asm!("wfi", options(nomem, nostack, preserves_flags)) };
        }
        // SAFETY: as above.
        unsafe { core::arch::asm!("cpsie i", options(nomem, nostack, preserves_flags)) };
    }
}

impl ErrorType for Uart {
    type Error = Infallible;
}

impl ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.rx_full())
    }
}

impl Read for Uart {
    /// Waits for a byte, then takes it and every byte that follows at once, as many as fit.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !self.rx_full() {
            crate::link::WaitForInput::wait_for_input(self);
        }
        let mut n = 0;
        while n < buf.len() && self.rx_full() {
            buf[n] = self.read_reg(DATA) as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &byte in buf {
            self.put(byte);
        }
        Ok(buf.len())
    }

    /// The last byte is handed to the line once the transmit buffer is empty.
    fn flush(&mut self) -> Result<(), Infallible> {
        while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
        Ok(())
    }
}
