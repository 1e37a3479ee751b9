//! Rust bindings for Waymark's protocol, generated from `proto/` at build time.
//!
//! Package `waymark.v1` holds what every agency speaks: the signed
//! [`Envelope`](waymark::v1::Envelope), journal entries and checkpoints, the
//! event bodies, and the common gRPC services. One package per agency kind
//! (`waymark.police.v1`, ...) holds that kind's own service.
//!
//! With the default `grpc` feature the tonic clients and servers are generated
//! too; without it this is a plain message crate with no network code, which is
//! what the pure `policy` crate builds on.
//!
//! The `.proto` files are the contract with integrators: from the first release
//! on, changes are additive only (`buf breaking` in CI enforces it).

#![allow(missing_docs, unreachable_pub, clippy::all, rustdoc::all)]

/// The encoded `FileDescriptorSet` of every Waymark proto file, for gRPC
/// server reflection and for tools that decode messages dynamically.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/waymark_descriptor.bin"));

/// Generated modules, one per protobuf package.
pub mod waymark {
    /// `waymark.v1`: envelopes, journal, events and the common services.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/waymark.v1.rs"));
    }
    /// `waymark.police.v1`: the police agency service.
    pub mod police {
        /// Version 1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/waymark.police.v1.rs"));
        }
    }
    /// `waymark.shelter.v1`: the shelter agency service.
    pub mod shelter {
        /// Version 1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/waymark.shelter.v1.rs"));
        }
    }
    /// `waymark.ngo.v1`: the NGO agency service.
    pub mod ngo {
        /// Version 1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/waymark.ngo.v1.rs"));
        }
    }
    /// `waymark.returndesk.v1`: the IOM return desk agency service.
    pub mod returndesk {
        /// Version 1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/waymark.returndesk.v1.rs"));
        }
    }
    /// `waymark.labour.v1`: the ministry of labour agency service.
    pub mod labour {
        /// Version 1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/waymark.labour.v1.rs"));
        }
    }
}

pub use waymark::v1;

/// Media type of an [`Envelope`](v1::Envelope) carrying a [`v1::Event`].
pub const PAYLOAD_TYPE_EVENT: &str = "application/vnd.waymark.event.v1+proto";
/// Media type of an [`Envelope`](v1::Envelope) carrying a [`v1::Checkpoint`].
pub const PAYLOAD_TYPE_CHECKPOINT: &str = "application/vnd.waymark.checkpoint.v1+proto";
/// Media type of an [`Envelope`](v1::Envelope) carrying a [`v1::Cosignature`].
pub const PAYLOAD_TYPE_COSIGNATURE: &str = "application/vnd.waymark.cosignature.v1+proto";
/// Media type of an [`Envelope`](v1::Envelope) carrying a [`v1::ExportTrailer`]
/// (the signed last record of a journal export).
pub const PAYLOAD_TYPE_EXPORT_TRAILER: &str = "application/vnd.waymark.export-trailer.v1+proto";
