//! A loopback QMQP server for the benchmarks: reads one netstring packet
//! per connection, discards it and answers `3:Kok,`. Callgrind counts only
//! the client's instructions, so its own cost does not matter.
//!
//! It can also watch a process: when a packet is complete it reads that
//! process's `VmHWM` from `/proc/<pid>/status` before answering, i.e. while
//! the client is waiting for the reply with all its work done.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Stub {
    pub port: u16,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    packets: AtomicUsize,
    watch: Mutex<Option<u32>>,
    hwm: Mutex<Option<Result<u64, String>>>,
}

impl Stub {
    pub fn start() -> io::Result<Stub> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &s);
                });
            }
        });
        Ok(Stub { port, shared })
    }

    /// Complete packets received so far (counted before the answer).
    pub fn packets(&self) -> usize {
        self.shared.packets.load(Ordering::SeqCst)
    }

    /// Reads `pid`'s VmHWM when the next packet is complete.
    pub fn watch(&self, pid: u32) {
        *self.shared.hwm.lock().unwrap() = None;
        *self.shared.watch.lock().unwrap() = Some(pid);
    }

    /// The VmHWM (KiB) read for the watched process, if a packet came.
    pub fn take_hwm(&self) -> Option<Result<u64, String>> {
        *self.shared.watch.lock().unwrap() = None;
        self.shared.hwm.lock().unwrap().take()
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut r = BufReader::with_capacity(1 << 16, &stream);
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    // "<len>:<len bytes>,"
    let mut digits = Vec::new();
    r.read_until(b':', &mut digits)?;
    if digits.pop() != Some(b':') || digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("bad netstring length"));
    }
    let len: u64 = std::str::from_utf8(&digits).unwrap().parse().unwrap();
    if io::copy(&mut (&mut r).take(len), &mut io::sink())? != len {
        return Err(bad("packet cut short"));
    }
    let mut comma = [0u8; 1];
    r.read_exact(&mut comma)?;
    if comma != *b"," {
        return Err(bad("packet does not end in a comma"));
    }
    if let Some(pid) = *shared.watch.lock().unwrap() {
        *shared.hwm.lock().unwrap() = Some(vm_hwm(pid));
    }
    shared.packets.fetch_add(1, Ordering::SeqCst);
    (&stream).write_all(b"3:Kok,")
}

/// `VmHWM` of `pid`, in KiB.
fn vm_hwm(pid: u32) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    parse_vm_hwm(&status).ok_or_else(|| format!("no VmHWM in /proc/{pid}/status"))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let v = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    v.trim().strip_suffix("kB")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_one_packet_and_reads_vm_hwm() {
        let stub = Stub::start().unwrap();
        stub.watch(std::process::id());
        let mut c = TcpStream::connect(("127.0.0.1", stub.port)).unwrap();
        c.write_all(b"12:3:abc,1:x,0:,,").unwrap();
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"3:Kok,");
        let hwm = stub.take_hwm().unwrap().unwrap();
        assert!(hwm > 0);
        assert_eq!(stub.packets(), 1);
    }

    #[test]
    fn vm_hwm_line() {
        assert_eq!(parse_vm_hwm("Name:\tx\nVmPeak:\t 1 kB\nVmHWM:\t      32 kB\n"), Some(32));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }
}
