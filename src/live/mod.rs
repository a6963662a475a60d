//! Reading what is live: `get_group_attr` for many groups, concurrently within the
//! client's rate limits, optionally spread over time. An error reading one group is
//! kept with that group and does not stop the others; an error about the whole app
//! (a wrong key, a host that is not the REST API: [`ApiError::app_wide`]) stops the
//! reading, and the first read goes alone to find out, as in `apply` ([`Probe`]).

use crate::api::client::{ApiError, Client};
use crate::api::scope::{Probe, Stopped};
use crate::model::{AttributeSet, GroupId};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;

/// What reading one group gave.
pub type LiveRead = Result<AttributeSet, ApiError>;

/// How a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Reads in flight at once (the client's rate limit paces them further).
    pub concurrency: usize,
    /// The least time between the starts of two reads: `watch`'s resync spreads its
    /// reads so as not to take the app's whole rate limit in a burst. Zero: as fast
    /// as the rate limit allows, for a command someone waits for.
    pub spacing: Duration,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { concurrency: 64, spacing: Duration::ZERO }
    }
}

/// What reading many groups gave.
#[derive(Debug, Default)]
pub struct LiveReads {
    /// What reading each group gave; when stopped, only the groups read.
    pub groups: BTreeMap<GroupId, LiveRead>,
    /// Why the reading stopped before its end: a failure about the whole app. The
    /// groups not read are not in `groups`.
    pub stopped: Option<Stopped>,
}

/// Reads the live attributes of `groups` as `options` say; `on_read` hears of each
/// read as it finishes.
pub async fn read(
    client: &Client,
    groups: impl IntoIterator<Item = GroupId>,
    options: ReadOptions,
    on_read: impl Fn(&GroupId, &LiveRead),
) -> LiveReads {
    let groups: Vec<GroupId> = groups.into_iter().collect();
    let total = groups.len();
    let halt = tokio_util::sync::CancellationToken::new();
    let probe = Probe::new(halt.clone());
    let halted = halt.clone();
    let ids = futures_util::stream::iter(groups).take_while(move |_| std::future::ready(!halted.is_cancelled()));
    let ids = match options.spacing.is_zero() {
        true => ids.left_stream(),
        false => {
            let mut ticker = tokio::time::interval(options.spacing);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let paced = futures_util::stream::unfold((ids, ticker), |(mut ids, mut ticker)| async move {
                let id = ids.next().await?;
                ticker.tick().await;
                Some((id, (ids, ticker)))
            });
            paced.right_stream()
        }
    };
    let reads = ids
        .map(|group| {
            let admitted = probe.admit();
            async move {
                if !admitted.await {
                    return (group, None);
                }
                let result = client.get_group_attr(&group).await;
                (group, Some(result))
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    futures_util::pin_mut!(reads);
    let mut live = BTreeMap::new();
    while let Some((group, result)) = reads.next().await {
        // Stopped at the gate: not read.
        let Some(result) = result else { continue };
        // A group that is missing or unreadable is about the group, and opens the gate.
        probe.answered(result.as_ref().map(drop));
        on_read(&group, &result);
        live.insert(group, result);
    }
    let stopped = probe
        .stopped()
        .map(|(reason, error)| Stopped::at(client.host(), reason, error, total - live.len(), Stopped::READS));
    LiveReads { groups: live, stopped }
}
