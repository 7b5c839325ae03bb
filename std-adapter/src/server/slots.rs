//! Slots for requests in progress: a cap on all of them and one per client address. A slot is
//! held from the moment a request is complete enough to serve until its reply is sent; a
//! connection waiting for its next request holds none.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The request slots of one server. Cheap to clone; clones share the counts.
#[derive(Clone, Debug)]
pub struct Slots {
    inner: Arc<Mutex<Held>>,
    max: usize,
    max_per_address: usize,
}

#[derive(Debug, Default)]
struct Held {
    next_id: u64,
    by_address: HashMap<IpAddr, usize>,
    /// Each request in progress, with its socket where it could be duplicated, so that a stop
    /// can cut them off.
    sockets: HashMap<u64, Option<TcpStream>>,
}

/// One request in progress; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    slots: Slots,
    id: u64,
    address: IpAddr,
}

/// Why no slot was free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoSlot {
    /// The server serves its limit of requests at once.
    Full {
        /// The limit.
        max: usize,
    },
    /// This client address has its limit of requests in progress.
    AddressFull {
        /// The limit per address.
        max: usize,
    },
}

impl fmt::Display for NoSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let requests = |max: usize| match max {
            1 => "1 request".to_owned(),
            _ => format!("{max} requests"),
        };
        match *self {
            NoSlot::Full { max } => write!(
                f,
                "the server is serving its limit of {} at once; retry in a second",
                requests(max)
            ),
            NoSlot::AddressFull { max } => write!(
                f,
                "your address has its limit of {} in progress; retry in a second, once one \
                 ends",
                requests(max)
            ),
        }
    }
}

impl Slots {
    /// At most `max` requests at once, at most `max_per_address` of them from one address.
    pub fn new(max: usize, max_per_address: usize) -> Slots {
        Slots {
            inner: Arc::default(),
            max,
            max_per_address,
        }
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a request on `stream` from `address`, if one is free.
    pub fn try_acquire(&self, address: IpAddr, stream: &TcpStream) -> Result<Slot, NoSlot> {
        let mut held = self.held();
        if held.sockets.len() >= self.max {
            return Err(NoSlot::Full { max: self.max });
        }
        let mine = held.by_address.get(&address).copied().unwrap_or(0);
        if mine >= self.max_per_address {
            return Err(NoSlot::AddressFull {
                max: self.max_per_address,
            });
        }
        let id = held.next_id;
        held.next_id += 1;
        // Without a clone of the socket (out of descriptors), a stop cannot cut this request
        // off; it still counts, and still ends at its own time limits.
        held.sockets.insert(id, stream.try_clone().ok());
        *held.by_address.entry(address).or_default() += 1;
        Ok(Slot {
            slots: self.clone(),
            id,
            address,
        })
    }

    /// Requests in progress.
    pub fn active(&self) -> usize {
        self.held().sockets.len()
    }

    /// Shuts down the socket of every request in progress: their reads and writes fail, so
    /// each ends at once (a running command is killed, an upload torn).
    pub fn cut_off_all(&self) {
        for socket in self.held().sockets.values().flatten() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held();
        held.sockets.remove(&self.id);
        if let Some(count) = held.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                held.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_count_in_words() {
        assert_eq!(
            NoSlot::Full { max: 1 }.to_string(),
            "the server is serving its limit of 1 request at once; retry in a second"
        );
        assert!(
            NoSlot::AddressFull { max: 2 }
                .to_string()
                .contains("limit of 2 requests in progress")
        );
    }
    use std::net::TcpListener;

    #[test]
    fn caps_hold_overall_and_per_address_and_free_on_drop() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let slots = Slots::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = slots.try_acquire(a, &stream).unwrap();
        let _a2 = slots.try_acquire(a, &stream).unwrap();
        assert_eq!(
            slots.try_acquire(a, &stream).unwrap_err(),
            NoSlot::AddressFull { max: 2 }
        );
        let _b1 = slots.try_acquire(b, &stream).unwrap();
        assert_eq!(
            slots.try_acquire(b, &stream).unwrap_err(),
            NoSlot::Full { max: 3 }
        );
        assert_eq!(slots.active(), 3);
        drop(a1);
        assert_eq!(slots.active(), 2);
        assert!(slots.try_acquire(a, &stream).is_ok());
    }
}
