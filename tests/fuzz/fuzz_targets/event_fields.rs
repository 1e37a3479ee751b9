//! Event field validation and the policy core: arbitrary bytes are decoded
//! as a sequence of length-delimited `waymark.v1.Event`s, converted with
//! `event_from_proto` (every field checked) and folded with the policy
//! replay in an agency view and the auditor's view. Must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use waymark_policy::{RuleSets, View, event_from_proto, replay_journal};
use waymark_proto::v1::Event;
use waymark_types::AgencyId;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    let mut events = Vec::new();
    while !buf.is_empty() && events.len() < 64 {
        let Ok(e) = Event::decode_length_delimited(&mut buf) else {
            break;
        };
        if let Ok(w) = event_from_proto(&e)
            && let Some(ev) = w.into_event()
        {
            events.push(ev);
        }
    }
    let rules = RuleSets::builtin();
    let me = AgencyId::new(waymark_fuzz::ME).expect("fixed id");
    let _ = replay_journal(&View::Agency(me), events.iter(), &rules);
    let _ = replay_journal(&View::Auditor, events.iter(), &rules);
});
