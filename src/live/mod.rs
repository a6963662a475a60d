//! Reading what is live: `get_group_attr` for many groups, concurrently within the
//! client's rate limits. An error reading one group is kept with that group and
//! does not stop the others.

use crate::api::client::{ApiError, Client};
use crate::model::{AttributeSet, GroupId};
use futures_util::StreamExt;
use std::collections::BTreeMap;

/// What reading one group gave.
pub type LiveRead = Result<AttributeSet, ApiError>;

/// Reads the live attributes of `groups`, at most `concurrency` at once; `on_read`
/// hears of each read as it finishes.
pub async fn read(
    client: &Client,
    groups: impl IntoIterator<Item = GroupId>,
    concurrency: usize,
    on_read: impl Fn(&GroupId, &LiveRead),
) -> BTreeMap<GroupId, LiveRead> {
    let reads = futures_util::stream::iter(groups)
        .map(|group| async move {
            let result = client.get_group_attr(&group).await;
            (group, result)
        })
        .buffer_unordered(concurrency.max(1));
    futures_util::pin_mut!(reads);
    let mut live = BTreeMap::new();
    while let Some((group, result)) = reads.next().await {
        on_read(&group, &result);
        live.insert(group, result);
    }
    live
}
