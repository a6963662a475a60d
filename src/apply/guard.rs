//! The safety guard: the one check between a plan and the calls that make it.
//! [`execute`](super::execute) takes only an [`Approved`] plan, and only
//! [`Safety::check`] makes one, so `apply`, `watch` and every later path that
//! writes keep the same guard.

use crate::plan::{Action, Plan, SafetyVerdict, Verdict};

/// How much of the recorded state one plan may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Safety {
    /// The largest share, in percent, of the recorded groups a plan may update or delete.
    pub threshold: u32,
    /// Approve whatever the share (`--force`).
    pub force: bool,
}

/// Below this many recorded groups the share says little (one group of four is
/// 25%), so every plan is approved.
pub const MIN_RECORDED: usize = 10;

/// A plan that passed the safety guard.
#[derive(Debug, Clone, Copy)]
pub struct Approved<'p> {
    plan: &'p Plan,
}

impl<'p> Approved<'p> {
    /// The plan.
    pub fn plan(&self) -> &'p Plan {
        self.plan
    }
}

/// A plan the guard refused: it updates or deletes too large a share of the
/// groups the lockfile records, which is what a bad merge or a wrong directory
/// looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the plan updates or deletes {touched} of the {recorded} groups the lockfile records ({percent}%), over the safety threshold of {threshold}%",
    percent = .touched * 100 / .recorded
)]
pub struct Refusal {
    /// Groups the plan updates or deletes.
    pub touched: usize,
    /// Groups the lockfile records.
    pub recorded: usize,
    /// The threshold, in percent.
    pub threshold: u32,
}

impl Safety {
    /// Approves `plan` unless it updates or deletes more than the threshold's share
    /// of the `recorded` groups. What is counted are the changes the plan holds,
    /// the ones that would be sent; creates of groups never applied do not count.
    pub fn check<'p>(&self, plan: &'p Plan, recorded: usize) -> Result<Approved<'p>, Refusal> {
        let touched = touched(plan);
        let over = touched.saturating_mul(100) > (self.threshold as usize).saturating_mul(recorded);
        if self.force || recorded < MIN_RECORDED || !over {
            return Ok(Approved { plan });
        }
        Err(Refusal { touched, recorded, threshold: self.threshold })
    }

    /// What [`Safety::check`] decides about `plan`, with the figures it decided on,
    /// for `plan` to show before anyone applies it.
    pub fn verdict(&self, plan: &Plan, recorded: usize) -> SafetyVerdict {
        let verdict = match self.check(plan, recorded) {
            Ok(_) => Verdict::Approved,
            Err(_) => Verdict::Refused,
        };
        SafetyVerdict {
            changed: touched(plan),
            recorded,
            threshold: self.threshold,
            min_recorded: MIN_RECORDED,
            verdict,
        }
    }
}

/// The groups `plan` updates or deletes: the changes it holds, the ones that would be
/// sent; creates of groups never applied do not count.
fn touched(plan: &Plan) -> usize {
    plan.changes.iter().filter(|c| matches!(c.action, Action::Update | Action::Delete)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AppliedGroup, AttributeSet, DesiredGroup, GroupId, SourceLocation};
    use crate::plan::{PlanOptions, diff};
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    /// A plan over `recorded` recorded groups that updates `updated` of them and creates `created`.
    fn plan(recorded: usize, updated: usize, created: usize) -> Plan {
        let value = |v: &str| -> AttributeSet { [("k".to_string(), v.to_string())].into() };
        let source = SourceLocation { file: Arc::from(Path::new("g.yaml")), line: 1, column: 1 };
        let id = |i: usize| GroupId::parse(&format!("g-{i:03}")).unwrap();
        let applied: BTreeMap<GroupId, AppliedGroup> =
            (0..recorded).map(|i| (id(i), AppliedGroup::new(value("old")))).collect();
        let desired: BTreeMap<GroupId, DesiredGroup> = (0..recorded + created)
            .map(|i| {
                let v = if i < updated || i >= recorded { "new" } else { "old" };
                (
                    id(i),
                    DesiredGroup {
                        attributes: value(v),
                        source: source.clone(),
                        ownership: crate::model::Ownership::Group,
                        ownership_written: false,
                        origins: crate::model::Origins::Unknown,
                    },
                )
            })
            .collect();
        diff(&desired, &applied, &PlanOptions::default())
    }

    #[test]
    fn a_share_over_the_threshold_is_refused_unless_forced() {
        let safety = Safety { threshold: 30, force: false };
        assert!(safety.check(&plan(100, 30, 0), 100).is_ok());
        let refusal = safety.check(&plan(100, 31, 0), 100).unwrap_err();
        assert_eq!(refusal, Refusal { touched: 31, recorded: 100, threshold: 30 });
        assert_eq!(
            refusal.to_string(),
            "the plan updates or deletes 31 of the 100 groups the lockfile records (31%), over the safety threshold of 30%"
        );
        assert!(Safety { force: true, ..safety }.check(&plan(100, 100, 0), 100).is_ok());
    }

    #[test]
    fn creates_and_small_lockfiles_do_not_count() {
        let safety = Safety { threshold: 0, force: false };
        assert!(safety.check(&plan(10, 0, 500), 10).is_ok());
        assert!(safety.check(&plan(9, 9, 0), 9).is_ok());
        assert!(safety.check(&plan(10, 1, 0), 10).is_err());
    }

    #[test]
    fn the_verdict_is_the_checks_decision_with_its_figures() {
        let safety = Safety { threshold: 30, force: false };
        let refused = safety.verdict(&plan(14, 9, 3), 14);
        assert_eq!(
            refused,
            SafetyVerdict {
                changed: 9,
                recorded: 14,
                threshold: 30,
                min_recorded: MIN_RECORDED,
                verdict: Verdict::Refused
            }
        );
        assert_eq!(format!("{:.2}", refused.percent()), "64.29");
        assert_eq!(safety.verdict(&plan(14, 1, 0), 14).verdict, Verdict::Approved);
        // As check: few recorded groups, and creates, never refuse.
        assert_eq!(safety.verdict(&plan(4, 4, 0), 4).verdict, Verdict::Approved);
        assert_eq!(safety.verdict(&plan(10, 0, 500), 10).changed, 0);
        let json = serde_json::to_value(refused).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"changed": 9, "recorded": 14, "percent": 900.0 / 14.0, "threshold": 30, "verdict": "refused"})
        );
    }

    #[test]
    fn what_counts_is_the_changes_held_not_the_summary() {
        let safety = Safety { threshold: 30, force: false };
        let mut forged = plan(100, 100, 0);
        forged.summary.update = 0;
        assert!(safety.check(&forged, 100).is_err());
    }
}
