//! A TCP load balancer in front of several orchestrator replicas, as a
//! Kubernetes Service or an HAProxy would be: each new connection goes to
//! the next replica that accepts it, so clients move on when one dies.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The balancer; it stops when dropped.
pub struct Balancer {
    /// Where clients connect: `http://127.0.0.1:port`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    /// Balances connections over `ports` on 127.0.0.1 (round robin,
    /// skipping replicas that refuse).
    pub async fn start(ports: Vec<u16>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let ports = Arc::new(ports);
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let ports = ports.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    if let Some(backend) = connect(&ports, &next).await {
                        forward(client, backend).await;
                    }
                });
            }
        });
        Balancer { url, task }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next replica that accepts a connection, trying each once.
async fn connect(ports: &[u16], next: &AtomicUsize) -> Option<TcpStream> {
    for _ in 0..ports.len() {
        let port = ports[next.fetch_add(1, Ordering::Relaxed) % ports.len()];
        let attempt = tokio::time::timeout(
            Duration::from_millis(500),
            TcpStream::connect(("127.0.0.1", port)),
        );
        if let Ok(Ok(stream)) = attempt.await {
            let _ = stream.set_nodelay(true);
            return Some(stream);
        }
    }
    None
}

async fn forward(mut client: TcpStream, mut backend: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
}
