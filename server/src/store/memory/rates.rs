//! Rate budgets in memory: the same GCRA step (and refund) as `rate.lua`, on the process's
//! clock.

use super::now_us;
use super::{Inner, MemoryStore};
use crate::ratelimit::{Decision, Rule, gcra, gcra_refund};
use crate::store::StoreResult;

pub(super) fn rate(store: &MemoryStore, key: &str, rule: Rule) -> StoreResult<Decision> {
    let now_us = now_us();
    let mut inner = store.lock();
    let d = gcra(now_us, held(&mut inner, key, now_us), rule);
    if let Decision::Allow { new_tat } = d {
        hold(&mut inner, key, new_tat, now_us);
    }
    Ok(d)
}

pub(super) fn refund(store: &MemoryStore, key: &str, rule: Rule) -> StoreResult<()> {
    let now_us = now_us();
    let mut inner = store.lock();
    if let Some(back) = gcra_refund(now_us, held(&mut inner, key, now_us), rule) {
        hold(&mut inner, key, back, now_us);
    }
    Ok(())
}

/// The bucket's theoretical arrival time, if it has not expired.
fn held(inner: &mut Inner, key: &str, now_us: u64) -> Option<u64> {
    let now = now_us / 1000;
    inner.purge(now);
    inner
        .rates
        .get(key)
        .filter(|(_, exp)| *exp > now)
        .map(|(tat, _)| *tat)
}

/// Stores a theoretical arrival time, expiring when the bucket would be full again.
fn hold(inner: &mut Inner, key: &str, tat: u64, now_us: u64) {
    let expires = now_us / 1000 + tat.saturating_sub(now_us) / 1000 + 1;
    inner.rates.insert(key.to_string(), (tat, expires));
}
