//! [`NatsCluster`]: several [`NatsServer`]s routed together on loopback,
//! JetStream on each (R3 streams need three nodes).
//!
//! JetStream clustering needs every node to have its routes configured at
//! start, so route ports cannot be left to the server. They are reserved by
//! binding `127.0.0.1:0` listeners, held until just before the servers spawn;
//! if another socket grabs one in that short window, the node exits with
//! "address already in use" and the whole cluster is started again with fresh
//! ports (up to three attempts). Client and monitor ports stay server-chosen.
//! All nodes spawn before any is awaited: `/healthz` passes only once the
//! JetStream meta group has a leader, which needs a quorum of peers. Then the
//! cluster is ready when the meta leader reports every other node current.

use std::net::TcpListener;
use std::time::Duration;

use crate::config::ClusterConfig;
use crate::server::is_port_clash;
use crate::{Error, NatsServer, NatsServerBuilder, Result};

const CLUSTER_NAME: &str = "waymark-test";
const ATTEMPTS: usize = 3;
const META_TIMEOUT: Duration = Duration::from_secs(30);

/// A running cluster; every node is killed and reaped on drop.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes (`n1`, `n2`, ...) with the [`NatsServer`] defaults.
    ///
    /// # Errors
    /// As [`NatsCluster::start_with`].
    pub fn start(size: usize) -> Result<Self> {
        Self::start_with(size, |_, builder| builder)
    }

    /// Starts `size` nodes, letting `configure(index, builder)` adjust each
    /// node's options (names must stay unique); waits until all are ready.
    ///
    /// # Errors
    /// As [`NatsServerBuilder::start`]; [`Error::Io`] if no loopback port
    /// can be reserved.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn start_with(
        size: usize,
        configure: impl Fn(usize, NatsServerBuilder) -> NatsServerBuilder,
    ) -> Result<Self> {
        assert!(size > 0, "a cluster needs at least one node");
        let mut attempt = 1;
        loop {
            match Self::try_start(size, &configure) {
                Err(error) if is_port_clash(&error) && attempt < ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    fn try_start(
        size: usize,
        configure: &impl Fn(usize, NatsServerBuilder) -> NatsServerBuilder,
    ) -> Result<Self> {
        let reserve = || {
            TcpListener::bind(("127.0.0.1", 0)).map_err(|source| Error::Io {
                path: "127.0.0.1:0 (route port)".into(),
                source,
            })
        };
        let listeners = (0..size).map(|_| reserve()).collect::<Result<Vec<_>>>()?;
        let route_ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|source| Error::Io {
                path: "route listener".into(),
                source,
            })?;
        let mut nodes = Vec::with_capacity(size);
        for (index, &port) in route_ports.iter().enumerate() {
            let builder = configure(index, NatsServer::builder().name(format!("n{}", index + 1)));
            let cluster = ClusterConfig {
                name: CLUSTER_NAME.to_owned(),
                port,
                route_ports: route_ports.clone(),
            };
            nodes.push(builder.prepare(Some(cluster))?);
        }
        drop(listeners);
        for node in &mut nodes {
            node.spawn()?;
        }
        for node in &mut nodes {
            node.await_ready()?;
        }
        let cluster = Self { nodes };
        crate::wait_for_sync(
            META_TIMEOUT,
            "the JetStream meta leader to see every peer current",
            || cluster.meta_ready(),
        )?;
        Ok(cluster)
    }

    /// Whether some node leads the JetStream meta group and reports all
    /// other nodes as current replicas. `/healthz` alone passes once a node
    /// follows a leader, before the leader knows every peer; creating an R3
    /// stream then may fail placement.
    fn meta_ready(&self) -> bool {
        self.nodes.iter().any(|node| {
            let Ok(jsz) = node.monitor_json("/jsz") else {
                return false;
            };
            let meta = &jsz["meta_cluster"];
            let replicas = meta["replicas"].as_array().map_or(&[][..], Vec::as_slice);
            meta["leader"].as_str() == Some(node.name())
                && replicas.len() + 1 == self.nodes.len()
                && replicas.iter().all(|r| r["current"] == true)
        })
    }

    /// The nodes, in start order.
    #[must_use]
    pub fn nodes(&self) -> &[NatsServer] {
        &self.nodes
    }

    /// One node, to kill, stop or restart it.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn node_mut(&mut self, index: usize) -> &mut NatsServer {
        &mut self.nodes[index]
    }

    /// Client URLs of all nodes, for [`crate::connect_urls`].
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }
}
