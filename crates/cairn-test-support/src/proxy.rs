//! TCP stand-ins between a client and a server: a proxy that counts connections, one that
//! misbehaves on demand (delays the server's first answer, or forwards only so many more
//! bytes and then stalls with the connections open), and a listener that accepts and never
//! answers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of `backend` that counts accepted connections.
pub async fn counting_proxy(backend: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut out) = TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    (addr, count)
}

/// A listener that accepts connections and never answers (keeps them open).
pub async fn stalled_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            held.lock().unwrap().push(s);
        }
    });
    (addr, count)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// Hold the first chunk the server sends on each connection this long (a server slow
    /// to answer new connections; later requests on the connection are not delayed).
    Delay(Duration),
    /// Forward this many more bytes from the server (over all connections), then nothing.
    StallAfter(u64),
}

/// Handle to change the proxy's behaviour while it runs.
#[derive(Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
}

impl Proxy {
    pub async fn start(backend: SocketAddr, mode: Mode) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let m = mode.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = l.accept().await {
                let m = m.clone();
                tokio::spawn(async move {
                    let Ok(out) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let (mut ci, mut co) = inbound.into_split();
                    let (mut si, mut so) = out.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut ci, &mut so).await;
                        let _ = so.shutdown().await;
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut first = true;
                    loop {
                        let n = match si.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mode = *m.lock().unwrap();
                        let n = match mode {
                            Mode::Pass => n,
                            Mode::Delay(d) => {
                                if first {
                                    tokio::time::sleep(d).await;
                                }
                                n
                            }
                            Mode::StallAfter(left) => {
                                let pass = (n as u64).min(left) as usize;
                                *m.lock().unwrap() = Mode::StallAfter(left - pass as u64);
                                pass
                            }
                        };
                        first = false;
                        if n > 0 && co.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        if matches!(*m.lock().unwrap(), Mode::StallAfter(0)) {
                            // stalled: keep both connections open, forward nothing more
                            std::future::pending::<()>().await;
                        }
                    }
                    let _ = co.shutdown().await;
                    up.abort();
                });
            }
        });
        Proxy { addr, mode }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}
