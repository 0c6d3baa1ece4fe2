//! The embedded broker's TLS front, for real: a rustls client connects through the front to the
//! embedded rumqttd, sends an MQTT CONNECT and reads the CONNACK, over TLS 1.2 and 1.3; with client
//! certificates required, a client without one or with one from another CA is refused and one minted
//! by the front's CA is accepted; and the front holds no connection after either side closes, a
//! handshake stalls, or it is stopped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fleetstorm::broker::{self, EmbeddedBroker, EmbeddedLimits, FrontOptions, TlsFront};
use fleetstorm::tls::{Identity, LocalCa, Minter};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const DEADLINE: Duration = Duration::from_secs(10);

fn embedded() -> EmbeddedBroker {
    static BROKER: OnceLock<EmbeddedBroker> = OnceLock::new();
    *BROKER.get_or_init(|| broker::start_embedded(EmbeddedLimits::default()).unwrap())
}

fn unique_id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "tls-material-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s) for `client_id`.
fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    body.extend_from_slice(&u16::try_from(client_id.len()).unwrap().to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut p = vec![0x10, u8::try_from(body.len()).unwrap()];
    p.extend(body);
    p
}

const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

fn client_config(
    trust: &CertificateDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
    identity: Option<&Identity>,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let b = ClientConfig::builder_with_provider(fleetstorm::tls::provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots);
    let c = match identity {
        Some(id) => b
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    Arc::new(c)
}

async fn tls_connect(
    front: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(front).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// CONNECT, then the first four bytes back (or the error / early end).
async fn mqtt_connect(tls: &mut TlsStream<TcpStream>, client_id: &str) -> std::io::Result<[u8; 4]> {
    tls.write_all(&connect_packet(client_id)).await?;
    tls.flush().await?;
    let mut ack = [0u8; 4];
    tokio::time::timeout(DEADLINE, tls.read_exact(&mut ack))
        .await
        .map_err(|_| std::io::Error::other("no CONNACK within the deadline"))??;
    Ok(ack)
}

/// Whether a full TLS + MQTT connect through the front gets an accepting CONNACK.
async fn connects(front: SocketAddr, config: Arc<ClientConfig>, name: &str) -> Result<(), String> {
    let mut tls = tls_connect(front, config, name)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let ack = mqtt_connect(&mut tls, &unique_id("c"))
        .await
        .map_err(|e| format!("after handshake: {e}"))?;
    if ack == CONNACK_ACCEPTED {
        Ok(())
    } else {
        Err(format!("unexpected reply {ack:02x?}"))
    }
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn front(local: &LocalCa, opts: FrontOptions) -> TlsFront {
    TlsFront::start(embedded().v4, local.server(), opts).unwrap()
}

#[tokio::test]
async fn connect_through_the_front_gets_a_connack_over_tls_1_2_and_1_3() {
    let local = LocalCa::generate().unwrap();
    let f = front(&local, FrontOptions::default());
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        for name in ["localhost", "127.0.0.1"] {
            let config = client_config(local.cert_der(), version, None);
            connects(f.addr(), config, name)
                .await
                .unwrap_or_else(|e| panic!("{version:?} to {name}: {e}"));
        }
    }
    assert_eq!(f.handshake_failures(), 0);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_generated_ca_fails_verification() {
    let local = LocalCa::generate().unwrap();
    let other = LocalCa::generate().unwrap();
    let f = front(&local, FrontOptions::default());
    let config = client_config(other.cert_der(), &rustls::version::TLS13, None);
    let e = tls_connect(f.addr(), config, "localhost")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn mtls_refuses_no_certificate_and_other_cas_and_accepts_minted_ones() {
    let local = LocalCa::generate().unwrap();
    let opts = FrontOptions {
        client_ca: Some(vec![local.cert_der().clone()]),
        ..FrontOptions::default()
    };
    let f = front(&local, opts);
    let minter = local
        .minter("CN={client_id}", Duration::from_secs(600))
        .unwrap();
    let stranger = Minter::self_generated("CN={client_id}", Duration::from_secs(600)).unwrap();

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let id = minter.issue(&unique_id("minted")).unwrap();
        connects(
            f.addr(),
            client_config(local.cert_der(), version, Some(&id)),
            "localhost",
        )
        .await
        .unwrap_or_else(|e| panic!("{version:?}: a minted certificate is accepted: {e}"));

        let before = f.handshake_failures();
        let none = connects(
            f.addr(),
            client_config(local.cert_der(), version, None),
            "localhost",
        )
        .await;
        assert!(
            none.is_err(),
            "{version:?}: a client without a certificate is refused"
        );
        let foreign = stranger.issue(&unique_id("stranger")).unwrap();
        let other = connects(
            f.addr(),
            client_config(local.cert_der(), version, Some(&foreign)),
            "localhost",
        )
        .await;
        assert!(
            other.is_err(),
            "{version:?}: a certificate from another CA is refused"
        );
        wait_until("the front counted both refusals", || {
            f.handshake_failures() >= before + 2
        })
        .await;
    }
    wait_until("no connection is held", || f.active() == 0).await;
}

#[tokio::test]
async fn start_embedded_tls_fronts_both_listeners() {
    let broker = embedded();
    let local = LocalCa::generate().unwrap();
    let tls = broker::start_embedded_tls(&broker, local, None, EmbeddedLimits::default()).unwrap();
    let config = client_config(tls.ca.cert_der(), &rustls::version::TLS13, None);
    connects(tls.v4.addr(), Arc::clone(&config), "localhost")
        .await
        .unwrap();
    // The v5 front reaches rumqttd's MQTT 5 listener: an MQTT 5 CONNECT gets a success CONNACK.
    let mut tls = tls_connect(tls.v5.addr(), config, "localhost")
        .await
        .unwrap();
    let id = unique_id("v5");
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0];
    body.extend_from_slice(&u16::try_from(id.len()).unwrap().to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap()];
    packet.extend(body);
    tls.write_all(&packet).await.unwrap();
    tls.flush().await.unwrap();
    let mut head = [0u8; 4];
    tokio::time::timeout(DEADLINE, tls.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head[0], 0x20, "CONNACK");
    assert_eq!(
        (head[2], head[3]),
        (0, 0),
        "session not present, reason success"
    );
}

#[tokio::test]
async fn the_front_lets_go_when_the_client_closes() {
    let local = LocalCa::generate().unwrap();
    let f = front(&local, FrontOptions::default());
    let config = client_config(local.cert_der(), &rustls::version::TLS13, None);
    let mut streams = Vec::new();
    for _ in 0..5 {
        let mut tls = tls_connect(f.addr(), Arc::clone(&config), "localhost")
            .await
            .unwrap();
        assert_eq!(
            mqtt_connect(&mut tls, &unique_id("close")).await.unwrap(),
            CONNACK_ACCEPTED
        );
        streams.push(tls);
    }
    wait_until("five connections are held", || f.active() == 5).await;
    // Some close cleanly (close_notify + FIN), some just drop the socket.
    for (i, mut tls) in streams.into_iter().enumerate() {
        if i % 2 == 0 {
            tls.shutdown().await.unwrap();
        }
        drop(tls);
    }
    wait_until("every connection is released", || f.active() == 0).await;
}

#[tokio::test]
async fn the_front_lets_go_when_the_broker_closes_even_if_the_client_never_does() {
    let local = LocalCa::generate().unwrap();
    let opts = FrontOptions {
        close_grace: Duration::from_millis(200),
        ..FrontOptions::default()
    };
    let f = front(&local, opts);
    let config = client_config(local.cert_der(), &rustls::version::TLS13, None);
    let mut tls = tls_connect(f.addr(), config, "localhost").await.unwrap();
    assert_eq!(
        mqtt_connect(&mut tls, &unique_id("disc")).await.unwrap(),
        CONNACK_ACCEPTED
    );
    // DISCONNECT: rumqttd closes its side. The client keeps its socket open and never closes.
    tls.write_all(&[0xe0, 0x00]).await.unwrap();
    tls.flush().await.unwrap();
    let mut rest = Vec::new();
    let end = tokio::time::timeout(DEADLINE, tls.read_to_end(&mut rest)).await;
    assert!(end.is_ok(), "the client sees the connection end");
    wait_until("the front released the half-open connection", || {
        f.active() == 0
    })
    .await;
    drop(tls);
}

#[tokio::test]
async fn a_stalled_handshake_is_dropped_and_counted() {
    let local = LocalCa::generate().unwrap();
    let opts = FrontOptions {
        handshake_timeout: Duration::from_millis(200),
        ..FrontOptions::default()
    };
    let f = front(&local, opts);
    let mut tcp = TcpStream::connect(f.addr()).await.unwrap();
    wait_until("the front holds the connection", || f.active() == 1).await;
    // Say nothing: the front gives up after its handshake timeout and closes the socket.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(DEADLINE, tcp.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "closed by the front: {n:?}");
    wait_until("released", || f.active() == 0).await;
    assert_eq!(f.handshake_failures(), 1);
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let local = LocalCa::generate().unwrap();
    let opts = FrontOptions {
        max_connections: 2,
        ..FrontOptions::default()
    };
    let f = front(&local, opts);
    let config = client_config(local.cert_der(), &rustls::version::TLS13, None);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tls = tls_connect(f.addr(), Arc::clone(&config), "localhost")
            .await
            .unwrap();
        assert_eq!(
            mqtt_connect(&mut tls, &unique_id("lim")).await.unwrap(),
            CONNACK_ACCEPTED
        );
        held.push(tls);
    }
    let third = connects(f.addr(), Arc::clone(&config), "localhost").await;
    assert!(third.is_err(), "over the limit");
    assert_eq!(f.refused(), 1);
    drop(held);
    wait_until("released", || f.active() == 0).await;
    connects(f.addr(), config, "localhost")
        .await
        .expect("below the limit again");
}

#[tokio::test]
async fn stopping_the_front_closes_its_connections() {
    let local = LocalCa::generate().unwrap();
    let f = front(&local, FrontOptions::default());
    let addr = f.addr();
    let config = client_config(local.cert_der(), &rustls::version::TLS13, None);
    let mut tls = tls_connect(addr, Arc::clone(&config), "localhost")
        .await
        .unwrap();
    assert_eq!(
        mqtt_connect(&mut tls, &unique_id("stop")).await.unwrap(),
        CONNACK_ACCEPTED
    );
    tokio::task::spawn_blocking(move || f.stop()).await.unwrap();
    let mut rest = Vec::new();
    let end = tokio::time::timeout(DEADLINE, tls.read_to_end(&mut rest)).await;
    assert!(end.is_ok(), "the connection ends when the front stops");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "and nobody listens any more"
    );
}
