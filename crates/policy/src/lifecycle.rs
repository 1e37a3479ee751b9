//! Case lifecycle: opening, introduction to a local view, and closure.

use waymark_types::EventKind;

use crate::custody::CustodyChange;
use crate::state::{CaseState, Closure, Cx, Opening, View};
use crate::violation::{Rule, Violation};
use crate::vocab::CaseOutcome;

impl CaseState {
    /// Returns whether the event introduces the case to this agency's view.
    pub(crate) fn check_lifecycle(&self, cx: &Cx<'_>, kind: EventKind) -> Result<bool, Violation> {
        let e = cx.e;
        let mut introduce = false;
        if kind != EventKind::CaseOpened && !self.is_known() {
            match &self.view {
                View::Agency(me) if *me != e.sender.id => introduce = true,
                _ => {
                    return Err(cx.deny(
                        Rule::CaseNotOpened,
                        format!(
                            "Case {} has not been opened in this journal, so {kind} cannot be recorded. \
                             Open the case first, or ask the agency that holds it to send it to you.",
                            self.case
                        ),
                    ));
                }
            }
        }
        if let Some(c) = &self.closed {
            let allowed = matches!(
                kind,
                EventKind::Receipt
                    | EventKind::WithdrawalAcknowledged
                    | EventKind::ConsentWithdrawn
                    | EventKind::CaseErased
                    | EventKind::ErasureAcknowledged
                    | EventKind::RefusalRecorded
                    | EventKind::ReferralCancelled
            );
            if !allowed {
                return Err(cx.deny(
                    Rule::CaseClosed,
                    format!(
                        "Case {} was closed by {} at {}. After closure only consent withdrawals, refusals, erasures, \
                         acknowledgements, receipts and referral cancellations can be recorded. \
                         Open a new case if the person needs support again.",
                        self.case, c.by, c.at
                    ),
                ));
            }
        }
        Ok(introduce)
    }

    pub(crate) fn on_opened(&mut self, cx: &Cx<'_>, presumed_child: bool) -> Result<(), Violation> {
        let e = cx.e;
        if let Some(o) = &self.opened {
            return Err(cx.deny(
                Rule::CaseAlreadyOpened,
                format!(
                    "Case {} was already opened by {} at {}. Use the existing case.",
                    self.case, o.by, o.at
                ),
            ));
        }
        if !cx.rules.may_hold_custody(e.sender.kind) {
            return Err(cx.deny(
                Rule::KindMayNotHold,
                format!(
                    "Under rule set {} a {} agency may not hold a case. Refer the person to an agency that may.",
                    cx.rules.reference(),
                    e.sender.kind
                ),
            ));
        }
        self.opened = Some(Opening {
            event: e.id,
            by: e.sender.id.clone(),
            at: e.at,
            presumed_child,
        });
        // In a local view the case may already be known from a later event
        // (custody learned from a handover); the opening then adds facts only.
        if self.custodian.is_none() && self.custody_log.is_empty() {
            self.custodian = Some(e.sender.id.clone());
            self.custody_log.push(CustodyChange {
                event: e.id,
                custodian: e.sender.id.clone(),
                at: e.at,
            });
        }
        Ok(())
    }

    pub(crate) fn on_closed(&mut self, cx: &Cx<'_>, outcome: CaseOutcome) -> Result<(), Violation> {
        let e = cx.e;
        self.require_custodian(cx, "close the case")?;
        if let Some((id, _)) = self.offers.iter().find(|(_, o)| o.is_open()) {
            return Err(cx.deny(
                Rule::CloseWithPendingOffer,
                format!(
                    "Handover offer {id} is still open. Cancel it, or record that it expired, before closing the case."
                ),
            ));
        }
        self.closed = Some(Closure {
            event: e.id,
            by: e.sender.id.clone(),
            at: e.at,
            outcome,
        });
        Ok(())
    }
}
