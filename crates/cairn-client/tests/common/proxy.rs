//! A TCP proxy in front of a storage server that misbehaves on demand: it can delay
//! everything the server sends, or forward only so many more bytes from the server and
//! then stop forwarding (keeping the connections open: a stalled server).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
