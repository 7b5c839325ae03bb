//! A flash-like sink for a received image: a fixed array in `.bss`, erased to `0xff`, written
//! only in whole pages (as NOR flash is programmed), through a one-page staging buffer.

use core::sync::atomic::{AtomicBool, Ordering};

/// Bytes per program operation.
pub const PAGE_SIZE: usize = 256;
/// Size of the image slot.
pub const FLASH_SIZE: usize = 16 * PAGE_SIZE;

/// Erased flash reads as all ones.
const ERASED: u8 = 0xff;

static mut FLASH_MEMORY: [u8; FLASH_SIZE] = [0; FLASH_SIZE];
static FLASH_TAKEN: AtomicBool = AtomicBool::new(false);

/// Why the sink refused an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashError {
    /// The announced image does not fit the slot.
    ImageTooLarge {
        /// Announced length.
        len: u64,
    },
    /// More bytes arrived than the image announced.
    Overrun,
    /// The image ended with fewer bytes than announced.
    Short,
    /// Bytes arrived with no image begun.
    NotStarted,
}

impl FlashError {
    /// A short description for the console.
    pub const fn as_str(self) -> &'static str {
        match self {
            FlashError::ImageTooLarge { .. } => "image does not fit the flash slot",
            FlashError::Overrun => "more image bytes than announced",
            FlashError::Short => "fewer image bytes than announced",
            FlashError::NotStarted => "image bytes before an image was begun",
        }
    }
}

/// The image slot and its write cursor.
pub struct Flash {
    memory: &'static mut [u8; FLASH_SIZE],
    /// The page being filled before it is programmed.
    page: [u8; PAGE_SIZE],
    page_fill: usize,
    /// Bytes programmed so far (a multiple of the page size until the image is finished).
    programmed: usize,
    pages_programmed: usize,
    /// Length of the image being written, once begun.
    expected: Option<usize>,
    /// Length of a complete, committed image.
    committed: Option<usize>,
}

impl Flash {
    /// The one flash slot. Returns `None` if it was already taken.
    pub fn take() -> Option<Flash> {
        if FLASH_TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        let slot = &raw mut FLASH_MEMORY;
        // SAFETY: FLASH_TAKEN was false and is now true, so this is the only place that ever
        // creates a reference to FLASH_MEMORY, and it does so once: the `&mut` is unique.
        let memory = unsafe { &mut *slot };
        Some(Flash {
            memory,
            page: [ERASED; PAGE_SIZE],
            page_fill: 0,
            programmed: 0,
            pages_programmed: 0,
            expected: None,
            committed: None,
        })
    }

    /// Erases the slot and starts an image of `len` bytes.
    pub fn begin(&mut self, len: u64) -> Result<(), FlashError> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= FLASH_SIZE)
            .ok_or(FlashError::ImageTooLarge { len })?;
        self.memory.fill(ERASED);
        self.page_fill = 0;
        self.programmed = 0;
        self.pages_programmed = 0;
        self.expected = Some(len);
        self.committed = None;
        Ok(())
    }

    /// Stages `bytes`, programming each page as it fills.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), FlashError> {
        let expected = self.expected.ok_or(FlashError::NotStarted)?;
        if self.programmed + self.page_fill + bytes.len() > expected {
            return Err(FlashError::Overrun);
        }
        while !bytes.is_empty() {
            let n = (PAGE_SIZE - self.page_fill).min(bytes.len());
            self.page[self.page_fill..self.page_fill + n].copy_from_slice(&bytes[..n]);
            self.page_fill += n;
            bytes = &bytes[n..];
            if self.page_fill == PAGE_SIZE {
                self.program_page();
            }
        }
        Ok(())
    }

    /// Programs the last, partial page and commits the image, which must be complete.
    pub fn finish(&mut self) -> Result<&[u8], FlashError> {
        let expected = self.expected.take().ok_or(FlashError::NotStarted)?;
        if self.page_fill > 0 {
            self.program_page();
        }
        if self.programmed != expected {
            return Err(FlashError::Short);
        }
        self.committed = Some(expected);
        Ok(&self.memory[..expected])
    }

    /// Drops a partly written image: the slot then holds no valid image.
    pub fn abandon(&mut self) {
        self.expected = None;
        self.committed = None;
        self.page_fill = 0;
    }

    /// The committed image, if there is one.
    pub fn image(&self) -> Option<&[u8]> {
        self.committed.map(|len| &self.memory[..len])
    }

    /// Page program operations since the image was begun.
    pub fn pages_programmed(&self) -> usize {
        self.pages_programmed
    }

    /// One page-sized write at the cursor (a partial last page is padded with erased bytes).
    fn program_page(&mut self) {
        self.page[self.page_fill..].fill(ERASED);
        let at = self.programmed;
        self.memory[at..at + PAGE_SIZE].copy_from_slice(&self.page);
        self.programmed += self.page_fill;
        self.pages_programmed += 1;
        self.page_fill = 0;
    }
}
