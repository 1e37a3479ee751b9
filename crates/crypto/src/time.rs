//! Conversions between protobuf timestamps and Waymark's millisecond
//! [`Timestamp`].

use waymark_types::Timestamp;

/// Converts a protobuf timestamp to milliseconds since the epoch, truncating
/// sub-millisecond precision and saturating at the `i64` range.
pub fn timestamp_from_proto(t: &prost_types::Timestamp) -> Timestamp {
    let ms = i128::from(t.seconds) * 1000 + i128::from(t.nanos) / 1_000_000;
    Timestamp::from_millis(i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX }))
}

/// Converts a millisecond timestamp to a protobuf timestamp.
pub fn proto_from_timestamp(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.millis();
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        // rem_euclid(1000) is in 0..1000, so the product fits in i32.
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_negative_times() {
        for ms in [0, 1, 999, 1_795_449_540_123, -1, -1001] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(timestamp_from_proto(&proto_from_timestamp(t)), t);
        }
    }
}
