//! Journal import: arbitrary bytes are verified as an export file, exactly
//! as `import` and the auditor read one (streaming, verifying as it reads).
//! Must never panic, and must reject anything that is not a whole, correctly
//! signed export: an accepted input has a trailer signed by a header key.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use waymark_crypto::KeyRing;
use waymark_journal::verify_export;

static RING: LazyLock<KeyRing> = LazyLock::new(waymark_fuzz::ring);

fuzz_target!(|data: &[u8]| {
    if let Ok(summary) = verify_export(std::io::Cursor::new(data), &RING) {
        // Whatever verifies starts with the magic: nothing else can.
        assert!(data.starts_with(waymark_journal::MAGIC), "{summary:?}");
    }
});
