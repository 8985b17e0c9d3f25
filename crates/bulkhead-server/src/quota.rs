//! Each tenant's share of the server: its requests and upserted bytes a second (token buckets),
//! its searches at once, and its part of the work permits, so that one tenant's flood waits or is
//! refused while the other tenants' calls go on. Each limit is the tenant's policy's
//! ([`TenantQuotas`]), or the server's default ([`QuotaDefaults`]) where the policy sets none.
//!
//! A call meets them in order: the request rate on its headers, before its body is read
//! (`admission.rs`), and for an upsert whether its tenant's upserted bytes could take one as large
//! as its last; then, on its way to the work (`Shared::data`), its upserted bytes, a search
//! permit (searches only) and a permit of the tenant's work share, each waited for within the
//! call's deadline behind at most as many waiting calls of the same tenant as the limit allows
//! (more are refused at once, so a flood holds no unbounded queue); then, while another tenant is
//! active, a permit of the tenant's fair share of the cores ([`FairShare`]); last, one of the
//! server's work permits. A refusal is `RESOURCE_EXHAUSTED` naming the quota and its limit, and
//! nothing was touched; a refusal on the headers is answered at its turn, not at once
//! ([`TenantLimits::hold_refusal`]). The limits follow a policy change on the tenant's next call.

use crate::admission::Timing;
use crate::lockout::Thresholds;
use bulkhead_query::{TenantQuotas, TenantUid, VersionedPolicy};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// The server's defaults for the quotas a tenant's policy leaves unset (see `docs/LIMITS.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDefaults {
    /// Requests a second of one tenant; `None`: no limit.
    pub requests_per_second: Option<u32>,
    /// Upserted bytes (encoded requests) a second of one tenant; `None`: no limit.
    pub write_bytes_per_second: Option<u64>,
    /// Searches of one tenant running at once.
    pub max_concurrent_searches: u32,
    /// Work permits one tenant may hold at once, of the server's `max_concurrent_work`.
    pub max_tenant_work: u32,
    /// A key whose requests over five minutes pass this multiple of its tenant's baseline is
    /// locked (`lockout.rs`); 0: off.
    pub burst_multiple: u32,
    /// A key refused (permission denied) this many times within five minutes is locked; 0: off.
    pub max_denials: u32,
}

impl QuotaDefaults {
    /// The defaults of a server that runs `max_concurrent_work` calls at once: no rate limits, 16
    /// searches at once, half the work permits per tenant (so that another tenant always finds the
    /// other half), no burst lockout, and a key locked after 100 refusals in five minutes.
    pub fn for_work(max_concurrent_work: usize) -> QuotaDefaults {
        let half = u32::try_from(max_concurrent_work / 2).unwrap_or(u32::MAX).max(1);
        QuotaDefaults {
            requests_per_second: None,
            write_bytes_per_second: None,
            max_concurrent_searches: crate::limits::MAX_TENANT_SEARCHES,
            max_tenant_work: half,
            burst_multiple: 0,
            max_denials: crate::limits::MAX_DENIALS,
        }
    }
}

/// A token bucket holding one second's worth of its rate.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    refilled: Instant,
    /// The amount last asked for (taken or not); 0 before the first.
    last: f64,
    /// When the latest refusal of this quota is answered ([`Bucket::answer_refusal_at`]).
    answered: Instant,
}

impl Bucket {
    fn new(rate: u64) -> Bucket {
        let rate = rate as f64;
        let now = Instant::now();
        Bucket { rate, tokens: rate, refilled: now, last: 0.0, answered: now }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled = now;
    }

    /// Takes `amount`. A request larger than the bucket is taken when the bucket is full, leaving
    /// a debt paid back at the rate, so the average never passes the rate. `false`: not now.
    fn take(&mut self, amount: f64) -> bool {
        self.refill();
        self.last = amount;
        if self.tokens < amount.min(self.rate) {
            return false;
        }
        self.tokens -= amount;
        true
    }

    /// Whether an amount as large as the last one asked for would be taken now (nothing is taken).
    fn could_take_last(&mut self) -> bool {
        self.refill();
        self.tokens >= self.last.min(self.rate)
    }

    /// When a refusal made `now` is answered: when the bucket will hold what the refused call
    /// asked for (one request; an upsert as large as the last, at most a second's worth), and at
    /// least one unit's refill after the refusal before it (for the request rate, one request's:
    /// the refusals of many calls at once are answered one by one, not all at the same instant,
    /// after which all but one would be refused again; for upserted bytes, one byte's, so the
    /// refusals of a tenant's upserts go out together when the next could be taken, and all but
    /// one are refused again, a few a second); at most `max` after `now`. A client that retries
    /// at its refusal then finds its quota ready for it, and a tenant's refusals go out about as
    /// fast as its calls could be admitted, however fast they come.
    fn answer_refusal_at(&mut self, now: Instant, max: Duration) -> Instant {
        let rate = self.rate.max(1.0);
        let wanted = self.last.clamp(1.0, rate);
        let ready = now + Duration::from_secs_f64(((wanted - self.tokens) / rate).clamp(0.0, 1.0));
        let spaced = self.answered + Duration::from_secs_f64(1.0 / rate);
        let at = ready.max(spaced).min(now + max);
        self.answered = at;
        at
    }
}

/// A call refused on its tenant's request rate or upserted bytes a second, on its headers: the
/// refusal, and when to answer it ([`TenantLimits::hold_refusal`]).
#[derive(Debug)]
pub(crate) struct Throttled {
    pub(crate) status: Status,
    answer_at: Instant,
}

/// A semaphore with a bounded queue: at most as many callers wait as there are permits.
#[derive(Debug)]
struct Gate {
    permits: Arc<Semaphore>,
    limit: u32,
    waiting: AtomicUsize,
}

impl Gate {
    fn new(limit: u32) -> Gate {
        let limit = limit.max(1);
        Gate { permits: Arc::new(Semaphore::new(limit as usize)), limit, waiting: AtomicUsize::new(0) }
    }

    /// A permit, waited for until the call's deadline; `Ok(None)` when the queue is full (the
    /// caller names the quota).
    async fn enter(&self, timing: Timing) -> Result<Option<OwnedSemaphorePermit>, Status> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(Some(permit));
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.limit as usize {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Ok(None);
        }
        let waited =
            tokio::time::timeout_at(timing.deadline, Arc::clone(&self.permits).acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(Some(permit)),
            Ok(Err(_closed)) => Err(Status::unavailable("the server is shutting down")),
            Err(_elapsed) => Err(crate::status::deadline_exceeded(timing.budget)),
        }
    }
}

/// One tenant's limits, as its policy of `version` sets them.
#[derive(Debug)]
pub(crate) struct TenantLimits {
    version: u64,
    quotas: Effective,
    requests: Option<Mutex<Bucket>>,
    write_bytes: Option<Mutex<Bucket>>,
    searches: Gate,
    work: Gate,
    /// The tenant's calls running at once while another tenant is active ([`FairShare`]).
    share: Arc<Semaphore>,
    thresholds: Thresholds,
    /// The tenant's refusals being held ([`TenantLimits::hold_refusal`]).
    held_refusals: AtomicUsize,
}

/// The limits in force for one tenant: its policy's, or the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Effective {
    requests_per_second: Option<u32>,
    write_bytes_per_second: Option<u64>,
    max_concurrent_searches: u32,
    max_tenant_work: u32,
}

impl Effective {
    fn of(quotas: &TenantQuotas, defaults: &QuotaDefaults) -> Effective {
        Effective {
            requests_per_second: quotas.requests_per_second.or(defaults.requests_per_second),
            write_bytes_per_second: quotas.write_bytes_per_second.or(defaults.write_bytes_per_second),
            max_concurrent_searches: quotas
                .max_concurrent_searches
                .unwrap_or(defaults.max_concurrent_searches)
                .max(1),
            max_tenant_work: defaults.max_tenant_work.max(1),
        }
    }
}

fn exhausted(quota: &str, limit: impl std::fmt::Display, unit: &str) -> Status {
    Status::resource_exhausted(format!(
        "over the tenant's {quota} quota of {limit} {unit} (set by its policy or the server's default); \
         retry later"
    ))
}

impl TenantLimits {
    fn new(version: u64, quotas: Effective, thresholds: Thresholds, share: usize) -> TenantLimits {
        TenantLimits {
            thresholds,
            version,
            quotas,
            requests: quotas.requests_per_second.map(|r| Mutex::new(Bucket::new(u64::from(r)))),
            write_bytes: quotas.write_bytes_per_second.map(|r| Mutex::new(Bucket::new(r))),
            searches: Gate::new(quotas.max_concurrent_searches),
            work: Gate::new(quotas.max_tenant_work),
            share: Arc::new(Semaphore::new(share.max(1))),
            held_refusals: AtomicUsize::new(0),
        }
    }

    /// The tenant's lockout thresholds.
    pub(crate) fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// A call's checks on its headers: one request from the tenant's request rate, and for an
    /// upsert [`TenantLimits::admit_write_headers`].
    pub(crate) fn admit_headers(&self, upsert: bool) -> Result<(), Throttled> {
        self.admit_request()?;
        if upsert { self.admit_write_headers() } else { Ok(()) }
    }

    /// Takes one request from the tenant's request rate.
    fn admit_request(&self) -> Result<(), Throttled> {
        let Some(bucket) = &self.requests else { return Ok(()) };
        let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        if bucket.take(1.0) {
            return Ok(());
        }
        let answer_at = bucket.answer_refusal_at(Instant::now(), MAX_PUSHBACK);
        let limit = self.quotas.requests_per_second.unwrap_or(0);
        Err(Throttled { status: exhausted("requests_per_second", limit, "requests a second"), answer_at })
    }

    /// Holds a refusal on the headers until its turn ([`Bucket::answer_refusal_at`]), at most
    /// [`MAX_PUSHBACK_MS`](crate::limits::MAX_PUSHBACK_MS) after the call arrived and a quarter of
    /// its deadline (so that it reaches the client as a refusal, not as its own deadline), so that
    /// a client which retries at once meets its refusals about as fast as its quota admits its
    /// calls, and a closed-loop flood slows to its quota instead of costing the server a refusal
    /// per round trip. What is held is an open stream whose body was dropped unread (h2 discards
    /// what still arrives for it) and a timer. A refusal is answered at once instead while the
    /// tenant holds [`MAX_HELD_REFUSALS`](crate::limits::MAX_HELD_REFUSALS) or its connection
    /// (`connection`, the count of its held refusals; `None`: unknown) holds
    /// [`MAX_HELD_REFUSALS_PER_CONNECTION`](crate::limits::MAX_HELD_REFUSALS_PER_CONNECTION).
    /// Returns `Err` with the cap that was full when the refusal was not held (`tenant`,
    /// `connection`; `unknown` when the connection is not known).
    pub(crate) async fn hold_refusal(
        &self,
        throttled: &Throttled,
        timing: Timing,
        connection: Option<&AtomicUsize>,
    ) -> Result<(), &'static str> {
        let connection = connection.ok_or("unknown")?;
        let _tenant = Held::enter(&self.held_refusals, crate::limits::MAX_HELD_REFUSALS).ok_or("tenant")?;
        let _connection =
            Held::enter(connection, crate::limits::MAX_HELD_REFUSALS_PER_CONNECTION).ok_or("connection")?;
        let latest = timing.arrived + MAX_PUSHBACK.min(timing.budget / 4);
        tokio::time::sleep_until(tokio::time::Instant::from_std(throttled.answer_at).min(latest)).await;
        Ok(())
    }

    /// Takes `bytes` from the tenant's upserted bytes a second.
    pub(crate) fn admit_write(&self, bytes: usize) -> Result<(), Status> {
        let Some(bucket) = &self.write_bytes else { return Ok(()) };
        if bucket.lock().unwrap_or_else(PoisonError::into_inner).take(bytes as f64) {
            return Ok(());
        }
        Err(self.write_exhausted())
    }

    /// An upsert's check on its headers, before its body is read (its size is not known yet):
    /// while the tenant's upserted bytes a second could not take an upsert as large as its last
    /// one, the upsert is refused unread. A flood of large upserts over the quota then costs the
    /// server their headers, not their bodies; a smaller upsert after a large one waits at most
    /// until the bucket holds the large one's size (one second's worth at most).
    fn admit_write_headers(&self) -> Result<(), Throttled> {
        let Some(bucket) = &self.write_bytes else { return Ok(()) };
        let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        if bucket.could_take_last() {
            return Ok(());
        }
        let answer_at = bucket.answer_refusal_at(Instant::now(), MAX_PUSHBACK);
        Err(Throttled { status: self.write_exhausted(), answer_at })
    }

    fn write_exhausted(&self) -> Status {
        let limit = self.quotas.write_bytes_per_second.unwrap_or(0);
        exhausted("write_bytes_per_second", limit, "bytes a second")
    }

    /// The tenant's permits for one call: a search permit for a search, one of its work share,
    /// and, when `contended` (another tenant is active, [`FairShare::contended`]), one of its fair
    /// share of the cores, each waited for within the call's deadline. The fair share queues
    /// rather than refuses: it bounds how many of the tenant's admitted calls run at once, and the
    /// gates before it bound how many wait.
    pub(crate) async fn enter(
        &self,
        search: bool,
        contended: bool,
        timing: Timing,
    ) -> Result<Vec<OwnedSemaphorePermit>, Status> {
        let mut held = Vec::with_capacity(3);
        if search {
            match self.searches.enter(timing).await? {
                Some(permit) => held.push(permit),
                None => {
                    let limit = self.quotas.max_concurrent_searches;
                    return Err(exhausted("max_concurrent_searches", limit, "searches at once"));
                }
            }
        }
        match self.work.enter(timing).await? {
            Some(permit) => held.push(permit),
            None => return Err(exhausted("work share", self.quotas.max_tenant_work, "calls at once")),
        }
        if contended {
            let share = Arc::clone(&self.share).acquire_owned();
            match tokio::time::timeout_at(timing.deadline, share).await {
                Ok(Ok(permit)) => held.push(permit),
                Ok(Err(_closed)) => return Err(Status::unavailable("the server is shutting down")),
                Err(_elapsed) => return Err(crate::status::deadline_exceeded(timing.budget)),
            }
        }
        Ok(held)
    }
}

/// Longest hold of a refusal ([`TenantLimits::hold_refusal`]).
const MAX_PUSHBACK: Duration = Duration::from_millis(crate::limits::MAX_PUSHBACK_MS);

/// A place among a count's held refusals, given back when its hold ends or its call is dropped.
struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    /// A place, if fewer than `limit` are held.
    fn enter(count: &'a AtomicUsize, limit: usize) -> Option<Held<'a>> {
        if count.fetch_add(1, Ordering::AcqRel) >= limit {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Held(count))
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long after its last admitted call a tenant still counts as active.
pub(crate) const ACTIVE_FOR: Duration = Duration::from_millis(250);

/// Fair scheduling between tenants: while another tenant is active (it had a call admitted within
/// [`ACTIVE_FOR`]), a tenant runs at most its fair share of calls at once, half the cores (at
/// least one), and its further calls wait for its own earlier ones; a tenant alone on the server
/// runs as many as its other limits allow. So a flooding tenant, however many calls it has in
/// flight, leaves the other half of the cores to the others, and a quiet server lends all of them.
/// Index builds and key rotations run at a lower OS priority than any call (see the query crate's
/// job workers), so they take only what calls leave.
///
/// Which tenants are active is kept as the last two distinct tenants to call and when: enough to
/// answer whether some tenant other than the caller called lately, in constant time and memory.
#[derive(Debug)]
pub(crate) struct FairShare {
    /// Calls of one tenant at once while another is active.
    share: usize,
    /// The latest caller first, then the latest caller other than it.
    recent: Mutex<[Option<(TenantUid, Instant)>; 2]>,
}

impl FairShare {
    /// Half of `cores`, at least one.
    pub(crate) fn new(cores: usize) -> FairShare {
        FairShare { share: (cores / 2).max(1), recent: Mutex::new([None, None]) }
    }

    /// Records a call of `tenant` and says whether another tenant is active.
    pub(crate) fn contended(&self, tenant: TenantUid) -> bool {
        self.contended_at(tenant, Instant::now())
    }

    fn contended_at(&self, tenant: TenantUid, now: Instant) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let other = match recent[0] {
            Some((latest, _)) if latest == tenant => recent[1],
            latest => {
                recent[1] = latest;
                latest
            }
        };
        recent[0] = Some((tenant, now));
        other.is_some_and(|(_, at)| now.saturating_duration_since(at) < ACTIVE_FOR)
    }
}

/// Tenants whose limits are kept before the idle ones are let go.
const TRACKED_TENANTS: usize = 65_536;

/// Every tenant's limits, made on the tenant's first call and remade when its policy changes.
#[derive(Debug)]
pub(crate) struct Quotas {
    defaults: QuotaDefaults,
    tenants: Mutex<HashMap<TenantUid, Arc<TenantLimits>>>,
    /// Fair scheduling between the tenants.
    pub(crate) fair: FairShare,
}

impl Quotas {
    /// The quotas of a server on `cores` cores.
    pub(crate) fn new(defaults: QuotaDefaults, cores: usize) -> Quotas {
        Quotas { defaults, tenants: Mutex::new(HashMap::new()), fair: FairShare::new(cores) }
    }

    /// The limits of `tenant` under `policy`.
    pub(crate) fn of(&self, tenant: TenantUid, policy: &VersionedPolicy) -> Arc<TenantLimits> {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(limits) = tenants.get(&tenant)
            && limits.version == policy.version
        {
            return Arc::clone(limits);
        }
        if tenants.len() >= TRACKED_TENANTS {
            // Tenants with no call in flight start afresh (an idle bucket is full anyway), so the
            // map holds at most the tenants that are busy, whatever the churn of tenants.
            tenants.retain(|_, limits| Arc::strong_count(limits) > 1);
        }
        let set = &policy.policy.quotas;
        let quotas = Effective::of(set, &self.defaults);
        let thresholds = Thresholds::of(set, self.defaults.burst_multiple, self.defaults.max_denials);
        let limits = Arc::new(TenantLimits::new(policy.version, quotas, thresholds, self.fair.share));
        tenants.insert(tenant, Arc::clone(&limits));
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How long a test waits for a permit it expects to get at once.
    const PROMPT: Duration = Duration::from_secs(5);

    #[test]
    fn a_bucket_holds_one_second_and_lends_to_one_large_request() {
        let mut requests = Bucket::new(3);
        assert!((0..3).all(|_| requests.take(1.0)), "a full bucket holds one second's worth");
        assert!(!requests.take(1.0), "then it is empty");
        let mut bytes = Bucket::new(1_000);
        assert!(bytes.take(5_000.0), "a request larger than the bucket passes when it is full");
        assert!(!bytes.take(1.0), "and leaves a debt");
        bytes.refilled -= Duration::from_secs(4);
        assert!(!bytes.take(1.0), "four seconds pay back four of the five thousand bytes");
        bytes.refilled -= Duration::from_millis(1_100);
        assert!(bytes.take(1.0), "the fifth second pays the rest");
    }

    #[test]
    fn an_upsert_is_refused_on_its_headers_until_the_bucket_could_take_the_last_one() {
        let mut bytes = Bucket::new(1_000);
        assert!(bytes.could_take_last(), "nothing asked for yet");
        assert!(bytes.take(600.0));
        assert!(!bytes.could_take_last(), "400 left, the last upsert was 600");
        bytes.refilled -= Duration::from_millis(250);
        assert!(bytes.could_take_last(), "a quarter second adds 250");
        assert!(!bytes.take(700.0), "a larger one is refused after its body is read");
        assert!(!bytes.could_take_last(), "and the next waits for 700");
        bytes.refilled -= Duration::from_millis(60);
        assert!(bytes.could_take_last());
        let mut big = Bucket::new(1_000);
        assert!(big.take(5_000.0), "larger than the bucket: taken when full");
        big.refilled -= Duration::from_secs(5);
        assert!(big.could_take_last(), "a request over the rate waits for a full bucket, no more");
    }

    #[test]
    fn refusals_are_answered_when_the_bucket_holds_their_call_one_by_one_and_within_the_longest_hold() {
        let max = Duration::from_secs(1);
        let mut requests = Bucket::new(4);
        assert!((0..4).all(|_| requests.take(1.0)) && !requests.take(1.0), "spent");
        let now = Instant::now();
        requests.refilled = now;
        requests.tokens = 0.0;
        let turns: Vec<Duration> = (0..6).map(|_| requests.answer_refusal_at(now, max) - now).collect();
        let quarter = Duration::from_millis(250);
        assert_eq!(turns[..4], [quarter, quarter * 2, quarter * 3, max], "a request's refill time apart");
        assert_eq!(turns[4..], [max, max], "and never later than the longest hold");
        let later = now + Duration::from_secs(3);
        assert_eq!(requests.answer_refusal_at(later, max) - later, quarter, "the schedule drains");
        // An upsert's refusal: when the bucket holds one as large as the last, however many came
        // before it (their own turns are a byte's refill apart).
        let mut bytes = Bucket::new(2_000_000);
        assert!(bytes.take(1_500_000.0) && !bytes.could_take_last());
        let now = Instant::now();
        bytes.refilled = now;
        bytes.tokens = 500_000.0;
        let first = bytes.answer_refusal_at(now, max) - now;
        assert_eq!(first, Duration::from_millis(500), "a million bytes short at two million a second");
        let second = bytes.answer_refusal_at(now, max) - now;
        assert!(second > first && second - first < Duration::from_millis(1), "then one by one: {second:?}");
        let mut huge = Bucket::new(1_000);
        assert!(huge.take(5_000.0), "larger than the bucket: taken when full");
        let now = Instant::now();
        huge.refilled = now;
        huge.tokens = -4_000.0;
        assert_eq!(huge.answer_refusal_at(now, max) - now, max, "a debt longer than the hold: the hold");
    }

    #[tokio::test]
    async fn a_refusal_is_held_until_its_turn_unless_its_tenant_or_connection_holds_too_many() {
        use crate::limits::{MAX_HELD_REFUSALS, MAX_HELD_REFUSALS_PER_CONNECTION};
        let quotas = Quotas::new(QuotaDefaults::for_work(64), 2);
        let limits = quotas.of(uid(1), &VersionedPolicy::default());
        let connection = AtomicUsize::new(0);
        let now = tokio::time::Instant::now();
        let timing = Timing { arrived: now, deadline: now + PROMPT * 2, budget: PROMPT * 2 };
        let status = Status::resource_exhausted("test");
        let throttled = Throttled { status, answer_at: Instant::now() + Duration::from_secs(30) };
        let short = Duration::from_millis(200);
        let held =
            |timing| tokio::time::timeout(short, limits.hold_refusal(&throttled, timing, Some(&connection)));
        assert!(held(timing).await.is_err(), "held until its turn");
        assert_eq!(limits.held_refusals.load(Ordering::Acquire), 0, "a dropped hold gives its place back");
        assert_eq!(connection.load(Ordering::Acquire), 0, "on its connection too");
        // At most a quarter of the call's deadline (and MAX_PUSHBACK_MS), from its arrival.
        let arrived = tokio::time::Instant::now();
        let budget = Duration::from_millis(400);
        let brief = Timing { arrived, deadline: arrived + budget, budget };
        assert_eq!(limits.hold_refusal(&throttled, brief, Some(&connection)).await, Ok(()));
        let waited = arrived.elapsed();
        assert!(
            waited >= budget / 4 && waited < PROMPT,
            "a quarter of the deadline, not its turn: {waited:?}"
        );
        let unknown = tokio::time::timeout(short, limits.hold_refusal(&throttled, timing, None));
        assert_eq!(unknown.await, Ok(Err("unknown")), "a call whose connection is not known: at once");
        connection.store(MAX_HELD_REFUSALS_PER_CONNECTION, Ordering::Release);
        assert_eq!(held(timing).await, Ok(Err("connection")), "a connection holding its share: at once");
        assert_eq!(limits.held_refusals.load(Ordering::Acquire), 0, "its tenant's place given back");
        connection.store(0, Ordering::Release);
        limits.held_refusals.store(MAX_HELD_REFUSALS, Ordering::Release);
        assert_eq!(held(timing).await, Ok(Err("tenant")), "a tenant holding its share: at once");
        assert_eq!(limits.held_refusals.load(Ordering::Acquire), MAX_HELD_REFUSALS);
        assert_eq!(connection.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_gate_queues_as_many_callers_as_it_has_permits_and_refuses_the_rest() {
        let gate = Arc::new(Gate::new(2));
        let now = tokio::time::Instant::now();
        let timing = Timing { arrived: now, deadline: now + PROMPT, budget: PROMPT };
        let held = [gate.enter(timing).await, gate.enter(timing).await].map(|p| p.expect("open"));
        assert!(held.iter().all(Option::is_some));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let gate = Arc::clone(&gate);
                tokio::spawn(async move { gate.enter(timing).await })
            })
            .collect();
        while gate.waiting.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        assert!(gate.enter(timing).await.expect("open").is_none(), "a third waiter is refused");
        drop(held);
        for waiter in waiters {
            assert!(waiter.await.expect("join").expect("open").is_some(), "the queued callers get in");
        }
        let past = Timing { deadline: tokio::time::Instant::now(), ..timing };
        let _all = [gate.enter(past).await, gate.enter(past).await];
        let late = gate.enter(past).await.expect_err("a passed deadline waits for nothing");
        assert_eq!(late.code(), tonic::Code::DeadlineExceeded);
    }

    fn uid(n: u8) -> TenantUid {
        TenantUid::from_hex(&format!("{n:02x}").repeat(16)).expect("uid")
    }

    #[test]
    fn another_tenant_counts_as_active_for_a_while_after_its_call() {
        let (fair, start) = (FairShare::new(2), Instant::now());
        assert!(!fair.contended_at(uid(1), start), "alone");
        assert!(!fair.contended_at(uid(1), start), "still alone: its own calls do not count");
        assert!(fair.contended_at(uid(2), start), "tenant 1 called just now");
        assert!(fair.contended_at(uid(1), start), "and tenant 2 did too");
        assert!(fair.contended_at(uid(1), start), "tenant 2 is remembered behind tenant 1's calls");
        let later = start + ACTIVE_FOR;
        assert!(!fair.contended_at(uid(1), later), "tenant 2 has been quiet for the whole window");
        assert!(fair.contended_at(uid(3), later), "a third tenant sees tenant 1");
        assert!(fair.contended_at(uid(2), later), "and tenant 2 sees tenant 3");
    }

    #[tokio::test]
    async fn a_contended_tenant_runs_its_fair_share_at_once_and_queues_the_rest() {
        let (defaults, cores) = (QuotaDefaults::for_work(64), 4);
        let quotas = Quotas::new(defaults, cores);
        let limits = quotas.of(uid(1), &VersionedPolicy::default());
        let now = tokio::time::Instant::now();
        let timing = Timing { arrived: now, deadline: now + PROMPT, budget: PROMPT };
        let alone: Vec<_> = permits_of(&limits, false, timing, 4).await;
        assert_eq!(alone.len(), 4, "a tenant alone runs all four at once");
        drop(alone);
        let share = permits_of(&limits, true, timing, 2).await;
        assert_eq!(share.len(), 2, "half of four cores while another tenant is active");
        let short = Timing { deadline: tokio::time::Instant::now() + Duration::from_millis(50), ..timing };
        let third = limits.enter(false, true, short).await.expect_err("the third waits for one of the two");
        assert_eq!(third.code(), tonic::Code::DeadlineExceeded);
        let waiting = {
            let limits = Arc::clone(&limits);
            tokio::spawn(async move { limits.enter(false, true, timing).await })
        };
        drop(share);
        assert!(waiting.await.expect("join").is_ok(), "it runs once one of its tenant's calls ends");
        assert_eq!(FairShare::new(1).share, 1, "a one-core server still runs one call of each");
    }

    /// `n` calls' permits of `limits`, taken one after the other without waiting.
    async fn permits_of(
        limits: &TenantLimits,
        contended: bool,
        timing: Timing,
        n: usize,
    ) -> Vec<Vec<OwnedSemaphorePermit>> {
        let mut held = Vec::new();
        for _ in 0..n {
            held.push(limits.enter(false, contended, timing).await.expect("admitted"));
        }
        held
    }
}
