//! Accepting connections: HTTP/1.1 with a header (and idle keep-alive) timeout, and a cap on open connections.
//!
//! Without these, a client that opens a connection and sends nothing (or half a request) holds a
//! file descriptor forever, and about a thousand of them stop all serving. Past the cap, the
//! connection that has been idle longest (no request in flight, like a silent one) is closed to
//! make room, as nginx reuses idle keep-alive connections; when every connection is busy, a new
//! one is answered 503 and closed, and accepting goes on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tower_service::Service;

use super::guard::Guard;

/// How long a stopping server lets its connections finish their requests.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Sockets past the cap that may be closing (made room for) or being answered 503 at once; accepting
/// waits while there are more, so a burst of connections cannot run the process out of file descriptors.
const CLOSING_AT_ONCE: usize = 64;

/// How the listener treats connections and requests.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Which `Host` and `Origin` a request may have at all; checked before any route.
    pub guard: Guard,
    /// Who may invoke endpoints (the API checks its own routes).
    pub access: crate::auth::Access,
    /// How long a connection may go without a request in flight: from when it opens or its last
    /// answer, until a request's headers are complete. So the header and the idle keep-alive timeout.
    pub header_timeout: Duration,
    /// Open connections past which the longest-idle one is closed (or, all busy, a new one refused).
    pub max_connections: usize,
}

/// The open connections of every router thread.
pub struct Connections {
    max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
    /// Accepted sockets not yet closed: the open connections, and those closing or being refused.
    sockets: AtomicUsize,
    /// Signalled when a socket closes.
    room: tokio::sync::Notify,
}

/// One connection's state, written by the thread that serves it with relaxed atomics (the request path takes no lock).
struct Slot {
    in_flight: AtomicU32,
    /// Milliseconds since `epoch` of the last request's end, or the accept.
    last_active_ms: AtomicU64,
    close: tokio::sync::Notify,
}

/// A connection's place among the open ones; dropping it frees the place.
struct Ticket {
    connections: Arc<Connections>,
    id: u64,
    slot: Arc<Slot>,
    _socket: Socket,
}

/// An accepted socket, counted until it is closed.
struct Socket(Arc<Connections>);

impl Drop for Socket {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::Relaxed);
        self.0.room.notify_waiters();
    }
}

impl Connections {
    pub fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max: max.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::default(),
            sockets: AtomicUsize::new(0),
            room: tokio::sync::Notify::new(),
        })
    }

    /// Waits until one more socket fits: no more than [`CLOSING_AT_ONCE`] past the cap are closing.
    async fn room_for_one(&self) {
        loop {
            let closed = self.room.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.sockets.load(Ordering::Relaxed) < self.max + CLOSING_AT_ONCE {
                return;
            }
            // Bounded: a socket closed on another thread between the check and `enable` is seen next round.
            let _ = tokio::time::timeout(Duration::from_millis(100), closed).await;
        }
    }

    /// Counts a socket just accepted.
    fn socket(self: &Arc<Self>) -> Socket {
        self.sockets.fetch_add(1, Ordering::Relaxed);
        Socket(self.clone())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A place for a new connection, closing the longest-idle one when all are taken; `None` when every one is busy.
    fn admit(self: &Arc<Self>, socket: Socket) -> Result<Ticket, Socket> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= self.max {
            let idlest = open
                .iter()
                .filter(|(_, slot)| slot.in_flight.load(Ordering::Relaxed) == 0)
                .min_by_key(|(_, slot)| slot.last_active_ms.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            let Some(idlest) = idlest else { return Err(socket) };
            if let Some(evicted) = open.remove(&idlest) {
                evicted.close.notify_one();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            in_flight: AtomicU32::new(0),
            last_active_ms: AtomicU64::new(self.now_ms()),
            close: tokio::sync::Notify::new(),
        });
        open.insert(id, slot.clone());
        Ok(Ticket { connections: self.clone(), id, slot, _socket: socket })
    }
}

impl Connections {
    /// Closes every connection with no request in flight whose last request ended (or that opened)
    /// more than `timeout` ago: silent, slow-header and idle keep-alive connections alike.
    ///
    /// A sweep rather than a timer per request: the request path only stores two atomics.
    pub fn close_idle(&self, timeout: Duration) {
        let now = self.now_ms();
        let timeout = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, slot| {
            let idle = slot.in_flight.load(Ordering::Relaxed) == 0
                && now.saturating_sub(slot.last_active_ms.load(Ordering::Relaxed)) > timeout;
            if idle {
                slot.close.notify_one();
            }
            !idle
        });
    }

    /// Sweeps with [`Connections::close_idle`] until dropped, often enough to close a connection
    /// within half a timeout of its time.
    pub async fn sweep(self: Arc<Self>, timeout: Duration) {
        let every = (timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            tokio::time::sleep(every).await;
            self.close_idle(timeout);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.connections.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

/// Accepts and serves connections on this thread until `stopped` changes or its sender is dropped,
/// then lets open connections finish their requests for up to [`STOP_GRACE`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    connections: Arc<Connections>,
    limits: Limits,
    mut stopped: tokio::sync::watch::Receiver<()>,
) {
    let mut served = tokio::task::JoinSet::new();
    let mut last_accept_error: Option<Instant> = None;
    loop {
        tokio::select! {
            accepted = async { connections.room_for_one().await; listener.accept().await } => match accepted {
                Ok((stream, _)) => match connections.admit(connections.socket()) {
                    Ok(ticket) => {
                        served.spawn(connection(stream, app.clone(), ticket, limits.clone(), stopped.clone()));
                    }
                    Err(socket) => {
                        served.spawn(refuse(stream, socket));
                    }
                },
                Err(e) => {
                    // Out of file descriptors, most likely: say so now and then, wait a little, go on accepting.
                    if last_accept_error.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        tracing::error!("accepting a connection: {e}");
                        last_accept_error = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections as they end, so the set stays the size of what is open.
            Some(_) = served.join_next(), if !served.is_empty() => {}
            _ = stopped.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(STOP_GRACE, async { while served.join_next().await.is_some() {} }).await;
}

/// Serves one connection until the client closes it, a timeout closes it, or it is closed to make room or to stop.
async fn connection(
    stream: tokio::net::TcpStream,
    app: axum::Router,
    ticket: Ticket,
    limits: Limits,
    mut stopped: tokio::sync::watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let ticket = Arc::new(ticket);
    let counted = ticket.clone();
    let (guard, access) = (limits.guard.clone(), limits.access.clone());
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let ticket = counted.clone();
        let mut app = app.clone();
        ticket.slot.in_flight.fetch_add(1, Ordering::Relaxed);
        // S3's requests authorize themselves (and answer a refusal as S3 does), whatever their path.
        let s3 = crate::s3::addressed(request.headers());
        let refusal = guard
            .refusal(request.method(), request.headers())
            .or_else(|| (!s3).then(|| access.invocation_refusal(request.uri().path(), request.headers())).flatten());
        // An API or dashboard answer may stream (events, logs), as an S3 object does: it is in flight until its
        // body ends, or an idle sweep would close it. Invocations answer whole, and skip the wrapping.
        let path = request.uri().path();
        let streams = s3 || path.starts_with("/api/") || path.starts_with("/live/");
        async move {
            let response = match refusal {
                Some(refusal) => Ok(axum::response::IntoResponse::into_response(refusal)),
                None => app.call(request.map(Body::new)).await,
            };
            let in_flight = InFlight(ticket);
            if !streams {
                return response;
            }
            response.map(|response| {
                response.map(|body| {
                    Body::from_stream(futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
                        let _held = &in_flight;
                        chunk
                    }))
                })
            })
        }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades();
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            // Closed to make room, or idle past the header timeout: it has no request in flight, at most
            // a partial one that would keep it open.
            () = ticket.slot.close.notified() => break,
            _ = stopped.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A request counted in flight on its connection until this is dropped.
struct InFlight(Arc<Ticket>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.slot.last_active_ms.store(self.0.connections.now_ms(), Ordering::Relaxed);
        self.0.slot.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers a connection past the cap with 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream, _socket: Socket) {
    let body = r#"{"error":{"code":"too_many_connections","message":"the server has as many connections as it takes, all busy","hint":"retry shortly"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Raises this process's soft open-files limit to its hard limit, and returns the soft limit now in force.
pub fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// The default connection cap: what the open-files limit allows, less room for instances, logs and the database.
pub fn default_max_connections(open_files: u64) -> usize {
    const OTHER_FILES: u64 = 256;
    const AT_MOST: u64 = 16_384;
    usize::try_from(open_files.saturating_sub(OTHER_FILES).clamp(64, AT_MOST)).unwrap_or(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let connections = Connections::new(2);
        let admit = || connections.admit(connections.socket());
        let first = admit().ok().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = admit().ok().unwrap();
        second.slot.in_flight.store(1, Ordering::Relaxed);
        // Full: the idle first one goes, the busy second stays.
        let third = admit().ok().unwrap();
        assert!(!connections.open.lock().unwrap().contains_key(&first.id));
        assert!(connections.open.lock().unwrap().contains_key(&second.id));
        // Full again, with only busy ones: refused.
        third.slot.in_flight.store(1, Ordering::Relaxed);
        assert!(admit().is_err());
        drop(second);
        let fourth = admit();
        assert!(fourth.is_ok(), "a closed connection frees its place");
        // Every accepted socket is counted until it is dropped, whichever way it went.
        drop((first, third));
        assert_eq!(connections.sockets.load(Ordering::Relaxed), 1);
        drop(fourth);
        assert_eq!(connections.sockets.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn connections_idle_past_the_timeout_are_closed_and_busy_ones_are_not() {
        let connections = Connections::new(10);
        let idle = connections.admit(connections.socket()).ok().unwrap();
        let busy = connections.admit(connections.socket()).ok().unwrap();
        busy.slot.in_flight.store(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(30));
        let fresh = connections.admit(connections.socket()).ok().unwrap();
        connections.close_idle(Duration::from_millis(20));
        let open = connections.open.lock().unwrap();
        assert!(!open.contains_key(&idle.id) && open.contains_key(&busy.id) && open.contains_key(&fresh.id));
    }

    #[test]
    fn the_cap_leaves_room_under_the_open_files_limit() {
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(100), 64);
        assert_eq!(default_max_connections(1 << 20), 16_384);
    }
}
