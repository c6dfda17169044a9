//! A scripted QMQP server on loopback, for the failure modes a real server
//! won't produce on demand: replies with chosen text, silence, resets in
//! the middle of a packet, a full accept queue. It complements the real
//! Postfix qmqpd (support/postfix.rs), which checks what a real server sees.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does with each connection.
#[derive(Clone, Debug)]
pub enum Script {
    /// Read the whole packet, send these bytes, close.
    Reply(Vec<u8>),
    /// Read the whole packet, then say nothing (connection kept open).
    Silent,
    /// Read the whole packet, then close without a reply.
    CloseAfterPacket,
    /// Read this many bytes, then reset the connection (mid-packet).
    ResetAfter(usize),
    /// Accept, but never read: the client's writes stall.
    NeverRead,
}

pub struct ScriptedServer {
    port: u16,
    packets: Arc<Mutex<Vec<Vec<u8>>>>,
    connections: Arc<AtomicUsize>,
}

impl ScriptedServer {
    pub fn start(script: Script) -> ScriptedServer {
        Self::on("127.0.0.1:0", script).unwrap()
    }

    /// On `[::1]`; `None` when this machine has no IPv6 loopback.
    pub fn start_v6(script: Script) -> Option<ScriptedServer> {
        Self::on("[::1]:0", script)
    }

    fn on(addr: &str, script: Script) -> Option<ScriptedServer> {
        let listener = TcpListener::bind(addr).ok()?;
        let port = listener.local_addr().unwrap().port();
        let packets = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (p, c) = (packets.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (p, script) = (p.clone(), script.clone());
                std::thread::spawn(move || serve(stream, script, p));
            }
        });
        Some(ScriptedServer { port, packets, connections })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Complete packets received so far.
    pub fn packets(&self) -> Vec<Vec<u8>> {
        self.packets.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(mut s: TcpStream, script: Script, packets: Arc<Mutex<Vec<Vec<u8>>>>) {
    match script {
        Script::NeverRead => std::thread::sleep(Duration::from_secs(120)),
        Script::ResetAfter(n) => {
            let mut buf = vec![0u8; n];
            let _ = s.read_exact(&mut buf);
            // Closing with unread data in the receive queue makes Linux send
            // RST (RFC 2525 §2.17): the client's next write fails.
        }
        script => {
            let Some(packet) = read_packet(&mut s) else { return };
            packets.lock().unwrap().push(packet);
            match script {
                Script::Reply(bytes) => {
                    let _ = s.write_all(&bytes);
                    let _ = s.shutdown(Shutdown::Write);
                    std::thread::sleep(Duration::from_millis(200));
                }
                Script::Silent => std::thread::sleep(Duration::from_secs(120)),
                _ => {}
            }
        }
    }
}

/// Reads one netstring-framed packet (header, body, comma).
fn read_packet(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut header = Vec::new();
    let mut b = [0u8; 1];
    loop {
        s.read_exact(&mut b).ok()?;
        header.push(b[0]);
        if b[0] == b':' {
            break;
        }
    }
    let len: usize = std::str::from_utf8(&header[..header.len() - 1]).ok()?.parse().ok()?;
    let mut rest = vec![0u8; len + 1];
    s.read_exact(&mut rest).ok()?;
    header.extend_from_slice(&rest);
    Some(header)
}

/// A decoded QMQP packet.
#[derive(Debug, PartialEq, Eq)]
pub struct Packet {
    pub message: Vec<u8>,
    pub sender: Vec<u8>,
    pub recipients: Vec<Vec<u8>>,
}

fn netstring(data: &[u8]) -> (&[u8], &[u8]) {
    let colon = data.iter().position(|&b| b == b':').expect("netstring header");
    let len: usize = std::str::from_utf8(&data[..colon]).unwrap().parse().unwrap();
    let body = &data[colon + 1..colon + 1 + len];
    assert_eq!(data[colon + 1 + len], b',', "netstring comma");
    (body, &data[colon + 2 + len..])
}

/// Decodes a packet strictly (panics on any framing error).
pub fn decode(packet: &[u8]) -> Packet {
    let (content, rest) = netstring(packet);
    assert!(rest.is_empty(), "bytes after the packet");
    let (message, mut rest) = netstring(content);
    let (sender, r) = netstring(rest);
    rest = r;
    let mut recipients = Vec::new();
    while !rest.is_empty() {
        let (r, more) = netstring(rest);
        recipients.push(r.to_vec());
        rest = more;
    }
    Packet { message: message.to_vec(), sender: sender.to_vec(), recipients }
}

/// A port on 127.0.0.1 whose accept queue is full: connections to it hang
/// until the client gives up (a stand-in for an unreachable gateway that
/// sends nothing to any address off this machine). Keep it alive while used.
pub struct Blackhole {
    pub port: u16,
    _listener: TcpListener,
    _held: Vec<TcpStream>,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        // Nobody accepts: once the backlog is full, the kernel drops SYNs.
        for _ in 0..4096 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => held.push(s),
                Err(_) => return Blackhole { port: addr.port(), _listener: listener, _held: held },
            }
        }
        panic!("could not fill the accept queue of {addr}");
    }
}
