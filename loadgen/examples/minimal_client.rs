//! The minimum work a load generator does to send HTTP/1.1 requests at a fixed
//! rate: one thread, one epoll loop over non-blocking sockets (mio, the
//! reactor under tokio), the loadgen's schedule, and nothing else: no async
//! runtime, no histograms, no per-request timeouts, no per-request allocation.
//!
//! `bench/run.sh` runs it beside `loadgen load --qps` against the same target
//! with the same rate and connections. Both pay the same system calls and
//! wake-ups per request and, on loopback, much of the server's receive path
//! in the kernel. So the difference between their CPU times is what the
//! loadgen itself adds.
//!
//! Usage: minimal_client HOST:PORT PATH QPS CONNECTIONS SECONDS
//! Prints one JSON object: requests, errors (including responses that had not
//! come 2 s after the duration), elapsed_us, cpu_us.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use loadgen::cpu::CpuTime;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

const USAGE: &str = "usage: minimal_client HOST:PORT PATH QPS CONNECTIONS SECONDS";

/// Maximum response size the client reads; the benchmark's responses are far smaller.
const BUFFER: usize = 64 * 1024;

/// Time after the duration that the client waits for responses still due;
/// the ones that have not come by then count as errors.
const RESPONSE_GRACE: Duration = Duration::from_secs(2);

struct Plan {
    addr: SocketAddr,
    path: String,
    qps: f64,
    connections: usize,
    duration: Duration,
}

struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    filled: usize,
}

fn main() -> ExitCode {
    let plan = match parse_args(std::env::args().skip(1).collect()) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("minimal_client: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&plan) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("minimal_client: {}: {error}", plan.addr);
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: Vec<String>) -> Result<Plan, String> {
    let [addr, path, qps, connections, seconds] = <[String; 5]>::try_from(args)
        .map_err(|args| format!("expected 5 arguments, got {}", args.len()))?;
    let addr = addr
        .parse()
        .map_err(|_| format!("HOST:PORT {addr:?}: not an IP address and port"))?;
    let qps: f64 = qps
        .parse()
        .map_err(|_| format!("QPS {qps:?}: not a number"))?;
    let connections: usize = connections
        .parse()
        .map_err(|_| format!("CONNECTIONS {connections:?}: not a whole number"))?;
    let seconds: f64 = seconds
        .parse()
        .map_err(|_| format!("SECONDS {seconds:?}: not a number"))?;
    let positive = |value: f64| value.is_finite() && value > 0.0;
    if !positive(qps) || connections == 0 || !positive(seconds) {
        return Err("QPS, CONNECTIONS and SECONDS must be positive".to_owned());
    }
    Ok(Plan {
        addr,
        path,
        qps,
        connections,
        duration: Duration::from_secs_f64(seconds),
    })
}

fn run(plan: &Plan) -> io::Result<String> {
    let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", plan.path, plan.addr);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(plan.connections);
    let mut connections = Vec::with_capacity(plan.connections);
    for index in 0..plan.connections {
        let stream = std::net::TcpStream::connect(plan.addr)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(stream);
        poll.registry()
            .register(&mut stream, Token(index), Interest::READABLE)?;
        connections.push(Connection {
            stream,
            buffer: vec![0; BUFFER],
            filled: 0,
        });
    }
    let mut idle: Vec<usize> = (0..plan.connections).rev().collect();

    let cpu_before = CpuTime::now();
    let start = Instant::now();
    let end = start + plan.duration;
    let give_up = end + RESPONSE_GRACE;
    let (mut sent, mut answered, mut errors) = (0u64, 0u64, 0u64);
    loop {
        // Request `sent` is due at start + sent / qps, the loadgen's schedule;
        // a late loop sends what is due at once. As in the loadgen, no
        // request starts after the duration.
        let mut due = start + Duration::from_secs_f64(sent as f64 / plan.qps);
        let now = Instant::now();
        while due <= now && due < end && now < end {
            let Some(index) = idle.pop() else { break };
            // An idle connection's send buffer is empty, so the request fits.
            connections[index].stream.write_all(request.as_bytes())?;
            sent += 1;
            due = start + Duration::from_secs_f64(sent as f64 / plan.qps);
        }
        let sending_done = due >= end || now >= end;
        if sending_done && (answered == sent || now >= give_up) {
            errors += sent - answered;
            break;
        }
        let wake = if sending_done || idle.is_empty() {
            give_up
        } else {
            due
        };
        poll.poll(&mut events, Some(wake.saturating_duration_since(now)))?;
        for event in events.iter() {
            let index = event.token().0;
            if let Some(status) = read_response(&mut connections[index])? {
                answered += 1;
                if !(200..400).contains(&status) {
                    errors += 1;
                }
                idle.push(index);
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu = CpuTime::now().since(cpu_before);

    Ok(format!(
        r#"{{"requests":{sent},"errors":{errors},"elapsed_us":{},"cpu_us":{}}}"#,
        elapsed.as_micros(),
        cpu.total.as_micros(),
    ))
}

/// Reads what has arrived; returns the status once a whole response with a
/// `Content-Length` body is in. It validates nothing, to stay the cheapest
/// reader possible.
fn read_response(connection: &mut Connection) -> io::Result<Option<u16>> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    loop {
        if connection.filled == connection.buffer.len() {
            return Err(invalid("response larger than the read buffer"));
        }
        let read = match connection
            .stream
            .read(&mut connection.buffer[connection.filled..])
        {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(error) => return Err(error),
        };
        connection.filled += read;

        let received = &connection.buffer[..connection.filled];
        let Some(head_end) = memchr::memmem::find(received, b"\r\n\r\n") else {
            continue;
        };
        let head = &received[..head_end];
        let status = head
            .get(9..12)
            .and_then(|code| std::str::from_utf8(code).ok()?.parse().ok())
            .ok_or_else(|| invalid("no status code"))?;
        let length: usize = head
            .split(|&byte| byte == b'\n')
            .find_map(|line| {
                let colon = memchr::memchr(b':', line)?;
                let (name, value) = line.split_at(colon);
                if !name.eq_ignore_ascii_case(b"content-length") {
                    return None;
                }
                std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok()
            })
            .ok_or_else(|| invalid("response without a Content-Length"))?;
        if connection.filled >= head_end + 4 + length {
            // Edge-triggered epoll reports the next response as a new event,
            // so a complete response needs no read to `WouldBlock`, as in tokio.
            connection.filled = 0;
            return Ok(Some(status));
        }
    }
}
