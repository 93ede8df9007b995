//! `tcp-echo`, the plain TCP server of Istio's TCP authorization task: it answers each
//! line it reads with the same line prefixed by `hello `.

use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Longest line the server reads; a longer one ends the connection.
const MAX_LINE: usize = 64 * 1024;

/// Echoes `hello <line>` for every line until the client closes or sends a line over
/// [`MAX_LINE`] bytes.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        let read = (&mut lines)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await;
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if !line.ends_with('\n') && line.len() >= MAX_LINE {
            break;
        }
        let reply = format!("hello {}", line.trim_end_matches(['\r', '\n']));
        if write.write_all(reply.as_bytes()).await.is_err() || write.write_all(b"\n").await.is_err()
        {
            return;
        }
    }
    // A clean close (a TLS close_notify over mTLS) tells the client the reply is complete.
    let _ = write.shutdown().await;
}

/// The HTTP side of the workload: only the health check its agent probes.
pub fn router() -> Router {
    Router::new().route("/health", get(|| async { "tcp-echo is healthy" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echoes_each_line_with_hello() {
        let (client, server) = tokio::io::duplex(1024);
        tokio::spawn(serve(server));
        let (mut read, mut write) = tokio::io::split(client);
        write.write_all(b"world\nagain\r\n").await.unwrap();
        write.shutdown().await.unwrap();
        let mut out = String::new();
        read.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world\nhello again\n");
    }
}
