//! What every device task of one worker thread shares: the recorder, the plan, per-group settings
//! prepared once, the handshake limiter and the thread's scratch buffers.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::metrics::Recorder;
use crate::plan::{DeviceRef, Plan};
use crate::scenario::template::TemplateVars;
use crate::scenario::{BrokerAssign, Group, LateSends, MqttVersion, Qos};

/// Per-group settings in the units the hot path wants.
#[derive(Debug)]
pub struct GroupRuntime {
    pub name: String,
    pub qos: Qos,
    pub retain: bool,
    pub interval_us: u64,
    pub max_inflight: usize,
    pub skip_late: bool,
    /// Observer deliveries per message of this group.
    pub fanout: u64,
}

/// Shared by the device tasks of one worker thread.
pub struct WorkerCtx {
    pub plan: Arc<Plan>,
    pub recorder: Recorder,
    pub groups: Vec<GroupRuntime>,
    /// Broker targets; a device's is chosen by [`WorkerCtx::broker_for`].
    pub brokers: Vec<SocketAddr>,
    /// The WebSocket endpoint of each broker target (ws://), by the index of `brokers`.
    pub ws: Vec<Option<crate::mqtt::WsEndpoint>>,
    pub assign: BrokerAssign,
    pub source_addresses: Vec<std::net::IpAddr>,
    pub version: MqttVersion,
    pub keep_alive_us: u64,
    pub connect_timeout: std::time::Duration,
    pub drain_us: u64,
    pub connecting: Semaphore,
    pub cancel: CancellationToken,
    /// The devices waiting for `cancel` (one 16-byte waiter each, see [`super::cancel_wait`]); the
    /// worker wakes them all once it is cancelled.
    pub cancel_waiters: super::cancel_wait::Waiters,
    /// Cancelled once every command sent has its reply (devices with commands stop listening then).
    pub commands_done: CancellationToken,
    pub connect_rate_per_s: f64,
    /// Read scratch buffer shared by every session of this thread.
    pub read_buf: RefCell<Vec<u8>>,
    /// Outgoing packet assembly buffer.
    pub write_buf: RefCell<Vec<u8>>,
    /// Payload encoding buffer.
    pub payload_buf: RefCell<Vec<u8>>,
    /// TLS clients per broker target (`None`: plain), this worker's own session cache; the error of
    /// `broker.tls` if it could not be built (checked before the run, so only a file changed since).
    pub tls: Result<Vec<Option<crate::mqtt::TlsClient>>, String>,
    /// `broker.tls.issue`: signs each device's certificate at its connect.
    pub minter: Option<std::sync::Arc<crate::tls::Minter>>,
}

impl WorkerCtx {
    pub fn new(
        plan: Arc<Plan>,
        recorder: Recorder,
        brokers: Vec<SocketAddr>,
        (cancel, commands_done): (CancellationToken, CancellationToken),
        handshake_permits: usize,
        drain_us: u64,
    ) -> Rc<WorkerCtx> {
        let s = &plan.scenario;
        let fanout = s.fanout();
        let groups = s
            .groups
            .iter()
            .zip(fanout)
            .map(|(g, fanout): (&Group, u64)| GroupRuntime {
                name: g.name.clone(),
                qos: g.qos,
                retain: g.retain,
                interval_us: u64::try_from(g.interval.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1),
                max_inflight: usize::from(g.max_inflight.max(1)),
                skip_late: g.late_sends == LateSends::Skip,
                fanout,
            })
            .collect();
        let connect_rate_per_s = plan.connect_rate_per_s();
        let ws = super::ws_endpoints(&plan);
        let tls = super::tls::clients(&s.broker).map_err(|e| e.to_string());
        // an error here is already in `tls` (it builds the same minter)
        let minter = super::tls::minter(&s.broker).ok().flatten();
        Rc::new(WorkerCtx {
            ws,
            version: s.broker.protocol,
            keep_alive_us: u64::try_from(s.broker.keep_alive.as_micros()).unwrap_or(u64::MAX),
            connect_timeout: s.broker.connect_timeout,
            groups,
            recorder,
            assign: s.broker.assign,
            source_addresses: s.broker.source_addresses.clone(),
            brokers,
            drain_us,
            connecting: Semaphore::new(handshake_permits.max(1)),
            cancel_waiters: super::cancel_wait::Waiters::new(cancel.clone()),
            cancel,
            commands_done,
            connect_rate_per_s,
            plan,
            read_buf: RefCell::new(Vec::new()),
            write_buf: RefCell::new(Vec::with_capacity(16 * 1024)),
            payload_buf: RefCell::new(Vec::with_capacity(4 * 1024)),
            tls,
            minter,
        })
    }

    /// The TLS client of device `d`'s broker target (`None`: plain TCP).
    pub fn tls_for(
        &self,
        d: DeviceRef,
    ) -> Result<Option<&crate::mqtt::TlsClient>, crate::mqtt::ConnectError> {
        match &self.tls {
            Ok(list) => Ok(list
                .get(broker_index(self.assign, self.brokers.len(), d))
                .and_then(Option::as_ref)),
            Err(m) => Err(crate::mqtt::ConnectError::Tls {
                reason: crate::mqtt::TlsFailure::Other,
                detail: m.clone(),
            }),
        }
    }

    /// The broker a device connects to, and the local address it binds (if a pool is configured).
    pub fn broker_for(&self, d: DeviceRef) -> (SocketAddr, Option<std::net::IpAddr>) {
        let n = self.brokers.len().max(1) as u64;
        let broker = self
            .brokers
            .get(broker_index(self.assign, self.brokers.len(), d))
            .or(self.brokers.first())
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 1883)));
        let source = if self.source_addresses.is_empty() {
            None
        } else {
            // Spread each broker's devices over the pool.
            let per_broker = d.global / n;
            self.source_addresses
                .get(usize::try_from(per_broker % self.source_addresses.len() as u64).unwrap_or(0))
                .copied()
        };
        (broker, source)
    }

    /// The WebSocket endpoint of a device's broker (ws://), `None` for plain MQTT.
    pub fn ws_for(&self, d: DeviceRef) -> Option<&crate::mqtt::WsEndpoint> {
        self.ws
            .get(broker_index(self.assign, self.brokers.len(), d))
            .or(self.ws.first())
            .and_then(Option::as_ref)
    }

    /// Template values of a device.
    pub fn vars<'a>(&'a self, d: DeviceRef, client_id: &'a str) -> TemplateVars<'a> {
        TemplateVars {
            group: self.groups.get(d.group).map_or("", |g| g.name.as_str()),
            index: d.index,
            global_index: d.global,
            client_id,
        }
    }

    /// `(clean session, MQTT 5 session expiry in seconds)` for the connections of group `g`.
    pub fn session_of(&self, g: usize) -> (bool, Option<u32>) {
        let s = &self.plan.scenario;
        match s.groups.get(g).and_then(|g| g.session.as_ref()) {
            Some(x) if !x.clean => (
                false,
                Some(u32::try_from(x.expiry.as_secs()).unwrap_or(u32::MAX)),
            ),
            Some(_) => (true, None),
            None => (s.broker.clean_session, None),
        }
    }

    /// The client id of a device.
    pub fn client_id(&self, d: DeviceRef) -> String {
        let group = self.groups.get(d.group).map_or("", |g| g.name.as_str());
        self.plan.scenario.broker.client_id.render(&TemplateVars {
            group,
            index: d.index,
            global_index: d.global,
            client_id: "",
        })
    }

    /// The publish topic of a device.
    pub fn topic(&self, d: DeviceRef, client_id: &str) -> String {
        let group = self.groups.get(d.group).map_or("", |g| g.name.as_str());
        match self.plan.scenario.groups.get(d.group) {
            Some(g) => g.topic.render(&TemplateVars {
                group,
                index: d.index,
                global_index: d.global,
                client_id,
            }),
            None => String::new(),
        }
    }
}

/// Which broker target (index) device `d` connects to, out of `brokers`.
pub fn broker_index(assign: BrokerAssign, brokers: usize, d: DeviceRef) -> usize {
    let n = brokers.max(1) as u64;
    let pick = match assign {
        BrokerAssign::RoundRobin => d.global % n,
        BrokerAssign::ByGroup => d.group as u64 % n,
    };
    usize::try_from(pick).unwrap_or(0)
}
