//! Penalties for failed tokens, per client address, after OpenSSH's `PerSourcePenalties`: an
//! address that sends [`PenaltyRules::max_failures`] missing or wrong tokens within
//! [`PenaltyRules::window`] has all its requests refused (`penalized`), whatever token they
//! carry, for [`PenaltyRules::penalty`]; each further penalty that follows the last one within
//! [`PenaltyRules::max_penalty`] of its end is twice as long, up to that maximum. Other addresses
//! are served as before.
//!
//! Addresses are counted by [`AddressKey`]: an IPv4 address, or an IPv6 address's /64 network
//! (what one subscriber usually gets whole). The table is bounded ([`PenaltyRules::max_addresses`]):
//! when it is full, the record that would be forgotten soonest makes room, so an attacker with
//! many addresses cannot grow it without limit.
//!
//! [`PenaltyTable`] is sans-IO (every call takes `now`); [`Penalties`] shares one between the
//! lobbies of a process and reads the clock.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How failed tokens are penalized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PenaltyRules {
    /// Failed tokens from one address within [`window`](Self::window) that earn it a
    /// penalty; 0 turns penalties off.
    pub max_failures: u32,
    /// The time within which failures are counted together.
    pub window: Duration,
    /// An address's first penalty.
    pub penalty: Duration,
    /// The longest penalty; also how long after a penalty's end the next one still doubles.
    pub max_penalty: Duration,
    /// Most addresses tracked at once.
    pub max_addresses: usize,
}

/// Default of [`PenaltyRules::max_failures`].
pub const DEFAULT_MAX_FAILURES: u32 = 5;
/// Default of [`PenaltyRules::window`].
pub const DEFAULT_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Default of [`PenaltyRules::penalty`].
pub const DEFAULT_PENALTY: Duration = Duration::from_secs(15);
/// Default of [`PenaltyRules::max_penalty`].
pub const DEFAULT_MAX_PENALTY: Duration = Duration::from_secs(600);
/// Default of [`PenaltyRules::max_addresses`] (a few megabytes at most).
pub const DEFAULT_MAX_ADDRESSES: usize = 65_536;

impl Default for PenaltyRules {
    fn default() -> Self {
        PenaltyRules {
            max_failures: DEFAULT_MAX_FAILURES,
            window: DEFAULT_FAILURE_WINDOW,
            penalty: DEFAULT_PENALTY,
            max_penalty: DEFAULT_MAX_PENALTY,
            max_addresses: DEFAULT_MAX_ADDRESSES,
        }
    }
}

impl PenaltyRules {
    /// Whether failures are penalized at all.
    pub fn enabled(&self) -> bool {
        self.max_failures > 0 && self.max_addresses > 0
    }
}

/// What failures are counted against: an IPv4 address, or an IPv6 /64 network. An IPv4 address
/// mapped into IPv6 (`::ffff:a.b.c.d`) counts as the IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// One IPv4 address.
    V4(Ipv4Addr),
    /// The first 64 bits of IPv6 addresses.
    V6Network(u64),
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4),
                None => AddressKey::V6Network((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressKey::V4(v4) => write!(f, "{v4}"),
            AddressKey::V6Network(network) => {
                write!(f, "{}/64", Ipv6Addr::from_bits(u128::from(*network) << 64))
            }
        }
    }
}

/// A penalty just imposed on an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Penalty {
    /// How long its requests are refused.
    pub length: Duration,
    /// Whether it is longer than the first one because the address kept failing.
    pub repeated: bool,
}

/// One address's failures and penalties.
#[derive(Clone, Copy, Debug)]
struct Record {
    /// Failures counted since `window_start`.
    failures: u32,
    /// When the current count began.
    window_start: Instant,
    /// The last penalty's length (zero: none yet).
    penalty: Duration,
    /// When the last penalty ends (or ended).
    penalty_end: Instant,
}

impl Record {
    fn penalized(&self, now: Instant) -> bool {
        !self.penalty.is_zero() && now < self.penalty_end
    }

    /// When the record stops mattering: its count is over and the next penalty would no longer
    /// be doubled.
    fn forgotten_at(&self, rules: &PenaltyRules) -> Instant {
        let count_over = later(self.window_start, rules.window);
        if self.penalty.is_zero() {
            count_over
        } else {
            count_over.max(later(self.penalty_end, rules.max_penalty))
        }
    }
}

/// The longest time the rules are taken to mean: options may say more (`--auth-penalty 1e9d`),
/// but no clock reading may overflow.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `t + d`, with `d` taken as at most [`LONGEST`] (and `t` itself should even that overflow).
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(LONGEST)).unwrap_or(t)
}

/// The failures and penalties of every address, bounded in size; sans-IO.
#[derive(Debug)]
pub struct PenaltyTable {
    rules: PenaltyRules,
    records: HashMap<AddressKey, Record>,
}

impl PenaltyTable {
    /// An empty table applying `rules`.
    pub fn new(rules: PenaltyRules) -> PenaltyTable {
        PenaltyTable {
            rules,
            records: HashMap::new(),
        }
    }

    /// The rules it applies.
    pub fn rules(&self) -> &PenaltyRules {
        &self.rules
    }

    /// Addresses tracked now (at most [`PenaltyRules::max_addresses`]).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// How long `key`'s penalty lasts after `now`, if it has one in force.
    pub fn time_left(&self, key: AddressKey, now: Instant) -> Option<Duration> {
        let record = self.records.get(&key)?;
        record
            .penalized(now)
            .then(|| record.penalty_end.saturating_duration_since(now))
    }

    /// Counts a failed token from `key` at `now`; the penalty it earned, if it earned one. A
    /// failure while a penalty is in force (a request let in before it began) changes nothing.
    pub fn record_failure(&mut self, key: AddressKey, now: Instant) -> Option<Penalty> {
        if !self.rules.enabled() {
            return None;
        }
        let rules = self.rules;
        if !self.records.contains_key(&key) {
            self.make_room(now);
        }
        let record = self.records.entry(key).or_insert(Record {
            failures: 0,
            window_start: now,
            penalty: Duration::ZERO,
            penalty_end: now,
        });
        if record.penalized(now) {
            return None;
        }
        if now.saturating_duration_since(record.window_start) >= rules.window {
            record.failures = 0;
            record.window_start = now;
        }
        record.failures += 1;
        if record.failures < rules.max_failures {
            return None;
        }
        let repeated = !record.penalty.is_zero()
            && now.saturating_duration_since(record.penalty_end) < rules.max_penalty;
        let length = if repeated {
            record.penalty.saturating_mul(2).min(rules.max_penalty)
        } else {
            rules.penalty.min(rules.max_penalty)
        };
        record.failures = 0;
        record.window_start = now;
        record.penalty = length;
        record.penalty_end = later(now, length);
        Some(Penalty { length, repeated })
    }

    /// Makes room for one more record: drops those that no longer matter and, when that frees
    /// too little, the eighth of the table that would be forgotten soonest. Room is made in
    /// bulk, so that a stream of new addresses costs a scan of the table only every
    /// `max_addresses / 8` of them, not one each (the lobby waits on this table's lock).
    fn make_room(&mut self, now: Instant) {
        let max = self.rules.max_addresses;
        if self.records.len() < max {
            return;
        }
        let rules = self.rules;
        self.records
            .retain(|_, record| record.forgotten_at(&rules) > now);
        let keep = max - (max / 8).max(1);
        if self.records.len() <= keep {
            return;
        }
        let mut by_age: Vec<(Instant, AddressKey)> = self
            .records
            .iter()
            .map(|(key, record)| (record.forgotten_at(&rules), *key))
            .collect();
        let drop = by_age.len() - keep;
        by_age.select_nth_unstable_by_key(drop - 1, |&(at, _)| at);
        for (_, key) in &by_age[..drop] {
            self.records.remove(key);
        }
    }
}

/// A [`PenaltyTable`] shared by the servers of a process (the shell and the file server of
/// `unstick serve` count failures together), reading the clock. Cheap to clone; clones share
/// the table, and compare equal when they do.
#[derive(Clone, Debug)]
pub struct Penalties(Arc<Mutex<PenaltyTable>>);

impl Penalties {
    /// An empty table applying `rules`.
    pub fn new(rules: PenaltyRules) -> Penalties {
        Penalties(Arc::new(Mutex::new(PenaltyTable::new(rules))))
    }

    fn table(&self) -> std::sync::MutexGuard<'_, PenaltyTable> {
        // The table holds no invariant a panic in between could break.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rules applied.
    pub fn rules(&self) -> PenaltyRules {
        *self.table().rules()
    }

    /// How long `ip`'s penalty lasts from now, if it has one in force.
    pub fn time_left(&self, ip: IpAddr) -> Option<Duration> {
        self.table().time_left(ip.into(), Instant::now())
    }

    /// Counts a failed token from `ip`; the penalty it earned, if it earned one.
    pub fn record_failure(&self, ip: IpAddr) -> Option<Penalty> {
        self.table().record_failure(ip.into(), Instant::now())
    }
}

impl Default for Penalties {
    fn default() -> Self {
        Penalties::new(PenaltyRules::default())
    }
}

impl PartialEq for Penalties {
    fn eq(&self, other: &Penalties) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Penalties {}

/// The message a penalized address's requests are refused with: why, for how long, and what to
/// do. `left` is rounded up to whole seconds.
pub fn penalized_message(key: AddressKey, rules: &PenaltyRules, left: Duration) -> String {
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    format!(
        "too many missing or wrong tokens from {key} ({} within {}): its requests are refused, \
         whatever token they carry, for {seconds} s more; check the token (--token or \
         UNSTICK_TOKEN), then retry after that",
        rules.max_failures,
        Seconds(rules.window),
    )
}

/// A duration as the options write it: whole seconds as `60 s`, else milliseconds.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{} s", self.0.as_secs())
        } else {
            write!(f, "{} ms", self.0.as_millis())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> PenaltyRules {
        PenaltyRules {
            max_failures: 3,
            window: Duration::from_secs(10),
            penalty: Duration::from_secs(5),
            max_penalty: Duration::from_secs(30),
            max_addresses: 4,
        }
    }

    #[test]
    fn rules_of_any_length_never_overflow_the_clock() {
        let mut table = PenaltyTable::new(PenaltyRules {
            window: Duration::MAX,
            penalty: Duration::MAX,
            max_penalty: Duration::MAX,
            max_addresses: 2,
            ..rules()
        });
        let now = Instant::now();
        let (penalty, at) = fail_until_penalized(&mut table, v4(1), now);
        assert_eq!(penalty.length, Duration::MAX);
        assert!(table.time_left(v4(1), at).is_some());
        // A full table makes room by the records' ends, all of them far away.
        for last in 2..6 {
            fail_until_penalized(&mut table, v4(last), at);
        }
    }

    fn v4(last: u8) -> AddressKey {
        AddressKey::from(IpAddr::from([192, 0, 2, last]))
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Fails `key` until it is penalized, one failure a second from `now`; the penalty and the
    /// time it was imposed.
    fn fail_until_penalized(
        table: &mut PenaltyTable,
        key: AddressKey,
        mut now: Instant,
    ) -> (Penalty, Instant) {
        for _ in 0..10 {
            if let Some(penalty) = table.record_failure(key, now) {
                return (penalty, now);
            }
            now += secs(1);
        }
        panic!("never penalized");
    }

    #[test]
    fn failures_within_the_window_earn_a_penalty_that_ends() {
        let t0 = Instant::now();
        let mut table = PenaltyTable::new(rules());
        let a = v4(1);
        assert_eq!(table.record_failure(a, t0), None);
        assert_eq!(table.record_failure(a, t0 + secs(1)), None);
        assert_eq!(table.time_left(a, t0 + secs(1)), None);
        let third = t0 + secs(2);
        assert_eq!(
            table.record_failure(a, third),
            Some(Penalty {
                length: secs(5),
                repeated: false
            })
        );
        assert_eq!(table.time_left(a, third), Some(secs(5)));
        assert_eq!(table.time_left(a, third + secs(4)), Some(secs(1)));
        assert_eq!(table.time_left(a, third + secs(5)), None, "over");
        // Another address is not touched.
        assert_eq!(table.time_left(v4(2), third), None);
        // A failure during the penalty (a request let in before it) changes nothing.
        assert_eq!(table.record_failure(a, third + secs(1)), None);
        assert_eq!(table.time_left(a, third + secs(1)), Some(secs(4)));
    }

    #[test]
    fn failures_spread_wider_than_the_window_are_never_penalized() {
        let t0 = Instant::now();
        let mut table = PenaltyTable::new(rules());
        for i in 0..20 {
            let now = t0 + secs(6 * i);
            assert_eq!(table.record_failure(v4(1), now), None, "failure {i}");
        }
    }

    #[test]
    fn penalties_double_while_failures_go_on_up_to_the_maximum_then_are_forgotten() {
        let t0 = Instant::now();
        let mut table = PenaltyTable::new(rules());
        let a = v4(1);
        let mut now = t0;
        let mut lengths = Vec::new();
        for _ in 0..5 {
            let (penalty, at) = fail_until_penalized(&mut table, a, now);
            lengths.push(penalty.length);
            // Failing again as soon as the penalty ends.
            now = at + penalty.length;
        }
        assert_eq!(lengths, [secs(5), secs(10), secs(20), secs(30), secs(30)]);
        // After the longest penalty's time without a failure, the next penalty is the first.
        let (penalty, _) = fail_until_penalized(&mut table, a, now + secs(30));
        assert_eq!(
            penalty,
            Penalty {
                length: secs(5),
                repeated: false
            }
        );
    }

    #[test]
    fn turned_off_it_counts_nothing() {
        let mut table = PenaltyTable::new(PenaltyRules {
            max_failures: 0,
            ..rules()
        });
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(table.record_failure(v4(1), now), None);
        }
        assert!(table.is_empty());
    }

    #[test]
    fn the_table_never_holds_more_than_its_bound_and_forgets_stale_records_first() {
        let t0 = Instant::now();
        let mut table = PenaltyTable::new(rules());
        // An attacker with many addresses: one failure from each.
        for last in 0..=255 {
            table.record_failure(v4(last), t0);
            assert!(table.len() <= 4, "{} records", table.len());
        }
        assert_eq!(table.len(), 4);
        // A penalized address is kept while others come and go...
        let t1 = t0 + secs(1);
        let (_, penalized_at) = fail_until_penalized(&mut table, v4(1), t1);
        for last in 100..=255 {
            table.record_failure(v4(last), penalized_at);
            assert!(table.len() <= 4);
        }
        assert!(table.time_left(v4(1), penalized_at).is_some());
        // ...and once its records are stale, newcomers replace them without evicting it.
        let later = penalized_at + secs(11);
        assert!(table.time_left(v4(1), later).is_none());
        table.record_failure(v4(7), later);
        assert_eq!(table.len(), 2, "the stale one-failure records were dropped");
    }

    #[test]
    fn a_full_table_of_penalties_evicts_the_one_forgotten_soonest() {
        let t0 = Instant::now();
        let mut table = PenaltyTable::new(rules());
        // Four addresses penalized a second apart, each with three failures at once.
        for last in 1..=4 {
            let at = t0 + secs(u64::from(last));
            for _ in 0..3 {
                table.record_failure(v4(last), at);
            }
        }
        let now = t0 + secs(5);
        assert!((1..=4).all(|last| table.time_left(v4(last), now).is_some()));
        table.record_failure(v4(5), now);
        assert_eq!(table.len(), 4);
        assert_eq!(table.time_left(v4(1), now), None, "the first made room");
        assert!((2..=4).all(|last| table.time_left(v4(last), now).is_some()));
    }

    #[test]
    fn ipv6_counts_by_network_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddressKey::from(a), AddressKey::from(b));
        assert_ne!(AddressKey::from(a), AddressKey::from(c));
        assert_eq!(AddressKey::from(a).to_string(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            AddressKey::from(mapped),
            AddressKey::from(IpAddr::from([127, 0, 0, 1]))
        );
        assert_ne!(
            AddressKey::from(IpAddr::from([127, 0, 0, 1])),
            AddressKey::from(IpAddr::from([127, 0, 0, 2]))
        );
    }

    #[test]
    fn the_message_says_why_for_how_long_and_what_to_do() {
        let message = penalized_message(v4(1), &rules(), Duration::from_millis(4100));
        assert!(message.contains("192.0.2.1 (3 within 10 s)"), "{message}");
        assert!(message.contains("for 5 s more"), "{message}");
        assert!(message.contains("--token"), "{message}");
    }

    #[test]
    fn shared_handles_are_one_table() {
        let penalties = Penalties::new(PenaltyRules {
            max_failures: 1,
            ..rules()
        });
        let shared = penalties.clone();
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert!(shared.record_failure(ip).is_some());
        assert!(penalties.time_left(ip).is_some());
        assert_eq!(penalties, shared);
        assert_ne!(penalties, Penalties::default());
    }
}
