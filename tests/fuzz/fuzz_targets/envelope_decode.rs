//! Bus message screening: arbitrary bytes on an arbitrary subject go through
//! the inbox's stateless checks (envelope, payload type, event, subject,
//! signature, signer, field shape). Must never panic; whatever passes must be
//! signed by the subject's sender with a directory key.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use waymark_bus::Directory;
use waymark_fuzz::{Screened, directory, screen, split_subject};

static DIRECTORY: LazyLock<Directory> = LazyLock::new(directory);

fuzz_target!(|data: &[u8]| {
    let Some((subject, bytes)) = split_subject(data) else {
        return;
    };
    if let Screened::Passed(w) = screen(&DIRECTORY, subject, bytes, 1 << 20) {
        // Only a genuinely signed message gets here; its id round-trips.
        let id = w.id().to_string();
        assert_eq!(
            waymark_types::EventId::parse(&id)
                .map(|e| e.to_string())
                .ok(),
            Some(id)
        );
    }
});
