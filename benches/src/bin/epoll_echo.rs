//! `epoll-echo`: the baseline for the loopback benchmark, the leanest echo server the
//! kernel allows: one thread, one edge-triggered epoll loop (mio), no buffer held by
//! an idle connection. It speaks the same protocol as `echo-server` (line limit
//! included) and has none of its operational features.
//!
//! Usage: `epoll-echo [--listen 127.0.0.1:0] [--version bench]`; prints
//! `listening echo=<address>` on stdout once bound.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use echo_server::listener::BACKLOG;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use protocol::{DEFAULT_MAX_LINE, NEWLINE, SEPARATOR};
use socket2::{Domain, Protocol, Socket, Type};

/// Command line of the baseline server.
#[derive(Debug, Parser)]
#[command(
    name = "epoll-echo",
    about = "Baseline single-threaded epoll echo server"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Reply prefix.
    #[arg(long = "version", default_value = "bench")]
    version: String,
}

const LISTENER: Token = Token(usize::MAX);

/// One connection: a partial line and unsent replies, both empty (unallocated) when idle.
struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("epoll-echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &Args) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::from_std(bind(args.listen)?);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening echo={}", listener.local_addr()?);
    io::stdout().flush()?;
    let version = args.version.as_bytes();
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut replies = Vec::with_capacity(128 * 1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in &events {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let slot = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(
                                &mut stream,
                                Token(slot),
                                Interest::READABLE,
                            )?;
                            conns[slot] = Some(Conn {
                                stream,
                                input: Vec::new(),
                                output: Vec::new(),
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let slot = event.token().0;
            let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let keep = if event.is_writable() && !conn.output.is_empty() {
                flush(conn, &poll, slot)
            } else {
                true
            };
            let keep = keep
                && (!event.is_readable()
                    || on_readable(conn, &poll, slot, version, &mut scratch, &mut replies));
            if !keep {
                if let Some(mut conn) = conns[slot].take() {
                    let _ = poll.registry().deregister(&mut conn.stream);
                }
                free.push(slot);
            }
        }
    }
}

/// A non-blocking listener with `SO_REUSEADDR` and the same backlog as echo-server.
fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Reads until drained, answers every complete line; `false` when the connection is done.
fn on_readable(
    conn: &mut Conn,
    poll: &Poll,
    slot: usize,
    version: &[u8],
    scratch: &mut [u8],
    replies: &mut Vec<u8>,
) -> bool {
    loop {
        if !conn.output.is_empty() {
            // The client is not reading its replies: stop reading until it does.
            return true;
        }
        let n = match conn.stream.read(scratch) {
            Ok(0) => {
                if !conn.input.is_empty() {
                    replies.clear();
                    push_reply(replies, version, &conn.input);
                    let _ = conn.stream.write_all(replies);
                }
                return false;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        replies.clear();
        let mut data = &scratch[..n];
        let joined;
        if !conn.input.is_empty() {
            conn.input.extend_from_slice(data);
            joined = std::mem::take(&mut conn.input);
            data = &joined;
        }
        let mut start = 0;
        while let Some(pos) = memchr::memchr(NEWLINE, &data[start..]) {
            let end = start + pos + 1;
            if end - start > DEFAULT_MAX_LINE {
                return false;
            }
            push_reply(replies, version, &data[start..end]);
            start = end;
        }
        let rest = &data[start..];
        if rest.len() > DEFAULT_MAX_LINE {
            return false;
        }
        if !rest.is_empty() {
            conn.input = rest.to_vec();
        }
        if !replies.is_empty() {
            match write_some(&mut conn.stream, replies) {
                Ok(written) if written == replies.len() => {}
                Ok(written) => {
                    conn.output = replies[written..].to_vec();
                    if poll
                        .registry()
                        .reregister(
                            &mut conn.stream,
                            Token(slot),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        return false;
                    }
                    return true;
                }
                Err(_) => return false,
            }
        }
        if n < scratch.len() {
            // A short read drained the socket; the next arrival raises a new edge.
            return true;
        }
    }
}

/// Writes pending replies; `false` when the connection failed.
fn flush(conn: &mut Conn, poll: &Poll, slot: usize) -> bool {
    match write_some(&mut conn.stream, &conn.output) {
        Ok(written) => {
            conn.output.drain(..written);
            if conn.output.is_empty() {
                conn.output = Vec::new();
                poll.registry()
                    .reregister(&mut conn.stream, Token(slot), Interest::READABLE)
                    .is_ok()
            } else {
                true
            }
        }
        Err(_) => false,
    }
}

/// Writes as much as the socket takes without blocking.
fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

fn push_reply(out: &mut Vec<u8>, version: &[u8], line: &[u8]) {
    out.extend_from_slice(version);
    out.push(SEPARATOR);
    out.extend_from_slice(line);
}
