//! A polled driver for the nRF51's UART0, as `embedded_io` byte streams.
//!
//! Registers from 0x4000_2000: tasks `STARTRX` (+0x000) and `STARTTX` (+0x008); events
//! `RXDRDY` (+0x108, a byte is in `RXD`) and `TXDRDY` (+0x11C, `TXD` was sent); `INTENSET`
//! / `INTENCLR` (+0x304 / +0x308, bit 2 `RXDRDY`); `ENABLE` (+0x500, 4 enables); `RXD`
//! (+0x518), `TXD` (+0x51C), `BAUDRATE` (+0x524). As the reference manual asks, `RXDRDY` is
//! cleared *before* `RXD` is read: the read takes the byte from the receive FIFO, and the
//! event is raised again at once if another byte waits (so QEMU's model works too, which hands
//! the UART the next byte of its character device only as the FIFO drains).
//!
//! The receive interrupt only wakes the core: a wait for input enables it and sleeps in `wfi`;
//! the handler disables it again (the event stays set until the byte is read).

use core::convert::Infallible;

use embedded_io::{ErrorType, Read, ReadReady, Write};

use crate::mmio::{Reg, enable_irq, masked, wfi};

const UART0: usize = 0x4000_2000;
/// UART0's interrupt line.
pub const UART0_IRQ: u32 = 2;

const TASKS_STARTRX: Reg = Reg::at(UART0, 0x000);
const TASKS_STARTTX: Reg = Reg::at(UART0, 0x008);
const EVENTS_RXDRDY: Reg = Reg::at(UART0, 0x108);
const EVENTS_TXDRDY: Reg = Reg::at(UART0, 0x11C);
const INTENSET: Reg = Reg::at(UART0, 0x304);
const INTENCLR: Reg = Reg::at(UART0, 0x308);
const ENABLE: Reg = Reg::at(UART0, 0x500);
const RXD: Reg = Reg::at(UART0, 0x518);
const TXD: Reg = Reg::at(UART0, 0x51C);
const BAUDRATE: Reg = Reg::at(UART0, 0x524);

const ENABLE_UART: u32 = 4;
const INT_RXDRDY: u32 = 1 << 2;
/// `BAUDRATE` for 115,200 baud (QEMU does not pace the bytes by it).
const BAUD_115200: u32 = 0x01D7_E000;

/// UART0, transmitter and receiver started. There is one: [`Uart::take`] is called once.
pub struct Uart(());

impl Uart {
    /// Enables UART0 at 115,200 baud and starts both directions. Call once, at boot.
    pub fn take() -> Uart {
        BAUDRATE.write(BAUD_115200);
        ENABLE.write(ENABLE_UART);
        EVENTS_RXDRDY.write(0);
        EVENTS_TXDRDY.write(0);
        TASKS_STARTRX.write(1);
        TASKS_STARTTX.write(1);
        enable_irq(UART0_IRQ);
        Uart(())
    }

    /// From the interrupt handler: the core is awake, the interrupt has done its job.
    pub fn rx_woken() {
        INTENCLR.write(INT_RXDRDY);
    }

    fn rx_ready() -> bool {
        EVENTS_RXDRDY.read() != 0
    }
}

impl crate::link::WaitForInput for Uart {
    /// Sleeps until a byte is in or another interrupt (the millisecond tick) comes. Interrupts
    /// are masked around the check so that a byte arriving just before `wfi` still wakes it.
    fn wait_for_input(&mut self) {
        masked(|| {
            if !Uart::rx_ready() {
                INTENSET.write(INT_RXDRDY);
                wfi();
            }
        });
    }
}

impl ErrorType for Uart {
    type Error = Infallible;
}

impl ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(Uart::rx_ready())
    }
}

impl Read for Uart {
    /// Waits for a byte, then takes it and every byte that follows at once, as many as fit.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !Uart::rx_ready() {
            crate::link::WaitForInput::wait_for_input(self);
        }
        let mut n = 0;
        while n < buf.len() && Uart::rx_ready() {
            EVENTS_RXDRDY.write(0);
            buf[n] = RXD.read() as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &byte in buf {
            EVENTS_TXDRDY.write(0);
            TXD.write(u32::from(byte));
            while EVENTS_TXDRDY.read() == 0 {}
        }
        Ok(buf.len())
    }

    /// Each byte is sent before `write` returns.
    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}
