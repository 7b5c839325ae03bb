//! The file store's flash through the nRF51's NVMC (non-volatile memory controller,
//! 0x4001_E000): erase a 1 KiB page, program a word, read as memory.
//!
//! The region is the linker's (`memory.x`: `__store_start` to `__store_end`), outside the
//! firmware image. Programming can only clear bits, so a page is erased (all ones) before its
//! first word is written. QEMU's model starts that flash as zeros, not erased: nothing is taken
//! for erased without an erase first.

use crate::mmio::Reg;

/// Bytes in a flash page, the unit of erasing.
pub const PAGE: usize = 1024;

const NVMC: usize = 0x4001_E000;
const READY: Reg = Reg::at(NVMC, 0x400);
const CONFIG: Reg = Reg::at(NVMC, 0x504);
const ERASEPAGE: Reg = Reg::at(NVMC, 0x508);

const CONFIG_READ: u32 = 0;
const CONFIG_WRITE: u32 = 1;
const CONFIG_ERASE: u32 = 2;

unsafe extern "C" {
    /// The first byte of the store's region (page-aligned).
    static __store_start: u32;
    /// One past its last byte.
    static __store_end: u32;
}

/// The store's region of flash. There is one: [`Flash::take`] is called once.
pub struct Flash(());

impl Flash {
    /// The region. Call once, at boot.
    pub fn take() -> Flash {
        Flash(())
    }

    fn base() -> usize {
        // Only the symbol's address is taken, never its value.
        core::ptr::addr_of!(__store_start) as usize
    }

    /// Pages in the region.
    pub fn pages(&self) -> usize {
        (core::ptr::addr_of!(__store_end) as usize - Flash::base()) / PAGE
    }

    /// `len` bytes from `offset` into the region, as they are in flash now.
    ///
    /// # Panics
    ///
    /// If the range leaves the region (a bug of the store).
    pub fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(
            offset + len <= self.pages() * PAGE,
            "outside the store's flash"
        );
        // SAFETY: the range lies inside the store's region (checked above), flash that is
        // always mapped and readable and that no Rust object overlaps (the linker keeps the
        // image out of it). It changes only through `erase` and `write_word`, which take
        // `&mut self`, so not while this borrow lives.
        unsafe { core::slice::from_raw_parts((Flash::base() + offset) as *const u8, len) }
    }

    /// Erases page `page` of the region (every byte becomes 0xFF).
    pub fn erase(&mut self, page: usize) {
        assert!(page < self.pages(), "outside the store's flash");
        CONFIG.write(CONFIG_ERASE);
        ERASEPAGE.write((Flash::base() + page * PAGE) as u32);
        wait_ready();
        CONFIG.write(CONFIG_READ);
    }

    /// Programs the word at `offset` (word-aligned) into the region; it was erased since it
    /// was last programmed.
    pub fn write_word(&mut self, offset: usize, word: u32) {
        assert!(
            offset % 4 == 0 && offset + 4 <= self.pages() * PAGE,
            "outside the store's flash"
        );
        CONFIG.write(CONFIG_WRITE);
        // SAFETY: a word-aligned address in the store's region (checked above), which no Rust
        // object overlaps and no borrow from `bytes` reads now (`&mut self`); with CONFIG set
        // to write, the NVMC programs the word.
        unsafe { core::ptr::write_volatile((Flash::base() + offset) as *mut u32, word) };
        wait_ready();
        CONFIG.write(CONFIG_READ);
    }
}

fn wait_ready() {
    while READY.read() & 1 == 0 {}
}
