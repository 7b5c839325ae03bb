//! What a store answers besides data, the same for the M4 device's RAM store and the
//! micro:bit's flash store (which includes this file), so that the file host drives either.

/// Why the store refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The name is not a single component of at most
    /// [`NAME_CAP`](crate::store::NAME_CAP) bytes.
    BadName,
    /// No such file.
    NotFound,
    /// The data would not fit in the free space.
    NoSpace {
        /// Bytes the upload needs.
        needed: u64,
        /// Bytes free when asked (in flash, the longest run of free pages).
        free: usize,
    },
    /// The table holds [`MAX_FILES`](crate::store::MAX_FILES) files already.
    TableFull,
    /// There is no staged upload (a host mistake).
    NotStaged,
}

/// What became of a name's kept partial upload on `delete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartialGone {
    /// There was one and it is gone.
    Removed,
    /// There was none.
    Absent,
}
