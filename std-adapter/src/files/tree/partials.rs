//! Where a resumable upload grows, and how a listing finds the name it will take.
//!
//! A partial upload of `name` is `.unstick-partial-<name>`, unless that is longer than a
//! component may be: then it is `.unstick-partial~<XXH3-128 of name>`, and the name itself is
//! kept in a side record, `.unstick-partial~<same digest>.name`, holding nothing but the name's
//! bytes. A record rather than the partial's own bytes (they are the upload, offsets and all)
//! or an extended attribute (not every file system keeps them, and Windows spells them
//! otherwise): it is an ordinary file in the same directory, made with the same jail calls, and
//! a record that is missing, torn or planted is recognised because its name must hash to the
//! partial's digest.
//!
//! Only the holder of a partial's lock writes or removes its record: it writes it after taking
//! the lock (so a resume restores a lost one) and removes it before the partial is renamed away
//! or removed, so that a record never outlives its partial.

use std::fs::File;
use std::io::{self, Read, Write};

use super::super::name::{MAX_COMPONENT_LEN, RESERVED_PREFIX};
use super::{Dir, temp_name, try_lock};

/// The tag of a plain partial's name, after the reserved prefix.
const PLAIN: &str = "partial-";
/// The tag of a hashed partial's name, after the reserved prefix: `~` instead of `-`, so that no
/// name, however chosen, has the same partial as a long name.
const HASHED: &str = "partial~";
/// Hex digits of the digest in a hashed partial's name (XXH3-128).
const DIGEST_HEX: usize = 32;
/// What a hashed partial's record adds to the partial's name.
const RECORD_SUFFIX: &str = ".name";

/// The hidden name under which a resumable upload of `name` grows: `.unstick-partial-<name>`,
/// or `.unstick-partial~<XXH3-128 of name>` when that would be longer than a component may be.
pub fn partial_name(name: &str) -> String {
    let plain = format!("{RESERVED_PREFIX}{PLAIN}{name}");
    if plain.len() <= MAX_COMPONENT_LEN {
        return plain;
    }
    let digest = unstick_core::digest_of(unstick_core::Algorithms::XXH3, name.as_bytes());
    let hex = digest
        .get(unstick_core::Algorithm::Xxh3)
        .map(|c| c.to_hex().to_string())
        .unwrap_or_default();
    format!("{RESERVED_PREFIX}{HASHED}{hex}")
}

/// What a reserved name is, given what follows the reserved prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservedKind<'a> {
    /// A unique temporary file of an upload that will not resume.
    Temporary,
    /// A partial upload that will take the given name.
    PlainPartial(&'a [u8]),
    /// A partial upload whose name is in its record.
    HashedPartial,
    /// The record of a hashed partial.
    Record,
    /// Nothing the server made.
    Unknown,
}

impl ReservedKind<'_> {
    /// The kind of the reserved name whose text after the prefix is `rest` (the tags in any
    /// case, as the listing hides them on case-insensitive systems).
    pub fn of(rest: &[u8]) -> ReservedKind<'_> {
        let tagged = |tag: &str| {
            (rest.len() > tag.len() && rest[..tag.len()].eq_ignore_ascii_case(tag.as_bytes()))
                .then(|| &rest[tag.len()..])
        };
        let is_digest =
            |hex: &[u8]| hex.len() == DIGEST_HEX && hex.iter().all(u8::is_ascii_hexdigit);
        if let Some(name) = tagged(PLAIN) {
            ReservedKind::PlainPartial(name)
        } else if let Some(after) = tagged(HASHED) {
            match after.split_at_checked(DIGEST_HEX) {
                Some((hex, b"")) if is_digest(hex) => ReservedKind::HashedPartial,
                Some((hex, suffix))
                    if is_digest(hex) && suffix.eq_ignore_ascii_case(RECORD_SUFFIX.as_bytes()) =>
                {
                    ReservedKind::Record
                }
                _ => ReservedKind::Unknown,
            }
        } else if rest.starts_with(b"tmp-") {
            ReservedKind::Temporary
        } else {
            ReservedKind::Unknown
        }
    }
}

/// The record's name of the partial `partial` when it is a hashed one.
fn record_of(partial: &str) -> Option<String> {
    let rest = partial.strip_prefix(RESERVED_PREFIX)?;
    (ReservedKind::of(rest.as_bytes()) == ReservedKind::HashedPartial)
        .then(|| format!("{partial}{RECORD_SUFFIX}"))
}

/// The name the hashed partial `partial` (in `dir`) will take, from its record; `None` when the
/// record is missing, cannot be read or does not belong to it.
pub fn recorded_name(dir: &Dir, partial: &str) -> Option<String> {
    read_record(dir, partial).ok().flatten()
}

/// As [`recorded_name`], telling a record that is missing or wrong (`Ok(None)`) from one that
/// could not be read just now (`Err`: out of descriptors, an I/O error), which says nothing of
/// it.
pub fn read_record(dir: &Dir, partial: &str) -> io::Result<Option<String>> {
    let Some(record) = record_of(partial) else {
        return Ok(None);
    };
    let mut text = Vec::with_capacity(MAX_COMPONENT_LEN);
    let file = match dir.open_file(&record) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if super::is_unusable_entry(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    // One byte more than a name may have: a longer record is not a name.
    file.take(MAX_COMPONENT_LEN as u64 + 1)
        .read_to_end(&mut text)?;
    let Ok(name) = String::from_utf8(text) else {
        return Ok(None);
    };
    Ok((partial_name(&name) == partial).then_some(name))
}

/// Makes sure the partial of `name` (held locked by the caller) has its record when it needs
/// one. A record that is missing or wrong is replaced atomically (written to a locked temporary
/// file, then renamed over it), never written through: whatever holds the record's name is
/// only ever read.
pub fn write_record(dir: &Dir, name: &str) -> io::Result<()> {
    let partial = partial_name(name);
    let Some(record) = record_of(&partial) else {
        return Ok(());
    };
    if recorded_name(dir, &partial).is_some() {
        return Ok(());
    }
    let (temp, file) = create_locked_temporary(dir)?;
    let written = (|| {
        let mut file = file;
        file.write_all(name.as_bytes())?;
        file.sync_data()?;
        dir.rename(&temp, &record)
    })();
    if written.is_err() {
        let _ = dir.unlink(&temp, false);
    }
    written
}

/// Removes the record of the partial `partial`, if it has one (the caller holds the partial's
/// lock, or the partial is not the server's own).
pub fn remove_record(dir: &Dir, partial: &str) {
    if let Some(record) = record_of(partial) {
        let _ = dir.unlink(&record, false);
    }
}

/// A fresh temporary file in `dir`, locked, so that a sweep leaves it alone.
fn create_locked_temporary(dir: &Dir) -> io::Result<(String, File)> {
    loop {
        let name = temp_name();
        match dir.create_new(&name) {
            Ok(file) => {
                if !try_lock(&file)? {
                    // Nobody else locks a file we just made; if someone did, leave it to them.
                    continue;
                }
                return Ok((name, file));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_told_apart() {
        let long = "x".repeat(250);
        let hashed = partial_name(&long);
        let rest = |name: &str| name[RESERVED_PREFIX.len()..].to_owned();
        assert_eq!(
            ReservedKind::of(rest(&partial_name("a")).as_bytes()),
            ReservedKind::PlainPartial(b"a")
        );
        assert_eq!(
            ReservedKind::of(rest(&hashed).as_bytes()),
            ReservedKind::HashedPartial
        );
        assert_eq!(
            ReservedKind::of(format!("{}.name", rest(&hashed)).as_bytes()),
            ReservedKind::Record
        );
        assert_eq!(ReservedKind::of(b"tmp-1-2-3"), ReservedKind::Temporary);
        for unknown in [&b"partial~abc"[..], b"partial~", b"partial-", b"other"] {
            assert_eq!(
                ReservedKind::of(unknown),
                ReservedKind::Unknown,
                "{unknown:?}"
            );
        }
    }

    #[test]
    fn a_record_names_its_partial_and_a_wrong_one_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open_root(dir.path()).unwrap();
        let long = "é".repeat(120);
        let partial = partial_name(&long);
        assert!(record_of(&partial_name("short")).is_none());
        assert_eq!(recorded_name(&root, &partial), None);
        // A record that names something else (say, a planted one) is not believed...
        let record = format!("{partial}.name");
        std::fs::write(dir.path().join(&record), "other").unwrap();
        // A second name for the planted file, to read it once the record's name is replaced (a
        // handle held open would do on Unix, but Windows renames nothing over an open file).
        let planted = dir.path().join("planted");
        std::fs::hard_link(dir.path().join(&record), &planted).unwrap();
        assert_eq!(recorded_name(&root, &partial), None);
        // ...and writing the right one replaces the entry, leaving the planted file as it was.
        write_record(&root, &long).unwrap();
        assert_eq!(
            recorded_name(&root, &partial).as_deref(),
            Some(long.as_str())
        );
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "other");
        std::fs::remove_file(&planted).unwrap();
        write_record(&root, &long).unwrap();
        remove_record(&root, &partial);
        assert_eq!(recorded_name(&root, &partial), None);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
