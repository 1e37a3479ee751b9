//! Importing cases from a CSV in the layout of IOM's Human Trafficking Case
//! Data Standard (HTCDS v2.0): the worked adapter example for integrators.
//!
//! The file has a header row of HTCDS field names (table prefix included,
//! any order, case ignored) and one case per row. Multi-select picklists
//! hold values separated by `;`. Picklist values may be given by their
//! HTCDS name or label (`DomesticWork` or `Domestic Work`).
//!
//! | column | use |
//! |---|---|
//! | `cas_Id` | **required**: the record's stable id in the source system; idempotency keys derive from it |
//! | `wmk_IdentificationChannel` | Waymark's channel (`Police`, `Border`, `LabourInspection`, `Outreach`, `Hotline`, `SelfReferral`, `Consular`, `SocialServices`) |
//! | `cas_ReferringOrganisationType` | HTCDS `org_Type` of the referring organisation, for the channel when the column above is empty: `LawEnforcement` → police, `ImmigrationService` → border, `NGO` → outreach, health, government and legal services → social services |
//! | `vic_MajorityStatus` | `Adult`; `Minor` or `Unknown` → presumed child (CETS 197 Art. 10(3)) |
//! | `vic_TypeOfExploitation` | forms: `Sexual`, `Labour`, `CriminalActivities`, `Begging`, `ForcedMarriage`, `OrganRemoval`, `DomesticServitude`, `Other` |
//! | `vic_TypeOfLabourExploitation` | HTCDS labour types: `Begging` → begging, `DomesticWork` → domestic servitude, `IllicitActivities` → criminal activities, the others → labour |
//! | `vic_TypeOfSexExploitation` | any HTCDS value → sexual |
//! | `vic_MethodsOfControl` | indicator codes `htcds.control.<value>` of a police signal |
//! | `cas_Status` | `Active`, `FollowUp` (open); `ClosedReferred` (closed, transferred); `Closed` (closed with the outcome in `cas_ReasonForCaseClosure`: `Reintegrated`, `Returned`, `Regularised`, `Declined`, `LostContact`, `NotAVictim`, `Transferred`) |
//!
//! Every other column is ignored and listed in the report. In particular
//! the importer never reads the Person table (`prs_*`: names, birth date,
//! contacts): nothing personal leaves the source system this way.
//!
//! Per row, at the agency: `OpenCase` (channel, presumed child, forms);
//! at a police agency, `RecordSignal` with the indicators and forms (when
//! the row has any); `CloseCase` when the source case is closed.
//!
//! # Re-running
//! Each call's idempotency key is `<source>:<SHA-256 of cas_Id, 20 bytes
//! hex>:<action>`, so importing the same file again replays every call: the
//! agency records nothing new and the row counts as already present. A row
//! whose values changed since it was imported is rejected (the agency keeps
//! the first import; record changes as new events). Bad rows are reported
//! with their row number and reason and do not stop the others.

mod csv;
mod row;

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use waymark_proto::v1 as pb;
use waymark_proto::waymark::police::v1 as police;

pub use self::csv::CsvError;
pub use self::row::CaseRow;
use crate::{Client, Error};

/// How to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Names the source system in idempotency keys, so two systems whose
    /// record ids collide do not replay each other (at most 64 characters).
    pub source: String,
    /// The channel of rows that give none.
    pub default_channel: Option<pb::IdentificationChannel>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            source: "htcds".to_owned(),
            default_channel: None,
        }
    }
}

/// The whole file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not CSV.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// Its header is unusable, or the options are.
    #[error("{0}")]
    Layout(String),
}

/// What happened to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// Something new was recorded.
    Imported {
        /// The Waymark case id.
        case_id: String,
        /// What was newly recorded (`case opened`, `signal`, `case closed`).
        recorded: Vec<&'static str>,
    },
    /// Everything was recorded by an earlier run.
    AlreadyPresent {
        /// The Waymark case id.
        case_id: String,
    },
    /// Not imported, or only in part.
    Rejected {
        /// Why, naming the column or the agency's rule.
        reason: String,
        /// The case, when it was opened before a later step failed.
        case_id: Option<String>,
    },
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowReport {
    /// The row number: the line of the file it starts on (the header is 1).
    pub row: usize,
    /// Its `cas_Id` (empty when missing).
    pub record_id: String,
    /// What happened.
    pub outcome: RowOutcome,
}

/// The result of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every data row, in file order.
    pub rows: Vec<RowReport>,
    /// Header columns that were not read.
    pub ignored_columns: Vec<String>,
}

impl Report {
    fn count(&self, f: impl Fn(&RowOutcome) -> bool) -> usize {
        self.rows.iter().filter(|r| f(&r.outcome)).count()
    }
    /// Rows that recorded something new.
    pub fn imported(&self) -> usize {
        self.count(|o| matches!(o, RowOutcome::Imported { .. }))
    }
    /// Rows an earlier run had recorded in full.
    pub fn already_present(&self) -> usize {
        self.count(|o| matches!(o, RowOutcome::AlreadyPresent { .. }))
    }
    /// Bad rows.
    pub fn rejected(&self) -> usize {
        self.count(|o| matches!(o, RowOutcome::Rejected { .. }))
    }
    /// The rejected rows.
    pub fn rejections(&self) -> impl Iterator<Item = (&RowReport, &str)> {
        self.rows.iter().filter_map(|r| match &r.outcome {
            RowOutcome::Rejected { reason, .. } => Some((r, reason.as_str())),
            _ => None,
        })
    }
}

impl fmt::Display for Report {
    /// One line per rejected row, then the summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (r, reason) in self.rejections() {
            let id = if r.record_id.is_empty() {
                String::new()
            } else {
                format!(" (cas_Id {})", r.record_id)
            };
            writeln!(f, "row {}{id}: rejected: {reason}", r.row)?;
        }
        write!(
            f,
            "imported {}, already present {}, rejected {}",
            self.imported(),
            self.already_present(),
            self.rejected()
        )
    }
}

/// The idempotency key of `action` on the record `record_id` from `source`.
pub fn idempotency_key(source: &str, record_id: &str, action: &str) -> String {
    let digest = Sha256::digest(record_id.as_bytes());
    format!("{source}:{}:{action}", hex::encode(&digest[..20]))
}

/// What a file holds: the valid rows and the rejected ones.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Rows to import.
    pub rows: Vec<CaseRow>,
    /// Rows refused before any call, with the reason.
    pub rejected: Vec<RowReport>,
    /// Header columns that are not read.
    pub ignored_columns: Vec<String>,
}

/// Reads the rows of an HTCDS CSV; no I/O.
///
/// # Errors
/// The text is not CSV or its header has no `cas_Id`.
pub fn parse(text: &str, opts: &ImportOptions) -> Result<Parsed, ImportError> {
    if opts.source.is_empty() || opts.source.chars().count() > 64 {
        return Err(ImportError::Layout(
            "the source name must have 1 to 64 characters".into(),
        ));
    }
    let records = csv::records(text)?;
    let Some((first, data)) = records.split_first() else {
        return Err(ImportError::Layout("the file is empty".into()));
    };
    let header = row::Header::new(first).map_err(ImportError::Layout)?;
    let mut out = Parsed {
        ignored_columns: header.ignored(first),
        ..Parsed::default()
    };
    let mut seen = std::collections::HashMap::new();
    for r in data {
        let reject = |reason: String, record_id: String| RowReport {
            row: r.line,
            record_id,
            outcome: RowOutcome::Rejected {
                reason,
                case_id: None,
            },
        };
        match row::map(&header, r, opts.default_channel) {
            Ok(c) => match seen.get(&c.record_id) {
                Some(first) => out.rejected.push(reject(
                    format!("cas_Id {} repeats row {first}", c.record_id),
                    c.record_id,
                )),
                None => {
                    seen.insert(c.record_id.clone(), c.row);
                    out.rows.push(c);
                }
            },
            Err(reason) => out.rejected.push(reject(reason, header.record_id(r))),
        }
    }
    Ok(out)
}

/// Imports the HTCDS CSV at `path` into the agency behind `client`.
///
/// # Errors
/// The file cannot be read or is not usable as a whole; bad rows are in the
/// report, not errors.
pub async fn import_file(
    client: &Client,
    path: &Path,
    opts: &ImportOptions,
) -> Result<Report, ImportError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| ImportError::Read {
            path: path.to_owned(),
            source,
        })?;
    import(client, &text, opts).await
}

/// Imports the HTCDS CSV `text` into the agency behind `client`, one row
/// after the other.
///
/// # Errors
/// The text is not usable as a whole; bad rows are in the report.
pub async fn import(
    client: &Client,
    text: &str,
    opts: &ImportOptions,
) -> Result<Report, ImportError> {
    let parsed = parse(text, opts)?;
    let mut rows = parsed.rejected;
    let mut kind = None;
    for r in &parsed.rows {
        let outcome = import_row(client, r, opts, &mut kind).await;
        rows.push(RowReport {
            row: r.row,
            record_id: r.record_id.clone(),
            outcome,
        });
    }
    rows.sort_by_key(|r| r.row);
    Ok(Report {
        rows,
        ignored_columns: parsed.ignored_columns,
    })
}

fn refused(step: &str, e: &Error) -> String {
    if e.violations().iter().any(|v| v.field == "idempotency_key") {
        return format!(
            "{step}: the row changed since it was first imported; the agency keeps the first \
             import (record changes as new events): {e}"
        );
    }
    format!("{step} refused: {e}")
}

fn is_new(r: Option<&pb::RecordedEvent>) -> bool {
    r.is_some_and(|r| !r.replayed)
}

async fn import_row(
    client: &Client,
    r: &CaseRow,
    opts: &ImportOptions,
    kind: &mut Option<i32>,
) -> RowOutcome {
    let key = |action: &str| idempotency_key(&opts.source, &r.record_id, action);
    let forms: Vec<i32> = r.forms.iter().map(|f| *f as i32).collect();
    let opened = match client
        .cases()
        .open(pb::OpenCaseRequest {
            idempotency_key: key("open"),
            channel: r.channel as i32,
            presumed_child: r.presumed_child,
            forms: forms.clone(),
            anonymous: false,
            personal: None,
        })
        .await
    {
        Ok(o) => o,
        Err(e) => {
            return RowOutcome::Rejected {
                reason: refused("OpenCase", &e),
                case_id: None,
            };
        }
    };
    let case_id = opened.case_id;
    let rejected = |reason| RowOutcome::Rejected {
        reason,
        case_id: Some(case_id.clone()),
    };
    let mut recorded = Vec::new();
    if is_new(opened.recorded.as_ref()) {
        recorded.push("case opened");
    }
    let agency_kind = match *kind {
        Some(k) => k,
        None => match client
            .cases()
            .get(pb::GetCaseRequest {
                case_id: case_id.clone(),
            })
            .await
        {
            Ok(v) => *kind.insert(v.case.map_or(0, |c| c.custodian_kind)),
            Err(e) => return rejected(refused("GetCase (to learn the agency's kind)", &e)),
        },
    };
    if agency_kind == pb::AgencyKind::Police as i32
        && !(r.indicators.is_empty() && r.forms.is_empty())
    {
        let signal = police::RecordSignalRequest {
            idempotency_key: key("signal"),
            case_id: case_id.clone(),
            channel: r.channel as i32,
            indicators: r.indicators.clone(),
            forms,
            send_to: None,
        };
        match client.police().record_signal(signal).await {
            Ok(s) if is_new(s.recorded.as_ref()) => recorded.push("signal"),
            Ok(_) => {}
            Err(e) => return rejected(refused("RecordSignal", &e)),
        }
    }
    if let Some(outcome) = r.closed {
        let close = pb::CloseCaseRequest {
            idempotency_key: key("close"),
            case_id: case_id.clone(),
            outcome: outcome as i32,
        };
        match client.cases().close(close).await {
            Ok(c) if is_new(c.recorded.as_ref()) => recorded.push("case closed"),
            Ok(_) => {}
            Err(e) => return rejected(refused("CloseCase", &e)),
        }
    }
    if recorded.is_empty() {
        RowOutcome::AlreadyPresent { case_id }
    } else {
        RowOutcome::Imported { case_id, recorded }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_short_and_scoped() {
        let a = idempotency_key("htcds", "CASE-0001", "open");
        assert_eq!(a, idempotency_key("htcds", "CASE-0001", "open"));
        assert_ne!(a, idempotency_key("htcds", "CASE-0001", "signal"));
        assert_ne!(a, idempotency_key("other", "CASE-0001", "open"));
        assert!(idempotency_key(&"s".repeat(64), "x", "signal").len() <= 128);
    }

    #[test]
    fn the_sample_file_parses_with_its_bad_rows_named() {
        let text = include_str!("../../tests/data/htcds_sample.csv");
        let p = parse(text, &ImportOptions::default()).unwrap();
        assert_eq!(p.rows.len(), 5, "{:#?}", p.rejected);
        let bad: Vec<usize> = p.rejected.iter().map(|r| r.row).collect();
        assert_eq!(bad, vec![7, 8, 9, 10, 11, 12]);
        assert!(p.ignored_columns.iter().any(|c| c == "prs_Gender"));
        assert!(p.rejected.iter().any(|r| matches!(
            &r.outcome,
            RowOutcome::Rejected { reason, .. } if reason.contains("repeats row 2")
        )));
    }
}
